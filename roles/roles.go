// Package roles runs any set of hanode roles in one process. Each role has its own HTTPS
// listener (one shared TLS configuration) with /healthz, /readyz and /metrics, and logs with its
// role and machine attached. Roles start in config.AllRoles order and stop in reverse: each first
// reports not-ready, then drains, then stops.
package roles

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/pki"
)

// Options are what a process needs to run its roles.
type Options struct {
	Config  *config.Config
	Bundle  *pki.Bundle
	Logger  *slog.Logger
	Version string
	// OnReady, if set, is called once when every role reports ready.
	OnReady func(Endpoints)

	// Built once in Run from the machine's certificate: every listener serves the same
	// configuration. Public ports (admin, S3, proxy) accept clients without certificates (they
	// authenticate with credentials or signatures); internal ports (agent, datanode) require a
	// certificate of the cluster CA.
	serverTLS, internalTLS *tls.Config
	// admin is the process's one client of the controllers' admin API (access-key lookups,
	// the proxy's certificates and keyring): one transport, and the controller that answered
	// last is asked first. See controllerClient.
	admin *adminapi.Client
}

// Endpoints says where the roles of this process listen.
type Endpoints map[string]string

// role is one role's lifecycle inside the process.
type role interface {
	name() string
	// start binds the role's listeners and starts serving; it must not block on the cluster
	// (quorum, etcd) — readiness reports that instead.
	start(ctx context.Context) error
	ready() error
	endpoint() string
	// stop reports not-ready, drains within ctx, and releases everything.
	stop(ctx context.Context)
}

// Run starts the configured roles and runs them until ctx is cancelled (SIGTERM), then stops
// them in reverse order. It returns an error if a role fails to start or fails while running.
func Run(ctx context.Context, o Options) error {
	cfg := o.Config
	o.serverTLS = o.Bundle.ServerConfig()
	o.internalTLS = o.serverTLS.Clone()
	o.internalTLS.ClientAuth = tls.RequireAndVerifyClientCert
	o.admin = newAdminClient(o.Bundle)
	defer o.admin.CloseIdleConnections()
	var started []role
	stopAll := func() {
		for i := len(started) - 1; i >= 0; i-- {
			r := started[i]
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			o.Logger.Info("stopping role", "role", r.name())
			r.stop(sctx)
			cancel()
		}
	}
	failed := make(chan error, len(config.AllRoles))
	for _, name := range cfg.Roles() {
		log := o.Logger.With("role", name, "node", cfg.Name)
		var r role
		switch name {
		case config.RoleController:
			r = newController(o, log, failed)
		default:
			r = newMember(name, o, log)
		}
		if err := r.start(ctx); err != nil {
			stopAll()
			return err
		}
		started = append(started, r)
		log.Info("role started", "listen", r.endpoint())
	}
	go waitReady(ctx, o, started)
	// Renew this machine's certificate before it expires, through the local controller first.
	renewVia := cfg.Controllers
	if cfg.Has(config.RoleController) {
		renewVia = append([]string{cfg.URL(cfg.Address, cfg.AdminPort)}, renewVia...)
	}
	renewCtx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go join.RenewLoop(renewCtx, renewVia, o.Bundle, o.Logger.With("component", "pki", "node", cfg.Name))
	var err error
	select {
	case <-ctx.Done():
		o.Logger.Info("shutting down")
	case err = <-failed:
		o.Logger.Error("role failed; shutting down", "err", err)
	}
	stopAll()
	return err
}

func waitReady(ctx context.Context, o Options, rs []role) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	lastLog := start
	for {
		var notReady error
		for _, r := range rs {
			if err := r.ready(); err != nil {
				notReady = fmt.Errorf("%s: %w", r.name(), err)
				break
			}
		}
		if notReady == nil {
			o.Logger.Info("all roles ready", "after", time.Since(start).Round(time.Millisecond))
			if o.OnReady != nil {
				eps := Endpoints{}
				for _, r := range rs {
					eps[r.name()] = r.endpoint()
				}
				o.OnReady(eps)
			}
			return
		}
		if time.Since(lastLog) > 5*time.Second {
			o.Logger.Warn("not ready yet", "waiting_for", notReady.Error())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// etcdClient connects to the cluster's etcd over mutual TLS with this machine's certificate.
func etcdClient(o Options, endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  o.Bundle.ClientConfig(""),
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		MaxCallSendMsgSize:   10 << 20, // transactions of very large objects (etcd accepts 8 MiB)
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return cli, nil
}

// registration keeps this role's lease-backed registration in etcd for as long as ctx lives,
// re-registering after the lease is lost. registered reports whether it currently holds one.
type registration struct {
	reg cluster.Registration
	// refresh, if set, is asked every refreshEvery for the registration's current value.
	refresh func(cluster.Registration) cluster.Registration
	ttl     time.Duration
	cli     *clientv3.Client
	log     *slog.Logger
	state   chan error // latest state, capacity 1
	done    chan struct{}
}

func startRegistration(ctx context.Context, cli *clientv3.Client, reg cluster.Registration, ttl time.Duration, log *slog.Logger,
	refresh func(cluster.Registration) cluster.Registration) *registration {
	if refresh != nil {
		reg = refresh(reg)
	}
	r := &registration{reg: reg, refresh: refresh, ttl: ttl, cli: cli, log: log, state: make(chan error, 1), done: make(chan struct{})}
	r.set(errors.New("not registered in etcd yet"))
	go r.loop(ctx)
	return r
}

func (r *registration) set(err error) {
	select {
	case <-r.state:
	default:
	}
	r.state <- err
}

// err is nil while the registration is held.
func (r *registration) err() error {
	err := <-r.state
	r.state <- err
	return err
}

func (r *registration) loop(ctx context.Context) {
	defer close(r.done)
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		held, err := cluster.Register(rctx, r.cli, r.reg, r.ttl)
		cancel()
		if err != nil {
			r.set(fmt.Errorf("cannot register in etcd: %w", err))
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		r.set(nil)
		if !r.hold(ctx, held) {
			return
		}
	}
}

// refreshEvery is how often a registration's value (a datanode's free space) is rewritten.
const refreshEvery = 5 * time.Second

// hold keeps held until ctx ends (it deregisters and returns false) or the lease is lost
// (true: register again), rewriting the value with refresh meanwhile.
func (r *registration) hold(ctx context.Context, held *cluster.Registrar) bool {
	tick := time.NewTicker(refreshEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Deregister on a clean stop so the cluster sees the role leave at once.
			_ = held.Close()
			r.set(errors.New("stopped"))
			return false
		case <-held.Done():
			r.set(errors.New("lost the etcd lease; registering again"))
			r.log.Warn("registration lease lost; registering again", "key", r.reg.Key())
			return true
		case <-tick.C:
			if r.refresh == nil {
				continue
			}
			r.reg = r.refresh(r.reg)
			uctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if err := held.Update(uctx, r.cli, r.reg); err != nil {
				r.log.Warn("cannot refresh the registration", "err", err)
			}
			cancel()
		}
	}
}

// newAdminClient is the process's client of the controllers, with this machine's certificate.
func newAdminClient(b *pki.Bundle) *adminapi.Client {
	return adminapi.NewEmpty(adminapi.Options{TLS: b.ClientConfig("")})
}

// controllerClient returns the process's admin API client with its controllers brought up to
// date: those registered in etcd, then the configured ones. When etcd cannot be read the last
// known list stays.
func (o Options) controllerClient(ctx context.Context, cli *clientv3.Client) *adminapi.Client {
	var urls []string
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	regs, err := cluster.Nodes(rctx, cli)
	cancel()
	if err == nil {
		for _, r := range regs {
			if r.Role == config.RoleController {
				urls = append(urls, r.Address)
			}
		}
	}
	urls = append(urls, o.Config.Controllers...)
	if err == nil || len(o.admin.Endpoints()) == 0 {
		o.admin.SetEndpoints(urls)
	}
	return o.admin
}

// newDatanodeClient is a client of the datanodes' chunk API with this machine's certificate.
// Connecting is bounded here (a stopped datanode's kernel still accepts TCP connections, so the
// TLS handshake is what hangs); each call's own deadlines are the client's defaults.
func newDatanodeClient(o Options) *datanode.Client {
	tr := &http.Transport{
		TLSClientConfig:     o.Bundle.ClientConfig(""),
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		TLSHandshakeTimeout: 2 * time.Second,
		// A backstop only: every call of datanode.Client has a tighter deadline of its own.
		ResponseHeaderTimeout: time.Minute,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
		ForceAttemptHTTP2:     false, // HTTP/1.1: one TCP stream per transfer, no head-of-line blocking
	}
	return &datanode.Client{HTTP: &http.Client{Transport: tr}}
}
