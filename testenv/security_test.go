package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
)

// TestLabSecurity checks the lab's every listening port and the admin API's access control,
// with real processes and certificates.
func TestLabSecurity(t *testing.T) {
	l, drv := startLab(t, "127.0.26", 3)
	healthy(t, l)
	ctx := context.Background()
	labBundle, err := pki.LoadBundle(l.ClientPKI)
	if err != nil {
		t.Fatal(err)
	}
	m1 := l.Machines[0].Address

	// A certificate from another CA, and a cluster certificate of a datanode-only machine
	// (joined with a token restricted to that role).
	foreignCA, err := pki.NewCA("other", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fc, fk, err := foreignCA.Issue(pki.Identity{Machine: "m1", Roles: []string{"controller"}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreignCert, err := tls.X509KeyPair(fc, fk)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if _, err := ac.Do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"roles": []string{"datanode"}, "uses": 1, "ttl": "10m"}, &tok); err != nil {
		t.Fatal(err)
	}
	dn := &Machine{Name: "m9", Address: "127.0.26.9", DataDir: filepath.Join(l.Dir, "m9"), Roles: []string{"datanode"}}
	if out, err := drv.Run(ctx, l, dn, append(l.machineArgs(dn, "join"), "--server", l.Endpoints.Controllers[0]), []string{"HANODE_TOKEN=" + tok.Token}); err != nil {
		t.Fatalf("datanode join: %v\n%s", err, out)
	}
	dnBundle, err := pki.LoadBundle(filepath.Join(dn.DataDir, pki.DirName))
	if err != nil {
		t.Fatal(err)
	}
	// The used-up token is refused, with a clear message on the joining side.
	used := &Machine{Name: "m8", Address: "127.0.26.8", DataDir: filepath.Join(l.Dir, "m8"), Roles: []string{"datanode"}}
	out, err := drv.Run(ctx, l, used, append(l.machineArgs(used, "join"), "--server", l.Endpoints.Controllers[0]), []string{"HANODE_TOKEN=" + tok.Token})
	if err == nil || !strings.Contains(string(out), "no uses left") {
		t.Fatalf("join with a used-up token: err %v, output %q", err, out)
	}

	ports := []struct {
		name     string
		addr     string
		internal bool // requires a client certificate at the TLS layer
	}{
		{"etcd client", net.JoinHostPort(m1, "2379"), true},
		{"etcd peer", net.JoinHostPort(m1, "2380"), true},
		{"admin", net.JoinHostPort(m1, "8900"), false},
		{"agent", net.JoinHostPort(m1, "8901"), true},
		{"datanode", net.JoinHostPort(m1, "8911"), true},
		{"coordinator", net.JoinHostPort(m1, "9000"), false},
		{"proxy", net.JoinHostPort(m1, "8443"), false},
	}
	pool := labBundle.Pool()
	for _, p := range ports {
		t.Run(p.name, func(t *testing.T) {
			// Plaintext HTTP is not served.
			if body, ok := plaintextServed(p.addr); ok {
				t.Errorf("plaintext request served: %q", body)
			}
			// A certificate from another CA is refused in the handshake, on every port.
			// (GetClientCertificate, because with Certificates Go's client sends only a certificate
			// that matches the CAs the server asks for, i.e. none.)
			foreign := &tls.Config{RootCAs: pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreignCert, nil }}
			if err := handshake(p.addr, foreign); err == nil {
				t.Errorf("a foreign client certificate was accepted")
			}
			// No certificate: refused on internal ports; elsewhere the handshake may succeed
			// but the APIs need credentials (checked below).
			err := handshake(p.addr, &tls.Config{RootCAs: pool})
			if p.internal && err == nil {
				t.Errorf("a client without a certificate was accepted")
			}
			// The cluster's own certificate is accepted.
			if err := handshake(p.addr, labBundle.ClientConfig("")); err != nil {
				t.Errorf("the cluster certificate was refused: %v", err)
			}
		})
	}

	// Internal API by role: the agent answers controllers only.
	agentURL := "https://" + net.JoinHostPort(m1, "8901") + "/v1/agent"
	if code := status(t, &tls.Config{RootCAs: pool, GetClientCertificate: clientCert(dnBundle)}, http.MethodGet, agentURL, ""); code != http.StatusForbidden {
		t.Errorf("a datanode certificate on the agent API: %d, want 403", code)
	}
	if code := status(t, labBundle.ClientConfig(""), http.MethodGet, agentURL, ""); code != http.StatusOK {
		t.Errorf("a controller certificate on the agent API: %d, want 200", code)
	}

	// Admin API: no credential 401; readonly may read but not drain or create tokens.
	admin := "https://" + net.JoinHostPort(m1, "8900")
	anon := &tls.Config{RootCAs: pool}
	if code := status(t, anon, http.MethodGet, admin+"/v1/cluster/status", ""); code != http.StatusUnauthorized {
		t.Errorf("status without a credential: %d, want 401", code)
	}
	var cred struct {
		Credential string `json:"credential"`
	}
	if _, err := ac.Do(ctx, http.MethodPost, "/v1/credentials", map[string]any{"level": "readonly"}, &cred); err != nil {
		t.Fatal(err)
	}
	ro, err := adminapi.New([]string{admin}, anon, cred.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Status(ctx); err != nil {
		t.Errorf("readonly status: %v", err)
	}
	for _, w := range []struct{ method, path string }{{http.MethodPost, "/v1/nodes/m2/drain"}, {http.MethodPost, "/v1/tokens"}, {http.MethodPost, "/v1/credentials"}} {
		var apiErr *adminapi.APIError
		if _, err := ro.Do(ctx, w.method, w.path, map[string]any{}, nil); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
			t.Errorf("readonly %s %s: %v, want 403", w.method, w.path, err)
		}
	}
	if code := status(t, anon, http.MethodPost, admin+"/v1/nodes/m2/drain", ""); code != http.StatusUnauthorized {
		t.Errorf("drain without a credential: %d, want 401", code)
	}
	// Every mutation of a caller with a credential is in the audit trail, refused ones
	// included; a refusal without any credential is counted, not stored (issue 16).
	var audit struct {
		Entries []struct {
			Who    string `json:"who"`
			Action string `json:"action"`
			Result int    `json:"result"`
		} `json:"entries"`
	}
	if _, err := ac.Get(ctx, "/v1/audit?limit=100", &audit); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"credential:" + credID(cred.Credential) + " POST /v1/nodes/m2/drain 403": false,
		"credential:" + credID(cred.Credential) + " POST /v1/tokens 403":         false,
		"certificate:m1 POST /v1/credentials 200":                                false,
		"token:" + tokenID(tok.Token) + " POST /v1/join 200":                     false,
		"token:" + tokenID(tok.Token) + " POST /v1/join 403":                     false,
	}
	for _, e := range audit.Entries {
		k := fmt.Sprintf("%s %s %d", e.Who, e.Action, e.Result)
		if e.Who == "anonymous" {
			t.Errorf("a refusal without a credential was stored: %q", k)
		}
		if _, ok := want[k]; ok {
			want[k] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("audit trail lacks %q", k)
		}
	}

	// No secret in plaintext anywhere on disk: etcd's database, data dirs, logs, lab.json.
	secretsToFind := map[string]string{"join token secret": tokenSecret(tok.Token), "credential secret": credSecret(cred.Credential)}
	caKey, err := os.ReadFile(filepath.Join(l.ClientPKI, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	// The walk must see etcd's database: the credential's id (not secret) is stored there.
	idSeen := false
	_ = filepath.Walk(l.Dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || path == filepath.Join(l.Dir, EnvFile) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		if strings.Contains(path, "controller") && bytes.Contains(data, []byte(`"id":"`+credID(cred.Credential)+`"`)) {
			idSeen = true
		}
		for what, s := range secretsToFind {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("the %s is in plaintext in %s", what, path)
			}
		}
		// The CA key may live only in m1's pki dir (0600), never in etcd or anywhere else.
		if bytes.Contains(data, bytes.TrimSpace(caKey)[40:120]) && path != filepath.Join(l.ClientPKI, pki.CAKeyFile) {
			t.Errorf("the CA key is in plaintext in %s", path)
		}
		return nil
	})
	if !idSeen {
		t.Error("the search never read the etcd database (the credential id was not found in it)")
	}
}

func clientCert(b *pki.Bundle) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return b.ClientConfig("").GetClientCertificate
}

// plaintextServed sends a plain HTTP request and reports whether a hanode API answered it.
func plaintextServed(addr string) (string, bool) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr)
	body, _ := io.ReadAll(c)
	// Go's TLS servers answer a plaintext request with a 400 that names the mistake.
	ok := bytes.Contains(body, []byte("200 OK"))
	return string(body), ok
}

func handshake(addr string, cfg *tls.Config) error {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	// TLS 1.3 reports a refused client certificate only on the first read.
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil && !errors.Is(err, io.EOF) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil // an HTTP/2-only or gRPC port that waits for more: the handshake was accepted
		}
		return err
	}
	return nil
}

func status(t *testing.T, cfg *tls.Config, method, url, body string) int {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func tokenID(tok string) string     { return strings.SplitN(strings.SplitN(tok, "::", 2)[1], ".", 2)[0] }
func tokenSecret(tok string) string { return strings.SplitN(tok, ".", 2)[1] }
func credID(c string) string        { return strings.TrimPrefix(strings.SplitN(c, ".", 2)[0], "hnc_") }
func credSecret(c string) string    { return strings.SplitN(c, ".", 2)[1] }

// TestLabCertificateRenewal runs a lab whose certificates live one minute: every process must
// renew before expiry and serve the new certificate without restarting or failing.
func TestLabCertificateRenewal(t *testing.T) {
	l, drv := startLab(t, "127.0.27", 3, "--cert-validity=1m")
	healthy(t, l)
	b, err := pki.LoadBundle(l.ClientPKI)
	if err != nil {
		t.Fatal(err)
	}
	type served struct {
		m      *Machine
		p      *Process
		pid    int
		serial string
	}
	var ps []*served
	for mi := range l.Machines {
		for pi := range l.Machines[mi].Processes {
			p := &l.Machines[mi].Processes[pi]
			if p.Roles[0] == "proxy" {
				continue // 8443 serves the proxy's managed certificate (30 days), not the machine's
			}
			s, err := servingSerial(p.URL, b)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, &served{&l.Machines[mi], p, p.PID, s})
		}
	}
	waitFor(t, "every process to serve a renewed certificate", 3*time.Minute, func() bool {
		for _, s := range ps {
			cur, err := servingSerial(s.p.URL, b)
			if err != nil || cur == s.serial {
				return false
			}
		}
		return true
	})
	// Past the first certificates' expiry, everything still runs, unrestarted, and is ready.
	time.Sleep(time.Until(b.Leaf().NotAfter) + time.Second) // wait out the lab client's own first certificate, then reload it
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, s := range ps {
		if s.p.PID != s.pid || !drv.Alive(l, s.m, s.p) {
			t.Errorf("%s/%s restarted or died", s.m.Name, s.p.Roles[0])
		}
	}
	if err := l.WaitReady(context.Background(), drv, nil, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	healthy(t, l)
}

// servingSerial is the serial number of the certificate a role's listener serves.
func servingSerial(base string, b *pki.Bundle) (string, error) {
	addr := strings.TrimPrefix(base, "https://")
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, b.ClientConfig(""))
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// TestLabSecretsRotate rotates the keyring on a running lab: every controller takes the new
// key as primary, the sealed CA is re-sealed with it, and a controller that must unseal the CA
// (not machine 1, which has the key file) still signs joins.
func TestLabSecretsRotate(t *testing.T) {
	l, drv := startLab(t, "127.0.28", 3)
	healthy(t, l)
	ctx := context.Background()
	// An SSE-S3 object: its data key, made and sealed by a controller, is re-sealed too.
	data := bytes.Repeat([]byte("sse-s3 across a keyring rotation "), 40000)
	mc := labS3(t, l, l.Endpoints.S3[0])
	if err := mc.MakeBucket(ctx, "rotate", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "rotate", "sse", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ServerSideEncryption: encrypt.NewSSE()}); err != nil {
		t.Fatal(err)
	}
	hanode := func(args string) (string, error) {
		out, err := exec.Command("bash", "-c", fmt.Sprintf("source %s && %s %s", filepath.Join(l.Dir, EnvFile), binary, args)).CombinedOutput()
		return string(out), err
	}
	// An SSE-KMS object under a key of the built-in KMS, made with the CLI: the controllers make
	// and open its data key under the key's material, which the rotation re-seals.
	if out, err := hanode("kms create labkey"); err != nil || !strings.Contains(out, "KMS key labkey created") {
		t.Fatalf("hanode kms create: %v\n%s", err, out)
	}
	kmsSSE, err := encrypt.NewSSEKMS("labkey", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "rotate", "kms", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ServerSideEncryption: kmsSSE}); err != nil {
		t.Fatal(err)
	}
	out, err := hanode("secrets rotate")
	if err != nil {
		t.Fatalf("hanode secrets rotate: %v\n%s", err, out)
	}
	var keyID string
	// The sealed CA, two S3 secret keys (the root user and the lab user), the proxies keyring,
	// the record of which key is root and the KMS key are re-sealed; the SSE-KMS object's data
	// key is sealed under the KMS key, not the keyring, so only the SSE-S3 one is.
	if _, err := fmt.Sscanf(out, "keyring rotated: primary key %s on", &keyID); err != nil || !strings.Contains(out, "; 6 secrets and 1 object data keys re-sealed") {
		t.Fatalf("unexpected output %q (%v)", out, err)
	}
	getKMS := func(s3 int) error {
		o, err := labS3(t, l, l.Endpoints.S3[s3]).GetObject(ctx, "rotate", "kms", minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer o.Close()
		got, err := io.ReadAll(o)
		if err == nil && !bytes.Equal(got, data) {
			t.Fatalf("the SSE-KMS object read back wrong (%d bytes)", len(got))
		}
		return err
	}
	if err := getKMS(2); err != nil {
		t.Fatalf("the SSE-KMS object after the keyring rotation: %v", err)
	}
	// Disabled, the key closes its object at once on a coordinator that never opened it; the
	// SSE-S3 object stays readable. Enabled, it opens again. Delete needs --force.
	if out, err := hanode("kms disable labkey"); err != nil {
		t.Fatalf("hanode kms disable: %v\n%s", err, out)
	}
	if out, err := hanode("kms list"); err != nil || !strings.Contains(out, "labkey") || !strings.Contains(out, "disabled") {
		t.Fatalf("hanode kms list: %v\n%s", err, out)
	}
	if r := minio.ToErrorResponse(getKMS(1)); r.StatusCode != http.StatusBadRequest || r.Code != "KMS.DisabledException" {
		t.Fatalf("GET under a disabled KMS key: %+v, want 400 KMS.DisabledException", r)
	}
	if out, err := hanode("kms delete labkey"); err == nil || !strings.Contains(out, "--force") {
		t.Fatalf("hanode kms delete without --force: %v\n%s", err, out)
	}
	if out, err := hanode("kms enable labkey"); err != nil {
		t.Fatalf("hanode kms enable: %v\n%s", err, out)
	}
	if err := getKMS(1); err != nil {
		t.Fatalf("the SSE-KMS object after enabling its key: %v", err)
	}
	// S3 keys still open under the new key: a fresh coordinator cache asks a controller.
	if _, err := labS3(t, l, l.Endpoints.S3[2]).ListBuckets(ctx); err != nil {
		t.Fatalf("S3 after the keyring rotation: %v", err)
	}
	o, err := labS3(t, l, l.Endpoints.S3[2]).GetObject(ctx, "rotate", "sse", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(o); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the SSE-S3 object after the keyring rotation: %v (%d bytes)", err, len(got))
	}
	for _, m := range l.Machines {
		ring, err := secrets.Load(filepath.Join(m.DataDir, pki.DirName, "keyring.json"))
		if err != nil {
			t.Fatal(err)
		}
		if ring.PrimaryID() != keyID || len(ring.IDs()) != 2 {
			t.Errorf("%s: keyring primary %s ids %v; want primary %s and the old key kept", m.Name, ring.PrimaryID(), ring.IDs(), keyID)
		}
	}
	cli, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/hanode/secrets/ca")
	if err != nil || len(resp.Kvs) != 1 || !bytes.Contains(resp.Kvs[0].Value[:16], []byte(keyID)) {
		t.Fatalf("the sealed CA is not sealed with the new key: %v", err)
	}
	if resp, err := cli.Get(ctx, "/hanode/keyring/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("rotation state left in etcd: %v %v", resp, err)
	}
	// Join through machine 2, which unseals the CA from etcd with the new key.
	ac, err := l.AdminClient([]string{l.Endpoints.Controllers[1]})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if _, err := ac.Do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"uses": 1, "ttl": "10m"}, &tok); err != nil {
		t.Fatal(err)
	}
	m := &Machine{Name: "m7", Address: "127.0.28.7", DataDir: filepath.Join(l.Dir, "m7"), Roles: []string{"datanode"}}
	if out, err := drv.Run(ctx, l, m, append(l.machineArgs(m, "join"), "--server", l.Endpoints.Controllers[1]), []string{"HANODE_TOKEN=" + tok.Token}); err != nil {
		t.Fatalf("join through m2 after rotation: %v\n%s", err, out)
	}
}

// TestLabCARotation runs the documented three-phase CA rotation on a running lab, with the
// rolling restarts it asks for, and checks the cluster never stops being healthy, every process
// ends up on the new CA, and the old CA is no longer trusted.
func TestLabCARotation(t *testing.T) {
	l, drv := startLab(t, "127.0.29", 3)
	healthy(t, l)
	ctx := context.Background()
	oldCA, err := os.ReadFile(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := os.ReadFile(filepath.Join(l.ClientPKI, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(phase string) string {
		t.Helper()
		cmd := fmt.Sprintf("source %s && %s ca rotate %s", filepath.Join(l.Dir, EnvFile), binary, phase)
		out, err := exec.Command("bash", "-c", cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("hanode ca rotate %s: %v\n%s", phase, err, out)
		}
		return string(out)
	}
	bundleSize := func(m Machine) int {
		certs, err := pki.ParseCertsPEM(must(os.ReadFile(filepath.Join(m.DataDir, pki.DirName, pki.CACertFile))))
		if err != nil {
			return -1
		}
		return len(certs)
	}
	rollingRestart := func() {
		t.Helper()
		for _, m := range l.Machines {
			if err := l.Restart(ctx, drv, m.Name, 60*time.Second); err != nil {
				t.Fatalf("restart %s: %v", m.Name, err)
			}
			healthy(t, l)
		}
	}

	rotate("start")
	waitFor(t, "every machine to trust both CAs", time.Minute, func() bool {
		for _, m := range l.Machines {
			if bundleSize(m) != 2 {
				return false
			}
		}
		return true
	})
	rollingRestart()

	out := rotate("switch")
	var signer string
	if _, err := fmt.Sscanf(out, "CA rotation switch done: signing CA %s", &signer); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	signer = strings.TrimSuffix(signer, ",")
	waitFor(t, "every process to serve a certificate of the new CA", 2*time.Minute, func() bool {
		b, err := pki.LoadBundle(l.ClientPKI)
		if err != nil {
			return false
		}
		for _, m := range l.Machines {
			for _, p := range m.Processes {
				kid, err := servingIssuer(p.URL, b)
				if err != nil || kid != signer {
					return false
				}
			}
		}
		return true
	})
	healthy(t, l)

	rotate("finish")
	waitFor(t, "every machine to trust only the new CA", time.Minute, func() bool {
		for _, m := range l.Machines {
			if bundleSize(m) != 1 {
				return false
			}
		}
		return true
	})
	rollingRestart()

	// A certificate of the old CA is now refused.
	old, err := pki.ParseCA(oldCA, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	oc, ok, err := old.Issue(pki.Identity{Machine: "m1", Roles: []string{"controller"}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	oldCert, err := tls.X509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.LoadBundle(l.ClientPKI)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: b.Pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &oldCert, nil }}
	if err := handshake(net.JoinHostPort(l.Machines[1].Address, "8901"), cfg); err == nil {
		t.Fatal("a certificate of the retired CA was accepted")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		return nil
	}
	return b
}

// servingIssuer is the authority key id of the certificate a listener serves.
func servingIssuer(base string, b *pki.Bundle) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", strings.TrimPrefix(base, "https://"), b.ClientConfig(""))
	if err != nil {
		return "", err
	}
	defer c.Close()
	return hex.EncodeToString(c.ConnectionState().PeerCertificates[0].AuthorityKeyId), nil
}
