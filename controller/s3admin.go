package controller

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/controller/election"
	"github.com/hanode/hanode/controller/gc"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/s3access"
	"github.com/hanode/hanode/security/s3users"
)

func (c *Role) s3Routes() {
	v, mux, sec := c.sec.creds, c.srv.Mux, c.sec
	users := s3users.New(c.cli, sec.keyring)
	write := func(level string, h http.HandlerFunc) http.Handler {
		return sec.audit.Mutation(v, level, func(r *http.Request) string { return r.PathValue("id") }, h)
	}
	mux.Handle("GET /v1/s3/users", access.Require(v, access.Admin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := users.List(r.Context())
		if err != nil {
			service.WriteError(w, http.StatusServiceUnavailable, err)
			return
		}
		service.WriteJSON(w, http.StatusOK, map[string]any{"users": list})
	})))
	mux.Handle("POST /v1/s3/users", write(access.Admin, func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.UserCreate
		if err := decodeBody(r, &req); err != nil {
			service.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if sec.keyring == nil {
			service.WriteError(w, http.StatusServiceUnavailable, errors.New("this controller has no cluster keyring"))
			return
		}
		access.SetAuditTarget(r.Context(), req.AccessKey) // "" when one is generated: named below
		u, secret, err := users.Create(r.Context(), s3users.User{AccessKey: req.AccessKey, Description: req.Description, CreatedBy: principal(r)}, req.SecretKey)
		switch {
		case errors.Is(err, s3users.ErrExists):
			service.WriteError(w, http.StatusConflict, err)
		case err != nil && strings.Contains(err.Error(), "characters"):
			service.WriteError(w, http.StatusBadRequest, err)
		case err != nil:
			service.WriteError(w, http.StatusServiceUnavailable, err)
		default:
			access.SetAuditTarget(r.Context(), u.AccessKey)
			service.WriteJSON(w, http.StatusCreated, adminapi.UserCreated{User: u, SecretKey: secret})
		}
	}))
	mux.Handle("DELETE /v1/s3/users/{id}", write(access.Admin, func(w http.ResponseWriter, r *http.Request) {
		err := users.Remove(r.Context(), r.PathValue("id"))
		if err == nil { // a key made again under this name starts with no grants
			if _, gerr := s3access.New(c.cli).RevokeAll(r.Context(), r.PathValue("id")); gerr != nil {
				err = fmt.Errorf("access key removed, but not all its grants: %w", gerr)
			}
		}
		switch {
		case errors.Is(err, s3users.ErrUnknown):
			service.WriteError(w, http.StatusNotFound, err)
		case err != nil:
			service.WriteError(w, http.StatusServiceUnavailable, err)
		default:
			service.WriteJSON(w, http.StatusOK, map[string]any{"access_key": r.PathValue("id"), "removed": true})
		}
	}))
	c.grantRoutes()
	c.sseRoutes()
	c.kmsRoutes()
	// Coordinators verify signatures with the secret; only their certificates may read it.
	mux.Handle("GET /v1/s3/keys/{id}", access.RequireRoles(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sec.keyring == nil {
			service.WriteError(w, http.StatusServiceUnavailable, errors.New("this controller has no cluster keyring"))
			return
		}
		secret, err := users.Secret(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, s3users.ErrUnknown):
			service.WriteError(w, http.StatusNotFound, err)
		case err != nil:
			service.WriteError(w, http.StatusServiceUnavailable, err)
		default:
			service.WriteJSON(w, http.StatusOK, map[string]string{"secret_key": secret})
		}
	}), config.RoleCoordinator))
	mux.Handle("GET /v1/locate/{bucket}/{key...}", access.Require(v, access.ReadOnly, http.HandlerFunc(c.handleLocate)))
}

func (c *Role) handleLocate(w http.ResponseWriter, r *http.Request) {
	bucket, key := r.PathValue("bucket"), r.PathValue("key")
	o, err := meta.New(c.cli).GetObject(r.Context(), bucket, key)
	switch {
	case errors.Is(err, meta.ErrNoSuchBucket), errors.Is(err, meta.ErrNoSuchKey):
		service.WriteError(w, http.StatusNotFound, err)
		return
	case err != nil:
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	regs, err := cluster.Nodes(r.Context(), c.cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	live := map[string]bool{}
	for _, reg := range regs {
		if reg.Role == config.RoleDatanode {
			live[reg.Machine] = true
		}
	}
	res := adminapi.Locate{Bucket: bucket, Key: key, Size: o.Size, ETag: o.ETag, Modified: o.Modified, Chunks: []adminapi.LocatedChunk{}, Machines: map[string]bool{}}
	if in := o.Inline; in != nil {
		res.Inline, res.InlineBytes, res.InlineSHA256 = true, int64(len(in.Data)), hex.EncodeToString(in.SHA256[:])
	}
	var off int64
	for _, ch := range o.Chunks {
		res.Chunks = append(res.Chunks, adminapi.LocatedChunk{ID: ch.ID, Offset: off, Size: ch.Size, SHA256: hex.EncodeToString(ch.SHA256[:]), Replicas: ch.Replicas})
		off += ch.Size
		for _, m := range ch.Replicas {
			res.Machines[m] = live[m]
		}
	}
	service.WriteJSON(w, http.StatusOK, res)
}

// leadS3 is the active master's object-store work: it makes sure the root user exists and runs
// the garbage collector, the expiry of abandoned multipart uploads and the buckets' lifecycle
// rules, every write fenced by the term.
func (c *Role) leadS3(term *election.Term) {
	ctx := term.Context()
	for ctx.Err() == nil {
		err := c.ensureRoot(ctx)
		if err == nil {
			break
		}
		c.log.Warn("creating the S3 root user", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	col := &gc.Collector{Etcd: c.cli, Meta: meta.New(c.cli), Datanodes: c.datanodes, Log: c.log.With("loop", "gc"),
		WriteTimeout: c.m.Config.WriteTimeout, GiveUp: 7 * 24 * time.Hour, Metrics: c.gcMetrics}
	ups := &gc.Uploads{Meta: col.Meta, Log: c.log.With("loop", "uploads"), Expiry: c.m.Config.MultipartExpiry, Metrics: c.gcMetrics}
	go ups.Run(ctx, c.gcInterval(), term.Guard())
	lc := &gc.Lifecycle{Meta: col.Meta, Log: c.log.With("loop", "lifecycle"), Grace: c.m.Config.GCGrace, Expired: c.gcMetrics.LifecycleExpired}
	go lc.Run(ctx, lifecycleInterval, term.Guard())
	col.Run(ctx, c.gcInterval(), term.Guard())
}

// lifecycleInterval is how often the active master applies the buckets' lifecycle rules: their
// periods are days, and a round reads every bucket's configuration.
const lifecycleInterval = time.Minute

func (c *Role) gcInterval() time.Duration {
	return min(max(c.m.Config.GCGrace/4, time.Second), 30*time.Second)
}
