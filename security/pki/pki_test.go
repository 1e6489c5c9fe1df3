package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := NewCA(name, DefaultCAValidity, time.Now())
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func mustIssue(t testing.TB, ca *CA, id Identity) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, err := ca.Issue(id, DefaultNodeValidity, time.Now())
	if err != nil {
		t.Fatalf("Issue(%+v): %v", id, err)
	}
	return c, k
}

// nodeDir writes a complete pki dir (CA cert only, no CA key) for id.
func nodeDir(t *testing.T, ca *CA, id Identity) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), DirName)
	if err := WriteCACert(dir, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	c, k := mustIssue(t, ca, id)
	if err := WriteNode(dir, c, k); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustBundle(t *testing.T, dir string) *Bundle {
	t.Helper()
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	return b
}

func parseOne(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := parseLeafPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode = %o, want %o", path, got, want)
	}
}

var localhost = Identity{Machine: "m1", Roles: []string{"controller"}, DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}

func TestCASaveLoad(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("prod", DefaultCAValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "hanode prod CA" || !ca.Cert.IsCA ||
		ca.Cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Fatalf("unexpected CA cert: CN=%q IsCA=%v KU=%v", ca.Cert.Subject.CommonName, ca.Cert.IsCA, ca.Cert.KeyUsage)
	}
	if d := now.Sub(ca.Cert.NotBefore); d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("NotBefore is %v before now, want ~5m", d)
	}
	if ca.Cert.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %v looks too short to be random 128-bit", ca.Cert.SerialNumber)
	}

	dir := filepath.Join(t.TempDir(), "data", DirName)
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, filepath.Join(dir, CACertFile), 0o644)
	checkMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("dir has %d entries, want 2 (temp files left behind?)", len(ents))
	}

	got, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Cert.Raw, ca.Cert.Raw) || !bytes.Equal(got.CertPEM, ca.CertPEM) || !keyMatches(got.Cert, got.Key) {
		t.Fatal("loaded CA differs from saved CA")
	}
	// The loaded CA must be able to sign.
	mustIssue(t, got, localhost)
}

func TestLoadCAErrors(t *testing.T) {
	ca, other := mustCA(t, "a"), mustCA(t, "b")
	otherKey, err := encodeKeyPEM(other.Key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		setup    func(dir string)
		wantFile string
		wantIs   error
	}{
		{"missing dir", func(string) {}, CACertFile, fs.ErrNotExist},
		{"missing key", func(dir string) { os.Remove(filepath.Join(dir, CAKeyFile)) }, CAKeyFile, fs.ErrNotExist},
		{"garbage cert", func(dir string) { os.WriteFile(filepath.Join(dir, CACertFile), []byte("nope"), 0o644) }, CACertFile, nil},
		{"garbage key", func(dir string) { os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("nope"), 0o600) }, CAKeyFile, nil},
		{"key mismatch", func(dir string) { os.WriteFile(filepath.Join(dir, CAKeyFile), otherKey, 0o600) }, CAKeyFile, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), DirName)
			if tt.name != "missing dir" {
				if err := ca.Save(dir); err != nil {
					t.Fatal(err)
				}
			}
			tt.setup(dir)
			_, err := LoadCA(dir)
			if err == nil {
				t.Fatal("LoadCA succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.wantFile) {
				t.Errorf("error %q does not name %s", err, tt.wantFile)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
		})
	}
}

func TestIssueIdentityRoundTrip(t *testing.T) {
	ca := mustCA(t, "rt")
	tests := []struct {
		name    string
		id      Identity
		want    Identity
		wantErr bool
	}{
		{
			name: "full",
			id:   Identity{Machine: "node-1.example", Roles: []string{"datanode", "controller", "datanode"}, DNSNames: []string{"n1.example", "localhost"}, IPs: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("fd00::1")}},
			want: Identity{Machine: "node-1.example", Roles: []string{"controller", "datanode"}, DNSNames: []string{"n1.example", "localhost"}, IPs: []net.IP{net.ParseIP("10.0.0.1").To4(), net.ParseIP("fd00::1")}},
		},
		{name: "machine only", id: Identity{Machine: "admin_cli"}, want: Identity{Machine: "admin_cli"}},
		{name: "empty machine", id: Identity{Roles: []string{"admin"}}, wantErr: true},
		{name: "slash in machine", id: Identity{Machine: "a/b"}, wantErr: true},
		{name: "bad role", id: Identity{Machine: "m", Roles: []string{"a b"}}, wantErr: true},
		{name: "bad ip", id: Identity{Machine: "m", IPs: []net.IP{{1, 2, 3}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Now()
			certPEM, keyPEM, err := ca.Issue(tt.id, time.Hour, now)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Issue succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert := parseOne(t, certPEM)
			key, err := parseKeyPEM(keyPEM)
			if err != nil || !keyMatches(cert, key) {
				t.Fatalf("key does not parse or match: %v", err)
			}
			if _, ok := key.(*ecdsa.PrivateKey); !ok || cert.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
				t.Errorf("key is %T, want ECDSA P-256", key)
			}
			if cert.IsCA || cert.KeyUsage != x509.KeyUsageDigitalSignature ||
				!slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("usages: IsCA=%v KU=%v EKU=%v", cert.IsCA, cert.KeyUsage, cert.ExtKeyUsage)
			}
			if want := now.Add(time.Hour).Truncate(time.Second); !cert.NotAfter.Equal(want) {
				t.Errorf("NotAfter = %v, want %v", cert.NotAfter, want)
			}
			if len(cert.URIs) != 1 || cert.URIs[0].String() != "hanode://machine/"+tt.id.Machine {
				t.Errorf("URIs = %v", cert.URIs)
			}
			got, err := IdentityOf(cert)
			if err != nil {
				t.Fatal(err)
			}
			if !identityEqual(got, tt.want) {
				t.Errorf("IdentityOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func identityEqual(a, b Identity) bool {
	return a.Machine == b.Machine && slices.Equal(a.Roles, b.Roles) && slices.Equal(a.DNSNames, b.DNSNames) &&
		slices.EqualFunc(a.IPs, b.IPs, net.IP.Equal)
}

func TestIssueCapsAtCANotAfter(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("short", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue(localhost, DefaultNodeValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := parseOne(t, certPEM).NotAfter; !got.Equal(ca.Cert.NotAfter) {
		t.Errorf("leaf NotAfter %v, want CA NotAfter %v", got, ca.Cert.NotAfter)
	}
	if _, _, err := ca.Issue(localhost, time.Hour, now.Add(2*time.Hour)); err == nil {
		t.Error("Issue with expired CA succeeded")
	}
}

func TestIdentityOfRejects(t *testing.T) {
	ca := mustCA(t, "rej")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	plain := func(mod func(*x509.Certificate)) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "m1"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		mod(tmpl)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	good := Identity{Machine: "m1"}
	tests := []struct {
		name string
		cert *x509.Certificate
	}{
		{"nil", nil},
		{"CA", ca.Cert},
		{"no URI", plain(func(*x509.Certificate) {})},
		{"CN mismatch", plain(func(c *x509.Certificate) { c.URIs = []*url.URL{good.URI()}; c.Subject.CommonName = "m2" })},
		{"two URIs", plain(func(c *x509.Certificate) { c.URIs = []*url.URL{good.URI(), Identity{Machine: "m2"}.URI()} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, err := IdentityOf(tt.cert); err == nil {
				t.Fatalf("IdentityOf = %+v, want error", id)
			}
		})
	}
}

// serve starts an HTTPS server on 127.0.0.1:0 whose handler reports the
// client's machine name (or "anonymous").
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) == 0 {
				io.WriteString(w, "anonymous")
				return
			}
			id, err := IdentityOf(r.TLS.PeerCertificates[0])
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			io.WriteString(w, id.Machine+" "+strings.Join(id.Roles, ","))
		}),
		ErrorLog: log.New(io.Discard, "", 0), // rejected handshakes are expected
	}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func get(addr string, cfg *tls.Config) (string, error) {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status + ": " + string(body))
	}
	return string(body), err
}

func TestTLS(t *testing.T) {
	ca, foreign := mustCA(t, "main"), mustCA(t, "foreign")
	server := mustBundle(t, nodeDir(t, ca, localhost))
	client := mustBundle(t, nodeDir(t, ca, Identity{Machine: "cli-host", Roles: []string{"admin", "agent"}}))
	stranger := mustBundle(t, nodeDir(t, foreign, Identity{Machine: "evil", Roles: []string{"admin"}}))

	caOnly, err := ClientTLSForCA(server.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	// A stranger that trusts our CA but presents a certificate from another CA.
	strangerCfg := stranger.ClientConfig("")
	strangerCfg.RootCAs = server.Pool()

	open := serve(t, server.ServerConfig())
	strictCfg := server.ServerConfig()
	strictCfg.ClientAuth = tls.RequireAndVerifyClientCert
	strict := serve(t, strictCfg)

	tests := []struct {
		name    string
		addr    string
		cfg     *tls.Config
		want    string
		wantErr bool
	}{
		{"mutual auth", open, client.ClientConfig(""), "cli-host admin,agent", false},
		{"mutual auth strict", strict, client.ClientConfig("localhost"), "cli-host admin,agent", false},
		{"ca-only client optional", open, caOnly, "anonymous", false},
		{"ca-only client strict", strict, caOnly, "", true},
		{"foreign client cert strict", strict, strangerCfg, "", true},
		{"foreign client cert optional", open, strangerCfg, "", true},
		{"client not trusting our CA", open, stranger.ClientConfig(""), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := get(tt.addr, tt.cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("request succeeded with %q, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("server saw %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReloadWithoutRestart(t *testing.T) {
	ca := mustCA(t, "reload")
	dir := nodeDir(t, ca, localhost)
	server := mustBundle(t, dir)
	addr := serve(t, server.ServerConfig())
	client, err := ClientTLSForCA(server.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	serial := func() *big.Int {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, client)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}

	first := serial()
	if first.Cmp(server.Leaf().SerialNumber) != 0 {
		t.Fatalf("client saw serial %v, bundle has %v", first, server.Leaf().SerialNumber)
	}
	certPEM, keyPEM := mustIssue(t, ca, localhost)
	if err := WriteNode(dir, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got.Cmp(first) != 0 {
		t.Fatalf("serial changed to %v before Reload", got)
	}
	if err := server.Reload(); err != nil {
		t.Fatal(err)
	}
	want := parseOne(t, certPEM).SerialNumber
	if got := serial(); got.Cmp(want) != 0 || got.Cmp(first) == 0 {
		t.Fatalf("after Reload client saw serial %v, want %v", got, want)
	}

	// A broken file on disk must not take the running bundle down.
	if err := os.WriteFile(server.KeyFile(), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := server.Reload(); err == nil {
		t.Fatal("Reload of junk key succeeded")
	}
	if got := serial(); got.Cmp(want) != 0 {
		t.Fatalf("after failed Reload client saw serial %v, want %v", got, want)
	}
}

func TestLoadBundleErrors(t *testing.T) {
	ca, other := mustCA(t, "lb"), mustCA(t, "other")
	_, otherKey := mustIssue(t, ca, localhost)
	foreignCert, foreignKey := mustIssue(t, other, localhost)
	expiredCert, expiredKey, err := ca.Issue(localhost, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) func(string) {
		return func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	certPEM, keyPEM := mustIssue(t, ca, localhost)
	pair := func(blocks ...[]byte) func(string) {
		return write(NodePairFile, bytes.Join(blocks, nil))
	}
	// An earlier version's two files, without node.pem.
	legacy := func(certPEM, keyPEM []byte) func(string) {
		return func(dir string) {
			os.Remove(filepath.Join(dir, NodePairFile))
			write(NodeCertFile, certPEM)(dir)
			write(NodeKeyFile, keyPEM)(dir)
		}
	}
	tests := []struct {
		name    string
		setup   func(dir string)
		wantSub []string
		wantIs  error
	}{
		{"key mismatch", pair(certPEM, otherKey), []string{NodePairFile, "does not match"}, nil},
		{"missing pair", func(dir string) { os.Remove(filepath.Join(dir, NodePairFile)) }, []string{NodePairFile}, fs.ErrNotExist},
		{"missing ca", func(dir string) { os.Remove(filepath.Join(dir, CACertFile)) }, []string{CACertFile}, fs.ErrNotExist},
		{"garbage cert", pair([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), keyPEM), []string{NodePairFile}, nil},
		{"two certs", pair(certPEM, ca.CertPEM, keyPEM), []string{NodePairFile, "exactly one"}, nil},
		{"no key", pair(certPEM), []string{NodePairFile, "exactly one"}, nil},
		{"foreign CA", pair(foreignCert, foreignKey), []string{NodePairFile, CACertFile}, nil},
		{"expired", pair(expiredCert, expiredKey), []string{NodePairFile, "expired"}, nil},
		{"CA as node cert", pair(ca.CertPEM, keyPEM), []string{NodePairFile}, nil},
		// A pair torn by an earlier version's renewal is refused, not migrated.
		{"torn legacy pair", legacy(certPEM, otherKey), []string{NodeKeyFile, NodeCertFile, "does not match"}, nil},
		{"two certs in node.crt", legacy(append(append([]byte{}, foreignCert...), ca.CertPEM...), keyPEM), []string{NodeCertFile, "exactly one"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := nodeDir(t, ca, localhost)
			tt.setup(dir)
			_, err := LoadBundle(dir)
			if err == nil {
				t.Fatal("LoadBundle succeeded, want error")
			}
			for _, s := range tt.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
		})
	}
}

func TestBundleAccessors(t *testing.T) {
	ca := mustCA(t, "acc")
	dir := nodeDir(t, ca, localhost)
	if !Exists(dir) {
		t.Fatal("Exists = false for complete dir")
	}
	b := mustBundle(t, dir)
	for _, p := range []string{b.Dir(), b.CAFile(), b.CertFile(), b.KeyFile()} {
		if !filepath.IsAbs(p) {
			t.Errorf("%s is not absolute", p)
		}
	}
	if b.CertFile() != b.KeyFile() || filepath.Base(b.CertFile()) != NodePairFile {
		t.Errorf("CertFile %s, KeyFile %s: want both %s", b.CertFile(), b.KeyFile(), NodePairFile)
	}
	checkMode(t, b.CertFile(), 0o600)
	checkMode(t, b.CAFile(), 0o644)
	checkMode(t, b.Dir(), 0o700)
	if id := b.Identity(); !identityEqual(id, Identity{Machine: "m1", Roles: []string{"controller"}, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}) {
		t.Errorf("Identity = %+v", id)
	}
	// Identity returns a copy.
	b.Identity().Roles[0] = "mutated"
	if b.Identity().Roles[0] != "controller" {
		t.Error("Identity exposes internal state")
	}
	os.Remove(b.KeyFile())
	if Exists(dir) {
		t.Error("Exists = true without node.pem")
	}
	if Exists(t.TempDir()) {
		t.Error("Exists = true for empty dir")
	}
}

func TestWriteNodeRejectsMismatch(t *testing.T) {
	ca := mustCA(t, "wn")
	c1, _ := mustIssue(t, ca, localhost)
	_, k2 := mustIssue(t, ca, localhost)
	dir := t.TempDir()
	if err := WriteNode(dir, c1, k2); err == nil {
		t.Fatal("WriteNode accepted a mismatched pair")
	}
	if Exists(dir) || fileExists(filepath.Join(dir, NodePairFile)) {
		t.Error("WriteNode wrote files despite mismatch")
	}
	if err := WriteCACert(dir, c1); err == nil {
		t.Error("WriteCACert accepted a leaf")
	}
}

func TestEnsureSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), DirName)
	base := Identity{Machine: "appliance", Roles: []string{"controller", "datanode"}, DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}
	withIP := base
	withIP.IPs = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("192.0.2.7")}
	withDNS := withIP
	withDNS.DNSNames = []string{"localhost", "appliance.lan"}
	subset := Identity{Machine: "appliance", Roles: []string{"datanode"}}

	var caRaw []byte
	var lastSerial *big.Int
	steps := []struct {
		name    string
		id      Identity
		reissue bool
	}{
		{"first run creates", base, true},
		{"second run idempotent", base, false},
		{"added IP reissues", withIP, true},
		{"again idempotent", withIP, false},
		{"added DNS reissues", withDNS, true},
		{"subset keeps cert", subset, false},
		{"added role reissues", Identity{Machine: "appliance", Roles: []string{"proxy"}}, true},
	}
	for i, st := range steps {
		b, err := EnsureSelfSigned(dir, "lab", st.id, DefaultCAValidity, DefaultNodeValidity)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		ca, err := LoadCA(dir)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if i == 0 {
			caRaw = ca.Cert.Raw
		} else if !bytes.Equal(caRaw, ca.Cert.Raw) {
			t.Fatalf("%s: CA was replaced", st.name)
		}
		serial := b.Leaf().SerialNumber
		if i > 0 {
			if changed := serial.Cmp(lastSerial) != 0; changed != st.reissue {
				t.Errorf("%s: reissued = %v, want %v", st.name, changed, st.reissue)
			}
		}
		lastSerial = serial
		for _, ip := range st.id.IPs {
			if !slices.ContainsFunc(b.Identity().IPs, ip.Equal) {
				t.Errorf("%s: cert lacks %v", st.name, ip)
			}
		}
	}
	checkMode(t, filepath.Join(dir, CAKeyFile), 0o600)

	// A machine that holds only ca.crt cannot reissue, and says so.
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSelfSigned(dir, "lab", withDNS, DefaultCAValidity, DefaultNodeValidity); err == nil || !strings.Contains(err.Error(), CAKeyFile) {
		t.Errorf("without CA key: err = %v, want error naming %s", err, CAKeyFile)
	}
	// Never overwrite a CA: ca.key present, ca.crt gone.
	dir2 := filepath.Join(t.TempDir(), DirName)
	if _, err := EnsureSelfSigned(dir2, "lab", base, DefaultCAValidity, DefaultNodeValidity); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir2, CACertFile))
	if _, err := EnsureSelfSigned(dir2, "lab", base, DefaultCAValidity, DefaultNodeValidity); err == nil {
		t.Error("EnsureSelfSigned created a new CA over an existing ca.key")
	}
}

func fuzzSeeds(f *testing.F) (ca *CA, certPEM, keyPEM []byte) {
	ca = mustCA(f, "fuzz")
	certPEM, keyPEM = mustIssue(f, ca, Identity{Machine: "m", Roles: []string{"b", "a"}, IPs: []net.IP{net.ParseIP("::1")}})
	return ca, certPEM, keyPEM
}

// FuzzLoadPEM covers the parsers that will see bytes from disk and, once
// joining exists, from the network.
func FuzzLoadPEM(f *testing.F) {
	ca, certPEM, keyPEM := fuzzSeeds(f)
	f.Add(certPEM)
	f.Add(keyPEM)
	f.Add(ca.CertPEM)
	f.Add(append(append([]byte{}, ca.CertPEM...), certPEM...))
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n"))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if certs, err := parseCertsPEM(data); err == nil {
			if len(certs) == 0 {
				t.Fatal("no error and no certificates")
			}
			for _, c := range certs {
				checkIdentityInvariants(t, c)
			}
		}
		if k, err := parseKeyPEM(data); err == nil && k == nil {
			t.Fatal("no error and nil key")
		}
	})
}

// FuzzIdentityOf feeds arbitrary DER to IdentityOf.
func FuzzIdentityOf(f *testing.F) {
	ca, certPEM, _ := fuzzSeeds(f)
	f.Add(ca.Cert.Raw)
	f.Add(parseOne(f, certPEM).Raw)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		checkIdentityInvariants(t, c)
	})
}

func checkIdentityInvariants(t *testing.T, c *x509.Certificate) {
	id, err := IdentityOf(c)
	if err != nil {
		return
	}
	if !validName(id.Machine) || id.Machine != c.Subject.CommonName {
		t.Fatalf("IdentityOf accepted machine %q (CN %q)", id.Machine, c.Subject.CommonName)
	}
	if !slices.IsSorted(id.Roles) {
		t.Fatalf("roles not sorted: %q", id.Roles)
	}
	if c.IsCA {
		t.Fatal("IdentityOf accepted a CA")
	}
}
