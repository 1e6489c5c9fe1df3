package controller

import (
	"context"
	"fmt"
	"time"

	"errors"
	"github.com/hanode/hanode/meta"
	"net/http"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/secrets"
)

// sseRoutes serve SSE-S3's object data keys to coordinators: only controllers hold the cluster
// keyring, so a coordinator asks one for a fresh key (plain and sealed) when it writes an
// encrypted object, and to open a sealed one when it reads it. Only coordinator certificates
// may ask; the keyring itself never leaves the controllers.
func (c *Role) sseRoutes() {
	mux, sec := c.srv.Mux, c.sec
	mux.Handle("POST /v1/sse/datakey", access.RequireRoles(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sec.keyring == nil {
			service.WriteError(w, http.StatusServiceUnavailable, errors.New("this controller has no cluster keyring"))
			return
		}
		plain, sealed, err := sec.keyring.NewDataKey()
		if err != nil {
			service.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		service.WriteJSON(w, http.StatusOK, adminapi.DataKey{Key: plain, Sealed: sealed})
	}), config.RoleCoordinator))
	mux.Handle("POST /v1/sse/open", access.RequireRoles(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sec.keyring == nil {
			service.WriteError(w, http.StatusServiceUnavailable, errors.New("this controller has no cluster keyring"))
			return
		}
		var req adminapi.DataKeyOpen
		if err := decodeBody(r, &req); err != nil {
			service.WriteError(w, http.StatusBadRequest, err)
			return
		}
		plain, err := sec.keyring.OpenDataKey(req.Sealed)
		switch {
		case errors.Is(err, secrets.ErrUnknownKey), errors.Is(err, secrets.ErrAuth), errors.Is(err, secrets.ErrNotSealed):
			service.WriteError(w, http.StatusUnprocessableEntity, err)
		case err != nil:
			service.WriteError(w, http.StatusInternalServerError, err)
		default:
			service.WriteJSON(w, http.StatusOK, adminapi.DataKey{Key: plain})
		}
	}), config.RoleCoordinator))
}

// resealDataKeys re-seals every SSE-S3 data key with the keyring's primary key, after a
// rotation: one compare-and-swap per record, the data untouched. It is not bound to the
// rotation request's minute (a large cluster takes longer; measured in docs/benchmarks.md): a
// client that stops waiting does not stop it, and it is idempotent, so a run cut short is
// finished by the next rotation.
func (c *Role) resealDataKeys(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	defer cancel()
	n, err := meta.New(c.cli).Reseal(ctx, c.sec.keyring.ResealDataKey)
	if err != nil {
		return n, fmt.Errorf("keyring rotated and the secrets re-sealed, but re-sealing the SSE-S3 data keys stopped after %d (they still open with the old key; the next rotation finishes): %w", n, err)
	}
	return n, nil
}
