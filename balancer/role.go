package balancer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/caddyserver/certmagic"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/pki"
)

// Role is the proxy role: a TLS sticky load balancer on proxy-https-port in front of the
// coordinators registered in etcd (or a fixed upstream list), and redirects to HTTPS plus ACME
// http-01 answers on proxy-http-port.
//
// Certificates come from files, or from certmagic with its storage in etcd so that every proxy
// serves the same certificate and one of them issues and renews it: the cluster CA signs
// through a controller (POST /v1/pki/sign), or an ACME CA. Pin keys and TLS session ticket keys
// are shared through etcd too, so a client may move between proxies without losing its
// coordinator or its TLS session. All of it is sealed with the proxy keyring, which the proxy
// fetches from a controller at start and keeps in memory only.
type Role struct {
	m       *service.Machine
	cfg     *config.Config
	log     *slog.Logger
	srv     *service.Server // the role's server: health endpoints, registry, the bound HTTPS listener
	member  *service.Member // nil for a standalone proxy
	engine  *Proxy
	https   *http.Server // also srv.HTTP, which Drain shuts down
	plain   *http.Server
	plainLn net.Listener
	names   []string
	trusted []netip.Prefix
	bundle  *pki.Bundle
	machine *tls.Config // serves this machine's certificate while no managed one fits
	statics []config.ProxyUpstream

	fileCert atomic.Pointer[tls.Certificate]
	magic    atomic.Pointer[certmagic.Config]
	cache    atomic.Pointer[certmagic.Cache]
	acme     atomic.Pointer[certmagic.ACMEIssuer]
	unshared atomic.Bool // no controller holds a keyring: nothing is shared, see fetchKeyring
	pins     atomic.Bool // shared pin keys installed
	tickets  atomic.Bool // shared ticket keys installed
	setupErr atomic.Pointer[string]

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRole returns the proxy role of machine m.
func NewRole(m *service.Machine, log *slog.Logger) *Role { return &Role{m: m, cfg: m.Config, log: log} }

// Name is the role's name.
func (px *Role) Name() string { return config.RoleProxy }

// Endpoint is the proxy's HTTPS URL.
func (px *Role) Endpoint() string { return px.cfg.URL(px.cfg.Address, px.cfg.ProxyHTTPSPort) }

// Ready is nil while the proxy serves with a certificate and a healthy upstream.
func (px *Role) Ready() error { return px.srv.Ready() }

// Start binds both ports, joins the cluster (unless the proxy is standalone: fixed upstreams
// and certificate files, nothing to ask the cluster for) and serves.
func (px *Role) Start(ctx context.Context) error {
	c := px.cfg
	px.srv = service.NewServer(config.RoleProxy, c.Listen(c.ProxyHTTPSPort), px.m.ServerTLS, px.log, nil)
	if err := px.srv.Listen(); err != nil {
		return err
	}
	if err := px.build(); err != nil {
		px.srv.Close()
		return err
	}
	if c.ProxyStandalone() {
		px.start(ctx, nil)
		return nil
	}
	member, rctx, err := px.m.Join(ctx, config.RoleProxy, px.Endpoint(), px.log, nil)
	if err != nil {
		px.close()
		px.srv.Close()
		return err
	}
	px.member = member
	px.srv.AddCheck("etcd registration", member.Registered)
	px.start(rctx, member.Etcd) // serves on its own: its TLS configuration is not the machine's
	return nil
}

// build makes the proxy on the role's bound listener and binds the plain-HTTP port. It serves
// nothing until start.
func (px *Role) build() error {
	c, log, srv, b := px.cfg, px.log, px.srv, px.m.Bundle
	trusted, err := config.ParseProxyTrusted(c.ProxyTrusted)
	if err != nil {
		return err
	}
	statics, err := config.ParseProxyUpstreams(c.ProxyUpstreams)
	if err != nil {
		return err
	}
	px.names, px.trusted, px.statics, px.bundle, px.machine = c.ProxyCertNames(), trusted, statics, b, b.ServerConfig()
	pcfg := Config{
		AffinityHeader: c.ProxyAffinityHeader,
		TrustedProxies: trusted,
		HealthInterval: c.ProxyHealthInterval,
		HealthTimeout:  c.ProxyHealthTimeout,
		Fall:           c.ProxyHealthFall,
		Rise:           c.ProxyHealthRise,
		// Coordinators serve the cluster CA's certificates and take this machine's as a client.
		UpstreamTLS: b.ClientConfig(""),
		Registerer:  srv.Registry,
		Logger:      log,
	}
	if c.ProxyAccessLog {
		pcfg.AccessLog = log.With("log", "access")
	}
	if px.engine, err = New(pcfg); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if c.ProxyCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.ProxyCertFile, c.ProxyKeyFile)
		if err != nil {
			return fmt.Errorf("proxy: load proxy-cert-file %s and proxy-key-file %s: %w", c.ProxyCertFile, c.ProxyKeyFile, err)
		}
		px.fileCert.Store(&cert)
	}
	px.https = NewServer(px.handler(), &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: px.getCertificate,
		// Cluster certificates are verified when offered (the /metrics endpoint takes them),
		// and a certificate from another CA fails the handshake.
		ClientCAs:        b.Pool(),
		ClientAuth:       tls.VerifyClientCertIfGiven,
		VerifyConnection: b.VerifyConnection, // a removed machine's certificate is refused
	})
	px.https.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if c.ProxyACMEDirectory != "" {
		// Last, so that it is chosen only by ACME validators, which offer nothing else.
		px.https.TLSConfig.NextProtos = append(px.https.TLSConfig.NextProtos, "acme-tls/1")
	}
	srv.HTTP = px.https
	addr := c.Listen(c.ProxyHTTPPort)
	if px.plainLn, err = net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("proxy: listen on %s: %w", addr, err)
	}
	px.plain = &http.Server{
		Handler:           http.HandlerFunc(px.redirect),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return nil
}

// start serves both ports and runs the background work until stop. cli is nil for a
// standalone proxy (config.ProxyStandalone), which then uses nothing of the cluster.
func (px *Role) start(ctx context.Context, cli *clientv3.Client) {
	ctx, px.cancel = context.WithCancel(context.WithoutCancel(ctx))
	_ = px.engine.Start(ctx) // fails only when started twice
	if len(px.statics) > 0 {
		ups := make([]Upstream, len(px.statics))
		for i, u := range px.statics {
			ups[i] = Upstream{ID: u.ID, URL: u.URL}
		}
		if err := px.engine.SetUpstreams(ups); err != nil {
			px.log.Error("proxy: proxy-upstreams", "err", err) // config.Check validated them
		}
	} else {
		px.wg.Go(func() { px.watchCoordinators(ctx, cli) })
	}
	if px.fileCert.Load() != nil {
		px.wg.Go(func() { px.reloadFiles(ctx) })
	}
	if cli != nil {
		px.wg.Go(func() { px.shared(ctx, cli) })
		px.srv.AddCheck("shared keys", px.sharedReady)
	}
	px.srv.AddCheck("upstreams", px.upstreamsReady)
	px.srv.AddCheck("certificate", px.certReady)

	px.srv.ServeOn(tls.NewListener(Listen(px.srv.Listener, px.trusted), px.https.TLSConfig))
	go func() { _ = px.plain.Serve(px.plainLn) }()
	px.log.Info("proxy serving", "https", px.srv.Addr(), "http", px.plainLn.Addr().String(), "names", px.names,
		"upstreams", map[bool]string{true: "fixed (proxy-upstreams)", false: "coordinators registered in etcd"}[len(px.statics) > 0],
		"standalone", cli == nil)
}

// close releases what build bound, for a Start that failed before start.
func (px *Role) close() {
	px.plainLn.Close()
	_ = px.engine.Close()
}

// Stop drains: the HTTPS listener closes, in-flight requests and upgraded connections finish
// within ctx, then the background work ends and the proxy leaves the cluster.
func (px *Role) Stop(ctx context.Context) {
	upgrades := make(chan struct{})
	go func() {
		if err := px.engine.Shutdown(ctx); err != nil {
			px.log.Warn("proxy: drain cut short", "err", err)
		}
		close(upgrades)
	}()
	px.srv.Drain(ctx)
	<-upgrades
	_ = px.plain.Shutdown(ctx)
	if px.cancel != nil {
		px.cancel()
	}
	px.wg.Wait()
	_ = px.engine.Close()
	if c := px.cache.Load(); c != nil {
		c.Stop()
	}
	if px.member != nil {
		px.member.Leave(ctx)
	}
}

// handler answers the role's own health, metrics and profiling endpoints and proxies everything
// else. As on a coordinator, a signed request for those paths goes upstream: they are valid
// bucket names.
func (px *Role) handler() http.Handler {
	own, eng := px.srv.Mux, px.engine
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/healthz" || p == "/readyz" || p == "/metrics" || strings.HasPrefix(p, "/debug/pprof/") {
			if r.Header.Get("Authorization") == "" && !r.URL.Query().Has("X-Amz-Signature") {
				own.ServeHTTP(w, r)
				return
			}
		}
		eng.ServeHTTP(w, r)
	})
}

// redirect serves the plain-HTTP port: ACME http-01 answers, else a redirect to HTTPS.
func (px *Role) redirect(w http.ResponseWriter, r *http.Request) {
	if iss := px.acme.Load(); iss != nil && iss.HandleHTTPChallenge(w, r) {
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = strings.Trim(r.Host, "[]")
	}
	if p := px.cfg.ProxyHTTPSPort; p != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(p))
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// getCertificate serves the file certificate, else certmagic's. Until certmagic has one for the
// name, the machine's own certificate (valid for its address and name) is served, so that
// health checks reach /readyz and read why the proxy is not ready.
func (px *Role) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := px.fileCert.Load(); c != nil {
		return c, nil
	}
	if mc := px.magic.Load(); mc != nil {
		if c, err := mc.GetCertificate(hello); err == nil {
			return c, nil
		}
	}
	return px.machine.GetCertificate(hello)
}

func (px *Role) upstreamsReady() error {
	st := px.engine.Stats()
	if len(st.Upstreams) == 0 {
		return errors.New("no upstream: no coordinator is registered")
	}
	for _, u := range st.Upstreams {
		if u.State == StateHealthy {
			return nil
		}
	}
	return fmt.Errorf("none of the %d upstreams is healthy", len(st.Upstreams))
}

func (px *Role) certReady() error {
	if px.fileCert.Load() != nil {
		return nil
	}
	if px.unshared.Load() {
		return nil // the machine's certificate; fetchKeyring warned about names it lacks
	}
	cache := px.cache.Load()
	if cache == nil {
		return px.waiting("waiting for the proxy keyring")
	}
	for _, n := range px.names {
		if len(cache.AllMatchingCertificates(n)) == 0 {
			return px.waiting("no certificate for " + n + " yet")
		}
	}
	return nil
}

func (px *Role) sharedReady() error {
	if px.unshared.Load() || (px.pins.Load() && px.tickets.Load()) {
		return nil
	}
	return px.waiting("waiting for the shared pin and ticket keys")
}

// waiting is a not-ready reason, with the last setup error when there is one.
func (px *Role) waiting(what string) error {
	if e := px.setupErr.Load(); e != nil {
		return fmt.Errorf("%s: %s", what, *e)
	}
	return errors.New(what)
}

func (px *Role) setErr(err error) {
	s := err.Error()
	px.setupErr.Store(&s)
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
