package balancer

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Fall consecutive failures eject, Rise consecutive successes re-admit; a
// not-ready answer drains, a connection failure takes down.
func TestActiveHealthFallRise(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	p := newProxy(t, Config{Fall: 3, Rise: 2}, a, b)

	step := func(rounds int, want State) {
		t.Helper()
		checkRounds(p, rounds)
		if got := stateOf(p, "b"); got != want {
			t.Fatalf("b is %v, want %v", got, want)
		}
		if picked := p.picker.Pinned("b"); picked != (want == StateHealthy) {
			t.Fatalf("balancer healthy=%v with state %v", picked, want)
		}
	}
	b.ready.Store(false)
	step(2, StateHealthy) // 2 < Fall
	step(1, StateDraining)
	b.ready.Store(true)
	step(1, StateDraining) // 1 < Rise
	step(1, StateHealthy)

	b.ready.Store(false)
	step(2, StateHealthy)
	b.ready.Store(true)
	step(1, StateHealthy) // a success resets the failure count
	b.ready.Store(false)
	step(2, StateHealthy)
	b.ready.Store(true)
	step(1, StateHealthy)

	b.kill()
	step(2, StateHealthy)
	step(1, StateDown)
	b.restart(t)
	step(1, StateDown)
	step(1, StateHealthy)

	// Draining, then connections fail: down at once.
	b.ready.Store(false)
	step(3, StateDraining)
	b.kill()
	step(1, StateDown)
	if got := testutil.ToFloat64(upByID(p, "b").ejections); got != 3 {
		t.Errorf("ejections{b} = %v, want 3", got)
	}
	if stateOf(p, "a") != StateHealthy {
		t.Error("a affected")
	}
}

// The background loop (20ms interval) ejects and re-admits on its own.
func TestHealthLoop(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	p := newProxy(t, Config{HealthInterval: 20 * time.Millisecond, HealthTimeout: 500 * time.Millisecond}, a, b)
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	b.ready.Store(false)
	eventually(t, 5*time.Second, "b draining", func() bool { return stateOf(p, "b") == StateDraining })
	b.ready.Store(true)
	eventually(t, 5*time.Second, "b healthy", func() bool { return stateOf(p, "b") == StateHealthy })
	b.kill()
	eventually(t, 5*time.Second, "b down", func() bool { return stateOf(p, "b") == StateDown })
	b.restart(t)
	eventually(t, 5*time.Second, "b back", func() bool { return stateOf(p, "b") == StateHealthy })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// Sessions expire after SessionIdle (returning their load); a full table
// evicts the least recently seen, and a pinned client whose session was
// evicted just re-registers on the same upstream.
func TestSessionExpiryAndEviction(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	clk := newFakeClock()
	p := newProxy(t, Config{now: clk.Now, MaxSessions: 4, AffinityHeader: "X-Session-Id"}, a, b, c)
	ts := serve(t, p)
	cl := sourceClient(t, 0)

	total := func() int {
		n := 0
		for _, l := range loadsOf(p) {
			n += l
		}
		return n
	}
	pins := map[string]result{}
	for _, s := range []string{"s1", "s2", "s3", "s4", "s5", "s6"} {
		pins[s] = mustGet(t, cl, ts.URL, http.Header{"X-Session-Id": {s}})
		clk.Advance(time.Second)
	}
	if got := p.Stats().Sessions; got != 4 {
		t.Fatalf("table has %d sessions, want MaxSessions=4", got)
	}
	if got := total(); got != 4 {
		t.Fatalf("balancer load %d, want 4 (evictions return their load)", got)
	}
	// s1 was evicted; its pin still holds and re-registers without a Pick.
	r := mustGet(t, cl, ts.URL, pinHeader(pins["s1"].header.Get(PinHeader)))
	if r.node != pins["s1"].node {
		t.Errorf("evicted pinned session moved %s -> %s", pins["s1"].node, r.node)
	}
	if got := total(); got != 4 {
		t.Errorf("balancer load %d after re-registering, want 4 (s3 evicted, s1 counted again)", got)
	}

	// s1 was seen last, 1s after s6: move the cutoff between them.
	clk.Advance(DefaultSessionIdle)
	p.sweep()
	if got := p.Stats().Sessions; got != 1 {
		t.Errorf("after partial idle: %d sessions, want 1 (the just-used s1)", got)
	}
	clk.Advance(time.Hour)
	p.sweep()
	if got, l := p.Stats().Sessions, total(); got != 0 || l != 0 {
		t.Errorf("after idle: %d sessions, load %d; want 0, 0", got, l)
	}
	for _, u := range p.Stats().Upstreams {
		if u.Sessions != 0 {
			t.Errorf("%s: %d sessions counted", u.ID, u.Sessions)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for name, cfg := range map[string]Config{
		"negative idle":    {SessionIdle: -1},
		"negative fall":    {Fall: -1},
		"load factor":      {LoadFactor: 0.9},
		"health path":      {HealthPath: "readyz"},
		"header name":      {AffinityHeader: "X Session"},
		"reserved header":  {AffinityHeader: "hanode-affinity"},
		"invalid prefix":   {TrustedProxies: []netip.Prefix{{}}},
		"negative timeout": {DialTimeout: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		} else if !strings.HasPrefix(err.Error(), "proxy: config: ") {
			t.Errorf("%s: unclear error %q", name, err)
		}
	}
	p := newProxy(t, Config{})
	u := func(s string) *url.URL { v, _ := url.Parse(s); return v }
	for name, list := range map[string][]Upstream{
		"empty id":  {{URL: u("http://x")}},
		"dup id":    {{ID: "a", URL: u("http://x")}, {ID: "a", URL: u("http://y")}},
		"nil url":   {{ID: "a"}},
		"scheme":    {{ID: "a", URL: u("ftp://x")}},
		"path":      {{ID: "a", URL: u("http://x/base")}},
		"no host":   {{ID: "a", URL: u("http:///")}},
		"userinfo":  {{ID: "a", URL: u("http://u:p@x")}},
		"has query": {{ID: "a", URL: u("http://x?q=1")}},
	} {
		if err := p.SetUpstreams(list); err == nil {
			t.Errorf("%s: SetUpstreams accepted %+v", name, list)
		}
	}
	if err := p.SetUpstreams([]Upstream{{ID: "a", URL: u("https://x:9000/")}}); err != nil {
		t.Errorf("valid list rejected: %v", err)
	}
	// Metrics on a registry: a second proxy on the same registry fails
	// cleanly.
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Registerer: reg}); err == nil {
		t.Error("duplicate registration accepted")
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	a := startBackend(t, "a", nil)
	reg := prometheus.NewRegistry()
	logBuf := &syncBuffer{}
	p := newProxy(t, Config{Registerer: reg, AccessLog: slog.New(slog.NewJSONHandler(logBuf, nil))}, a)
	ts := serve(t, p)
	cl := sourceClient(t, 9)
	first := mustGet(t, cl, ts.URL+"/bkt/key?x=1", nil)
	mustGet(t, cl, ts.URL+"/bkt/key", pinHeader(first.header.Get(PinHeader)))

	// Metrics and the log line are recorded after the response is sent.
	eventually(t, 5*time.Second, "two access log lines", func() bool {
		return bytes.Count(logBuf.Bytes(), []byte("\n")) == 2
	})
	if got := testutil.ToFloat64(p.m.requests.WithLabelValues("a", "200")); got != 2 {
		t.Errorf("requests{a,200} = %v, want 2", got)
	}
	n, err := testutil.GatherAndCount(reg,
		"hanode_proxy_requests_total", "hanode_proxy_request_duration_seconds", "hanode_proxy_open_sessions")
	if err != nil || n != 3 {
		t.Errorf("gathered %d series (%v), want 3", n, err)
	}
	want := `
# HELP hanode_proxy_open_sessions Sessions in the session table, by upstream.
# TYPE hanode_proxy_open_sessions gauge
hanode_proxy_open_sessions{upstream="a"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hanode_proxy_open_sessions"); err != nil {
		t.Error(err)
	}

	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(logBuf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("access log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d access log lines, want 2", len(lines))
	}
	l := lines[0]
	for k, v := range map[string]any{"method": "GET", "path": "/bkt/key", "status": float64(200),
		"bytes": float64(1), "upstream": "a", "client": "127.0.83.9", "session": "new"} {
		if l[k] != v {
			t.Errorf("access log %s = %v, want %v (line %v)", k, l[k], v, l)
		}
	}
	if lines[1]["session"] != "pinned" {
		t.Errorf("second request session = %v, want pinned", lines[1]["session"])
	}
	for _, k := range []string{"host", "duration"} {
		if _, ok := l[k]; !ok {
			t.Errorf("access log lacks %s", k)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
