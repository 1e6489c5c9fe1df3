package datanode

import (
	"context"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/access"
)

// Role is the datanode role: this machine's chunk store, served on the internal port to the
// roles that write and read chunks (coordinators, and controllers for collection and repair),
// registered in etcd with its capacity and free space.
type Role struct {
	m      *service.Machine
	log    *slog.Logger
	srv    *service.Server
	store  *Store
	member *service.Member
}

// NewRole returns the datanode role of machine m.
func NewRole(m *service.Machine, log *slog.Logger) *Role { return &Role{m: m, log: log} }

// Name is the role's name.
func (r *Role) Name() string { return config.RoleDatanode }

// Endpoint is the chunk API's base URL.
func (r *Role) Endpoint() string {
	c := r.m.Config
	return c.URL(c.Address, c.RolePort(config.RoleDatanode))
}

// Start binds the port, opens the store and registers the datanode.
func (r *Role) Start(ctx context.Context) error {
	c := r.m.Config
	r.srv = service.NewServer(config.RoleDatanode, c.Listen(c.RolePort(config.RoleDatanode)), r.m.InternalTLS, r.log, nil)
	if err := r.srv.Listen(); err != nil {
		return err
	}
	store, err := Open(Options{Dir: c.RoleDir(config.RoleDatanode), Capacity: int64(c.Capacity)})
	if err != nil {
		r.srv.Close()
		return fmt.Errorf("datanode: %w", err)
	}
	peers := NewClient(r.m.Bundle.ClientConfig(""))
	streams := DefaultRepairStreams
	// A pull's transfer shares the repair rate with the other streams: its deadline allows that.
	peers.MinRate = max(int64(c.RepairRate)/int64(2*streams), 16<<10)
	rp := NewRepair(RepairOptions{Peers: peers, Rate: int64(c.RepairRate), Streams: streams})
	h := NewHandler(store, rp)
	api := access.RequireRoles(h, config.RoleCoordinator, config.RoleController)
	// Peer datanodes read chunks from each other for repair (GET only).
	read := access.RequireRoles(h, config.RoleCoordinator, config.RoleController, config.RoleDatanode)
	r.srv.Mux.Handle("/v1/chunks", api)
	r.srv.Mux.Handle("/v1/chunks/", api)
	r.srv.Mux.Handle("GET /v1/chunks/{id}", read)
	r.srv.Mux.Handle("/v1/usage", api)
	r.srv.Mux.Handle("/v1/have", api)
	var member *service.Member
	scrub := NewScrubber(store, ScrubOptions{Interval: c.ScrubInterval, Rate: int64(c.ScrubRate), Log: r.log.With("loop", "scrub"),
		Report: func(ctx context.Context, id string, cause error) error {
			return meta.New(member.Etcd).MarkBad(ctx, id, c.Name, "scrub: "+cause.Error())
		},
		// The master deletes the damaged-replica record when it records the replacement (or
		// once no record references the chunk): the quarantined copy is of no more use.
		Repaired: func(ctx context.Context, id string) (bool, error) {
			resp, err := member.Etcd.Get(ctx, meta.BadPrefix+id+"/"+c.Name, clientv3.WithCountOnly())
			if err != nil {
				return false, fmt.Errorf("read the damaged-replica record of chunk %s: %w", id, err)
			}
			return resp.Count == 0, nil
		}})
	member, runCtx, err := r.m.Join(ctx, config.RoleDatanode, r.Endpoint(), r.log, func(reg cluster.Registration) cluster.Registration {
		if u, err := store.Usage(); err == nil {
			reg.Capacity, reg.Free = u.Capacity, u.Free
		}
		reg.Store = store.Identity()
		rep := scrub.Report()
		reg.Scrub = &rep
		return reg
	})
	if err != nil {
		store.Close()
		r.srv.Close()
		return err
	}
	go scrub.Run(runCtx)
	r.store, r.member = store, member
	r.srv.AddCheck("etcd registration", member.Registered)
	r.srv.Serve()
	return nil
}

// Ready is nil while the datanode serves and is registered.
func (r *Role) Ready() error { return r.srv.Ready() }

// Stop drains the API, deregisters and closes the store.
func (r *Role) Stop(ctx context.Context) {
	r.srv.Drain(ctx)
	r.member.Leave(ctx)
	_ = r.store.Close()
}
