package certstore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hanode/hanode/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const (
	certDNS = "proxy.lab.internal"
	certIP  = "127.0.84.9"
)

// testCA is a throwaway CA standing in for the cluster's signer; it counts
// how often each name was signed.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey

	mu    sync.Mutex
	signs map[string]int
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "certstore test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, signs: map[string]int{}}
}

func (ca *testCA) Sign(_ context.Context, csrDER []byte) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	for _, n := range csrNames(csr) {
		ca.signs[n]++
	}
	ca.mu.Unlock()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func (ca *testCA) count(name string) int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.signs[name]
}

// newCertmagic is one proxy's certmagic: its own cache, no ACME, no OCSP,
// no ARI, so nothing reaches the network.
func newCertmagic(t *testing.T, st certmagic.Storage, issuer certmagic.Issuer) *certmagic.Config {
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zap.NewNop(),
	})
	t.Cleanup(cache.Stop)
	cfg = certmagic.New(cache, certmagic.Config{
		Storage:    st,
		Issuers:    []certmagic.Issuer{issuer},
		OCSP:       certmagic.OCSPConfig{DisableStapling: true},
		DisableARI: true,
		Logger:     zap.NewNop(),
	})
	return cfg
}

// serveTLS serves handshakes with cfg on certIP, so that a client dialling
// the IP (no SNI) exercises certmagic's IP-based selection.
func serveTLS(t *testing.T, cfg *certmagic.Config) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(certIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tln := tls.NewListener(ln, cfg.TLSConfig())
	go func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

// servedSerial handshakes with addr as serverName, verifying against roots.
func servedSerial(t *testing.T, addr, serverName string, roots *x509.CertPool) *big.Int {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		t.Fatalf("handshake with %s as %s: %v", addr, serverName, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

func TestCertmagicIssuesOnceAcrossProxies(t *testing.T) {
	cli := etcdtest.Start(t, hostCerts)
	ctx := testCtx(t)
	kr := newKeyring(t)
	ca := newTestCA(t)
	issuer := &CAIssuer{Sign: ca.Sign}

	var cfgs []*certmagic.Config
	for range 2 {
		st := newStorage(t, newClient(t, cli, true), Options{Keyring: kr})
		cfgs = append(cfgs, newCertmagic(t, st, issuer))
	}
	names := []string{certDNS, certIP}
	var wg sync.WaitGroup
	for _, cfg := range cfgs {
		wg.Go(func() {
			if err := cfg.ManageSync(ctx, names); err != nil {
				t.Errorf("ManageSync: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range names {
		if got := ca.count(n); got != 1 {
			t.Errorf("%s signed %d times, want once", n, got)
		}
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	addrs := []string{serveTLS(t, cfgs[0]), serveTLS(t, cfgs[1])}
	for _, name := range names {
		s0 := servedSerial(t, addrs[0], name, roots)
		s1 := servedSerial(t, addrs[1], name, roots)
		if s0.Cmp(s1) != 0 {
			t.Errorf("%s: proxies serve different certificates (serials %x and %x)", name, s0, s1)
		}
	}

	// The private keys are sealed in etcd, and no lock is left behind.
	keyKey := testPrefix + "data/" + certmagic.StorageKeys.SitePrivateKey(issuer.IssuerKey(), certDNS)
	resp, err := cli.Get(ctx, keyKey)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v (%d kvs)", keyKey, err, len(resp.Kvs))
	}
	if bytes.Contains(resp.Kvs[0].Value, []byte("PRIVATE KEY")) {
		t.Fatal("private key stored in the clear")
	}
	resp, err = cli.Get(ctx, testPrefix+"locks/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("%d lock keys left after ManageSync (err %v)", resp.Count, err)
	}
}

func TestCAIssuerRejectsBadSigner(t *testing.T) {
	ca := newTestCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrFor := func(dns string, ips ...net.IP) *x509.CertificateRequest {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{dns}, IPAddresses: ips}, key)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	ctx := context.Background()
	good := &CAIssuer{Sign: ca.Sign}
	if _, err := good.Issue(ctx, csrFor("a.lab", net.ParseIP(certIP))); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	// A signer that drops a name or signs for another CSR is caught.
	other := csrFor("b.lab")
	wrongCSR := &CAIssuer{Sign: func(ctx context.Context, _ []byte) ([]byte, error) { return ca.Sign(ctx, other.Raw) }}
	if _, err := wrongCSR.Issue(ctx, csrFor("a.lab")); err == nil {
		t.Fatal("Issue accepted a certificate for other names")
	}
	failing := &CAIssuer{Sign: func(context.Context, []byte) ([]byte, error) { return nil, errors.New("CA offline") }}
	if _, err := failing.Issue(ctx, csrFor("a.lab")); err == nil {
		t.Fatal("Issue succeeded with a failing signer")
	}
	if (&CAIssuer{}).IssuerKey() != DefaultIssuerKey || (&CAIssuer{Key: "x"}).IssuerKey() != "x" {
		t.Fatal("IssuerKey")
	}
}
