package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/httpaudit"
	"github.com/custos-audit/custos/internal/authn/oidc"
	"github.com/custos-audit/custos/internal/proxy"
)

// proxyConfig is what custos proxy is told.
type proxyConfig struct {
	addr, upstream, custosURL, token, source, spool, fhirBase  string
	jwtIssuer, jwksURL, jwtAudience, jwtUserClaim              string
	jwtNameClaim, jwtRolesClaim, userHeader, rolesHeader       string
	logLevel, logFormat                                        string
	trusted, failClosed                                        listFlag
	allowAnonymous                                             bool
	spoolMax, maxBody                                          int64
	maxPatients, batchSize                                     int
	flushInterval, upstreamTimeout, writeTimeout, blockRefresh time.Duration
	shutdownTimeout                                            time.Duration
}

func (c *proxyConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8090", "address the proxy listens on")
	fs.StringVar(&c.upstream, "upstream", "", "the application to audit, e.g. http://127.0.0.1:8082 (required)")
	fs.StringVar(&c.custosURL, "custos-url", "http://127.0.0.1:8080", "the Custos server that records the events")
	fs.StringVar(&c.token, "token", "", "Custos key with events:write (and blocks:check to refuse blocked addresses)")
	fs.StringVar(&c.source, "source", "custos-proxy", "the events' source: which system they come from")
	fs.StringVar(&c.spool, "spool", "custos-proxy-spool", "folder where events wait, on disk, while Custos does not answer")
	fs.Int64Var(&c.spoolMax, "spool-max-bytes", 1<<30, "the spool's size limit")
	fs.StringVar(&c.fhirBase, "fhir-base", "/", "path prefix of the upstream's FHIR API (\"/\" for the whole site): reads and searches under it are recorded per resource and patient")
	fs.StringVar(&c.jwtIssuer, "jwt-issuer", "", "OpenID Connect issuer: accept its bearer JWTs, keys by discovery")
	fs.StringVar(&c.jwksURL, "jwks-url", "", "JSON Web Key Set URL of the JWT signer (instead of discovery; --jwt-issuer, if given, is still checked)")
	fs.StringVar(&c.jwtAudience, "jwt-audience", "", "the audience the JWTs must name (required with --jwt-issuer or --jwks-url)")
	fs.StringVar(&c.jwtUserClaim, "jwt-user-claim", "sub", "the claim that names the user")
	fs.StringVar(&c.jwtNameClaim, "jwt-name-claim", "name", "the claim with the user's display name")
	fs.StringVar(&c.jwtRolesClaim, "jwt-roles-claim", "", "dotted path of the claim listing the user's roles (realm_access.roles, roles, groups)")
	fs.StringVar(&c.userHeader, "user-header", "", "header naming the user, set by a trusted gateway (believed only from --trusted-proxy peers)")
	fs.StringVar(&c.rolesHeader, "roles-header", "", "header listing the user's roles, comma-separated, set by the same gateway")
	fs.Var(&c.trusted, "trusted-proxy", "address or CIDR of a proxy whose X-Forwarded-For and identity headers are believed (repeatable, or comma-separated)")
	fs.Var(&c.failClosed, "fail-closed", "route pattern (\"GET /Patient/{id}\") answered 503 when its event cannot be recorded rather than spooled (repeatable)")
	fs.BoolVar(&c.allowAnonymous, "allow-anonymous", false, "pass requests without a credential through (recorded without a user) instead of 401")
	fs.Int64Var(&c.maxBody, "max-body", 10<<20, "request body limit in bytes: larger bodies get 413")
	fs.IntVar(&c.maxPatients, "max-patients", 1000, "distinct patients recorded per search response (IHE BALP); more are noted as truncated")
	fs.IntVar(&c.batchSize, "batch-size", 500, "events sent to Custos per request at most")
	fs.DurationVar(&c.flushInterval, "flush-interval", 100*time.Millisecond, "longest an event waits in the spool before it is sent, in a batch")
	fs.DurationVar(&c.blockRefresh, "block-refresh", time.Second, "how often the blocked addresses are fetched from Custos (the key needs blocks:check); 0 checks none")
	fs.DurationVar(&c.upstreamTimeout, "upstream-timeout", time.Minute, "longest wait for the upstream's response headers")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 10*time.Minute, "longest time to send one response (streams included)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on a signal, longest wait for requests in flight and for Custos to take the events held; what is not sent stays in the spool for the next start")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text, or json for log shippers")
}

func proxyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var c proxyConfig
	c.flags(fs)
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	log, err := newLogger(stderr, c.logLevel, c.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "custos proxy:", err)
		return exitUsageErr
	}
	p, err := startProxy(ctx, c, log)
	if err != nil {
		fmt.Fprintln(stderr, "custos proxy:", err)
		return exitUsageErr
	}
	select {
	case <-ctx.Done():
	case err := <-p.done:
		log.Error("the listener stopped", "err", err)
		p.done <- err
		p.shutdown()
		return exitError
	}
	log.Info("shutting down: finishing requests and sending every event")
	if err := p.shutdown(); err != nil {
		fmt.Fprintln(stderr, "custos proxy: shutdown:", err)
		return exitError
	}
	return exitOK
}

// proxyServer is a running custos proxy.
type proxyServer struct {
	url     string
	http    *http.Server
	auditor *httpaudit.Auditor
	done    chan error
	timeout time.Duration // of shutdown
}

// startProxy checks c, wires the proxy behind the audit middleware and
// starts listening.
func startProxy(ctx context.Context, c proxyConfig, log *slog.Logger) (*proxyServer, error) {
	up, err := url.Parse(c.upstream)
	if err != nil || c.upstream == "" {
		return nil, errors.New("--upstream must be the application's URL (http://host:port)")
	}
	if c.token == "" {
		return nil, errors.New("--token (or CUSTOS_TOKEN) is required: a Custos key with events:write")
	}
	trusted, err := parsePrefixes(c.trusted)
	if err != nil {
		return nil, err
	}
	pc := proxy.Config{Upstream: up, UserHeader: c.userHeader, RolesHeader: c.rolesHeader, TrustedProxies: trusted,
		AllowAnonymous: c.allowAnonymous, FHIRBase: c.fhirBase, MaxBody: c.maxBody, MaxPatients: c.maxPatients,
		ResponseHeaderTimeout: c.upstreamTimeout, Logger: log}
	if c.jwtIssuer != "" || c.jwksURL != "" {
		if c.jwtAudience == "" {
			return nil, errors.New("--jwt-audience is required with --jwt-issuer or --jwks-url")
		}
		v, err := oidc.New(oidc.Config{Issuer: c.jwtIssuer, JWKSURL: c.jwksURL, ClientID: c.jwtAudience,
			UserIDClaim: c.jwtUserClaim, NameClaim: c.jwtNameClaim, RolesClaim: c.jwtRolesClaim})
		if err != nil {
			return nil, err
		}
		pc.JWT = v
	}
	p, err := proxy.New(pc)
	if err != nil {
		return nil, err
	}
	var routes []httpaudit.Route
	for _, pat := range c.failClosed {
		routes = append(routes, httpaudit.Route{Pattern: pat, FailClosed: true})
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	aud, err := httpaudit.New(httpaudit.Config{
		Client: client.New(c.custosURL, c.token, hc), Source: c.source,
		SpoolDir: c.spool, SpoolMaxBytes: c.spoolMax,
		User: p.User, Expand: p.Expand, Routes: routes, FHIRBase: c.fhirBase, TrustedProxies: trusted,
		BatchSize: c.batchSize, FlushInterval: c.flushInterval, BlockRefresh: c.blockRefresh, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		aud.Close(context.Background())
		return nil, err
	}
	s := &proxyServer{url: "http://" + ln.Addr().String(), auditor: aud, done: make(chan error, 1), timeout: c.shutdownTimeout,
		http: &http.Server{Handler: p.Handler(aud.Handler), ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 5 * time.Minute, WriteTimeout: c.writeTimeout, IdleTimeout: 2 * time.Minute,
			MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}}
	go func() { s.done <- s.http.Serve(ln) }()
	log.Info("custos proxy listening", "addr", ln.Addr().String(), "upstream", up.Redacted(), "custos", c.custosURL,
		"identity", identityMode(c), "fhir_base", c.fhirBase)
	return s, nil
}

// shutdown stops accepting, lets running requests finish, then sends every
// event still held (spooled ones included) before it returns.
func (s *proxyServer) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if aerr := s.auditor.Close(ctx); aerr != nil && err == nil {
		err = aerr
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func identityMode(c proxyConfig) string {
	switch {
	case c.jwtIssuer != "" || c.jwksURL != "":
		return "jwt"
	case c.userHeader != "":
		return "header"
	}
	return "none"
}

// parsePrefixes reads addresses and CIDRs, each flag value possibly a
// comma-separated list.
func parsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("--trusted-proxy %q: not an address or CIDR", s)
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}
