package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/hanode/hanode/config"
)

// proxyClient is an HTTPS client that trusts pool and connects from source address src (an
// address on lo), one new connection per request unless keepAlive.
func proxyClient(pool *x509.CertPool, src string, keepAlive bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: d.DialContext, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1}}
}

// nodeOf GETs u and returns the coordinator that answered and the pin the proxy issued.
func nodeOf(t *testing.T, hc *http.Client, u string, h http.Header) (node, pin string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	node = resp.Header.Get("X-Hanode-Node")
	if node == "" {
		t.Fatalf("GET %s: %d without X-Hanode-Node", u, resp.StatusCode)
	}
	return node, resp.Header.Get("Hanode-Affinity")
}

// addProxyMachine joins a machine that runs only a proxy, as an operator adds one, and starts
// it, beside the proxies the lab runs on its own machines.
func addProxyMachine(t *testing.T, l *Lab, drv Driver, name, address string) string {
	t.Helper()
	ctx := context.Background()
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if _, err := ac.Do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"roles": []string{config.RoleProxy}, "uses": 1, "ttl": "10m"}, &tok); err != nil {
		t.Fatal(err)
	}
	m := Machine{Name: name, Address: address, DataDir: filepath.Join(l.Dir, name), Roles: []string{config.RoleProxy}}
	if out, err := drv.Run(ctx, l, &m, append(l.machineArgs(&m, "join"), "--server", l.Endpoints.Controllers[0]), []string{"HANODE_TOKEN=" + tok.Token}); err != nil {
		t.Fatalf("%s: hanode join: %v\n%s", name, err, out)
	}
	base := httpsURL(address, rolePort(config.RoleProxy))
	m.Processes = []Process{{Roles: []string{config.RoleProxy}, Args: l.processArgs(m, config.RoleProxy), Log: filepath.Join(m.DataDir, "logs", "proxy.log"), URL: base}}
	l.Machines = append(l.Machines, m)
	mp := &l.Machines[len(l.Machines)-1]
	if err := drv.Start(ctx, l, mp, &mp.Processes[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitReady(ctx, drv, []*Process{&mp.Processes[0]}, 60*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, tail(mp.Processes[0].Log, 30))
	}
	return base
}

// TestLabProxy is the proxy role on a real lab: S3 through it with TLS verified against the
// cluster CA, stickiness by client address, pins honoured by a second proxy, one shared
// certificate, HTTP/2, and kill -9 of a coordinator under load.
func TestLabProxy(t *testing.T) {
	const prefix = "127.0.34"
	// The proxies' public names: each proxy's address (the lab runs one on every machine, and
	// p2 joins on .4) and a shared DNS name, the same list on every machine (as an operator's
	// config file would have it).
	names := prefix + ".1," + prefix + ".2," + prefix + ".3," + prefix + ".4,s3.lab.test"
	l, drv := startLab(t, prefix, 3, "--proxy-names", names)
	ctx := context.Background()
	caPEM, err := os.ReadFile(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	p1 := l.Endpoints.Proxy
	if p1 != httpsURL(prefix+".1", 8443) {
		t.Fatalf("lab proxy endpoint %q", p1)
	}

	// (a) S3 through the proxy with minio-go, TLS verified against the lab CA.
	mc := labS3(t, l, p1)
	if err := mc.MakeBucket(ctx, "pxy", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	small := labData(1024, 3)
	if _, err := mc.PutObject(ctx, "pxy", "small", bytes.NewReader(small), int64(len(small)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	big := labData(5<<20, 4)
	if _, err := mc.PutObject(ctx, "pxy", "big", bytes.NewReader(big), int64(len(big)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err := mc.GetObject(ctx, "pxy", "big", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	o.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back through the proxy: %d bytes, %v", len(got), err)
	}
	presigned, err := mc.PresignedGetObject(ctx, "pxy", "small", 10*time.Minute, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	smallURL := presigned.String()
	if node, _ := nodeOf(t, proxyClient(pool, "127.0.37.250", false), smallURL, nil); !strings.HasPrefix(node, "m") {
		t.Fatalf("X-Hanode-Node %q", node)
	}

	// (b) Without cookies, each client address always reaches the same coordinator.
	unsigned := p1 + "/pxy/anything"
	spread := map[string]int{}
	for i := 1; i <= 32; i++ {
		hc := proxyClient(pool, fmt.Sprintf("127.0.37.%d", i), false)
		first, _ := nodeOf(t, hc, unsigned, nil)
		for range 3 {
			if n, _ := nodeOf(t, hc, unsigned, nil); n != first {
				t.Fatalf("client 127.0.37.%d moved from %s to %s", i, first, n)
			}
		}
		spread[first]++
	}
	if len(spread) < 2 {
		t.Errorf("32 client addresses all on %v", spread)
	}
	t.Logf("32 client addresses over the coordinators: %v", spread)

	// (c) A second proxy honours the first one's pins.
	p2 := addProxyMachine(t, l, drv, "p2", prefix+".4")
	for i := range 20 {
		n1, pin := nodeOf(t, proxyClient(pool, fmt.Sprintf("127.0.37.%d", 40+i), false), unsigned, nil)
		if pin == "" {
			t.Fatal("the proxy issued no pin")
		}
		// Another address, so only the pin can lead to n1.
		n2, _ := nodeOf(t, proxyClient(pool, fmt.Sprintf("127.0.37.%d", 70+i), false), p2+"/pxy/anything", http.Header{"Cookie": {"hanode_affinity=" + pin}})
		if n2 != n1 {
			t.Fatalf("pin from m1's proxy for %s led p2's proxy to %s", n1, n2)
		}
	}

	// (d) Both proxies serve the one certificate issued for the shared name.
	serial := func(addr string) string {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "s3.lab.test"})
		if err != nil {
			t.Fatalf("handshake with %s as s3.lab.test: %v", addr, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if s1, s2 := serial(prefix+".1:8443"), serial(prefix+".4:8443"); s1 != s2 {
		t.Errorf("the proxies serve different certificates for s3.lab.test: serials %s and %s", s1, s2)
	}

	// (e) HTTP/2.
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := h2.Get(smallURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !bytes.Equal(body, small) {
		t.Fatalf("over HTTP/2: %s %d, %d bytes", resp.Proto, resp.StatusCode, len(body))
	}

	// (f) kill -9 of m3's coordinator under a load of GETs: none fails, and only the sessions
	// on m3 move.
	const clients = 30
	type obs struct {
		mu     sync.Mutex
		before string   // last node before the kill
		after  []string // nodes after it
	}
	var (
		seen    [clients]obs
		killed  atomic.Bool
		stop    = make(chan struct{})
		fails   atomic.Int64
		total   atomic.Int64
		wg      sync.WaitGroup
		failMsg atomic.Pointer[string]
	)
	for i := range clients {
		hc := proxyClient(pool, fmt.Sprintf("127.0.37.%d", 100+i), true)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond): // ~1500 GET/s in all: load, not a flood
				}
				resp, err := hc.Get(smallURL)
				var node string
				ok := false
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					node = resp.Header.Get("X-Hanode-Node")
					ok = rerr == nil && resp.StatusCode == http.StatusOK && bytes.Equal(b, small)
					if !ok {
						err = fmt.Errorf("%d, %d bytes, %v", resp.StatusCode, len(b), rerr)
					}
				}
				total.Add(1)
				if !ok {
					fails.Add(1)
					msg := fmt.Sprintf("client %d: %v", i, err)
					failMsg.Store(&msg)
					continue
				}
				o := &seen[i]
				o.mu.Lock()
				if killed.Load() {
					o.after = append(o.after, node)
				} else {
					o.before = node
				}
				o.mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	killed.Store(true)
	if err := l.Signal(drv, "m3/coordinator", "KILL"); err != nil {
		t.Fatal(err)
	}
	// Past ejection by the health checks (2 x 1 s) and the registration's lease (3 s).
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("kill -9 of m3's coordinator under load: %d GETs, %d failed", total.Load(), fails.Load())
	if n := fails.Load(); n > 0 {
		t.Errorf("%d GETs failed; last: %s", n, *failMsg.Load())
	}
	moved, onM3 := 0, 0
	for i := range seen {
		o := &seen[i]
		if o.before == "" || len(o.after) == 0 {
			t.Fatalf("client %d: no GET before (%q) or after (%d) the kill", i, o.before, len(o.after))
		}
		last := o.after[len(o.after)-1]
		if o.before == "m3" {
			onM3++
			if last == "m3" {
				t.Errorf("client %d still on the killed m3", i)
			}
			continue
		}
		for _, n := range o.after {
			if n != o.before {
				moved++
				t.Errorf("client %d on %s moved to %s although only m3 died", i, o.before, n)
				break
			}
		}
	}
	if onM3 == 0 {
		t.Error("no client was on m3: the kill tested nothing")
	}
	t.Logf("%d of %d clients were on m3 and moved; %d others moved", onM3, clients, moved)
}
