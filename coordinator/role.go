package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/s3/sigv4"
)

// Role is the coordinator role: the S3 API on its port, over the cluster's etcd and datanodes.
type Role struct {
	m      *service.Machine
	log    *slog.Logger
	srv    *service.Server
	member *service.Member
}

// NewRole returns the coordinator role of machine m.
func NewRole(m *service.Machine, log *slog.Logger) *Role { return &Role{m: m, log: log} }

// Name is the role's name.
func (r *Role) Name() string { return config.RoleCoordinator }

// Endpoint is the S3 API's base URL.
func (r *Role) Endpoint() string {
	c := r.m.Config
	return c.URL(c.Address, c.RolePort(config.RoleCoordinator))
}

// Start binds the S3 port, registers the coordinator and serves the API. Requests that carry an
// S3 signature go to the API; the health and metrics endpoints answer the rest (so the bucket
// names healthz, readyz and metrics are reachable only with signed requests, as all are).
func (r *Role) Start(ctx context.Context) error {
	c := r.m.Config
	r.srv = service.NewServer(config.RoleCoordinator, c.Listen(c.RolePort(config.RoleCoordinator)), r.m.ServerTLS, r.log, nil)
	if err := r.srv.Listen(); err != nil {
		return err
	}
	member, rctx, err := r.m.Join(ctx, config.RoleCoordinator, r.Endpoint(), r.log, nil)
	if err != nil {
		r.srv.Close()
		return err
	}
	r.member = member
	r.srv.AddCheck("etcd registration", member.Registered)
	coord, err := New(Options{
		Name:         c.Name,
		Etcd:         member.Etcd,
		Datanodes:    datanode.NewClient(r.m.Bundle.ClientConfig("")),
		Lookup:       r.lookupKey,
		ChunkSize:    c.ChunkSize,
		InlineMax:    int64(c.InlineMax),
		Replicas:     c.Replicas,
		Memory:       c.CoordinatorMemory,
		GCGrace:      c.GCGrace,
		WriteTimeout: c.WriteTimeout,
		Region:       c.S3Region,
		Domains:      c.S3Domains,
		Log:          r.log,
		Registry:     r.srv.Registry,
		DataKeys:     controllerDataKeys{r},
		KMS:          controllerDataKeys{r},
	})
	if err != nil {
		member.Leave(ctx)
		r.srv.Close()
		return err
	}
	go coord.Run(rctx)
	r.srv.AddCheck("data path", func() error { return coord.Ready(rctx) })
	api, health := coord.Handler(), r.srv.Mux
	r.srv.HTTP.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") == "" && !req.URL.Query().Has("X-Amz-Signature") {
			if p := req.URL.Path; p == "/healthz" || p == "/readyz" || p == "/metrics" || strings.HasPrefix(p, "/debug/pprof/") {
				health.ServeHTTP(w, req)
				return
			}
		}
		api.ServeHTTP(w, req)
	})
	r.srv.Serve()
	return nil
}

// Ready is nil while the coordinator serves, is registered and its data path is ready.
func (r *Role) Ready() error { return r.srv.Ready() }

// Stop drains the S3 API and deregisters.
func (r *Role) Stop(ctx context.Context) {
	r.srv.Drain(ctx)
	r.member.Leave(ctx)
}

// lookupKey asks a controller for an access key's secret; only controllers hold the keyring
// that opens it, and only coordinator certificates may ask.
func (r *Role) lookupKey(ctx context.Context, accessKey string) (string, error) {
	var out struct {
		SecretKey string `json:"secret_key"`
	}
	_, err := r.m.Controllers(ctx, r.member.Etcd).Get(ctx, "/v1/s3/keys/"+url.PathEscape(accessKey), &out)
	var ae *adminapi.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return "", fmt.Errorf("access key %s: %w", accessKey, sigv4.ErrUnknownAccessKey)
	}
	if err != nil {
		return "", fmt.Errorf("look up access key %s: %w", accessKey, err)
	}
	return out.SecretKey, nil
}
