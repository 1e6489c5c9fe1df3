package balancer

import (
	"bytes"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

func TestPinRoundTrip(t *testing.T) {
	p := newProxy(t, Config{})
	issued := p.now().Unix()
	v := p.signPin("node-1.example", "c2lkc2lkc2lkc2lk", issued)
	pin := p.verifyPin(v)
	if pin == nil || pin.node != "node-1.example" || pin.sid != "c2lkc2lkc2lkc2lk" || pin.issued != issued || pin.stale {
		t.Fatalf("verify(sign) = %+v", pin)
	}
	for _, bad := range []string{
		"", "x", v + "x", v[:len(v)-1], strings.Replace(v, ".", "..", 1),
		"bm9kZS0y" + v[strings.IndexByte(v, '.'):], // other node, same MAC
		strings.Repeat("a", 600),
	} {
		if p.verifyPin(bad) != nil {
			t.Errorf("verifyPin(%q) accepted", bad)
		}
	}
	// Flip each MAC character.
	dot := strings.LastIndexByte(v, '.')
	for i := dot + 1; i < len(v); i++ {
		b := []byte(v)
		b[i] ^= 1
		if p.verifyPin(string(b)) != nil {
			t.Errorf("tampered MAC at %d accepted", i)
		}
	}
	// Pins expire: past PinTTL one is no pin; past half of it one is re-issued; one from the
	// future (beyond clock skew) is refused.
	ttl := int64(DefaultPinTTL / time.Second)
	for _, c := range []struct {
		age   int64
		valid bool
		stale bool
	}{
		{0, true, false},
		{ttl / 2, true, false},
		{ttl/2 + 1, true, true},
		{ttl, true, true},
		{ttl + 1, false, false},
		{-pinFuture, true, false},
		{-pinFuture - 1, false, false},
	} {
		got := p.verifyPin(p.signPin("node-1.example", "c2lkc2lkc2lkc2lk", issued-c.age))
		if (got != nil) != c.valid || got != nil && got.stale != c.stale {
			t.Errorf("a pin %d s old: %+v, want valid %v, stale %v", c.age, got, c.valid, c.stale)
		}
	}
	if err := p.SetPinKeys([]byte("short")); err == nil {
		t.Error("SetPinKeys accepted a 5-byte key")
	}
}

// The pin cookie keeps a client on its backend whatever address it comes
// from; the cookie has the right attributes.
func TestPinCookie(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	p := newProxy(t, Config{}, a, b, c)
	ts := serve(t, p)

	jar, _ := cookiejar.New(nil)
	cl := sourceClient(t, 1)
	cl.Jar = jar
	r := mustGet(t, cl, ts.URL+"/x", nil)
	node := r.node
	ck := r.header.Get("Set-Cookie")
	for _, attr := range []string{PinCookie + "=", "Path=/", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("Set-Cookie %q lacks %q", ck, attr)
		}
	}
	if strings.Contains(ck, "Secure") {
		t.Errorf("Set-Cookie %q is Secure on a plain-HTTP request", ck)
	}
	if r.header.Get(PinHeader) == "" {
		t.Error("no Hanode-Affinity response header")
	}
	r = mustGet(t, cl, ts.URL+"/x", nil)
	if r.header.Get("Set-Cookie") != "" {
		t.Errorf("valid pin re-issued: %q", r.header.Get("Set-Cookie"))
	}

	// The same cookie from many other sources: all pinned to node, although
	// some of those sources alone would go elsewhere.
	pinVal := strings.TrimPrefix(strings.SplitN(ck, ";", 2)[0], PinCookie+"=")
	elsewhere := 0
	for i := 2; i <= 30; i++ {
		if order := p.picker.Order(sidFor("ip:" + srcIP(i).String())); order[0] != node {
			elsewhere++
		}
		r := mustGet(t, sourceClient(t, i), ts.URL+"/x", http.Header{"Cookie": {PinCookie + "=" + pinVal}})
		if r.node != node {
			t.Fatalf("source %d with pin for %s reached %s", i, node, r.node)
		}
	}
	if elsewhere == 0 {
		t.Fatal("test is vacuous: every source would reach the pinned node anyway")
	}
}

// Clients without cookies send the pin back in the Hanode-Affinity header.
func TestPinHeader(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	p := newProxy(t, Config{}, a, b, c)
	ts := serve(t, p)

	r := mustGet(t, sourceClient(t, 1), ts.URL, nil)
	pin, node := r.header.Get(PinHeader), r.node
	if p.verifyPin(pin) == nil {
		t.Fatalf("response pin %q invalid", pin)
	}
	for i := 2; i <= 30; i++ {
		r := mustGet(t, sourceClient(t, i), ts.URL, pinHeader(pin))
		if r.node != node {
			t.Fatalf("source %d with pin header for %s reached %s", i, node, r.node)
		}
		if got := r.header.Get(PinHeader); got != pin {
			t.Errorf("pin not echoed: %q", got)
		}
	}
}

// A tampered or foreign-signed pin is ignored: the request is placed by its
// own key and gets a fresh pin.
func TestTamperedPinIgnored(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	p := newProxy(t, Config{}, a, b, c)
	other := newProxy(t, Config{}, a, b, c) // different random key
	ts := serve(t, p)

	cl := sourceClient(t, 5)
	own := mustGet(t, cl, ts.URL, nil).node
	target := "a"
	if own == "a" {
		target = "b"
	}
	sid := sidFor("ip:" + srcIP(5).String())
	foreign := other.signPin(target, sid, p.now().Unix())
	mine := p.signPin(target, sid, p.now().Unix())
	tampered := mine[:len(mine)-2] + flip(mine[len(mine)-2:])
	for name, v := range map[string]string{"foreign": foreign, "tampered": tampered} {
		for _, hdr := range []http.Header{pinHeader(v), {"Cookie": {PinCookie + "=" + v}}} {
			r := mustGet(t, cl, ts.URL, hdr)
			if r.node != own {
				t.Errorf("%s pin for %s: reached %s, want the unpinned placement %s", name, target, r.node, own)
			}
			if got := p.verifyPin(r.header.Get(PinHeader)); got == nil || got.node != own {
				t.Errorf("%s pin: response pin %+v, want a fresh one for %s", name, got, own)
			}
		}
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// Proxies sharing the pin key honour each other's pins without placing the
// session again; a rotated key set still accepts the old key and re-signs.
func TestPinsAcrossProxiesAndRotation(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	p1 := newProxy(t, Config{}, a, b, c)
	p2 := newProxy(t, Config{}, a, b, c)
	p3 := newProxy(t, Config{}, a, b, c)
	for _, err := range []error{p1.SetPinKeys(k1), p2.SetPinKeys(k1), p3.SetPinKeys(k2, k1)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ts1, ts2, ts3 := serve(t, p1), serve(t, p2), serve(t, p3)

	pins := map[string]string{} // pin -> node
	nodes := map[string]bool{}
	for i := 1; i <= 30; i++ {
		r := mustGet(t, sourceClient(t, i), ts1.URL, nil)
		pins[r.header.Get(PinHeader)] = r.node
		nodes[r.node] = true
	}
	if len(nodes) < 2 {
		t.Fatalf("pins only cover %v", nodes)
	}
	other := sourceClient(t, 200) // one address for everyone: its own key would say one node
	for pin, node := range pins {
		r := mustGet(t, other, ts2.URL, pinHeader(pin))
		if r.node != node {
			t.Errorf("p2: pin for %s reached %s", node, r.node)
		}
		r = mustGet(t, other, ts3.URL, pinHeader(pin))
		if r.node != node {
			t.Errorf("p3 (rotated): pin for %s reached %s", node, r.node)
		}
		re := r.header.Get(PinHeader)
		if re == pin {
			t.Errorf("p3 did not re-sign an old-key pin")
		}
		if got := p3.verifyPin(re); got == nil || got.stale || got.node != node {
			t.Errorf("p3 re-signed pin %+v, want current-key pin for %s", got, node)
		}
		if p1.verifyPin(re) != nil {
			t.Errorf("p1 (old key only) accepted a new-key pin")
		}
	}
	// Honoured pins re-register sessions where they are, and p2's balancer
	// counts them there (Acquire), so its load bound sees p1's sessions.
	want := map[string]int{}
	for _, node := range pins {
		want[node]++
	}
	for id, l := range loadsOf(p2) {
		if l != want[id] {
			t.Errorf("p2 balancer load on %s = %d, want %d (the pins on it)", id, l, want[id])
		}
	}
	if got := p2.Stats().Sessions; got != len(pins) {
		t.Errorf("p2 session table has %d entries, want %d", got, len(pins))
	}
}

// TestPinMemo: the reused pin is exactly what signing would give, for the same session in the
// same second only, and never outlives a key rotation.
func TestPinMemo(t *testing.T) {
	clk := newFakeClock()
	p := newProxy(t, Config{now: clk.Now})
	a1 := p.pinFor("n1", "sidA", true)
	if a2 := p.pinFor("n1", "sidA", true); a2 != a1 {
		t.Error("the same session in the same second signed its pin again")
	}
	if want := p.signPin("n1", "sidA", clk.Now().Unix()); a1.pin[0] != want {
		t.Errorf("memo pin %q, signPin %q", a1.pin[0], want)
	}
	tests := []struct {
		name            string
		node, sid       string
		secure, advance bool
		rotate          bool
	}{
		{"another session", "n1", "sidB", true, false, false},
		{"another node", "n2", "sidA", true, false, false},
		{"not secure", "n1", "sidA", false, false, false},
		{"a second later", "n1", "sidA", true, true, false},
		{"after a key rotation", "n1", "sidA", true, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := p.pinFor("n1", "sidA", true)
			if tc.advance {
				clk.Advance(time.Second)
			}
			if tc.rotate {
				if err := p.SetPinKeys([]byte("another key of 32 bytes, exactly")); err != nil {
					t.Fatal(err)
				}
			}
			got := p.pinFor(tc.node, tc.sid, tc.secure)
			if got == before {
				t.Fatal("memo reused")
			}
			if want := p.signPin(tc.node, tc.sid, clk.Now().Unix()); got.pin[0] != want {
				t.Errorf("pin %q, want %q", got.pin[0], want)
			}
			if pi := p.verifyPin(got.pin[0]); pi == nil || pi.node != tc.node || pi.sid != tc.sid {
				t.Errorf("issued pin does not verify as %s/%s: %+v", tc.node, tc.sid, pi)
			}
			if !strings.Contains(got.cookie[0], got.pin[0]) || strings.Contains(got.cookie[0], "Secure") != tc.secure {
				t.Errorf("cookie %q for pin %q, secure %v", got.cookie[0], got.pin[0], tc.secure)
			}
		})
	}
}
