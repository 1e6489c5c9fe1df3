package controller

import (
	"errors"
	"net/http"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/s3access"
	"github.com/hanode/hanode/security/s3users"
)

// grantRoutes serves the S3 users' bucket grants (security/s3access): admin level, every
// change audited with bucket/access key as its target.
func (c *Role) grantRoutes() {
	v, mux, sec := c.sec.creds, c.srv.Mux, c.sec
	store := s3access.New(c.cli)
	target := func(r *http.Request) string { return r.PathValue("bucket") + "/" + r.PathValue("user") }
	mux.Handle("GET /v1/s3/grants", access.Require(v, access.Admin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := store.List(r.Context(), r.URL.Query().Get("bucket"), r.URL.Query().Get("user"))
		if err != nil {
			service.WriteError(w, http.StatusServiceUnavailable, err)
			return
		}
		service.WriteJSON(w, http.StatusOK, map[string]any{"grants": list})
	})))
	mux.Handle("PUT /v1/s3/grants/{bucket}/{user}", sec.audit.Mutation(v, access.Admin, target, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.GrantSet
		if err := decodeBody(r, &req); err != nil {
			service.WriteError(w, http.StatusBadRequest, err)
			return
		}
		level, err := s3access.ParseLevel(req.Level)
		if err != nil || !s3users.ValidAccessKey(r.PathValue("user")) {
			if err == nil {
				err = errors.New("access key: 3-128 of A-Z a-z 0-9 . _ -")
			}
			service.WriteError(w, http.StatusBadRequest, err)
			return
		}
		g := s3access.Grant{Bucket: r.PathValue("bucket"), AccessKey: r.PathValue("user"), Level: level.String(), By: principal(r), Created: time.Now().UTC()}
		err = store.Grant(r.Context(), g)
		switch {
		case errors.Is(err, s3access.ErrNoSuchBucket), errors.Is(err, s3access.ErrNoSuchUser):
			service.WriteError(w, http.StatusNotFound, err)
		case err != nil:
			service.WriteError(w, http.StatusServiceUnavailable, err)
		default:
			service.WriteJSON(w, http.StatusOK, g)
		}
	})))
	mux.Handle("DELETE /v1/s3/grants/{bucket}/{user}", sec.audit.Mutation(v, access.Admin, target, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := store.Revoke(r.Context(), r.PathValue("bucket"), r.PathValue("user"))
		switch {
		case errors.Is(err, s3access.ErrNoGrant):
			service.WriteError(w, http.StatusNotFound, err)
		case err != nil:
			service.WriteError(w, http.StatusServiceUnavailable, err)
		default:
			service.WriteJSON(w, http.StatusOK, map[string]any{"bucket": r.PathValue("bucket"), "access_key": r.PathValue("user"), "revoked": true})
		}
	})))
}
