package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/custos-audit/custos/internal/alert"
	"github.com/custos-audit/custos/internal/monitor"
	"github.com/custos-audit/custos/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// alertFlags configure where security events go out.
type alertFlags struct {
	webhook, webhookSecret                  string
	syslog, syslogCA, syslogCert, syslogKey string
	syslogTLS                               bool
}

func (a *alertFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&a.webhook, "alert-webhook", "", "URL that receives every security event as a signed JSON POST")
	fs.StringVar(&a.webhookSecret, "alert-webhook-secret", "", "HMAC-SHA256 key of the webhook's Custos-Signature header (CUSTOS_ALERT_WEBHOOK_SECRET)")
	fs.StringVar(&a.syslog, "alert-syslog", "", "host:port of a syslog receiver for security events (RFC 5424, octet-counted TCP)")
	fs.BoolVar(&a.syslogTLS, "alert-syslog-tls", false, "send to --alert-syslog over TLS (RFC 5425)")
	fs.StringVar(&a.syslogCA, "alert-syslog-ca", "", "CA certificate (PEM) that signs the syslog receiver's certificate (default: the system's)")
	fs.StringVar(&a.syslogCert, "alert-syslog-cert", "", "client certificate (PEM) for mutual TLS with the syslog receiver")
	fs.StringVar(&a.syslogKey, "alert-syslog-key", "", "its private key (PEM)")
}

// sinks returns the configured sinks.
func (a *alertFlags) sinks() ([]alert.Sink, error) {
	var out []alert.Sink
	if a.webhook != "" {
		if len(a.webhookSecret) < 16 {
			return nil, errors.New("--alert-webhook needs --alert-webhook-secret (CUSTOS_ALERT_WEBHOOK_SECRET), at least 16 characters")
		}
		w, err := alert.NewWebhook(alert.WebhookConfig{Name: "webhook", URL: a.webhook, Secret: []byte(a.webhookSecret)})
		if err != nil {
			return nil, fmt.Errorf("--alert-webhook: %w", err)
		}
		out = append(out, w)
	}
	if a.syslog != "" {
		cfg := alert.SyslogConfig{Name: "syslog", Addr: a.syslog}
		if a.syslogTLS {
			tc, err := a.tlsConfig()
			if err != nil {
				return nil, err
			}
			cfg.TLS = tc
		}
		s, err := alert.NewSyslog(cfg)
		if err != nil {
			return nil, fmt.Errorf("--alert-syslog: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (a *alertFlags) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.syslogCA != "" {
		pem, err := os.ReadFile(a.syslogCA)
		if err != nil {
			return nil, fmt.Errorf("--alert-syslog-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--alert-syslog-ca %s: no PEM certificate in it", a.syslogCA)
		}
	}
	if a.syslogCert != "" || a.syslogKey != "" {
		cert, err := tls.LoadX509KeyPair(a.syslogCert, a.syslogKey)
		if err != nil {
			return nil, fmt.Errorf("--alert-syslog-cert/--alert-syslog-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// startOutboxes runs one outbox per sink until ctx ends; the returned func
// wakes them all (new alerts committed).
func startOutboxes(ctx context.Context, sinks []alert.Sink, mon *monitor.Monitor, st store.Store, log *slog.Logger,
	reg *prometheus.Registry, done func()) (func(), error) {
	if len(sinks) == 0 {
		done()
		return func() {}, nil
	}
	h, err := st.Head(ctx)
	if err != nil {
		return nil, err
	}
	var boxes []*alert.Outbox
	for _, s := range sinks {
		// A sink seen for the first time starts with the alerts from now on.
		b := alert.NewOutbox(s, mon.Alerts, mon.Progress(), alert.OutboxConfig{Start: h.Size, Logger: log})
		boxes = append(boxes, b)
		labels := prometheus.Labels{"sink": s.Name()}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custos_alert_backlog",
			Help: "Alerts waiting to be delivered to a sink.", ConstLabels: labels},
			func() float64 { return float64(b.Stats().Backlog) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "custos_alert_failed_total",
			Help: "Alerts a sink refused for good (logged, skipped).", ConstLabels: labels},
			func() float64 { return float64(b.Stats().FailedPermanent) }))
	}
	remaining := len(boxes)
	finished := make(chan struct{}, len(boxes))
	for _, b := range boxes {
		go func() {
			if err := b.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("alert outbox stopped", "error", err)
			}
			finished <- struct{}{}
		}()
	}
	go func() {
		for range remaining {
			<-finished
		}
		done()
	}()
	return func() {
		for _, b := range boxes {
			b.Wake()
		}
	}, nil
}
