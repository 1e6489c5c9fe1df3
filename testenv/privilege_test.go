package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/pki"
)

// TestLabLeastPrivilege is issue 16's first finding as a test: a machine joined with a token
// limited to the datanode role reaches etcd with its own certificate. It may do its own work
// (register itself, record a damaged replica, read the registrations) and nothing else: no
// secrets, no credentials, no tokens, no other machine's registration, no etcd users. A join
// with a name or an address in use is refused without using the token up. Once the machine is
// removed, its certificate is refused everywhere: etcd, renewal, the admin API and every other
// listener.
func TestLabLeastPrivilege(t *testing.T) {
	l, drv := startLab(t, "127.0.100", 1, "--replicas", "1")
	healthy(t, l)
	ctx := context.Background()
	root, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	waitFor(t, "etcd authentication to be on", 30*time.Second, func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := root.AuthStatus(c)
		return err == nil && st.Enabled
	})
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	token := func(uses int) string {
		var tok struct {
			Token string `json:"token"`
		}
		if _, err := ac.Do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"roles": []string{"datanode"}, "uses": uses, "ttl": "10m"}, &tok); err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	joinAs := func(name, addr, tok string) (*Machine, string, error) {
		m := &Machine{Name: name, Address: addr, DataDir: filepath.Join(l.Dir, "join-"+name+"-"+addr), Roles: []string{"datanode"}}
		out, err := drv.Run(ctx, l, m, append(l.machineArgs(m, "join"), "--server", l.Endpoints.Controllers[0]), []string{"HANODE_TOKEN=" + tok})
		return m, string(out), err
	}

	// A datanode-only machine joins and runs its datanode.
	dn, out, err := joinAs("m9", "127.0.100.9", token(1))
	if err != nil {
		t.Fatalf("datanode join: %v\n%s", err, out)
	}
	dn.Processes = []Process{{Roles: []string{"datanode"}, Args: l.processArgs(*dn, "datanode"),
		Log: filepath.Join(dn.DataDir, "logs", "datanode.log"), URL: httpsURL(dn.Address, rolePort("datanode"))}}
	l.Machines = append(l.Machines, *dn)
	dn = &l.Machines[len(l.Machines)-1]
	if err := drv.Start(ctx, l, dn, &dn.Processes[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitReady(ctx, drv, []*Process{&dn.Processes[0]}, 60*time.Second); err != nil {
		t.Fatalf("m9's datanode: %v\n%s", err, tail(dn.Processes[0].Log, 30))
	}
	dnBundle, err := pki.LoadBundle(filepath.Join(dn.DataDir, pki.DirName))
	if err != nil {
		t.Fatal(err)
	}
	dnEtcd, err := clientv3.New(clientv3.Config{Endpoints: l.Endpoints.Etcd, TLS: dnBundle.ClientConfig(""), DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer dnEtcd.Close()
	op := func(f func(ctx context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return f(c)
	}
	get := func(key string, opts ...clientv3.OpOption) func(context.Context) error {
		return func(c context.Context) error { _, err := dnEtcd.Get(c, key, opts...); return err }
	}
	put := func(key, val string) func(context.Context) error {
		return func(c context.Context) error { _, err := dnEtcd.Put(c, key, val); return err }
	}

	// Its own work is allowed.
	allowed := []struct {
		what string
		do   func(context.Context) error
	}{
		{"read the registrations", get("/hanode/nodes/", clientv3.WithPrefix())},
		{"write its own registration", put("/hanode/nodes/m9/probe", "{}")},
		{"record a damaged replica", put("/hanode/s3/bad/c1/m9", `{"chunk":"c1","machine":"m9"}`)},
	}
	for _, a := range allowed {
		if err := op(a.do); err != nil {
			t.Errorf("m9 may %s: %v", a.what, err)
		}
	}
	if err := op(func(c context.Context) error {
		resp, err := root.Get(c, "/hanode/nodes/m9/datanode")
		if err == nil && len(resp.Kvs) != 1 {
			err = errors.New("m9's datanode is not registered")
		}
		return err
	}); err != nil {
		t.Error(err)
	}
	_, _ = root.Delete(ctx, "/hanode/nodes/m9/probe")
	_, _ = root.Delete(ctx, "/hanode/s3/bad/c1/m9")

	// Nothing else is.
	refused := []struct {
		what string
		do   func(context.Context) error
	}{
		{"read the sealed secrets", get("/hanode/secrets/", clientv3.WithPrefix())},
		{"read the sealed CA", get("/hanode/secrets/ca")},
		{"read every key", get("/hanode/", clientv3.WithPrefix())},
		{"read the credentials", get("/hanode/credentials/", clientv3.WithPrefix())},
		{"write an admin credential", put("/hanode/credentials/evil", `{"level":"admin","secret_hash":"00"}`)},
		{"write a join token", put("/hanode/tokens/evil", `{"roles":["controller"]}`)},
		{"write another machine's registration", put("/hanode/nodes/m1/controller", "{}")},
		{"delete another machine's registrations", func(c context.Context) error {
			_, err := dnEtcd.Delete(c, "/hanode/nodes/m1/", clientv3.WithPrefix())
			return err
		}},
		{"write another machine's desired state", put("/hanode/agents/m1/desired", "{}")},
		{"write an S3 user", put("/hanode/s3/users/evil", "{}")},
		{"write object metadata", put("/hanode/s3/b/evil", "{}")},
		{"write the master record", put("/hanode/master", "{}")},
		{"add an etcd user", func(c context.Context) error { _, err := dnEtcd.UserAdd(c, "evil", "pw"); return err }},
		{"grant itself etcd's root role", func(c context.Context) error { _, err := dnEtcd.UserGrantRole(c, "m9", "root"); return err }},
		{"turn etcd's authentication off", func(c context.Context) error { _, err := dnEtcd.AuthDisable(c); return err }},
	}
	for _, r := range refused {
		if err := op(r.do); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("m9 could %s: %v, want %v", r.what, err, rpctypes.ErrPermissionDenied)
		}
	}

	// A join with a name or an address in use is refused, and leaves the token unused.
	one := token(1)
	if _, out, err := joinAs("m1", "127.0.100.7", one); err == nil || !strings.Contains(out, "machine name m1 is in use") {
		t.Errorf("join as m1: %v %q, want refused: name in use", err, out)
	}
	if _, out, err := joinAs("m7", "127.0.100.1", one); err == nil || !strings.Contains(out, "address 127.0.100.1 is machine m1's") {
		t.Errorf("join at m1's address: %v %q, want refused: address in use", err, out)
	}
	if _, out, err := joinAs("m7", "127.0.100.7", one); err != nil {
		t.Errorf("join as m7 after two refusals with the same one-use token: %v\n%s", err, out)
	}

	// m9 leaves: stopped, then removed.
	if err := l.Stop(drv, "m9", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var rm map[string]any
	waitFor(t, "node remove m9", 30*time.Second, func() bool {
		_, err := ac.Do(ctx, http.MethodDelete, "/v1/nodes/m9?force=true", nil, &rm)
		return err == nil
	})
	if rm["revoked"] != true {
		t.Errorf("node remove m9: %v, want revoked", rm)
	}

	// Its certificate is refused by etcd ...
	if err := op(get("/hanode/nodes/", clientv3.WithPrefix())); err == nil {
		t.Error("etcd still answers the removed machine")
	}
	// ... by renewal ...
	// (refused in the handshake once the controller's watch saw the removal, by the renewal
	// endpoint before that)
	if err := join.Renew(ctx, l.Endpoints.Controllers, dnBundle); err == nil || !strings.Contains(err.Error(), "removed") && !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("renewal of the removed machine's certificate: %v, want refused", err)
	}
	// ... and by every listener of m1, the admin API included.
	m1 := l.Machines[0].Address
	dnTLS := &tls.Config{RootCAs: dnBundle.Pool(), GetClientCertificate: clientCert(dnBundle)}
	for _, p := range []struct{ name, url string }{
		{"admin", "https://" + net.JoinHostPort(m1, "8900") + "/v1/nodes"},
		{"etcd access", "https://" + net.JoinHostPort(m1, "8900") + adminapi.EtcdAccessPath},
		{"agent", "https://" + net.JoinHostPort(m1, "8901") + "/healthz"},
		{"datanode", "https://" + net.JoinHostPort(m1, "8911") + "/healthz"},
		{"coordinator", "https://" + net.JoinHostPort(m1, "9000") + "/healthz"},
		{"proxy", "https://" + net.JoinHostPort(m1, "8443") + "/healthz"},
	} {
		method := http.MethodGet
		if p.name == "etcd access" {
			method = http.MethodPost
		}
		waitFor(t, fmt.Sprintf("the %s port to refuse the removed machine", p.name), 15*time.Second, func() bool {
			return requestFails(dnTLS, method, p.url)
		})
	}
	// A controller's certificate is still served everywhere.
	if requestFails(l.clientTLS(t), http.MethodGet, "https://"+net.JoinHostPort(m1, "8911")+"/healthz") {
		t.Error("m1's own certificate is refused on the datanode port")
	}
	if _, err := ac.Leader(ctx); err != nil {
		t.Errorf("no active master after the removal: %v", err)
	}
}

// requestFails reports whether one request with tc fails in the handshake or is refused (401,
// 403).
func requestFails(tc *tls.Config, method, url string) bool {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return true
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
}

func (l *Lab) clientTLS(t *testing.T) *tls.Config {
	b, err := pki.LoadBundle(l.ClientPKI)
	if err != nil {
		t.Fatal(err)
	}
	return b.ClientConfig("")
}
