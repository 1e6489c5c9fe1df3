package balancer

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// upstream is the proxy's per-coordinator state. The pointer is the
// upstream's identity: session-table entries hold it, and an entry whose
// pointer is no longer in the current set belongs to a removed upstream.
type upstream struct {
	id     string
	target atomic.Pointer[target]

	// st is the State; written under hmu (with the Picker update, so the two
	// never disagree for long), read without it on the request path.
	st       atomic.Int32
	hmu      sync.Mutex
	oks      int // consecutive successful checks
	fails    int // consecutive failed checks
	checking atomic.Bool

	sessions atomic.Int64 // session-table entries on this upstream

	dur       prometheus.Observer
	ejections prometheus.Counter
	repins    prometheus.Counter
}

// target is where an upstream is reached; replaced as a whole when the URL
// or weight changes.
type target struct {
	url    *url.URL
	tr     *http.Transport // health checks, and requests h1 does not take (h1Eligible)
	h1     *h1Pool
	weight float64
}

func (u *upstream) state() State { return State(u.st.Load()) }

// acceptsPinned reports whether sessions already pinned here may stay.
func (u *upstream) acceptsPinned() bool { return u.state() != StateDown }

func (p *Proxy) newUpstream(up Upstream) *upstream {
	u := &upstream{
		id:        up.ID,
		dur:       p.m.duration.WithLabelValues(up.ID),
		ejections: p.m.ejections.WithLabelValues(up.ID),
		repins:    p.m.repins.WithLabelValues(up.ID),
	}
	u.target.Store(p.newTarget(up))
	return u
}

// newTarget builds the upstream's transport: one per upstream so that pool
// limits and idle connections are per coordinator.
func (p *Proxy) newTarget(up Upstream) *target {
	base := *up.URL
	base.Path, base.RawPath = "", ""
	d := &net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil, // never route coordinator traffic via $HTTPS_PROXY
		DialContext:         d.DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: p.cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:     p.cfg.IdleConnTimeout,
		// No ResponseHeaderTimeout: S3 listings and copies can take long.
		ExpectContinueTimeout: time.Second,
		// Pass Content-Encoding through untouched; a proxy must not decode.
		DisableCompression: true,
		ForceAttemptHTTP2:  base.Scheme == "https",
		HTTP2: &http.HTTP2Config{
			// Detect half-dead HTTP/2 connections instead of hanging on them.
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     5 * time.Second,
		},
	}
	if p.cfg.UpstreamTLS != nil {
		tr.TLSClientConfig = p.cfg.UpstreamTLS.Clone()
	}
	return &target{url: &base, tr: tr, h1: newH1Pool(up, p.cfg.UpstreamTLS, &p.cfg, &p.bufs), weight: up.Weight}
}

// healthLoop runs a round of checks immediately and then every interval.
func (p *Proxy) healthLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.HealthInterval)
	defer t.Stop()
	for {
		p.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkAll checks every upstream concurrently and waits for the results.
func (p *Proxy) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	now := time.Now()
	for _, u := range p.upstreams().list {
		u.target.Load().h1.expireIdle(now)
		if !u.checking.CompareAndSwap(false, true) {
			continue // the previous check is still running
		}
		wg.Go(func() {
			defer u.checking.Store(false)
			p.checkOne(ctx, u)
		})
	}
	wg.Wait()
}

type checkResult int

const (
	checkOK       checkResult = iota
	checkNotReady             // answered, but not 2xx: draining
	checkFailed               // no answer
)

func (p *Proxy) checkOne(ctx context.Context, u *upstream) {
	t := u.target.Load()
	cctx, cancel := context.WithTimeout(ctx, p.cfg.HealthTimeout)
	defer cancel()
	hu := *t.url
	hu.Path = p.cfg.HealthPath
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, hu.String(), nil)
	if err != nil {
		p.log.Error("proxy: build health check request", "upstream", u.id, "err", err)
		return
	}
	req.Header.Set("User-Agent", "hanode-proxy-health")
	res := checkOK
	resp, err := t.tr.RoundTrip(req)
	if err != nil {
		if ctx.Err() != nil {
			return // stopping, not an upstream failure
		}
		res = checkFailed
	} else {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			res = checkNotReady
		}
	}
	p.applyCheck(u, res, err)
}

// applyCheck runs the health state machine for one active check result:
//
//	healthy  --Fall failures--> draining (last answer not-ready) or down
//	draining --connection failure--> down (its pinned sessions move now)
//	draining/down --Rise successes--> healthy (slow start in the Picker)
func (p *Proxy) applyCheck(u *upstream, res checkResult, err error) {
	u.hmu.Lock()
	defer u.hmu.Unlock()
	if res == checkOK {
		u.fails = 0
		u.oks++
		if u.state() != StateHealthy && u.oks >= p.cfg.Rise {
			p.setState(u, StateHealthy, "health check passed")
		}
		return
	}
	u.oks = 0
	u.fails++
	reason := "not ready"
	next := StateDraining
	if res == checkFailed {
		reason, next = "health check failed: "+errString(err), StateDown
	}
	switch u.state() {
	case StateHealthy:
		if u.fails >= p.cfg.Fall {
			p.setState(u, next, reason)
		}
	case StateDraining:
		if next == StateDown {
			p.setState(u, StateDown, reason)
		}
	}
}

// eject is the passive check: a connection error or an EOF before response
// headers takes the upstream down at once; active checks re-admit it.
func (p *Proxy) eject(u *upstream, err error) {
	u.hmu.Lock()
	defer u.hmu.Unlock()
	u.oks = 0
	if u.state() != StateDown {
		p.setState(u, StateDown, "request failed: "+errString(err))
	}
}

// setState must be called with u.hmu held. It takes setMu so that the state
// and the Picker's health change together and never for an upstream that
// SetUpstreams has just removed (or replaced with a namesake).
func (p *Proxy) setState(u *upstream, s State, reason string) {
	p.setMu.Lock()
	defer p.setMu.Unlock()
	if !p.current(u) {
		return
	}
	prev := u.state()
	u.st.Store(int32(s))
	p.picker.SetHealthy(u.id, s == StateHealthy)
	if prev == StateHealthy {
		u.ejections.Inc()
	}
	lvl := p.log.Warn
	if s == StateHealthy {
		lvl = p.log.Info
	}
	lvl("proxy: upstream state changed", "upstream", u.id, "from", prev.String(), "to", s.String(), "reason", reason)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
