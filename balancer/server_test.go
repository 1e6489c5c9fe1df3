package balancer

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "proxy test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func runServer(t *testing.T, srv *http.Server, ln net.Listener, tlsOn bool) {
	t.Helper()
	go func() {
		if tlsOn {
			_ = srv.ServeTLS(ln, "", "")
		} else {
			_ = srv.Serve(ln)
		}
	}()
	t.Cleanup(func() { _ = srv.Close() })
}

// HTTP/2 over TLS through NewServer to the proxy, with a Secure pin cookie.
func TestServerHTTP2(t *testing.T) {
	a := startBackend(t, "a", nil)
	p := newProxy(t, Config{}, a)
	cert, pool := selfSigned(t)
	srv := NewServer(p, &tls.Config{Certificates: []tls.Certificate{cert}})
	ln := listen(t)
	runServer(t, srv, ln, true)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	r, err := c.Get("https://" + ln.Addr().String() + "/bkt/obj")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", r.Proto)
	}
	if r.StatusCode != http.StatusOK || r.Header.Get("X-Hanode-Node") != "a" {
		t.Errorf("status %d node %q", r.StatusCode, r.Header.Get("X-Hanode-Node"))
	}
	if ck := r.Header.Get("Set-Cookie"); !strings.Contains(ck, "Secure") {
		t.Errorf("pin cookie over TLS not Secure: %q", ck)
	}
	if got := r.Header.Get("X-Got-Xff"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
}

// Oversized headers get 431; a client stuck in the middle of its headers
// does not delay others and is cut off by ReadHeaderTimeout.
func TestServerLimits(t *testing.T) {
	a := startBackend(t, "a", nil)
	p := newProxy(t, Config{}, a)
	srv := NewServer(p, nil)
	srv.ReadHeaderTimeout = 2 * time.Second // 10s in production
	ln := listen(t)
	runServer(t, srv, ln, false)
	base := "http://" + ln.Addr().String()
	cl := sourceClient(t, 0)

	r, err := do(cl, http.MethodGet, base, http.Header{"X-Big": {strings.Repeat("x", 80<<10)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("80 KiB header: status %d, want 431", r.status)
	}

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	mustGet(t, cl, base, nil)
	// The slow client was still pending while the other was served.
	_ = slow.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, err := slow.Read(make([]byte, 1)); err == nil {
		t.Fatal("slow-loris client got a response to half a request")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("slow-loris connection closed before its header timeout: %v", err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(slow) // the server gives up on the half-sent request
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("slow-loris connection not closed by ReadHeaderTimeout")
	}
}

// PROXY protocol v2 from a trusted peer sets the client address; from an
// untrusted peer it is refused; plain connections from untrusted peers work.
func TestProxyProtocol(t *testing.T) {
	a := startBackend(t, "a", nil)
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.83.0/24")}
	p := newProxy(t, Config{TrustedProxies: trusted}, a)
	ln := listen(t)
	runServer(t, NewServer(p, nil), Listen(ln, trusted), false)

	send := func(src int, header bool) (*http.Response, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		if src > 0 {
			d.LocalAddr = &net.TCPAddr{IP: srcIP(src)}
		}
		conn, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if header {
			h := proxyproto.HeaderProxyFromAddrs(2,
				&net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 4444}, ln.Addr())
			if _, err := h.WriteTo(conn); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(conn, "GET /obj HTTP/1.1\r\nHost: s3.example\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}

	resp, err := send(9, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Got-Xff"); got != "198.51.100.7" {
		t.Errorf("trusted PROXY v2: upstream saw client %q, want 198.51.100.7", got)
	}
	if pin := p.verifyPin(resp.Header.Get(PinHeader)); pin == nil || pin.sid != sidFor("ip:198.51.100.7") {
		t.Errorf("trusted PROXY v2: session not keyed by the PROXY source")
	}

	if resp, err := send(0, true); err == nil {
		t.Errorf("untrusted peer's PROXY header accepted: status %d", resp.StatusCode)
	}
	resp, err = send(0, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Got-Xff"); resp.StatusCode != http.StatusOK || got != "127.0.0.1" {
		t.Errorf("untrusted plain: status %d, client %q", resp.StatusCode, got)
	}
	// A trusted peer may also connect without a header.
	resp, err = send(9, false)
	if err != nil || resp.Header.Get("X-Got-Xff") != "127.0.83.9" {
		t.Errorf("trusted plain: %v %v", resp, err)
	}
}

// https upstreams: UpstreamTLS is used, requests go over the proxy's own HTTP/1.1 forwarding
// path (h1.go) even to an upstream that offers HTTP/2, and a TLS handshake failure counts as a
// dial failure (retried for any method).
func TestUpstreamTLS(t *testing.T) {
	tlsBackend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		w.Header().Set("X-Hanode-Node", "tls")
		w.Header().Set("X-Got-Proto", r.Proto)
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Body-Len", fmt.Sprint(n))
	}))
	tlsBackend.EnableHTTP2 = true
	tlsBackend.StartTLS()
	t.Cleanup(tlsBackend.Close)
	plain := startBackend(t, "plain", nil) // speaks HTTP, not TLS

	p := newProxy(t, Config{UpstreamTLS: tlsBackend.Client().Transport.(*http.Transport).TLSClientConfig})
	tu, _ := url.Parse(tlsBackend.URL)
	if err := p.SetUpstreams([]Upstream{
		{ID: "tls", URL: tu},
		{ID: "plain", URL: &url.URL{Scheme: "https", Host: plain.addr}},
	}); err != nil {
		t.Fatal(err)
	}
	ts := serve(t, p)
	checkRounds(p, 1)
	if s := stateOf(p, "tls"); s != StateHealthy {
		t.Fatalf("tls upstream %v after a health check", s)
	}

	pin := p.signPin("plain", sidFor("test"), p.now().Unix())
	r, err := do(sourceClient(t, 0), http.MethodPost, ts.URL+"/obj", pinHeader(pin), strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusOK || r.node != "tls" || r.header.Get("X-Body-Len") != "3" {
		t.Fatalf("status %d node %q len %q, want 200 from tls with the body", r.status, r.node, r.header.Get("X-Body-Len"))
	}
	if got := r.header.Get("X-Got-Proto"); got != "HTTP/1.1" {
		t.Errorf("upstream protocol %s, want HTTP/1.1", got)
	}
	if plain.hits.Load() != 0 {
		t.Error("the plain backend handled a request")
	}
}
