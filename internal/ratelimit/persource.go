// Package ratelimit limits what one client address may cost: a token bucket per source,
// in a table of bounded size.
package ratelimit

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// PerSource is a token bucket per source address. It remembers at most Max sources; when full,
// it forgets the ones whose bucket has refilled (they are indistinguishable from new ones),
// and if that is not enough, all of them — so its memory is bounded whatever the traffic.
type PerSource struct {
	limit rate.Limit
	burst int
	max   int

	mu  sync.Mutex
	src map[netip.Addr]*rate.Limiter
}

// New returns a PerSource allowing r events a second per source with bursts of burst, and
// remembering at most max sources.
func New(r rate.Limit, burst, max int) *PerSource {
	return &PerSource{limit: r, burst: burst, max: max, src: map[netip.Addr]*rate.Limiter{}}
}

// Source is the address of remoteAddr (host:port or host), IPv6 addresses reduced to their
// /64 (one host usually holds the whole prefix). An unparsable address is the zero Addr,
// one shared source.
func Source(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// Allow reports whether the source of remoteAddr may have one more event now.
func (p *PerSource) Allow(remoteAddr string) bool {
	src := Source(remoteAddr)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.src[src]
	if !ok {
		if len(p.src) >= p.max {
			p.forget(now)
		}
		l = rate.NewLimiter(p.limit, p.burst)
		p.src[src] = l
	}
	return l.AllowN(now, 1)
}

// forget drops every source whose bucket is full again, or every source.
func (p *PerSource) forget(now time.Time) {
	for a, l := range p.src {
		if l.TokensAt(now) >= float64(p.burst) {
			delete(p.src, a)
		}
	}
	if len(p.src) >= p.max {
		clear(p.src)
	}
}

// Len is how many sources are remembered.
func (p *PerSource) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.src)
}
