package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/coordinator"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/s3/sigv4"
)

// member is a role that, until its own data path exists, joins the cluster by registering
// itself in etcd and serving its health endpoints: datanode, coordinator, proxy and agent.
type member struct {
	role   string
	o      Options
	log    *slog.Logger
	srv    *server
	px     *proxyRole // the proxy role's engine and listeners
	cli    *clientv3.Client
	reg    *registration
	cancel context.CancelFunc
	// refresh updates the registration's value (a datanode's free space); nil for other roles.
	refresh func(cluster.Registration) cluster.Registration
	store   *datanode.Store // the datanode's chunk store
}

func newMember(role string, o Options, log *slog.Logger) *member {
	return &member{role: role, o: o, log: log}
}

func (m *member) name() string { return m.role }

func (m *member) port() int { return m.o.Config.RolePort(m.role) }

func (m *member) endpoint() string { return m.o.Config.URL(m.o.Config.Address, m.port()) }

func (m *member) start(ctx context.Context) error {
	c := m.o.Config
	tlsCfg := m.o.serverTLS
	if m.role == config.RoleAgent || m.role == config.RoleDatanode {
		tlsCfg = m.o.internalTLS
	}
	m.srv = newServer(m.role, c.Listen(m.port()), tlsCfg, m.log, nil)
	if err := m.srv.listen(); err != nil {
		return err
	}
	if m.role == config.RoleProxy {
		px, err := newProxyRole(m.o, m.log, m.srv)
		if err != nil {
			m.srv.ln.Close()
			return err
		}
		m.px = px
		if c.ProxyStandalone() {
			// Fixed upstreams and certificate files: nothing to ask the cluster for.
			px.start(ctx, nil)
			return nil
		}
	}
	if m.role == config.RoleDatanode {
		if err := m.openStore(); err != nil {
			m.srv.ln.Close()
			return err
		}
	}
	cli, err := etcdClient(m.o, c.EtcdEndpoints)
	if err != nil {
		if m.px != nil {
			m.px.close()
		}
		m.srv.ln.Close()
		return err
	}
	m.cli = cli
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.reg = startRegistration(rctx, cli, cluster.Registration{
		Machine: c.Name, Role: m.role, Address: m.endpoint(), PID: os.Getpid(), Version: m.o.Version, Started: time.Now().UTC(), Zone: c.Zone,
	}, c.LeaderTTL, m.log, m.refresh)
	m.srv.addCheck("etcd registration", m.reg.err)
	if m.role == config.RoleCoordinator {
		if err := m.startCoordinator(rctx); err != nil {
			cancel()
			cli.Close()
			m.srv.ln.Close()
			return err
		}
	}
	if m.role == config.RoleProxy {
		m.px.start(rctx, cli) // serves on its own: its TLS configuration is not the machine's
		return nil
	}
	if m.role == config.RoleAgent {
		// What runs here, for the controllers that will ask agents to start and stop roles.
		m.srv.mux.Handle("GET /v1/agent", access.RequireRoles(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"machine": c.Name, "roles": c.Roles(), "pid": os.Getpid(), "version": m.o.Version})
		}), config.RoleController))
	}
	m.srv.serve()
	return nil
}

// openStore opens the datanode's chunk store and serves its API to the roles that write and
// read chunks: coordinators and controllers (repair), never other callers.
func (m *member) openStore() error {
	store, err := datanode.Open(datanode.Options{Dir: m.o.Config.RoleDir(config.RoleDatanode)})
	if err != nil {
		return fmt.Errorf("datanode: %w", err)
	}
	m.store = store
	api := access.RequireRoles(datanode.Handler(store), config.RoleCoordinator, config.RoleController)
	m.srv.mux.Handle("/v1/chunks", api)
	m.srv.mux.Handle("/v1/chunks/", api)
	m.srv.mux.Handle("/v1/usage", api)
	m.refresh = func(reg cluster.Registration) cluster.Registration {
		if u, err := store.Usage(); err == nil {
			reg.Capacity, reg.Free = u.Capacity, u.Free
		}
		return reg
	}
	return nil
}

func (m *member) ready() error { return m.srv.ready() }

func (m *member) stop(ctx context.Context) {
	if m.px != nil {
		m.px.stop(ctx) // drains m.srv with the proxy's upgraded connections
	} else {
		m.srv.drain(ctx)
	}
	if m.cli == nil {
		return // a standalone proxy: no registration, no etcd
	}
	m.cancel()
	select {
	case <-m.reg.done:
	case <-ctx.Done():
	}
	m.cli.Close()
	if m.store != nil {
		_ = m.store.Close()
	}
}

// startCoordinator serves the S3 API on the coordinator's port. Requests that carry an S3
// signature go to the API; the health and metrics endpoints answer the rest (so the bucket
// names healthz, readyz and metrics are reachable only with signed requests, as all are).
func (m *member) startCoordinator(ctx context.Context) error {
	c := m.o.Config
	coord, err := coordinator.New(coordinator.Options{
		Name:         c.Name,
		Etcd:         m.cli,
		Datanodes:    newDatanodeClient(m.o),
		Lookup:       m.lookupS3Key,
		ChunkSize:    c.ChunkSize,
		Replicas:     c.Replicas,
		Memory:       c.CoordinatorMemory,
		GCGrace:      c.GCGrace,
		WriteTimeout: c.WriteTimeout,
		Region:       c.S3Region,
		Domains:      c.S3Domains,
		Log:          m.log,
		Registry:     m.srv.registry,
	})
	if err != nil {
		return err
	}
	go coord.Run(ctx)
	m.srv.addCheck("data path", func() error { return coord.Ready(ctx) })
	api, health := coord.Handler(), m.srv.mux
	m.srv.http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && !r.URL.Query().Has("X-Amz-Signature") {
			if p := r.URL.Path; p == "/healthz" || p == "/readyz" || p == "/metrics" || strings.HasPrefix(p, "/debug/pprof/") {
				health.ServeHTTP(w, r)
				return
			}
		}
		api.ServeHTTP(w, r)
	})
	return nil
}

// lookupS3Key asks a controller for an access key's secret; only controllers hold the keyring
// that opens it, and only coordinator certificates may ask.
func (m *member) lookupS3Key(ctx context.Context, accessKey string) (string, error) {
	var out struct {
		SecretKey string `json:"secret_key"`
	}
	_, err := m.o.controllerClient(ctx, m.cli).Get(ctx, "/v1/s3/keys/"+url.PathEscape(accessKey), &out)
	var ae *adminapi.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return "", fmt.Errorf("access key %s: %w", accessKey, sigv4.ErrUnknownAccessKey)
	}
	if err != nil {
		return "", fmt.Errorf("look up access key %s: %w", accessKey, err)
	}
	return out.SecretKey, nil
}
