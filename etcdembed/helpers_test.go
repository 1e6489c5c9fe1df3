package etcdembed

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// testTLS writes a throwaway CA and one node cert valid for 127.0.0.1 and
// 127.0.77.0-99. 127.0.0.1 is needed because etcd's peer listener checks the
// client cert's IP SANs against the connection's source address, and
// loopback connections originate from 127.0.0.1.
func testTLS(t *testing.T) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcdembed test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	for i := range 100 {
		ips = append(ips, net.IPv4(127, 0, 77, byte(i)))
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tf := TLSFiles{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "node.pem"),
		KeyFile:  filepath.Join(dir, "node-key.pem"),
	}
	writePEM(t, tf.CAFile, "CERTIFICATE", caDER)
	writePEM(t, tf.CertFile, "CERTIFICATE", leafDER)
	writePEM(t, tf.KeyFile, "EC PRIVATE KEY", keyDER)
	return tf
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testCluster describes members i at 127.0.77.<base+i>, names m1..mN.
type testCluster struct {
	t     *testing.T
	tls   TLSFiles
	token string
	base  int
	root  string
	peers []Peer
}

func newTestCluster(t *testing.T, base, n int) *testCluster {
	tc := &testCluster{t: t, tls: testTLS(t), token: "tok-" + t.Name(), base: base, root: t.TempDir()}
	for i := 1; i <= n; i++ {
		tc.peers = append(tc.peers, Peer{Name: fmt.Sprintf("m%d", i), PeerURL: tc.peerURL(i)})
	}
	return tc
}

func (tc *testCluster) ip(i int) string        { return fmt.Sprintf("127.0.77.%d", tc.base+i) }
func (tc *testCluster) peerURL(i int) string   { return "https://" + tc.ip(i) + ":2380" }
func (tc *testCluster) clientURL(i int) string { return "https://" + tc.ip(i) + ":2379" }
func (tc *testCluster) dir(i int) string       { return filepath.Join(tc.root, fmt.Sprintf("m%d", i)) }

func (tc *testCluster) cfg(i int) Config {
	return Config{
		Name:           fmt.Sprintf("m%d", i),
		Dir:            tc.dir(i),
		ClientURL:      tc.clientURL(i),
		PeerURL:        tc.peerURL(i),
		InitialCluster: tc.peers,
		ClusterToken:   tc.token,
		TLS:            tc.tls,
		Logger:         slog.New(slog.NewTextHandler(tc.t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start starts a member and registers Close as cleanup.
func (tc *testCluster) start(cfg Config) *Member {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := Start(ctx, cfg)
	if err != nil {
		tc.t.Fatalf("Start %s: %v", cfg.Name, err)
	}
	tc.t.Cleanup(m.Close)
	return m
}

func (tc *testCluster) client(endpoints ...string) *clientv3.Client {
	tc.t.Helper()
	tlsCfg, err := transport.TLSInfo{CertFile: tc.tls.CertFile, KeyFile: tc.tls.KeyFile, TrustedCAFile: tc.tls.CAFile}.ClientConfig()
	if err != nil {
		tc.t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { cli.Close() })
	return cli
}

// eventually polls cond every 50ms until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitReady(t *testing.T, timeout time.Duration, ms ...*Member) {
	t.Helper()
	for _, m := range ms {
		eventually(t, timeout, "member "+m.cfg.Name+" ready", m.Ready)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
