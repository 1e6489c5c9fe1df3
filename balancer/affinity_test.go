package balancer

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// 100 distinct client addresses without cookies: each always reaches the
// same backend, and the spread respects the bounded-load bound.
func TestSourcesStickyAndBounded(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	p := newProxy(t, Config{}, a, b, c)
	ts := serve(t, p)

	const n = 100
	clients := make([]*http.Client, n+1)
	for i := 1; i <= n; i++ {
		clients[i] = sourceClient(t, i)
	}
	first := make([]string, n+1)
	for round := range 5 {
		parallel(t, 1, n, func(i int) error {
			for range 3 {
				r, err := do(clients[i], http.MethodGet, ts.URL+"/bucket/key", nil, nil)
				if err != nil {
					return err
				}
				if r.status != http.StatusOK || r.node == "" {
					return fmt.Errorf("status %d node %q", r.status, r.node)
				}
				if round == 0 && first[i] == "" {
					first[i] = r.node
				} else if r.node != first[i] {
					return fmt.Errorf("moved from %s to %s", first[i], r.node)
				}
			}
			return nil
		})
	}
	counts := map[string]int{}
	for i := 1; i <= n; i++ {
		counts[first[i]]++
	}
	bound := int(math.Ceil(1.25 * n / 3))
	for _, id := range []string{"a", "b", "c"} {
		if counts[id] == 0 || counts[id] > bound {
			t.Errorf("backend %s has %d sessions, want 1..%d (all: %v)", id, counts[id], bound, counts)
		}
	}
	if got := loadsOf(p); got["a"] != counts["a"] || got["b"] != counts["b"] || got["c"] != counts["c"] {
		t.Errorf("balancer loads %v, want the session counts %v", got, counts)
	}
	if s := p.Stats().Sessions; s != n {
		t.Errorf("session table has %d entries, want %d", s, n)
	}
}

// Four sources open 80% of the sessions (distinct affinity-header session
// ids): unlike ip_hash, their sessions spread and every load stays bounded.
func TestSkewedSourcesStayBounded(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	p := newProxy(t, Config{AffinityHeader: "X-Session-Id"}, a, b, c)
	ts := serve(t, p)

	const heavy, perHeavy, light = 4, 100, 100 // 400 of 500 sessions from 4 sources
	var mu sync.Mutex
	placed := map[string]string{}
	nodesOf := make([]map[string]bool, heavy+1)
	for round := range 2 {
		parallel(t, 1, heavy+light, func(i int) error {
			c := sourceClient(t, i)
			sessions := 1
			if i <= heavy {
				sessions = perHeavy
			}
			for s := range sessions {
				var hdr http.Header
				key := fmt.Sprintf("ip-%d", i)
				if i <= heavy {
					key = fmt.Sprintf("src%d-session%d", i, s)
					hdr = http.Header{"X-Session-Id": {key}}
				}
				r, err := do(c, http.MethodGet, ts.URL+"/", hdr, nil)
				if err != nil || r.status != http.StatusOK {
					return fmt.Errorf("session %s: status %d err %v", key, r.status, err)
				}
				mu.Lock()
				prev, ok := placed[key]
				placed[key] = r.node
				if i <= heavy {
					if nodesOf[i] == nil {
						nodesOf[i] = map[string]bool{}
					}
					nodesOf[i][r.node] = true
				}
				mu.Unlock()
				if round > 0 && (!ok || prev != r.node) {
					return fmt.Errorf("session %s moved from %s to %s", key, prev, r.node)
				}
			}
			return nil
		})
	}
	total := heavy*perHeavy + light
	bound := int(math.Ceil(1.25 * float64(total) / 3))
	loads := loadsOf(p)
	sum := 0
	for id, l := range loads {
		sum += l
		if l > bound {
			t.Errorf("backend %s load %d exceeds bound %d (%v)", id, l, bound, loads)
		}
	}
	if sum != total {
		t.Errorf("total load %d, want %d", sum, total)
	}
	for i := 1; i <= heavy; i++ {
		if len(nodesOf[i]) < 3 {
			t.Errorf("heavy source %d only reached %v", i, nodesOf[i])
		}
	}
}

func TestClientFromXFF(t *testing.T) {
	p := &Proxy{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
	}}}
	for _, tc := range []struct {
		xff  []string
		want string
	}{
		{[]string{"203.0.113.9"}, "203.0.113.9"},
		{[]string{"1.1.1.1, 203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		{[]string{"1.1.1.1", "203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		{[]string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},      // all trusted: left-most
		{[]string{"garbage, 10.0.0.2"}, "10.0.0.2"},       // stop at what can be vouched for
		{[]string{"2001:db8::1, fd00::5"}, "2001:db8::1"}, // IPv6, whole address
		{[]string{"[2001:db8::2]:443"}, "2001:db8::2"},    // with port
		{[]string{"::ffff:198.51.100.4"}, "198.51.100.4"}, // mapped
		{[]string{" 198.51.100.5 ,, "}, "198.51.100.5"},   // sloppy
		{[]string{"nonsense"}, ""},
	} {
		got, ok := p.clientFromXFF(tc.xff)
		if tc.want == "" {
			if ok {
				t.Errorf("%q: got %v, want none", tc.xff, got)
			}
			continue
		}
		if !ok || got.String() != tc.want {
			t.Errorf("%q: got %v (%v), want %s", tc.xff, got, ok, tc.want)
		}
	}
}

// An untrusted peer's X-Forwarded-For is ignored for the key and not passed
// on; a trusted peer's is used (right-most untrusted hop) and appended to.
func TestForwardedForTrust(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	untrusted := newProxy(t, Config{}, a, b)
	trusted := newProxy(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.83.0/24")}}, a, b)
	tsU, tsT := serve(t, untrusted), serve(t, trusted)
	c := sourceClient(t, 7)

	sidOf := func(p *Proxy, r result) string {
		t.Helper()
		pin := p.verifyPin(r.header.Get(PinHeader))
		if pin == nil {
			t.Fatalf("no valid pin in response")
		}
		return pin.sid
	}

	r := mustGet(t, c, tsU.URL, http.Header{"X-Forwarded-For": {"203.0.113.9"}})
	if got := r.header.Get("X-Got-Xff"); got != "127.0.83.7" {
		t.Errorf("untrusted: upstream got X-Forwarded-For %q, want 127.0.83.7", got)
	}
	if sidOf(untrusted, r) != sidFor("ip:127.0.83.7") {
		t.Errorf("untrusted: session not keyed by the TCP peer")
	}

	for _, tc := range []struct{ xff, client, fwd string }{
		{"198.51.100.1, 203.0.113.9", "203.0.113.9", "198.51.100.1, 203.0.113.9, 127.0.83.7"},
		{"203.0.113.9, 127.0.83.8", "203.0.113.9", "203.0.113.9, 127.0.83.8, 127.0.83.7"},
		{"2001:db8::1", "2001:db8::1", "2001:db8::1, 127.0.83.7"},
	} {
		r := mustGet(t, c, tsT.URL, http.Header{"X-Forwarded-For": {tc.xff}, "X-Forwarded-Proto": {"https"}})
		if got := r.header.Get("X-Got-Xff"); got != tc.fwd {
			t.Errorf("trusted %q: upstream got X-Forwarded-For %q, want %q", tc.xff, got, tc.fwd)
		}
		if sidOf(trusted, r) != sidFor("ip:"+tc.client) {
			t.Errorf("trusted %q: session not keyed by %s", tc.xff, tc.client)
		}
		// X-Forwarded-Proto from a trusted TLS terminator makes the pin
		// cookie Secure.
		if ck := r.header.Get("Set-Cookie"); !containsFold(ck, "Secure") {
			t.Errorf("trusted https: cookie %q not Secure", ck)
		}
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
