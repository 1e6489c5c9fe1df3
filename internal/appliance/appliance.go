// Package appliance starts a real single-machine hanode (every role, in this test process) on
// a loopback address of the caller's choosing, for tests of S3 clients and the CLI. Nothing is
// mocked: it is roles.Run with a fresh CA, keyring and data dir.
package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/roles"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
)

// Appliance is a running single-machine cluster.
type Appliance struct {
	Config    *config.Config
	Bundle    *pki.Bundle
	Endpoints roles.Endpoints
	// S3 is the coordinator's host:port; S3URL its https URL.
	S3, S3URL string
	AccessKey string
	SecretKey string
	CAPool    *x509.CertPool
	CAFile    string
}

// TLS returns a client TLS configuration trusting the cluster CA.
func (a *Appliance) TLS() *tls.Config { return &tls.Config{RootCAs: a.CAPool} }

// Start runs every role on addr (127.0.x.y, default ports) until the test ends. env adds
// HANODE_* settings (e.g. HANODE_CHUNK_SIZE).
func Start(t testing.TB, addr string, env map[string]string) *Appliance {
	t.Helper()
	a, stop, err := start(t.TempDir(), addr, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("appliance shutdown: %v", err)
		}
	})
	return a
}

// Run is Start for code that has no testing.TB, such as an Example: stop shuts the roles down,
// removes the data directory and returns the shutdown's error.
func Run(addr string, env map[string]string) (a *Appliance, stop func() error, err error) {
	dir, err := os.MkdirTemp("", "appliance-")
	if err != nil {
		return nil, nil, err
	}
	a, stopRoles, err := start(dir, addr, env)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return a, func() error {
		err := stopRoles()
		os.RemoveAll(dir)
		return err
	}, nil
}

// start runs every role on addr with its data under dir and returns once the root key is
// accepted; stop shuts the roles down.
func start(dir, addr string, env map[string]string) (*Appliance, func() error, error) {
	e := map[string]string{"HANODE_NAME": "solo", "HANODE_ADDRESS": addr, "HANODE_DATA_DIR": dir, "HANODE_SHUTDOWN_TIMEOUT": "5s",
		"HANODE_REPLICAS": "1", "HANODE_ROOT_ACCESS_KEY": "testroot", "HANODE_ROOT_SECRET_KEY": "testsecret-123456"}
	for k, v := range env {
		e[k] = v
	}
	cfg, _, err := config.Load(config.Sources{Env: func(k string) (string, bool) { v, ok := e[k]; return v, ok }})
	if err != nil {
		return nil, nil, err
	}
	b, err := pki.EnsureSelfSigned(cfg.PKIDir(), cfg.ClusterName,
		pki.Identity{Machine: cfg.Name, Roles: cfg.Roles(), IPs: []net.IP{net.ParseIP(addr), net.IPv4(127, 0, 0, 1)}},
		pki.DefaultCAValidity, pki.DefaultNodeValidity)
	if err != nil {
		return nil, nil, err
	}
	ring, err := secrets.NewKeyring()
	if err != nil {
		return nil, nil, err
	}
	if err := ring.Save(filepath.Join(cfg.PKIDir(), join.KeyringFile)); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan roles.Endpoints, 1)
	done := make(chan error, 1)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("HANODE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	go func() {
		done <- roles.Run(ctx, roles.Options{Config: cfg, Bundle: b, Logger: log, OnReady: func(eps roles.Endpoints) { ready <- eps }})
	}()
	stop := func() error {
		cancel()
		return <-done
	}
	var eps roles.Endpoints
	select {
	case eps = <-ready:
	case err := <-done:
		cancel()
		return nil, nil, fmt.Errorf("appliance stopped before ready: %w", err)
	case <-time.After(60 * time.Second):
		stop()
		return nil, nil, errors.New("appliance not ready within 60s")
	}
	a := &Appliance{
		Config: cfg, Bundle: b, Endpoints: eps,
		S3: net.JoinHostPort(addr, "9000"), S3URL: eps[config.RoleCoordinator],
		AccessKey: e["HANODE_ROOT_ACCESS_KEY"], SecretKey: e["HANODE_ROOT_SECRET_KEY"],
		CAPool: b.Pool(), CAFile: b.CAFile(),
	}
	// The active master registers the root key just after the roles report ready.
	mc, err := a.minio()
	if err != nil {
		stop()
		return nil, nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := mc.ListBuckets(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("root key not accepted within 30s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a, stop, nil
}

// Minio returns a minio-go client of the appliance's S3 API with the root key.
func (a *Appliance) Minio(t testing.TB) *minio.Client {
	t.Helper()
	mc, err := a.minio()
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func (a *Appliance) minio() (*minio.Client, error) {
	return minio.New(a.S3, &minio.Options{Creds: credentials.NewStaticV4(a.AccessKey, a.SecretKey, ""), Secure: true,
		Transport: &http.Transport{TLSClientConfig: a.TLS(), MaxIdleConnsPerHost: 64}, Region: a.Config.S3Region})
}
