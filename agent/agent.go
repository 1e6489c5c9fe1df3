// Package agent is the agent role: one per machine, on the internal port 8901. Today it
// registers the machine's agent in etcd and answers GET /v1/agent (the machine's roles, pid and
// version) to controllers; supervising the machine's role processes is not built yet.
package agent

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/access"
)

// Role is the agent role of one machine.
type Role struct {
	m      *service.Machine
	log    *slog.Logger
	srv    *service.Server
	member *service.Member
}

// NewRole returns the agent role of machine m.
func NewRole(m *service.Machine, log *slog.Logger) *Role { return &Role{m: m, log: log} }

// Name is the role's name.
func (r *Role) Name() string { return config.RoleAgent }

// Endpoint is the agent API's base URL.
func (r *Role) Endpoint() string {
	c := r.m.Config
	return c.URL(c.Address, c.RolePort(config.RoleAgent))
}

// Start binds the agent's port, registers it and serves its API.
func (r *Role) Start(ctx context.Context) error {
	c := r.m.Config
	r.srv = service.NewServer(config.RoleAgent, c.Listen(c.RolePort(config.RoleAgent)), r.m.InternalTLS, r.log, nil)
	if err := r.srv.Listen(); err != nil {
		return err
	}
	member, _, err := r.m.Join(ctx, config.RoleAgent, r.Endpoint(), r.log, nil)
	if err != nil {
		r.srv.Close()
		return err
	}
	r.member = member
	r.srv.AddCheck("etcd registration", member.Registered)
	r.srv.Mux.Handle("GET /v1/agent", access.RequireRoles(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		service.WriteJSON(w, http.StatusOK, map[string]any{"machine": c.Name, "roles": c.Roles(), "pid": os.Getpid(), "version": r.m.Version})
	}), config.RoleController))
	r.srv.Serve()
	return nil
}

// Ready is nil while the agent serves and is registered.
func (r *Role) Ready() error { return r.srv.Ready() }

// Stop drains the agent's API and deregisters it.
func (r *Role) Stop(ctx context.Context) {
	r.srv.Drain(ctx)
	r.member.Leave(ctx)
}
