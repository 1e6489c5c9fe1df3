package ratelimit

import (
	"fmt"
	"testing"
)

func TestPerSource(t *testing.T) {
	p := New(0.001, 3, 100) // 3 at once, then (practically) none
	for i := range 5 {
		got := p.Allow("10.0.0.1:1234")
		if got != (i < 3) {
			t.Fatalf("event %d of one source: allowed %v", i, got)
		}
	}
	if !p.Allow("10.0.0.2:1") {
		t.Fatal("another source is limited by the first")
	}
	// The same host on another port, and IPv6 hosts of one /64, are one source.
	if p.Allow("10.0.0.1:9999") {
		t.Fatal("another port of a limited host allowed")
	}
	for i := range 3 {
		p.Allow(fmt.Sprintf("[2001:db8::%d]:80", i+1))
	}
	if p.Allow("[2001:db8::ffff]:80") {
		t.Fatal("a fourth address of one IPv6 /64 allowed")
	}
	// Bounded: many sources never grow the table past its maximum.
	for i := range 10000 {
		p.Allow(fmt.Sprintf("10.1.%d.%d:1", i/256, i%256))
		if p.Len() > 100 {
			t.Fatalf("%d sources remembered, max 100", p.Len())
		}
	}
	for _, c := range []struct{ in, want string }{
		{"192.0.2.1:80", "192.0.2.1"}, {"192.0.2.1", "192.0.2.1"}, {"[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::"}, {"garbage", "invalid IP"},
	} {
		if got := Source(c.in).String(); got != c.want {
			t.Errorf("Source(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
