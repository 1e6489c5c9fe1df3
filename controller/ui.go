package controller

import (
	"context"
	"net/http"

	"github.com/hanode/hanode/controller/webui"
	"github.com/hanode/hanode/security/access"
)

// uiRoutes registers what the web cluster manager reads and does beside the rest of the admin
// API — machines with their roles' states, drain marks, buckets and listings — and mounts the
// web cluster manager at /. The UI calls these API handlers in-process with the signed-in
// user's identity, so that its reads and actions pass the same checks and audit as the API's.
func (c *Role) uiRoutes(ctx context.Context) {
	v, mux, sec := c.sec.creds, c.srv.Mux, c.sec
	read := func(level string, h http.HandlerFunc) http.Handler { return access.Require(v, level, h) }
	write := func(level string, h http.HandlerFunc) http.Handler {
		return sec.audit.Mutation(v, level, func(r *http.Request) string { return r.PathValue("id") }, h)
	}
	c.tracker = newRoleTracker(c.cli, c.log.With("component", "role-tracker"))
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.tracker.run(ctx)
	}()
	mux.Handle("GET /v1/machines", read(access.ReadOnly, c.handleMachines))
	mux.Handle("GET /v1/machines/{name}", read(access.ReadOnly, c.handleMachine))
	mux.Handle("POST /v1/nodes/{id}/undrain", write(access.Operator, c.handleUndrain))
	mux.Handle("GET /v1/buckets", read(access.ReadOnly, c.handleBuckets))
	mux.Handle("GET /v1/buckets/{bucket}/objects", read(access.ReadOnly, c.handleObjects))

	ui := webui.New(webui.Config{
		API:      mux,
		Verifier: v,
		Audit:    sec.audit.Record,
		Refused:  func(action, remote string) { sec.audit.Refused("admin", action, remote) },
		Cluster:  c.m.Config.ClusterName,
		Machine:  c.m.Config.Name,
		Log:      c.log.With("component", "webui"),
	})
	ui.Register(mux)
}
