package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
)

// Registration keeps a role's lease-backed registration in etcd for as long as its context
// lives, registering again after the lease is lost. Err reports whether it currently holds one.
type Registration struct {
	reg cluster.Registration
	// refresh, if set, is asked every refreshEvery for the registration's current value.
	refresh func(cluster.Registration) cluster.Registration
	ttl     time.Duration
	cli     *clientv3.Client
	log     *slog.Logger
	state   chan error // latest state, capacity 1
	done    chan struct{}
}

// Register starts keeping reg in etcd until ctx ends (then it deregisters). refresh, if not
// nil, rewrites the value every few seconds (a datanode's free space).
func Register(ctx context.Context, cli *clientv3.Client, reg cluster.Registration, ttl time.Duration, log *slog.Logger,
	refresh func(cluster.Registration) cluster.Registration) *Registration {
	if refresh != nil {
		reg = refresh(reg)
	}
	r := &Registration{reg: reg, refresh: refresh, ttl: ttl, cli: cli, log: log, state: make(chan error, 1), done: make(chan struct{})}
	r.set(errors.New("not registered in etcd yet"))
	go r.loop(ctx)
	return r
}

func (r *Registration) set(err error) {
	select {
	case <-r.state:
	default:
	}
	r.state <- err
}

// Err is nil while the registration is held.
func (r *Registration) Err() error {
	err := <-r.state
	r.state <- err
	return err
}

// Done is closed once the registration stopped after its context ended.
func (r *Registration) Done() <-chan struct{} { return r.done }

func (r *Registration) loop(ctx context.Context) {
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
func (r *Registration) hold(ctx context.Context, held *cluster.Registrar) bool {
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
