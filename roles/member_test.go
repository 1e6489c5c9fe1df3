package roles

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/s3/sigv4"
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
			writeError(w, http.StatusNotFound, errors.New("unknown access key"))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"secret_key": "s3cret-AK1"})
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

	o := Options{Config: config.Default(), Bundle: b, admin: newAdminClient(b)}
	m := &member{role: config.RoleCoordinator, o: o, cli: cli}
	// Far longer than the hedge delay, far shorter than a request timeout to a silent
	// controller (10 s): a lookup that waits on m1 fails.
	lookup := func(key string) (string, error) {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return m.lookupS3Key(lctx, key)
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

// allStatus tells "every controller answered 501" (no cluster keyring anywhere) from a mix, on
// the errors of the admin client.
func TestAllStatus(t *testing.T) {
	server := func(code int) *httptest.Server {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, code, errors.New(http.StatusText(code)))
		}))
		t.Cleanup(s.Close)
		return s
	}
	tests := []struct {
		name  string
		codes []int
		want  bool
	}{
		{"every controller 501", []int{501, 501}, true},
		{"one 501, one 503", []int{501, 503}, false},
		{"one controller 501", []int{501}, true},
		{"a 404", []int{404, 501}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool := x509.NewCertPool()
			var urls []string
			for _, code := range tc.codes {
				s := server(code)
				pool.AddCert(s.Certificate())
				urls = append(urls, s.URL)
			}
			ac, err := adminapi.New(urls, &tls.Config{RootCAs: pool}, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = ac.Get(context.Background(), ProxyKeyringPath, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if got := allStatus(err, http.StatusNotImplemented); got != tc.want {
				t.Fatalf("allStatus(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}

// hanode status probes each etcd member within a budget; a member that did not answer (its
// machine partitioned: connections hang) gets the short budget next time, and is forgotten once
// it leaves the cluster.
func TestMemberProbes(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.79.30")
	silent, err := net.Listen("tcp", "127.0.79.31:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() }) // never accepted: the handshake completes, nothing answers
	members := []*etcdserverpb.Member{
		{ID: 1, Name: "m1", ClientURLs: []string{"http://127.0.79.30:2379"}},
		{ID: 2, Name: "m2", ClientURLs: []string{"http://" + silent.Addr().String()}},
		{ID: 3, Name: "m3"},
	}
	p := newMemberProbes()
	ctx := context.Background()
	for round, budget := range []time.Duration{memberProbeTimeout, silentProbeTimeout} {
		got := p.probe(ctx, cli, members)
		if !got[0].Healthy || got[0].Error != "" {
			t.Fatalf("round %d: the live member: %+v", round, got[0])
		}
		if want := "within " + budget.String(); got[1].Healthy || !strings.Contains(got[1].Error, want) {
			t.Fatalf("round %d: the silent member: %+v, want an error %q", round, got[1], want)
		}
		if got[2].Healthy || got[2].Error != "not started" {
			t.Fatalf("round %d: the member without a client URL: %+v", round, got[2])
		}
	}
	if p.budget(1) != memberProbeTimeout || p.budget(2) != silentProbeTimeout {
		t.Fatalf("budgets %s and %s", p.budget(1), p.budget(2))
	}
	p.probe(ctx, cli, members[:1])
	if p.budget(2) != memberProbeTimeout || len(p.silent) != 0 {
		t.Fatalf("a removed member is still remembered: %v", p.silent)
	}
}
