package webui_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/roles"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
)

// machine is one in-process machine of the test cluster: its roles run through roles.Run, as
// the hanode binary runs them.
type machine struct {
	name, addr string
	cfg        *config.Config
	bundle     *pki.Bundle
	cancel     context.CancelFunc
	ready      chan struct{}
	done       chan error
}

// stop stops the machine's roles as SIGTERM would and waits for them.
func (m *machine) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("%s stopped with %v", m.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s", m.name)
	}
}

// testCluster is machine m1 (controller, datanode, coordinator) and datanode machines m2..mN,
// all on loopback addresses of prefix, with one CA, replication factor 2 and 64 KiB chunks.
type testCluster struct {
	machines []*machine
	ca       *pki.CA
	admin    *http.Client // m1's machine certificate: admin on the API
}

func (c *testCluster) controller() string {
	return c.machines[0].cfg.URL(c.machines[0].addr, c.machines[0].cfg.AdminPort)
}

func startCluster(t *testing.T, prefix string, n int) *testCluster {
	t.Helper()
	c := &testCluster{}
	first := prefix + "1"
	for i := 1; i <= n; i++ {
		addr := fmt.Sprintf("%s%d", prefix, i)
		env := map[string]string{"HANODE_NAME": fmt.Sprintf("m%d", i), "HANODE_ADDRESS": addr, "HANODE_DATA_DIR": t.TempDir(),
			"HANODE_SHUTDOWN_TIMEOUT": "5s", "HANODE_REPLICAS": "2", "HANODE_CHUNK_SIZE": "65536", "HANODE_CLUSTER_NAME": "webui-test",
			"HANODE_LEADER_TTL": "2s"}
		if i == 1 {
			env["HANODE_ROLE"] = "controller,datanode,coordinator"
		} else {
			env["HANODE_ROLE"] = "datanode"
			env["HANODE_ETCD_ENDPOINTS"] = "https://" + first + ":2379"
			env["HANODE_CONTROLLERS"] = "https://" + first + ":8900"
		}
		cfg, _, err := config.Load(config.Sources{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
		if err != nil {
			t.Fatal(err)
		}
		m := &machine{name: cfg.Name, addr: addr, cfg: cfg}
		id := pki.Identity{Machine: cfg.Name, Roles: cfg.Roles(), IPs: []net.IP{net.ParseIP(addr), net.IPv4(127, 0, 0, 1)}}
		if i == 1 {
			b, err := pki.EnsureSelfSigned(cfg.PKIDir(), cfg.ClusterName, id, pki.DefaultCAValidity, pki.DefaultNodeValidity)
			if err != nil {
				t.Fatal(err)
			}
			ring, err := secrets.NewKeyring()
			if err != nil {
				t.Fatal(err)
			}
			if err := ring.Save(filepath.Join(cfg.PKIDir(), join.KeyringFile)); err != nil {
				t.Fatal(err)
			}
			if c.ca, err = pki.LoadCA(cfg.PKIDir()); err != nil {
				t.Fatal(err)
			}
			m.bundle = b
		} else {
			certPEM, keyPEM, err := c.ca.Issue(id, time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := pki.WriteCACert(cfg.PKIDir(), pki.EncodeCert(c.ca.Cert)); err != nil {
				t.Fatal(err)
			}
			if err := pki.WriteNode(cfg.PKIDir(), certPEM, keyPEM); err != nil {
				t.Fatal(err)
			}
			if m.bundle, err = pki.LoadBundle(cfg.PKIDir()); err != nil {
				t.Fatal(err)
			}
		}
		c.machines = append(c.machines, m)
		m.start(t)
	}
	for _, m := range c.machines { // m1's coordinator is ready once two datanodes are
		m.waitReady(t)
	}
	c.admin = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.machines[0].bundle.ClientConfig("")}}
	t.Cleanup(func() {
		for i := len(c.machines) - 1; i >= 0; i-- {
			c.machines[i].stop(t)
		}
	})
	return c
}

// start runs the machine's roles in the background.
func (m *machine) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	m.done = make(chan error, 1)
	go func() {
		m.done <- roles.Run(ctx, roles.Options{Config: m.cfg, Bundle: m.bundle, Logger: slog.New(slog.DiscardHandler), Version: "test",
			OnReady: func(roles.Endpoints) { close(ready) }})
	}()
	m.cancel, m.ready = cancel, ready
}

// waitReady waits until every role of the machine is ready.
func (m *machine) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-m.ready:
	case err := <-m.done:
		t.Fatalf("%s: Run returned before ready: %v", m.name, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: not ready within 60s", m.name)
	}
}

// api calls the admin API with m1's machine certificate and decodes the answer into out.
func (c *testCluster) api(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, c.controller()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.admin.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// credential creates an admin API credential of level.
func (c *testCluster) credential(t *testing.T, level string) string {
	t.Helper()
	var out struct {
		Credential string `json:"credential"`
	}
	if st := c.api(t, http.MethodPost, "/v1/credentials", map[string]string{"level": level, "description": "webui test"}, &out); st != http.StatusOK {
		t.Fatalf("create a %s credential: %d", level, st)
	}
	return out.Credential
}

// eventually polls cond every 100ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// anonClient trusts the cluster CA and presents no certificate, as a browser does.
func (c *testCluster) anonClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.machines[0].bundle.Pool()}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
