package roles

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/security/certstore"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/balancer"
	"github.com/hanode/hanode/security/secrets"
)

// Where the proxies keep what they share in etcd, sealed with the proxy keyring (see
// pkisign.go). Outside /hanode/secrets/ on purpose: a cluster keyring rotation re-seals that
// prefix and cannot open values sealed with another keyring.
const (
	proxyPrefix        = cluster.Root + "proxy/"
	proxyCertPrefix    = proxyPrefix + "certmagic/"
	proxyTicketKeysKey = proxyPrefix + "keys/tickets"
	proxyPinKeysKey    = proxyPrefix + "keys/pins"
)

// proxyRole is the proxy role: a TLS sticky load balancer on proxy-https-port in front of the
// coordinators registered in etcd (or a fixed upstream list), and redirects to HTTPS plus ACME
// http-01 answers on proxy-http-port.
//
// Certificates come from files, or from certmagic with its storage in etcd so that every proxy
// serves the same certificate and one of them issues and renews it: the cluster CA signs
// through a controller (POST /v1/pki/sign), or an ACME CA. Pin keys and TLS session ticket keys
// are shared through etcd too, so a client may move between proxies without losing its
// coordinator or its TLS session. All of it is sealed with the proxy keyring, which the proxy
// fetches from a controller at start and keeps in memory only.
type proxyRole struct {
	cfg     *config.Config
	log     *slog.Logger
	srv     *server // the role's server: health endpoints, registry, the bound HTTPS listener
	engine  *balancer.Proxy
	https   *http.Server // also srv.http, which drain shuts down
	plain   *http.Server
	plainLn net.Listener
	names   []string
	trusted []netip.Prefix
	bundle  *pki.Bundle
	machine *tls.Config                                                 // serves this machine's certificate while no managed one fits
	admin   func(context.Context, *clientv3.Client) *adminapi.Client // the process's client of the controllers
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

// newProxyRole builds the proxy on the role's bound listener and binds the plain-HTTP port. It
// serves nothing until start.
func newProxyRole(o Options, log *slog.Logger, srv *server) (*proxyRole, error) {
	c := o.Config
	trusted, err := config.ParseProxyTrusted(c.ProxyTrusted)
	if err != nil {
		return nil, err
	}
	statics, err := config.ParseProxyUpstreams(c.ProxyUpstreams)
	if err != nil {
		return nil, err
	}
	px := &proxyRole{cfg: c, log: log, srv: srv, names: c.ProxyCertNames(), trusted: trusted, statics: statics,
		bundle: o.Bundle, machine: o.Bundle.ServerConfig(), admin: o.controllerClient,
	}
	pcfg := balancer.Config{
		AffinityHeader: c.ProxyAffinityHeader,
		TrustedProxies: trusted,
		HealthInterval: c.ProxyHealthInterval,
		HealthTimeout:  c.ProxyHealthTimeout,
		Fall:           c.ProxyHealthFall,
		Rise:           c.ProxyHealthRise,
		// Coordinators serve the cluster CA's certificates and take this machine's as a client.
		UpstreamTLS: o.Bundle.ClientConfig(""),
		Registerer:  srv.registry,
		Logger:      log,
	}
	if c.ProxyAccessLog {
		pcfg.AccessLog = log.With("log", "access")
	}
	if px.engine, err = balancer.New(pcfg); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if c.ProxyCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.ProxyCertFile, c.ProxyKeyFile)
		if err != nil {
			return nil, fmt.Errorf("proxy: load proxy-cert-file %s and proxy-key-file %s: %w", c.ProxyCertFile, c.ProxyKeyFile, err)
		}
		px.fileCert.Store(&cert)
	}
	px.https = balancer.NewServer(px.handler(), &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: px.getCertificate,
		// Cluster certificates are verified when offered (the /metrics endpoint takes them),
		// and a certificate from another CA fails the handshake.
		ClientCAs:  o.Bundle.Pool(),
		ClientAuth: tls.VerifyClientCertIfGiven,
	})
	px.https.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if c.ProxyACMEDirectory != "" {
		// Last, so that it is chosen only by ACME validators, which offer nothing else.
		px.https.TLSConfig.NextProtos = append(px.https.TLSConfig.NextProtos, "acme-tls/1")
	}
	srv.http = px.https
	addr := c.Listen(c.ProxyHTTPPort)
	if px.plainLn, err = net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("proxy: listen on %s: %w", addr, err)
	}
	px.plain = &http.Server{
		Handler:           http.HandlerFunc(px.redirect),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return px, nil
}

// start serves both ports and runs the background work until stop. cli is nil for a
// standalone proxy (config.ProxyStandalone), which then uses nothing of the cluster.
func (px *proxyRole) start(ctx context.Context, cli *clientv3.Client) {
	ctx, px.cancel = context.WithCancel(context.WithoutCancel(ctx))
	_ = px.engine.Start(ctx) // fails only when started twice
	if len(px.statics) > 0 {
		ups := make([]balancer.Upstream, len(px.statics))
		for i, u := range px.statics {
			ups[i] = balancer.Upstream{ID: u.ID, URL: u.URL}
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
		px.srv.addCheck("shared keys", px.sharedReady)
	}
	px.srv.addCheck("upstreams", px.upstreamsReady)
	px.srv.addCheck("certificate", px.certReady)

	ln := tls.NewListener(balancer.Listen(px.srv.ln, px.trusted), px.https.TLSConfig)
	go func() {
		err := px.https.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		px.srv.done <- err
	}()
	go func() { _ = px.plain.Serve(px.plainLn) }()
	px.log.Info("proxy serving", "https", px.srv.addr, "http", px.plainLn.Addr().String(), "names", px.names,
		"upstreams", map[bool]string{true: "fixed (proxy-upstreams)", false: "coordinators registered in etcd"}[len(px.statics) > 0],
		"standalone", cli == nil)
}

// close releases what newProxyRole bound, for a start that failed before start.
func (px *proxyRole) close() {
	px.plainLn.Close()
	_ = px.engine.Close()
}

// stop drains: the HTTPS listener closes, in-flight requests and upgraded connections finish
// within ctx, then the background work ends.
func (px *proxyRole) stop(ctx context.Context) {
	upgrades := make(chan struct{})
	go func() {
		if err := px.engine.Shutdown(ctx); err != nil {
			px.log.Warn("proxy: drain cut short", "err", err)
		}
		close(upgrades)
	}()
	px.srv.drain(ctx)
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
}

// handler answers the role's own health, metrics and profiling endpoints and proxies everything
// else. As on a coordinator, a signed request for those paths goes upstream: they are valid
// bucket names.
func (px *proxyRole) handler() http.Handler {
	own, eng := px.srv.mux, px.engine
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
func (px *proxyRole) redirect(w http.ResponseWriter, r *http.Request) {
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
func (px *proxyRole) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
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

func (px *proxyRole) upstreamsReady() error {
	st := px.engine.Stats()
	if len(st.Upstreams) == 0 {
		return errors.New("no upstream: no coordinator is registered")
	}
	for _, u := range st.Upstreams {
		if u.State == balancer.StateHealthy {
			return nil
		}
	}
	return fmt.Errorf("none of the %d upstreams is healthy", len(st.Upstreams))
}

func (px *proxyRole) certReady() error {
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

func (px *proxyRole) sharedReady() error {
	if px.unshared.Load() || (px.pins.Load() && px.tickets.Load()) {
		return nil
	}
	return px.waiting("waiting for the shared pin and ticket keys")
}

// waiting is a not-ready reason, with the last setup error when there is one.
func (px *proxyRole) waiting(what string) error {
	if e := px.setupErr.Load(); e != nil {
		return fmt.Errorf("%s: %s", what, *e)
	}
	return errors.New(what)
}

func (px *proxyRole) setErr(err error) {
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

// watchCoordinators keeps the upstream list equal to the coordinators registered in etcd: ID
// the machine name (stable, so sessions survive a re-address), URL the registered address.
// While etcd is unreachable the last list stays.
func (px *proxyRole) watchCoordinators(ctx context.Context, cli *clientv3.Client) {
	suffix := "/" + config.RoleCoordinator
	for ctx.Err() == nil {
		resp, err := cli.Get(ctx, cluster.NodesPrefix, clientv3.WithPrefix())
		if err != nil {
			px.log.Warn("proxy: cannot list the coordinators", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		regs := map[string]cluster.Registration{}
		for _, kv := range resp.Kvs {
			if strings.HasSuffix(string(kv.Key), suffix) {
				var r cluster.Registration
				if json.Unmarshal(kv.Value, &r) == nil {
					regs[string(kv.Key)] = r
				}
			}
		}
		px.applyCoordinators(regs)
		wch := cli.Watch(clientv3.WithRequireLeader(ctx), cluster.NodesPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				px.log.Warn("proxy: coordinator watch ended; listing again", "err", err)
				break
			}
			changed := false
			for _, ev := range wr.Events {
				key := string(ev.Kv.Key)
				if !strings.HasSuffix(key, suffix) {
					continue
				}
				if ev.Type == clientv3.EventTypeDelete {
					delete(regs, key)
					changed = true
					continue
				}
				var r cluster.Registration
				if json.Unmarshal(ev.Kv.Value, &r) == nil && regs[key] != r {
					regs[key] = r
					changed = true
				}
			}
			if changed {
				px.applyCoordinators(regs)
			}
		}
		sleepCtx(ctx, time.Second)
	}
}

func (px *proxyRole) applyCoordinators(regs map[string]cluster.Registration) {
	var entries []string
	for _, r := range regs {
		entries = append(entries, r.Machine+"="+r.Address)
	}
	slices.Sort(entries)
	var ups []balancer.Upstream
	for _, e := range entries {
		parsed, err := config.ParseProxyUpstreams([]string{e})
		if err != nil {
			px.log.Warn("proxy: ignoring a coordinator registration", "entry", e, "err", err)
			continue
		}
		ups = append(ups, balancer.Upstream{ID: parsed[0].ID, URL: parsed[0].URL})
	}
	if err := px.engine.SetUpstreams(ups); err != nil {
		px.log.Warn("proxy: cannot set the upstreams", "err", err)
	}
}

// reloadFiles picks up a renewed proxy-cert-file and proxy-key-file.
func (px *proxyRole) reloadFiles(ctx context.Context) {
	stamp := func() string {
		var b strings.Builder
		for _, f := range []string{px.cfg.ProxyCertFile, px.cfg.ProxyKeyFile} {
			if fi, err := os.Stat(f); err == nil {
				fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
			}
		}
		return b.String()
	}
	last := stamp()
	for sleepCtx(ctx, 30*time.Second) {
		cur := stamp()
		if cur == last {
			continue
		}
		cert, err := tls.LoadX509KeyPair(px.cfg.ProxyCertFile, px.cfg.ProxyKeyFile)
		if err != nil {
			px.log.Warn("proxy: certificate files changed but do not load; serving the previous certificate", "err", err)
			continue // retried at the next tick: the pair may be half written
		}
		last = cur
		px.fileCert.Store(&cert)
		px.log.Info("proxy: reloaded the certificate files", "not_after", cert.Leaf.NotAfter)
	}
}

// shared fetches the proxy keyring, then shares pin and ticket keys and runs certmagic.
func (px *proxyRole) shared(ctx context.Context, cli *clientv3.Client) {
	ring := px.fetchKeyring(ctx, cli)
	if ring == nil {
		return
	}
	pins := certstore.NewSharedKeys(cli, proxyPinKeysKey, ring, certstore.PinKeySize, certstore.PinKeyRotate, certstore.PinKeyKeep).WithLogger(px.log)
	pins.OnChange(func(keys [][]byte) {
		if err := px.engine.SetPinKeys(keys[0], keys[1:]...); err != nil {
			px.log.Error("proxy: shared pin keys", "err", err)
			return
		}
		px.pins.Store(true)
	})
	tickets := certstore.NewSharedKeys(cli, proxyTicketKeysKey, ring, certstore.TicketKeySize, certstore.TicketKeyRotate, certstore.TicketKeyKeep).WithLogger(px.log)
	tickets.OnChange(func(keys [][]byte) {
		if tk := certstore.SessionTicketKeys(keys); len(tk) > 0 {
			// The listener uses this very tls.Config, so the keys apply from the next handshake.
			px.https.TLSConfig.SetSessionTicketKeys(tk)
			px.tickets.Store(true)
		}
	})
	px.wg.Go(func() { _ = pins.Run(ctx) })
	px.wg.Go(func() { _ = tickets.Run(ctx) })
	if px.fileCert.Load() == nil {
		px.manageCertificates(ctx, cli, ring)
	}
}

// fetchKeyring asks the controllers for the proxy keyring until one answers or ctx ends.
func (px *proxyRole) fetchKeyring(ctx context.Context, cli *clientv3.Client) *secrets.Keyring {
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 30*time.Second) {
		var out ProxyKeyringResponse
		err := px.callControllers(ctx, cli, http.MethodGet, ProxyKeyringPath, nil, &out)
		if err == nil && (out.Keyring == nil || out.Keyring.PrimaryID() == "") {
			err = errors.New("the controller sent an empty keyring")
		}
		if err == nil {
			px.unshared.Store(false)
			px.log.Info("proxy: got the proxy keyring")
			return out.Keyring
		}
		px.setErr(fmt.Errorf("get the proxy keyring: %w", err))
		if allStatus(err, http.StatusNotImplemented) {
			// A cluster without a keyring (made by hand, or by an old version): serve, but
			// alone — this machine's certificate, pins and tickets of this proxy only.
			if !px.unshared.Swap(true) {
				var lacking []string
				for _, n := range px.names {
					if px.bundle.Leaf().VerifyHostname(n) != nil {
						lacking = append(lacking, n)
					}
				}
				px.log.Warn("proxy: no controller holds the cluster keyring; this proxy shares no certificates, pin keys or ticket keys and serves this machine's certificate",
					"not_valid_for", lacking, "err", err)
			}
		} else {
			px.log.Warn("proxy: cannot get the proxy keyring from the controllers; retrying", "in", backoff, "err", err)
		}
		if !sleepCtx(ctx, backoff) {
			return nil
		}
	}
}

// manageCertificates runs certmagic on the etcd storage for px.names.
func (px *proxyRole) manageCertificates(ctx context.Context, cli *clientv3.Client, ring *secrets.Keyring) {
	c := px.cfg
	zl := zap.New(slogCore{log: px.log.With("component", "certmagic")})
	storage, err := certstore.New(cli, proxyCertPrefix, certstore.Options{Keyring: ring, Logger: px.log})
	if err != nil {
		px.setErr(err)
		px.log.Error("proxy: certificate storage", "err", err)
		return
	}
	if c.ProxyACMEDirectory == "" {
		px.followSigner(ctx, cli, storage, zl)
		return
	}
	mc, cache := newMagic(storage, zl, px.names[0], false)
	host := c.BindAddress
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = ""
	}
	// The solvers find this proxy's ports taken and leave the answers to them: http-01
	// through redirect, tls-alpn-01 through getCertificate. The challenge data is in the
	// shared storage, so any proxy can answer for any other.
	iss := certmagic.NewACMEIssuer(mc, certmagic.ACMEIssuer{
		CA: c.ProxyACMEDirectory, Email: c.ProxyACMEEmail, Agreed: true, Logger: zl,
		ListenHost: host, AltHTTPPort: c.ProxyHTTPPort, AltTLSALPNPort: c.ProxyHTTPSPort,
	})
	mc.Issuers = []certmagic.Issuer{iss}
	px.acme.Store(iss)
	px.cache.Store(cache)
	px.magic.Store(mc)
	// certmagic retries ACME with its own backoff, which respects the CA's rate limits.
	if err := mc.ManageAsync(ctx, px.names); err != nil {
		px.setErr(err)
		px.log.Error("proxy: manage certificates", "names", px.names, "err", err)
	}
}

// newMagic is a certmagic configuration with a cache of its own (no package-level state).
func newMagic(storage certmagic.Storage, zl *zap.Logger, defaultName string, clusterCA bool) (*certmagic.Config, *certmagic.Cache) {
	var mc *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return mc, nil },
		Logger:           zl,
	})
	tmpl := certmagic.Config{Storage: storage, Logger: zl, DefaultServerName: defaultName}
	if clusterCA {
		// The cluster CA publishes no OCSP responder and is not an ACME server.
		tmpl.OCSP = certmagic.OCSPConfig{DisableStapling: true}
		tmpl.DisableARI = true
	}
	mc = certmagic.New(cache, tmpl)
	return mc, cache
}

// signerEvery is how often a proxy asks which CA signs, as join.RenewLoop does.
const signerEvery = 10 * time.Second

// followSigner gets the names' certificates from the cluster CA, and new ones from the new CA
// when a CA rotation switches signers (docs/security.md). The certmagic issuer key names the
// signing CA, so certificates of different CAs live apart in storage: after a switch, the first
// proxy to look finds none for the new CA and has one issued, the others load it, and each
// serves its old certificates until the new ones are in.
func (px *proxyRole) followSigner(ctx context.Context, cli *clientv3.Client, storage certmagic.Storage, zl *zap.Logger) {
	current := ""
	backoff := time.Second
	for {
		var signer struct {
			KeyID string `json:"key_id"`
		}
		err := px.callControllers(ctx, cli, http.MethodGet, join.SignerPath, nil, &signer)
		if err == nil && signer.KeyID != current {
			if err = px.issueWith(ctx, cli, storage, zl, signer.KeyID); err == nil {
				current = signer.KeyID
			}
		}
		wait := signerEvery
		if err != nil {
			px.setErr(err)
			px.log.Warn("proxy: cannot get certificates; retrying", "names", px.names, "in", backoff, "err", err)
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
		}
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

// issueWith manages px.names with the CA whose key id is signer and, once every name has a
// certificate, serves them instead of the previous CA's.
func (px *proxyRole) issueWith(ctx context.Context, cli *clientv3.Client, storage certmagic.Storage, zl *zap.Logger, signer string) error {
	mc, cache := newMagic(storage, zl, px.names[0], true)
	mc.Issuers = []certmagic.Issuer{&certstore.CAIssuer{
		Key: certstore.DefaultIssuerKey + "-" + signer,
		Sign: func(ctx context.Context, csrDER []byte) ([]byte, error) {
			var out PKISignResponse
			req := PKISignRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))}
			if err := px.callControllers(ctx, cli, http.MethodPost, PKISignPath, req, &out); err != nil {
				return nil, err
			}
			return []byte(out.Certificate), nil
		},
	}}
	if err := mc.ManageSync(ctx, px.names); err != nil {
		cache.Stop()
		return err
	}
	px.magic.Store(mc)
	if old := px.cache.Swap(cache); old != nil {
		old.Stop()
		px.log.Info("proxy: certificates of the new signing CA in service", "names", px.names, "signer", signer)
	} else {
		px.log.Info("proxy: certificates ready", "names", px.names, "signer", signer)
	}
	return nil
}

// callControllers sends a JSON request to the controllers through the process's admin client:
// the one that answered last first, the next one too when it is silent or answers 5xx, until
// one answers 2xx or refuses (4xx: asking another would not help). Every request here may be
// repeated (reads, and signing a CSR), so they are all raced.
func (px *proxyRole) callControllers(ctx context.Context, cli *clientv3.Client, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := px.admin(ctx, cli).DoIdempotent(ctx, method, path, in, out)
	return err
}

// allStatus reports whether err holds answers of the controllers and every one was code.
func allStatus(err error, code int) bool {
	var ae *adminapi.APIError
	if !errors.As(err, &ae) {
		return false
	}
	var errs []error
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
			break
		}
	}
	if len(errs) == 0 {
		return ae.Status == code
	}
	for _, e := range errs {
		if !errors.As(e, &ae) || ae.Status != code {
			return false
		}
	}
	return true
}

// slogCore is a zapcore.Core that writes to slog, for certmagic, which logs with zap.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func (c slogCore) Enabled(l zapcore.Level) bool {
	return c.log.Enabled(context.Background(), slogLevel(l))
}

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	return slogCore{log: c.log, fields: append(slices.Clip(c.fields), fields...)}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	level := slogLevel(e.Level)
	switch e.Message {
	case "acquiring lock", "lock acquired", "releasing lock", "lock released",
		"started background certificate maintenance", "stopped background certificate maintenance":
		level = min(level, slog.LevelDebug) // every issuance says these; they are noise at info
	}
	c.log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

func (slogCore) Sync() error { return nil }
