package certstore

import (
	"context"
	"testing"
	"time"

	"github.com/hanode/hanode/security/secrets"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Each test that needs an etcd of its own gets one on its own 127.0.84.x.
const (
	hostStorage  = "127.0.84.1"
	hostLocks    = "127.0.84.2"
	hostCrash    = "127.0.84.3"
	hostFence    = "127.0.84.4"
	hostCerts    = "127.0.84.5"
	hostShared   = "127.0.84.6"
	hostRotate   = "127.0.84.7"
	hostFenceRel = "127.0.84.8"
	// 127.0.84.9 is the IP the certmagic test gets a certificate for.
)

const testPrefix = "/t/certmagic/"

// newClient returns another client of cli's etcd, as a second process
// would have. It is closed when the test ends unless closeAtEnd is false.
func newClient(t *testing.T, cli *clientv3.Client, closeAtEnd bool) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: cli.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if closeAtEnd {
		t.Cleanup(func() { c.Close() })
	}
	return c
}

func newKeyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	k, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newStorage(t *testing.T, cli *clientv3.Client, opts Options) *Storage {
	t.Helper()
	s, err := New(cli, testPrefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
