package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/s3/sigv4"
	"github.com/hanode/hanode/security/pki"
)

// A coordinator's access-key lookups go through the process's one admin client: they share
// one connection to the controller that answers, and a registered controller that is silent
// (its machine partitioned) costs no lookup a wait.
func TestLookupS3KeySharesOneClient(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.79.20")
	b, err := pki.EnsureSelfSigned(t.TempDir(), "test", pki.Identity{Machine: "m1", Roles: []string{config.RoleController, config.RoleCoordinator},
		IPs: []net.IP{net.ParseIP("127.0.79.21"), net.ParseIP("127.0.79.22")}}, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// m1's controller takes connections and never answers.
	silent, err := net.Listen("tcp", "127.0.79.21:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held.Lock()
			conns = append(conns, c)
			held.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		held.Lock()
		defer held.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	// m2's controller answers the key lookup and counts the connections it gets.
	var newConns, lookups atomic.Int64
	good := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lookups.Add(1)
		if r.URL.Path != "/v1/s3/keys/AK1" {
			service.WriteError(w, http.StatusNotFound, errors.New("unknown access key"))
			return
		}
		service.WriteJSON(w, http.StatusOK, map[string]string{"secret_key": "s3cret-AK1"})
	}))
	ln, err := net.Listen("tcp", "127.0.79.22:0")
	if err != nil {
		t.Fatal(err)
	}
	good.Listener.Close()
	good.Listener = ln
	cert, err := tls.LoadX509KeyPair(b.CertFile(), b.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	good.TLS = b.ServerConfig()
	good.TLS.Certificates = []tls.Certificate{cert} // httptest adds its own otherwise
	good.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			newConns.Add(1)
		}
	}
	good.StartTLS()
	t.Cleanup(good.Close)

	ctx := context.Background()
	for _, reg := range []cluster.Registration{
		{Machine: "m1", Role: config.RoleController, Address: "https://" + silent.Addr().String()},
		{Machine: "m2", Role: config.RoleController, Address: good.URL},
	} {
		r, err := cluster.Register(ctx, cli, reg, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
	}

	m := service.NewMachine(config.Default(), b, "test")
	t.Cleanup(m.Close)
	r := &Role{m: m, member: &service.Member{Etcd: cli}}
	// Far longer than the hedge delay, far shorter than a request timeout to a silent
	// controller (10 s): a lookup that waits on m1 fails.
	lookup := func(key string) (string, error) {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return r.lookupKey(lctx, key)
	}
	for i := 0; i < 5; i++ {
		secret, err := lookup("AK1")
		if err != nil || secret != "s3cret-AK1" {
			t.Fatalf("lookup %d: %q, %v", i, secret, err)
		}
	}
	if _, err := lookup("NOPE"); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("lookup of an unknown key: %v, want ErrUnknownAccessKey", err)
	}
	if lookups.Load() != 6 || newConns.Load() != 1 {
		t.Fatalf("the controller served %d lookups on %d connections; want 6 on one", lookups.Load(), newConns.Load())
	}
	held.Lock()
	defer held.Unlock()
	if len(conns) > 1 {
		t.Fatalf("the silent controller got %d connections; after the first lookup the one that answered is asked first", len(conns))
	}
}
