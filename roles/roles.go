// Package roles runs any set of hanode roles in one process. Each role has its own HTTPS
// listener (one shared TLS configuration) with /healthz, /readyz and /metrics, and logs with its
// role and machine attached. Roles start in config.AllRoles order and stop in reverse: each first
// reports not-ready, then drains, then stops.
package roles

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hanode/hanode/agent"
	"github.com/hanode/hanode/balancer"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/controller"
	"github.com/hanode/hanode/coordinator"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/service"
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
}

// Endpoints says where the roles of this process listen.
type Endpoints map[string]string

// Role is one role's lifecycle inside the process. Each role's package implements it.
type Role interface {
	Name() string
	// Start binds the role's listeners and starts serving; it must not block on the cluster
	// (quorum, etcd) — readiness reports that instead.
	Start(ctx context.Context) error
	Ready() error
	Endpoint() string
	// Stop reports not-ready, drains within ctx, and releases everything.
	Stop(ctx context.Context)
}

// newRole returns role name of machine m; failed receives a role's failure while it runs.
func newRole(name string, m *service.Machine, log *slog.Logger, failed chan<- error) Role {
	switch name {
	case config.RoleController:
		return controller.NewRole(m, log, failed)
	case config.RoleAgent:
		return agent.NewRole(m, log)
	case config.RoleDatanode:
		return datanode.NewRole(m, log)
	case config.RoleCoordinator:
		return coordinator.NewRole(m, log)
	case config.RoleProxy:
		return balancer.NewRole(m, log)
	}
	panic("roles: unknown role " + name) // config.Check allows only the roles above
}

// Run starts the configured roles and runs them until ctx is cancelled (SIGTERM), then stops
// them in reverse order. It returns an error if a role fails to start or fails while running.
func Run(ctx context.Context, o Options) error {
	cfg := o.Config
	m := service.NewMachine(cfg, o.Bundle, o.Version)
	defer m.Close()
	var started []Role
	stopAll := func() {
		for i := len(started) - 1; i >= 0; i-- {
			r := started[i]
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			o.Logger.Info("stopping role", "role", r.Name())
			r.Stop(sctx)
			cancel()
		}
	}
	failed := make(chan error, len(config.AllRoles))
	for _, name := range cfg.Roles() {
		log := o.Logger.With("role", name, "node", cfg.Name)
		r := newRole(name, m, log, failed)
		if err := r.Start(ctx); err != nil {
			stopAll()
			return err
		}
		started = append(started, r)
		log.Info("role started", "listen", r.Endpoint())
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

func waitReady(ctx context.Context, o Options, rs []Role) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	lastLog := start
	for {
		var notReady error
		for _, r := range rs {
			if err := r.Ready(); err != nil {
				notReady = fmt.Errorf("%s: %w", r.Name(), err)
				break
			}
		}
		if notReady == nil {
			o.Logger.Info("all roles ready", "after", time.Since(start).Round(time.Millisecond))
			if o.OnReady != nil {
				eps := Endpoints{}
				for _, r := range rs {
					eps[r.Name()] = r.Endpoint()
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
