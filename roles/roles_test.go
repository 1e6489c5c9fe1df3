package roles

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/pki"
)

// setup makes an appliance configuration on its own loopback address with a fresh CA.
func setup(t *testing.T, addr string) (*config.Config, *pki.Bundle) {
	t.Helper()
	env := map[string]string{"HANODE_NAME": "solo", "HANODE_ADDRESS": addr, "HANODE_DATA_DIR": t.TempDir(), "HANODE_SHUTDOWN_TIMEOUT": "5s", "HANODE_REPLICAS": "1"}
	cfg, _, err := config.Load(config.Sources{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.EnsureSelfSigned(cfg.PKIDir(), cfg.ClusterName,
		pki.Identity{Machine: cfg.Name, Roles: cfg.Roles(), IPs: []net.IP{net.ParseIP(addr), net.IPv4(127, 0, 0, 1)}},
		pki.DefaultCAValidity, pki.DefaultNodeValidity)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, b
}

func TestApplianceServesEveryRole(t *testing.T) {
	cfg, b := setup(t, "127.0.79.1")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Endpoints, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Bundle: b, Logger: slog.New(slog.DiscardHandler), Version: "test",
			OnReady: func(e Endpoints) { ready <- e }})
	}()
	var eps Endpoints
	select {
	case eps = <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready within 30s")
	}
	if len(eps) != len(config.AllRoles) {
		t.Fatalf("endpoints %v, want one per role", eps)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: b.ClientConfig("")}}
	for role, base := range eps {
		for path, want := range map[string]string{"/healthz": "ok", "/readyz": `"ready":true`, "/metrics": "go_goroutines"} {
			resp, err := hc.Get(base + path)
			if err != nil {
				t.Fatalf("%s %s: %v", role, path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Errorf("%s %s: %d, body lacks %q", role, path, resp.StatusCode, want)
			}
		}
	}
	// Without a certificate or credential: health answers (on the ports that take such clients),
	// metrics do not.
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.Pool()}}}
	for _, role := range []string{config.RoleController, config.RoleCoordinator, config.RoleProxy} {
		for path, want := range map[string]int{"/healthz": http.StatusOK, "/metrics": http.StatusUnauthorized} {
			resp, err := anon.Get(eps[role] + path)
			if err != nil {
				t.Fatalf("%s %s without a certificate: %v", role, path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s %s without a certificate: %d, want %d", role, path, resp.StatusCode, want)
			}
		}
	}
	// The controller's metrics include etcd's, the election's and the collector's.
	resp, err := hc.Get(eps[config.RoleController] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"etcd_server_has_leader", "hanode_election_leading 1", "hanode_gc_chunks_deleted_total", "hanode_gc_uploads_expired_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("controller metrics lack %q", want)
		}
	}
	// Every role registered itself; status sees one machine with all roles and a leader.
	resp, err = hc.Get(eps[config.RoleController] + "/v1/cluster/status")
	if err != nil {
		t.Fatal(err)
	}
	var st adminapi.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st.Leader == nil || st.Leader.Name != "solo" || len(st.Machines) != 1 || len(st.Machines[0].Roles) != len(config.AllRoles) {
		t.Fatalf("status: %+v", st)
	}
	for _, reg := range st.Machines[0].Members {
		if reg.Role == config.RoleDatanode && (reg.Capacity <= 0 || reg.Free <= 0 || reg.Free > reg.Capacity) {
			t.Errorf("datanode registration without its disk space: capacity %d free %d", reg.Capacity, reg.Free)
		}
	}
	// The datanode serves its chunk API to coordinators and controllers only.
	chunkURL := eps[config.RoleDatanode] + "/v1/chunks/abc123"
	req, _ := http.NewRequest(http.MethodPut, chunkURL, strings.NewReader("hello chunk"))
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("chunk put with the machine certificate: %d, want 201", resp.StatusCode)
	}
	ca, err := pki.LoadCA(cfg.PKIDir())
	if err != nil {
		t.Fatal(err)
	}
	proxyCert, proxyKey, err := ca.Issue(pki.Identity{Machine: "p1", Roles: []string{config.RoleProxy}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tls.X509KeyPair(proxyCert, proxyKey)
	if err != nil {
		t.Fatal(err)
	}
	proxyClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.Pool(), Certificates: []tls.Certificate{pc}}}}
	resp, err = proxyClient.Get(chunkURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("chunk read with a proxy's certificate: %d, want 403", resp.StatusCode)
	}
	resp, err = hc.Get(chunkURL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "hello chunk" {
		t.Fatalf("chunk read back %q", got)
	}

	// The proxy's HTTP port redirects to HTTPS.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get("http://" + net.JoinHostPort("127.0.79.1", "8080") + "/x?y=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusPermanentRedirect || loc != "https://127.0.79.1:8443/x?y=1" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, loc)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("clean shutdown returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown took over 30s")
	}
	// Stopped: nothing listens any more.
	if _, err := hc.Get(eps[config.RoleController] + "/healthz"); err == nil {
		t.Fatal("controller still serving after shutdown")
	}
}

func TestPortInUseChangesNothing(t *testing.T) {
	cfg, b := setup(t, "127.0.79.2")
	ln, err := net.Listen("tcp", cfg.Listen(cfg.EtcdPeerPort))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Run(context.Background(), Options{Config: cfg, Bundle: b, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "127.0.79.2:2380") {
		t.Fatalf("want an error naming the busy port, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, config.RoleController)); !os.IsNotExist(err) {
		t.Fatalf("controller data dir was created despite the failure: %v", err)
	}
}

// start runs the roles of cfg until the returned stop is called; stop checks a clean exit.
func start(t *testing.T, cfg *config.Config, b *pki.Bundle) (Endpoints, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Endpoints, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Bundle: b, Logger: slog.New(slog.DiscardHandler), OnReady: func(e Endpoints) { ready <- e }})
	}()
	select {
	case eps := <-ready:
		return eps, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("not ready within 30s")
	}
	return nil, nil
}

func TestApplianceRestartKeepsCluster(t *testing.T) {
	cfg, b := setup(t, "127.0.79.3")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: b.ClientConfig("")}}
	leader := func(eps Endpoints) adminapi.LeaderInfo {
		t.Helper()
		resp, err := hc.Get(eps[config.RoleController] + "/v1/cluster/leader")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var li adminapi.LeaderInfo
		if err := json.NewDecoder(resp.Body).Decode(&li); err != nil {
			t.Fatal(err)
		}
		return li
	}
	eps, stop := start(t, cfg, b)
	first := leader(eps)
	stop()
	eps, stop = start(t, cfg, b)
	defer stop()
	second := leader(eps)
	// Same etcd data: the election's revisions continue instead of starting over.
	if second.Name != "solo" || second.Epoch <= first.Epoch {
		t.Fatalf("after restart leader %+v, before %+v: want the same cluster with a later epoch", second, first)
	}
}
