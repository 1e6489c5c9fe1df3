package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/etcdembed"
	"github.com/hanode/hanode/security/etcdauth"
	"github.com/hanode/hanode/security/pki"
)

// Machine is what the roles of one process share: the machine's configuration and certificate,
// the TLS configurations built from it once, and one client of the controllers' admin API.
type Machine struct {
	Config  *config.Config
	Bundle  *pki.Bundle
	Version string
	// ServerTLS is for public ports (admin, S3, proxy), which accept clients without a
	// certificate (they authenticate with credentials or signatures); InternalTLS is for internal
	// ports (agent, datanode), which require a certificate of the cluster CA.
	ServerTLS, InternalTLS *tls.Config
	// admin is the process's one client of the controllers (access-key lookups, the proxy's
	// certificates and keyring): one transport, and the controller that answered last is asked
	// first. See Controllers.
	admin *adminapi.Client
	// revocations starts the one follower of the revoked machines of this process.
	revocations sync.Once
}

// FollowRevocations makes the process's listeners refuse the certificates of removed machines,
// following them in etcd through cli until ctx ends. Only the first call does anything.
func (m *Machine) FollowRevocations(ctx context.Context, cli *clientv3.Client, log *slog.Logger) {
	m.revocations.Do(func() { go etcdauth.FollowRevocations(ctx, cli, m.Bundle, log) })
}

// RequestEtcdAccess asks the controllers to admit this machine to etcd as its certificate
// says (POST /v1/pki/etcd-access): its etcd user then holds its roles' permissions. A
// controller machine is etcd root already. A failure is logged, not fatal: the user may exist
// already, and etcd's refusals say what is missing.
func (m *Machine) RequestEtcdAccess(ctx context.Context, cli *clientv3.Client, log *slog.Logger) {
	id := m.Bundle.Identity()
	if id.HasRole(config.RoleController) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := m.Controllers(ctx, cli).Do(ctx, http.MethodPost, adminapi.EtcdAccessPath, nil, nil); err != nil {
		log.Warn("could not ask the controllers for this machine's etcd access", "machine", id.Machine, "roles", id.Roles, "err", err)
	}
}

// NewMachine builds the shared state of a process's roles from its configuration and certificate.
func NewMachine(cfg *config.Config, b *pki.Bundle, version string) *Machine {
	m := &Machine{Config: cfg, Bundle: b, Version: version, ServerTLS: b.ServerConfig()}
	m.InternalTLS = m.ServerTLS.Clone()
	m.InternalTLS.ClientAuth = tls.RequireAndVerifyClientCert
	m.admin = adminapi.NewEmpty(adminapi.Options{TLS: b.ClientConfig("")})
	return m
}

// Close releases the shared clients' idle connections.
func (m *Machine) Close() { m.admin.CloseIdleConnections() }

// EtcdClient connects to the cluster's etcd over mutual TLS with this machine's certificate.
func (m *Machine) EtcdClient(endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         m.Bundle.ClientConfig(""),
		DialTimeout: 5 * time.Second,
		// A member frozen (SIGSTOP, a hung disk, a machine swapping) keeps its TCP connection
		// open: only a ping that goes unanswered tells, and until then every call routed to it
		// hangs. Ping often so that calls move to a live member within ~2 s.
		DialKeepAliveTime:    etcdembed.ClientKeepAlive,
		DialKeepAliveTimeout: etcdembed.ClientKeepAlive,
		MaxCallSendMsgSize:   10 << 20, // transactions of very large objects (etcd accepts 8 MiB)
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return cli, nil
}

// Controllers returns the process's admin API client with its controllers brought up to date:
// those registered in etcd, then the configured ones. When etcd cannot be read the last known
// list stays.
func (m *Machine) Controllers(ctx context.Context, cli *clientv3.Client) *adminapi.Client {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	regs, err := cluster.Nodes(rctx, cli)
	cancel()
	urls := append(cluster.Addresses(regs, config.RoleController), m.Config.Controllers...)
	if err == nil || len(m.admin.Endpoints()) == 0 {
		m.admin.SetEndpoints(urls)
	}
	return m.admin
}
