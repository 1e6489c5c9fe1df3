package balancer

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a coordinator stand-in: it answers with X-Hanode-Node, serves
// /readyz (503 while not ready), reports what it received in X-Got-*
// headers and can be killed and restarted on the same address.
type backend struct {
	id     string
	addr   string
	ready  atomic.Bool
	hits   atomic.Int64
	handle http.HandlerFunc // optional; runs after the X-* headers are set

	mu  sync.Mutex
	srv *http.Server
}

func startBackend(t testing.TB, id string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{id: id, handle: h}
	b.ready.Store(true)
	b.serve(t, "127.0.0.1:0")
	t.Cleanup(b.kill)
	return b
}

func (b *backend) serve(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("backend %s: listen %s: %v", b.id, addr, err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(b.serveHTTP), ErrorLog: log.New(io.Discard, "", 0)}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// kill closes the listener and every connection, like a crashed process.
func (b *backend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (b *backend) restart(t testing.TB) { b.serve(t, b.addr) }

func (b *backend) upstream() Upstream {
	return Upstream{ID: b.id, URL: &url.URL{Scheme: "http", Host: b.addr}}
}

func (b *backend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/readyz" {
		if !b.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
		return
	}
	b.hits.Add(1)
	h := w.Header()
	h.Set("X-Hanode-Node", b.id)
	h.Set("X-Got-Xff", r.Header.Get("X-Forwarded-For"))
	h.Set("X-Got-Host", r.Host)
	if b.handle != nil {
		b.handle(w, r)
		return
	}
	n, _ := io.Copy(io.Discard, r.Body)
	h.Set("X-Body-Len", strconv.FormatInt(n, 10))
	_, _ = io.WriteString(w, b.id)
}

func ups(bs ...*backend) []Upstream {
	out := make([]Upstream, len(bs))
	for i, b := range bs {
		out[i] = b.upstream()
	}
	return out
}

// newProxy returns a Proxy over bs with slow start off (deterministic
// shares) and a silent logger unless cfg says otherwise.
func newProxy(t testing.TB, cfg Config, bs ...*backend) *Proxy {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SlowStart == 0 {
		cfg.SlowStart = -1
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := p.SetUpstreams(ups(bs...)); err != nil {
		t.Fatalf("SetUpstreams: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// srcIP is the i-th test source address, 127.0.83.i.
func srcIP(i int) net.IP { return net.IPv4(127, 0, 83, byte(i)) }

// sourceClient is an HTTP client whose connections come from 127.0.83.i
// (i == 0: the default source). It has no cookie jar.
func sourceClient(t testing.TB, i int) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if i > 0 {
		d.LocalAddr = &net.TCPAddr{IP: srcIP(i)}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 8, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

type result struct {
	status int
	node   string
	header http.Header
	body   string
}

// do sends one request and reads the whole response.
func do(c *http.Client, method, u string, hdr http.Header, body io.Reader) (result, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return result{}, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, fmt.Errorf("read body: %w", err)
	}
	return result{status: resp.StatusCode, node: resp.Header.Get("X-Hanode-Node"), header: resp.Header, body: string(b)}, nil
}

func mustGet(t testing.TB, c *http.Client, u string, hdr http.Header) result {
	t.Helper()
	r, err := do(c, http.MethodGet, u, hdr, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %q", u, r.status, r.body)
	}
	return r
}

// parallel runs f(i) for i in [from, to] concurrently and fails on the first
// error.
func parallel(t testing.TB, from, to int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, to-from+1)
	for i := from; i <= to; i++ {
		wg.Go(func() {
			if err := f(i); err != nil {
				errs <- fmt.Errorf("source %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stateOf(p *Proxy, id string) State {
	for _, u := range p.Stats().Upstreams {
		if u.ID == id {
			return u.State
		}
	}
	return State(-1)
}

func loadsOf(p *Proxy) map[string]int {
	m := map[string]int{}
	for _, u := range p.Stats().Upstreams {
		m[u.ID] = u.Load
	}
	return m
}

func upByID(p *Proxy, id string) *upstream { return p.upstreams().byID[id] }

// checkRounds runs n synchronous rounds of active health checks.
func checkRounds(p *Proxy, n int) {
	for range n {
		p.checkAll(context.Background())
	}
}

// fakeClock is a concurrency-safe manual clock for Config.now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Unix(1_800_000_000, 0).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func pinHeader(v string) http.Header { return http.Header{PinHeader: {v}} }
