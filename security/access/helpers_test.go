package access

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/security/pki"
)

// etcdHost is this package's etcd (internal/etcdtest: one loopback address per package).
const etcdHost = "127.0.89.1"

func startEtcd(t *testing.T) *clientv3.Client { return etcdtest.Start(t, etcdHost) }

// testPKI is a real cluster CA issuing real certificates.
type testPKI struct {
	ca   *pki.CA
	pool *x509.CertPool
}

func newPKI(t *testing.T, cluster string) *testPKI {
	t.Helper()
	ca, err := pki.NewCA(cluster, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &testPKI{ca: ca, pool: pool}
}

// issue returns a certificate for machine with roles, valid for 127.0.0.1.
func (p *testPKI) issue(t *testing.T, machine string, roles ...string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := p.ca.Issue(pki.Identity{Machine: machine, Roles: roles, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveTLS serves h over TLS as the admin API does: client certificates of the cluster CA are
// verified when presented, not required. clientAuth overrides that policy.
func (p *testPKI) serveTLS(t *testing.T, h http.Handler, clientAuth tls.ClientAuthType) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.issue(t, "server", "controller")}, ClientCAs: p.pool, ClientAuth: clientAuth}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// client returns an HTTPS client trusting p's CA and presenting certs.
func (p *testPKI) client(t *testing.T, certs ...tls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: certs}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
