package controller

import (
	"context"
	"errors"
	"net/http"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/kms"
)

// kmsRoutes serve the built-in KMS (security/kms): the operator's key management (admin
// credentials: `hanode kms create|list|disable|enable|delete`) and SSE-KMS data keys for
// coordinators (their certificates only). The key material never leaves the controllers.
func (c *Role) kmsRoutes() {
	v, mux, sec := c.sec.creds, c.srv.Mux, c.sec
	write := func(level string, h http.HandlerFunc) http.Handler {
		return sec.audit.Mutation(v, level, func(r *http.Request) string { return r.PathValue("id") }, h)
	}
	store := func(w http.ResponseWriter) *kms.Store {
		if sec.keyring == nil {
			service.WriteError(w, http.StatusServiceUnavailable, errors.New("this controller has no cluster keyring"))
			return nil
		}
		return kms.New(c.cli, sec.keyring)
	}
	mux.Handle("GET /v1/kms/keys", access.Require(v, access.Admin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := store(w)
		if s == nil {
			return
		}
		keys, err := s.List(r.Context())
		if err != nil {
			writeKMSError(w, err)
			return
		}
		service.WriteJSON(w, http.StatusOK, map[string]any{"keys": keys})
	})))
	mux.Handle("POST /v1/kms/keys", write(access.Admin, func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.KMSKeyCreate
		if err := decodeBody(r, &req); err != nil {
			service.WriteError(w, http.StatusBadRequest, err)
			return
		}
		access.SetAuditTarget(r.Context(), req.Name)
		s := store(w)
		if s == nil {
			return
		}
		k, err := s.Create(r.Context(), req.Name, principal(r))
		if err != nil {
			writeKMSError(w, err)
			return
		}
		service.WriteJSON(w, http.StatusCreated, k)
	}))
	for path, enabled := range map[string]bool{"enable": true, "disable": false} {
		mux.Handle("POST /v1/kms/keys/{id}/"+path, write(access.Admin, func(w http.ResponseWriter, r *http.Request) {
			s := store(w)
			if s == nil {
				return
			}
			k, err := s.SetEnabled(r.Context(), r.PathValue("id"), enabled)
			if err != nil {
				writeKMSError(w, err)
				return
			}
			service.WriteJSON(w, http.StatusOK, k)
		}))
	}
	// Deleting makes the key's objects unreadable for good: only a disabled key, and only with
	// force=true (the CLI's --force).
	mux.Handle("DELETE /v1/kms/keys/{id}", write(access.Admin, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("force") != "true" {
			service.WriteError(w, http.StatusBadRequest, errors.New("deleting a KMS key makes every object encrypted under it unreadable for good: disable it instead, or delete with force=true (--force)"))
			return
		}
		s := store(w)
		if s == nil {
			return
		}
		if err := s.Delete(r.Context(), r.PathValue("id")); err != nil {
			writeKMSError(w, err)
			return
		}
		service.WriteJSON(w, http.StatusOK, map[string]any{"name": r.PathValue("id"), "deleted": true})
	}))

	// Data keys for coordinators: both calls take an adminapi.KMSDataKey and answer a DataKey.
	dataKey := func(do func(ctx context.Context, s *kms.Store, req adminapi.KMSDataKey) (adminapi.DataKey, error)) http.Handler {
		return access.RequireRoles(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req adminapi.KMSDataKey
			if err := decodeBody(r, &req); err != nil {
				service.WriteError(w, http.StatusBadRequest, err)
				return
			}
			s := store(w)
			if s == nil {
				return
			}
			out, err := do(r.Context(), s, req)
			if err != nil {
				writeKMSError(w, err)
				return
			}
			service.WriteJSON(w, http.StatusOK, out)
		}), config.RoleCoordinator)
	}
	mux.Handle("POST /v1/sse/kms/datakey", dataKey(func(ctx context.Context, s *kms.Store, req adminapi.KMSDataKey) (adminapi.DataKey, error) {
		plain, sealed, err := s.NewDataKey(ctx, req.KeyID, req.Context)
		return adminapi.DataKey{Key: plain, Sealed: sealed}, err
	}))
	mux.Handle("POST /v1/sse/kms/open", dataKey(func(ctx context.Context, s *kms.Store, req adminapi.KMSDataKey) (adminapi.DataKey, error) {
		plain, err := s.OpenDataKey(ctx, req.KeyID, req.Context, req.Sealed)
		return adminapi.DataKey{Key: plain}, err
	}))
}

// writeKMSError answers err with its status: 404 unknown key, 409 disabled (or enabled, for a
// delete), 409 exists, 400 bad name, 422 a data key that does not open, 503 anything else (etcd).
func writeKMSError(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, kms.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, kms.ErrDisabled), errors.Is(err, kms.ErrEnabled), errors.Is(err, kms.ErrExists):
		status = http.StatusConflict
	case errors.Is(err, kms.ErrInvalidName):
		status = http.StatusBadRequest
	case errors.Is(err, kms.ErrAuth):
		status = http.StatusUnprocessableEntity
	}
	service.WriteError(w, status, err)
}
