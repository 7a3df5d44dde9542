package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/custos-audit/custos/internal/atna"
	"github.com/prometheus/client_golang/prometheus"
)

// atnaConfig configures the IHE ATNA syslog listeners of `custos serve`.
type atnaConfig struct {
	tlsAddr, udpAddr        string
	cert, key, clientCA     string
	maxFrame, maxXML, batch int
}

func (c *atnaConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.tlsAddr, "atna-tls", "", "IHE ATNA: listen for syslog over mutual TLS (RFC 5425) on this address (needs --atna-cert, --atna-key, --atna-client-ca)")
	fs.StringVar(&c.udpAddr, "atna-udp", "", "IHE ATNA: also listen for syslog over UDP (RFC 5426, unauthenticated) on this address")
	fs.StringVar(&c.cert, "atna-cert", "", "IHE ATNA: the TLS listener's certificate (PEM)")
	fs.StringVar(&c.key, "atna-key", "", "IHE ATNA: the TLS listener's private key (PEM)")
	fs.StringVar(&c.clientCA, "atna-client-ca", "", "IHE ATNA: CA certificates (PEM) that sending nodes' client certificates must chain to")
	fs.IntVar(&c.maxFrame, "atna-max-frame", atna.DefaultMaxFrame, "IHE ATNA: bytes of a syslog frame or datagram at most; a larger frame closes the connection")
	fs.IntVar(&c.maxXML, "atna-max-xml", atna.DefaultMaxXML, "IHE ATNA: bytes of a DICOM audit message at most")
	fs.IntVar(&c.batch, "atna-batch", 256, "IHE ATNA: messages of one connection per group commit at most")
}

func (c *atnaConfig) enabled() bool { return c.tlsAddr != "" || c.udpAddr != "" }

func (c *atnaConfig) check() error {
	if c.maxFrame < 512 || c.maxXML < 512 || c.batch < 1 {
		return errors.New("--atna-max-frame and --atna-max-xml must be at least 512 bytes, --atna-batch at least 1")
	}
	if c.tlsAddr == "" && (c.cert != "" || c.key != "" || c.clientCA != "") {
		return errors.New("--atna-cert, --atna-key and --atna-client-ca need --atna-tls")
	}
	return nil
}

// startATNA opens the ATNA listeners; each reports its end on s.done.
func (s *server) startATNA(cfg atnaConfig, reg prometheus.Registerer) error {
	rc := atna.Config{MaxFrame: cfg.maxFrame, Limits: atna.Limits{MaxBytes: cfg.maxXML}, MaxBatch: cfg.batch,
		Logger: s.log, Registry: reg}
	if cfg.tlsAddr != "" {
		tc, err := atna.ServerTLS(cfg.cert, cfg.key, cfg.clientCA)
		if err != nil {
			return fmt.Errorf("--atna-tls: %w", err)
		}
		rc.TLS = tc
	}
	s.atna = atna.New(s.seq, rc)
	if cfg.tlsAddr != "" {
		ln, err := net.Listen("tcp", cfg.tlsAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.tlsAddr, err)
		}
		go s.serveATNA(func() error { return s.atna.ServeTLS(ln) })
		s.log.Info("atna is listening", "transport", "tls", "addr", ln.Addr().String())
	}
	if cfg.udpAddr != "" {
		pc, err := net.ListenPacket("udp", cfg.udpAddr)
		if err != nil {
			s.closeATNA()
			return fmt.Errorf("listen on %s: %w", cfg.udpAddr, err)
		}
		go s.serveATNA(func() error { return s.atna.ServeUDP(pc) })
		s.log.Info("atna is listening", "transport", "udp", "addr", pc.LocalAddr().String())
	}
	return nil
}

func (s *server) serveATNA(serve func() error) {
	if err := serve(); err != nil && !errors.Is(err, atna.ErrClosed) {
		select {
		case s.done <- fmt.Errorf("atna: %w", err):
		default:
		}
	}
}

// closeATNA stops the ATNA listeners and commits the messages already read,
// before the ledger closes.
func (s *server) closeATNA() {
	if s.atna == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.atna.Close(ctx); err != nil {
		s.log.Error("atna: shutdown did not commit every message read", "err", err)
	}
}
