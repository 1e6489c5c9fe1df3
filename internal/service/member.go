package service

import (
	"context"
	"log/slog"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
)

// Member is a role's membership of the cluster: its etcd client and its lease-backed
// registration, which tells every other role that it is up and where.
type Member struct {
	// Etcd is the role's client of the cluster's etcd.
	Etcd   *clientv3.Client
	reg    *Registration
	cancel context.CancelFunc
}

// Join connects role to the cluster's etcd and keeps it registered at endpoint until Leave.
// refresh, if not nil, updates the registration's value every few seconds. The returned
// context lives until Leave: the role's background work runs on it.
func (m *Machine) Join(ctx context.Context, role, endpoint string, log *slog.Logger,
	refresh func(cluster.Registration) cluster.Registration) (*Member, context.Context, error) {
	c := m.Config
	cli, err := m.EtcdClient(c.EtcdEndpoints)
	if err != nil {
		return nil, nil, err
	}
	m.RequestEtcdAccess(ctx, cli, log)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.FollowRevocations(rctx, cli, log)
	reg := Register(rctx, cli, cluster.Registration{
		Machine: c.Name, Role: role, Address: endpoint, PID: os.Getpid(), Version: m.Version, Started: time.Now().UTC(), Zone: c.Zone,
	}, c.LeaderTTL, log, refresh)
	return &Member{Etcd: cli, reg: reg, cancel: cancel}, rctx, nil
}

// Registered is nil while the role's registration is held (a readiness check).
func (mb *Member) Registered() error { return mb.reg.Err() }

// Leave ends the role's background work and deregisters it (waiting at most until ctx ends),
// then closes its etcd client.
func (mb *Member) Leave(ctx context.Context) {
	mb.cancel()
	select {
	case <-mb.reg.Done():
	case <-ctx.Done():
	}
	mb.Etcd.Close()
}
