// Package balancer is hanode's proxy role (role.go: its lifecycle, certificates, shared keys
// and upstreams from etcd) and the HTTP reverse-proxy engine under it: a sticky load balancer
// in front of the stateless S3 coordinators.
//
// Placement is done by package rendezvous (weighted rendezvous hashing with
// bounded loads and slow start). The engine adds what makes that usable as
// a proxy: session affinity (signed pins, an affinity header, the client IP),
// a session table that feeds the balancer's open-session counts, active and
// passive health checking with a draining state, retries that never replay a
// non-idempotent request that may have reached a coordinator, streaming in
// both directions, metrics and an access log.
//
// The engine's caller (the Role) owns listeners, TLS certificates and the upstream list (fed
// from the cluster's view of coordinators through SetUpstreams); see Listen and NewServer for
// the listener and server hardening helpers.
package balancer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/balancer/rendezvous"
)

// Proxy is the reverse-proxy engine; it is an http.Handler. Create it with
// New, feed it upstreams with SetUpstreams and run its background loops with
// Start.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	picker   *rendezvous.Picker
	rp       *httputil.ReverseProxy
	sessions *sessionTable
	pins     atomic.Pointer[pinKeys]
	lastPin  atomic.Pointer[pinMemo]
	m        *metrics
	bufs     bufferPool

	setMu sync.Mutex // serializes SetUpstreams and upstream state changes
	ups   atomic.Pointer[upstreamSet]

	runMu  sync.Mutex
	cancel context.CancelFunc // non-nil while started
	loops  sync.WaitGroup

	upgMu    sync.Mutex
	upgrades map[*reqState]context.CancelFunc
	upgWG    sync.WaitGroup
	draining bool // Shutdown called: refuse new upgrades
}

// flushLatency bounds how long response bytes that arrived from the
// upstream may wait in the proxy's buffers.
const flushLatency = 100 * time.Millisecond

// upstreamSet is an immutable snapshot of the upstream list, swapped
// atomically so the request path never takes the SetUpstreams lock.
type upstreamSet struct {
	byID map[string]*upstream
	list []*upstream // sorted by ID
}

// New validates cfg and returns a Proxy with no upstreams. It generates a
// random pin key, which is only right for a single proxy: proxies sharing
// clients must share keys through SetPinKeys.
func New(cfg Config) (*Proxy, error) {
	cfg.TrustedProxies = slices.Clone(cfg.TrustedProxies)
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg: cfg,
		log: cfg.Logger,
		now: cfg.now,
		picker: rendezvous.New(rendezvous.Options{
			LoadFactor: cfg.LoadFactor,
			SlowStart:  cfg.SlowStart,
			Now:        cfg.now,
		}),
		sessions: newSessionTable(cfg.MaxSessions),
		upgrades: map[*reqState]context.CancelFunc{},
	}
	p.ups.Store(&upstreamSet{byID: map[string]*upstream{}})
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("proxy: generate pin key: %w", err)
	}
	if err := p.SetPinKeys(key); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, p.upstreams)
	if err != nil {
		return nil, err
	}
	p.m = m
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      roundTripper{p},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.handleError,
		BufferPool:     &p.bufs,
		// S3 listings and select responses trickle, so what arrives is
		// flushed within flushLatency (responses of unknown length at once:
		// the ReverseProxy does that itself). Not -1, flush on every write:
		// that sends the headers and each body write as TLS records of their
		// own, a write(2) each, plus a timer goroutine per response, which
		// cost 10-15 % of the CPU of small responses (docs/benchmarks.md); a
		// response that completes within flushLatency goes out in one write.
		FlushInterval: flushLatency,
		ErrorLog:      slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// SetUpstreams replaces the upstream list. Upstreams whose ID is already
// known keep their health, sessions and slow-start state (a changed URL only
// swaps the transport); new ones start healthy in slow start; removed ones
// lose their sessions, which move on their next request.
func (p *Proxy) SetUpstreams(list []Upstream) error {
	seen := make(map[string]bool, len(list))
	for i, u := range list {
		if u.ID == "" {
			return fmt.Errorf("proxy: upstream %d: empty ID", i)
		}
		if seen[u.ID] {
			return fmt.Errorf("proxy: upstream %q: duplicate ID", u.ID)
		}
		seen[u.ID] = true
		if err := checkURL(u.URL); err != nil {
			return fmt.Errorf("proxy: upstream %q: %w", u.ID, err)
		}
	}

	p.setMu.Lock()
	defer p.setMu.Unlock()
	old := p.ups.Load()
	next := &upstreamSet{byID: make(map[string]*upstream, len(list))}
	bl := make([]rendezvous.Node, 0, len(list))
	for _, u := range list {
		cur := old.byID[u.ID]
		if cur == nil {
			cur = p.newUpstream(u)
		} else if t := cur.target.Load(); t.url.Scheme != u.URL.Scheme || t.url.Host != u.URL.Host {
			cur.target.Store(p.newTarget(u))
			t.tr.CloseIdleConnections()
			t.h1.closeIdle(true)
		} else if t.weight != u.Weight {
			cur.target.Store(&target{url: t.url, tr: t.tr, h1: t.h1, weight: u.Weight})
		}
		next.byID[u.ID] = cur
		next.list = append(next.list, cur)
		bl = append(bl, rendezvous.Node{ID: u.ID, Weight: u.Weight})
	}
	slices.SortFunc(next.list, func(a, b *upstream) int { return strings.Compare(a.id, b.id) })
	// Publish the map before the Picker learns new IDs, so a Pick never
	// returns an ID the map does not have yet (the reverse, briefly, is
	// handled where Pick results are used).
	p.ups.Store(next)
	p.picker.Set(bl)
	for id, u := range old.byID {
		if next.byID[id] == nil {
			t := u.target.Load()
			t.tr.CloseIdleConnections()
			t.h1.closeIdle(true)
			p.log.Info("proxy: upstream removed", "upstream", id)
		}
	}
	for id := range next.byID {
		if old.byID[id] == nil {
			p.log.Info("proxy: upstream added", "upstream", id, "url", next.byID[id].target.Load().url.String())
		}
	}
	return nil
}

func checkURL(u *url.URL) error {
	switch {
	case u == nil:
		return errors.New("nil URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL %q: scheme must be http or https", u)
	case u.Host == "":
		return fmt.Errorf("URL %q: no host", u)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.User != nil:
		// Requests are forwarded with their path untouched (SigV4 signs it),
		// so a base path could only be prepended, breaking signatures.
		return fmt.Errorf("URL %q: must not have a path, query or user info", u)
	}
	return nil
}

func (p *Proxy) upstreams() *upstreamSet { return p.ups.Load() }

// current reports whether u is still the live upstream for its ID (not
// removed, not replaced by a re-added namesake).
func (p *Proxy) current(u *upstream) bool { return p.upstreams().byID[u.id] == u }

// Start runs the active health checks and the session expiry until ctx is
// done or Close is called. Without it, passively ejected upstreams never come
// back and idle sessions are only evicted when the table is full.
func (p *Proxy) Start(ctx context.Context) error {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.cancel != nil {
		return errors.New("proxy: already started")
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.loops.Go(func() { p.healthLoop(ctx) })
	p.loops.Go(func() { p.sweepLoop(ctx) })
	return nil
}

// Close stops the background loops started by Start and closes idle
// upstream connections. In-flight requests are not affected (see Shutdown).
func (p *Proxy) Close() error {
	p.runMu.Lock()
	cancel := p.cancel
	p.cancel = nil
	p.runMu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.loops.Wait()
	for _, u := range p.upstreams().list {
		t := u.target.Load()
		t.tr.CloseIdleConnections()
		t.h1.closeIdle(false)
	}
	return nil
}

// Shutdown refuses new protocol upgrades, waits for upgraded connections
// (WebSocket and the like, which http.Server.Shutdown does not track) to end
// and, once ctx is done, closes the remaining ones and returns ctx's error.
// Call it alongside http.Server.Shutdown.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.upgMu.Lock()
	p.draining = true
	p.upgMu.Unlock()
	done := make(chan struct{})
	go func() {
		p.upgWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	p.upgMu.Lock()
	for _, cancel := range p.upgrades {
		cancel() // ReverseProxy closes the backend conn, then the client's
	}
	p.upgMu.Unlock()
	<-done
	return fmt.Errorf("proxy: shutdown: closed upgraded connections: %w", ctx.Err())
}

// trackUpgrade registers an upgrade request so Shutdown can end it. It
// returns false once Shutdown has begun.
func (p *Proxy) trackUpgrade(ctx context.Context, st *reqState) (context.Context, func(), bool) {
	p.upgMu.Lock()
	defer p.upgMu.Unlock()
	if p.draining {
		return ctx, nil, false
	}
	ctx, cancel := context.WithCancel(ctx)
	p.upgrades[st] = cancel
	p.upgWG.Add(1)
	return ctx, func() {
		p.upgMu.Lock()
		delete(p.upgrades, st)
		p.upgMu.Unlock()
		cancel()
		p.upgWG.Done()
	}, true
}

// State is an upstream's health as seen by the proxy.
type State int32

const (
	// StateHealthy: takes new and pinned sessions.
	StateHealthy State = iota
	// StateDraining: reports not-ready; takes no new sessions but keeps
	// serving the sessions pinned to it while it accepts connections.
	StateDraining
	// StateDown: unreachable; its sessions move on their next request.
	StateDown
)

func (s State) String() string {
	switch s {
	case StateHealthy:
		return "healthy"
	case StateDraining:
		return "draining"
	case StateDown:
		return "down"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// MarshalText makes State render as its name in JSON status pages.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UpstreamStats describes one upstream for a status page.
type UpstreamStats struct {
	ID     string
	URL    string
	Weight float64
	State  State
	// Load is the open-session count the balancer bounds: sessions it placed
	// plus re-registered pins (Picker.Acquire).
	Load int
	// Sessions counts session-table entries pinned to the upstream, which
	// differs from Load only for entries of an upstream removed and re-added.
	Sessions int64
}

// Stats is a snapshot for a status page.
type Stats struct {
	Upstreams []UpstreamStats // sorted by ID
	Sessions  int             // session-table size
}

// Stats returns the current per-upstream state and load.
func (p *Proxy) Stats() Stats {
	loads := p.picker.Loads()
	set := p.upstreams()
	st := Stats{Upstreams: make([]UpstreamStats, 0, len(set.list)), Sessions: p.sessions.len()}
	for _, u := range set.list {
		t := u.target.Load()
		st.Upstreams = append(st.Upstreams, UpstreamStats{
			ID:       u.id,
			URL:      t.url.String(),
			Weight:   t.weight,
			State:    u.state(),
			Load:     loads[u.id],
			Sessions: u.sessions.Load(),
		})
	}
	return st
}

// bufferPool is the ReverseProxy's copy-buffer pool. Storing array pointers
// keeps Put allocation-free.
type bufferPool struct{ p sync.Pool }

const copyBufSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[copyBufSize]byte); ok {
		return v[:]
	}
	return new([copyBufSize]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufSize {
		b.p.Put((*[copyBufSize]byte)(buf[:copyBufSize]))
	}
}
