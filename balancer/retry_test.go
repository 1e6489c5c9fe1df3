package balancer

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// establish sends one GET from each source in [from, to] and returns the
// node each reached.
func establish(t *testing.T, clients map[int]*http.Client, u string, from, to int) map[int]string {
	t.Helper()
	var mu sync.Mutex
	got := map[int]string{}
	parallel(t, from, to, func(i int) error {
		mu.Lock()
		c := clients[i]
		mu.Unlock()
		r, err := do(c, http.MethodGet, u, nil, nil)
		if err != nil || r.status != http.StatusOK {
			return fmt.Errorf("status %d err %v", r.status, err)
		}
		mu.Lock()
		got[i] = r.node
		mu.Unlock()
		return nil
	})
	return got
}

func makeClients(t *testing.T, from, to int) map[int]*http.Client {
	m := map[int]*http.Client{}
	for i := from; i <= to; i++ {
		m[i] = sourceClient(t, i)
	}
	return m
}

// Kill a backend under load: no GET fails (retries), only the sessions that
// were on it move, and none moves back when it returns.
func TestBackendFailureUnderLoad(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	p := newProxy(t, Config{HealthInterval: 20 * time.Millisecond, HealthTimeout: 500 * time.Millisecond}, a, b, c)
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts := serve(t, p)
	const n = 60
	clients := makeClients(t, 1, n)
	before := establish(t, clients, ts.URL, 1, n)
	onB := 0
	for _, node := range before {
		if node == "b" {
			onB++
		}
	}
	if onB == 0 {
		t.Fatal("no session on b; test would be vacuous")
	}

	// Load: every source loops GETs and records failures and placements.
	var (
		mu       sync.Mutex
		failures []string
		after    = map[int][]string{} // nodes seen after the kill
		killed   atomic.Bool
		postKill atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for i := 1; i <= n; i++ {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				wasKilled := killed.Load()
				r, err := do(clients[i], http.MethodGet, ts.URL+"/obj", nil, nil)
				mu.Lock()
				if err != nil || r.status != http.StatusOK {
					failures = append(failures, fmt.Sprintf("source %d: status %d err %v body %q", i, r.status, err, r.body))
				} else if wasKilled {
					after[i] = append(after[i], r.node)
					postKill.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	eventually(t, 10*time.Second, "load before kill", func() bool { return b.hits.Load() > 50 })
	b.kill()
	killed.Store(true)
	eventually(t, 20*time.Second, "requests after kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i <= n; i++ {
			if len(after[i]) < 5 {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()

	if len(failures) > 0 {
		t.Fatalf("%d failed GETs, first: %s", len(failures), failures[0])
	}
	moved := map[int]string{}
	for i := 1; i <= n; i++ {
		seen := after[i]
		final := seen[len(seen)-1]
		if before[i] != "b" {
			for _, node := range seen {
				if node != before[i] {
					t.Errorf("source %d on %s moved to %s although %s is alive", i, before[i], node, before[i])
				}
			}
			continue
		}
		if final == "b" {
			t.Errorf("source %d still on dead b", i)
		}
		moved[i] = final
	}
	if len(moved) != onB {
		t.Errorf("%d sessions moved, want the %d that were on b", len(moved), onB)
	}
	if got := testutil.ToFloat64(upByID(p, "b").repins); got != float64(onB) {
		t.Errorf("repins{upstream=b} = %v, want %d", got, onB)
	}
	eventually(t, 5*time.Second, "b down", func() bool { return stateOf(p, "b") == StateDown })

	// b comes back on the same address: re-admitted, but nothing moves back.
	b.restart(t)
	eventually(t, 10*time.Second, "b re-admitted", func() bool { return stateOf(p, "b") == StateHealthy })
	for round := range 3 {
		now := establish(t, clients, ts.URL, 1, n)
		for i := 1; i <= n; i++ {
			want := before[i]
			if m, ok := moved[i]; ok {
				want = m
			}
			if now[i] != want {
				t.Errorf("round %d: source %d on %s, want %s (nothing moves back)", round, i, now[i], want)
			}
		}
	}
}

// dieAfterBody reads the request body and then drops the connection without
// answering, like a coordinator crashing mid-request.
func dieAfterBody(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestRetryAfterSend(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		body    string
		hdr     http.Header
		retried bool
	}{
		{"POST body not retried", http.MethodPost, "payload", nil, false},
		{"POST body with Idempotency-Key not replayable", http.MethodPost, "payload", http.Header{"Idempotency-Key": {"k1"}}, false},
		{"POST no body with Idempotency-Key retried", http.MethodPost, "", http.Header{"Idempotency-Key": {"k2"}}, true},
		{"DELETE not retried", http.MethodDelete, "", nil, false},
		{"GET retried", http.MethodGet, "", nil, true},
		{"HEAD retried", http.MethodHead, "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dying := startBackend(t, "dying", dieAfterBody)
			good := startBackend(t, "good", nil)
			p := newProxy(t, Config{}, dying, good)
			ts := serve(t, p)

			hdr := pinHeader(p.signPin("dying", sidFor("test"), p.now().Unix()))
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r, err := do(sourceClient(t, 0), tc.method, ts.URL+"/bucket/obj", hdr, body)
			if err != nil {
				t.Fatal(err)
			}
			if dying.hits.Load() != 1 {
				t.Fatalf("dying backend saw %d requests, want 1", dying.hits.Load())
			}
			if tc.retried {
				if r.status != http.StatusOK || r.node != "good" {
					t.Fatalf("status %d from %q, want 200 from good", r.status, r.node)
				}
				if pin := p.verifyPin(r.header.Get(PinHeader)); pin == nil || pin.node != "good" {
					t.Errorf("session not re-pinned to good: %+v", pin)
				}
			} else {
				if r.status != http.StatusBadGateway {
					t.Fatalf("status %d, want 502", r.status)
				}
				if good.hits.Load() != 0 {
					t.Fatalf("non-idempotent request replayed on good")
				}
			}
			if stateOf(p, "dying") != StateDown {
				t.Errorf("dying backend not passively ejected")
			}
		})
	}
}

// A dial failure is retried for any method, body included, since nothing
// reached the dead upstream.
func TestRetryDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	good := startBackend(t, "good", nil)
	p := newProxy(t, Config{}, good)
	if err := p.SetUpstreams([]Upstream{{ID: "dead", URL: &url.URL{Scheme: "http", Host: deadAddr}}, good.upstream()}); err != nil {
		t.Fatal(err)
	}
	ts := serve(t, p)

	pin := p.signPin("dead", sidFor("test"), p.now().Unix())
	r, err := do(sourceClient(t, 0), http.MethodPost, ts.URL+"/bucket/obj", pinHeader(pin), strings.NewReader("seven b"))
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusOK || r.node != "good" || r.header.Get("X-Body-Len") != "7" {
		t.Fatalf("status %d node %q body-len %q, want 200 from good with the 7-byte body", r.status, r.node, r.header.Get("X-Body-Len"))
	}
	if got := p.verifyPin(r.header.Get(PinHeader)); got == nil || got.node != "good" {
		t.Errorf("re-pin %+v, want good", got)
	}
	if got := testutil.ToFloat64(p.m.retries); got != 1 {
		t.Errorf("retries = %v, want 1", got)
	}
	if got := testutil.ToFloat64(upByID(p, "dead").repins); got != 1 {
		t.Errorf("repins{dead} = %v, want 1", got)
	}
	if stateOf(p, "dead") != StateDown {
		t.Error("dead upstream not ejected")
	}
	// Only one upstream and it is dead: 503, Retry-After.
	p2 := newProxy(t, Config{})
	if err := p2.SetUpstreams([]Upstream{{ID: "dead", URL: &url.URL{Scheme: "http", Host: deadAddr}}}); err != nil {
		t.Fatal(err)
	}
	r, err = do(sourceClient(t, 0), http.MethodPut, serve(t, p2).URL+"/x", nil, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
		t.Errorf("all dead: status %d Retry-After %q, want 503 and 1", r.status, r.header.Get("Retry-After"))
	}
}

func TestNoUpstream(t *testing.T) {
	p := newProxy(t, Config{})
	r, err := do(sourceClient(t, 0), http.MethodGet, serve(t, p).URL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" || r.body == "" {
		t.Errorf("status %d Retry-After %q body %q", r.status, r.header.Get("Retry-After"), r.body)
	}
}

// Adding an upstream moves no existing session; it only takes new ones.
func TestAddUpstreamMovesNothing(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	d := startBackend(t, "d", nil)
	p := newProxy(t, Config{}, a, b, c)
	ts := serve(t, p)
	clients := makeClients(t, 1, 160)
	before := establish(t, clients, ts.URL, 1, 100)
	if err := p.SetUpstreams(ups(a, b, c, d)); err != nil {
		t.Fatal(err)
	}
	after := establish(t, clients, ts.URL, 1, 100)
	for i := 1; i <= 100; i++ {
		if before[i] != after[i] {
			t.Errorf("source %d moved %s -> %s after adding d", i, before[i], after[i])
		}
	}
	fresh := establish(t, clients, ts.URL, 101, 160)
	onD := 0
	for _, node := range fresh {
		if node == "d" {
			onD++
		}
	}
	if onD == 0 {
		t.Error("the new upstream took no new session")
	}
	// Removing d again moves only d's sessions.
	if err := p.SetUpstreams(ups(a, b, c)); err != nil {
		t.Fatal(err)
	}
	again := establish(t, clients, ts.URL, 1, 160)
	for i := 1; i <= 160; i++ {
		was := before[i]
		if i > 100 {
			was = fresh[i]
		}
		if was != "d" && again[i] != was {
			t.Errorf("source %d moved %s -> %s when d was removed", i, was, again[i])
		}
		if again[i] == "d" {
			t.Errorf("source %d still on removed d", i)
		}
	}
}

// A not-ready upstream drains: pinned sessions continue, new ones avoid it;
// once it stops accepting connections its sessions move without errors.
func TestDraining(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	p := newProxy(t, Config{}, a, b, c)
	ts := serve(t, p)
	clients := makeClients(t, 1, 200)
	before := establish(t, clients, ts.URL, 1, 60)

	b.ready.Store(false)
	checkRounds(p, 2)
	if s := stateOf(p, "b"); s != StateDraining {
		t.Fatalf("b is %v, want draining", s)
	}
	pinnedToB := 0
	for round := range 2 {
		now := establish(t, clients, ts.URL, 1, 60)
		for i, node := range now {
			if node != before[i] {
				t.Errorf("round %d: source %d moved %s -> %s while b drains", round, i, before[i], node)
			}
			if round == 0 && node == "b" {
				pinnedToB++
			}
		}
	}
	if pinnedToB == 0 {
		t.Fatal("no session on b; test would be vacuous")
	}
	for i, node := range establish(t, clients, ts.URL, 101, 200) {
		if node == "b" {
			t.Errorf("new source %d placed on draining b", i)
		}
	}

	b.kill()
	now := establish(t, clients, ts.URL, 1, 60) // GETs: retried, no errors
	for i, node := range now {
		if before[i] == "b" && node == "b" || before[i] != "b" && node != before[i] {
			t.Errorf("after b died: source %d %s -> %s", i, before[i], node)
		}
	}
	if s := stateOf(p, "b"); s != StateDown {
		t.Errorf("b is %v after failing connections, want down", s)
	}
}
