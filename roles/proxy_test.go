package roles

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/controller"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
)

// servedCert handshakes with addr (no SNI when serverName is empty) and returns the leaf.
func servedCert(t *testing.T, addr, serverName string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func clientFor(cert tls.Certificate, roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}}}
}

func issueCert(t *testing.T, ca *pki.CA, id pki.Identity) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(id, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An appliance with a keyring: the proxy gets a certificate signed by the cluster CA through
// the controller (a server-only one, not the machine's), shares its keys sealed in etcd, and
// proxies to the coordinator over HTTP/1.1 and HTTP/2. The controller's proxy endpoints take
// proxy certificates only and refuse names of machines that run no proxy.
func TestProxyManagedCertificate(t *testing.T) {
	cfg, b := setup(t, "127.0.79.6")
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Save(filepath.Join(cfg.PKIDir(), join.KeyringFile)); err != nil {
		t.Fatal(err)
	}
	eps, stop := start(t, cfg, b)
	defer stop()
	addr := strings.TrimPrefix(eps[config.RoleProxy], "https://")

	leaf := servedCert(t, addr, "", b.Pool())
	if leaf.SerialNumber.Cmp(b.Leaf().SerialNumber) == 0 {
		t.Fatal("the proxy serves the machine certificate, not a managed one")
	}
	if len(leaf.URIs) != 0 || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("proxy certificate: URIs %v, usages %v; want a server-only certificate without machine identity", leaf.URIs, leaf.ExtKeyUsage)
	}
	if d := time.Until(leaf.NotAfter); d > controller.ProxyCertValidity || d < controller.ProxyCertValidity-time.Hour {
		t.Errorf("proxy certificate valid for %v, want %v", d, controller.ProxyCertValidity)
	}
	if byName := servedCert(t, addr, "solo", b.Pool()); byName.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("one certificate for both names: certmagic keeps one per name")
	}

	// Through the proxy to the coordinator, over HTTP/1.1 and HTTP/2.
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.Pool()}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: tr}).Get(eps[config.RoleProxy] + "/some-bucket/key")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Hanode-Node") != "solo" || resp.Header.Get("Hanode-Affinity") == "" || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Errorf("h2=%v: %s %d, node %q, pin %q", h2, resp.Proto, resp.StatusCode, resp.Header.Get("X-Hanode-Node"), resp.Header.Get("Hanode-Affinity"))
		}
	}

	// Everything shared is in etcd, sealed: no private key in the clear.
	cli, err := service.NewMachine(cfg, b, "test").EtcdClient(cfg.EtcdEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range []string{keyspace.ProxyKeyring, keyspace.ProxyPinKeys, keyspace.ProxyTicketKeys, keyspace.ProxyCerts} {
		resp, err := cli.Get(ctx, p, clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("nothing under %s in etcd (%v)", p, err)
		}
		for _, kv := range resp.Kvs {
			if bytes.Contains(kv.Value, []byte("PRIVATE KEY")) || bytes.Contains(kv.Value, []byte(`"keys"`)) {
				t.Errorf("%s is stored in the clear", kv.Key)
			}
		}
	}

	// The controller's proxy endpoints: proxies only, and not another machine's names.
	ca, err := pki.LoadCA(cfg.PKIDir())
	if err != nil {
		t.Fatal(err)
	}
	admin := eps[config.RoleController]
	asDatanode := clientFor(issueCert(t, ca, pki.Identity{Machine: "d1", Roles: []string{config.RoleDatanode}}), b.Pool())
	asProxy := clientFor(issueCert(t, ca, pki.Identity{Machine: "p9", Roles: []string{config.RoleProxy}}), b.Pool())
	csr := func(name string) string {
		id := pki.Identity{Machine: "x"}
		if ip := net.ParseIP(name); ip != nil {
			id.IPs = []net.IP{ip}
		} else {
			id.DNSNames = []string{name}
		}
		csrPEM, _, err := pki.NewCSR(id)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(adminapi.PKISignRequest{CSR: string(csrPEM)})
		return string(body)
	}
	post := func(hc *http.Client, name string) (int, string) {
		resp, err := hc.Post(admin+adminapi.PKISignPath, "application/json", strings.NewReader(csr(name)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := post(asDatanode, "s3.example.test"); code != http.StatusForbidden {
		t.Errorf("sign with a datanode certificate: %d, want 403", code)
	}
	if code, _ := post(&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.Pool()}}}, "s3.example.test"); code != http.StatusUnauthorized {
		t.Errorf("sign without a certificate: %d, want 401", code)
	}
	if code, body := post(asProxy, "s3.example.test"); code != http.StatusOK || !strings.Contains(body, "BEGIN CERTIFICATE") {
		t.Errorf("sign a public name with a proxy certificate: %d %s", code, body)
	}
	// solo runs a proxy: its names may be asked for; a machine without one may not be posed as.
	if code, body := post(asProxy, "127.0.79.6"); code != http.StatusOK {
		t.Errorf("sign the address of a machine that runs a proxy: %d %s", code, body)
	}
	reg, err := cluster.Register(ctx, cli, cluster.Registration{Machine: "dn7", Role: config.RoleDatanode, Address: "https://127.0.79.77:8911"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, name := range []string{"127.0.79.77", "dn7"} {
		if code, body := post(asProxy, name); code != http.StatusForbidden || !strings.Contains(body, "runs no proxy") {
			t.Errorf("sign %s, another machine's name: %d %s; want 403", name, code, body)
		}
	}
	for hc, want := range map[*http.Client]int{asDatanode: http.StatusForbidden, asProxy: http.StatusOK} {
		resp, err := hc.Get(admin + adminapi.ProxyKeyringPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("proxy keyring: %d, want %d", resp.StatusCode, want)
		}
	}
}

// A proxy with fixed upstreams and certificate files runs without etcd (there is none here)
// and is sticky by client address.
func TestProxyStandalone(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("bench", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(pki.Identity{Machine: "edge", IPs: []net.IP{net.ParseIP("127.0.79.8")}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var ups []string
	for _, id := range []string{"a", "b", "c"} {
		be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Hanode-Node", id)
			fmt.Fprint(w, "hello from ", id)
		}))
		defer be.Close()
		ups = append(ups, id+"="+be.URL)
	}
	env := map[string]string{"HANODE_ROLE": "proxy", "HANODE_NAME": "edge", "HANODE_ADDRESS": "127.0.79.8", "HANODE_DATA_DIR": dir,
		"HANODE_PROXY_UPSTREAMS": strings.Join(ups, ","), "HANODE_PROXY_CERT_FILE": certFile, "HANODE_PROXY_KEY_FILE": keyFile,
		"HANODE_ETCD_ENDPOINTS": "https://127.0.79.8:1", "HANODE_SHUTDOWN_TIMEOUT": "5s"}
	cfg, _, err := config.Load(config.Sources{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.ProxyStandalone() {
		t.Fatal("not standalone")
	}
	b, err := pki.EnsureSelfSigned(cfg.PKIDir(), "bench", pki.Identity{Machine: "edge", Roles: []string{config.RoleProxy}}, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	eps, stop := start(t, cfg, b)
	defer stop()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	nodes := map[string]bool{}
	for i := 1; i <= 12; i++ {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 79, byte(100+i))}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: (&net.Dialer{LocalAddr: src}).DialContext, DisableKeepAlives: true}}
		first := ""
		for range 3 {
			resp, err := hc.Get(eps[config.RoleProxy] + "/bkt/obj")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			node := resp.Header.Get("X-Hanode-Node")
			if resp.StatusCode != 200 || string(body) != "hello from "+node {
				t.Fatalf("from %v: %d %q", src, resp.StatusCode, body)
			}
			if first == "" {
				first = node
			} else if node != first {
				t.Fatalf("client %v moved from %s to %s", src.IP, first, node)
			}
		}
		nodes[first] = true
	}
	if len(nodes) < 2 {
		t.Errorf("12 clients all on %v", nodes)
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}).Get(eps[config.RoleProxy] + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"ready":true`) {
		t.Errorf("standalone /readyz: %s", body)
	}
}
