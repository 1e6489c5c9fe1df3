// Package rendezvous is the placement core of hanode's proxy: it decides which
// stateless coordinator a new client session goes to.
//
// It combines weighted rendezvous hashing (HRW) with consistent hashing with
// bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
// Bounded Loads", 2017):
//
//   - HRW ranks every upstream for a key by an independent pseudo-random score
//     derived only from (key, upstream ID). Every proxy with the same upstream
//     list computes the same ranking without talking to the others, and adding
//     or removing one upstream only moves the keys whose first choice it is or
//     becomes (about 1/n of them). nginx ip_hash gives neither property.
//   - Bounded loads caps each upstream's open sessions at c times its fair
//     share, so a few heavy keys (one NATed office, one big tenant) cannot pile
//     onto a single coordinator: once the first choice is full, the session
//     spills to the next one in that key's HRW order, which is still
//     deterministic for a given load state.
//   - Slow start ramps a new or re-admitted upstream's effective weight from
//     near zero to full, so a recovering coordinator is not hit by a thundering
//     herd of new sessions the moment it passes its health check.
package rendezvous

import (
	"errors"
	"math"
	"sort"
	"sync"
	"time"
)

// ErrNoUpstream is returned by Pick when no upstream is healthy.
var ErrNoUpstream = errors.New("balancer: no healthy upstream")

const (
	// DefaultLoadFactor is the bounded-loads factor c. 1.25 is the value the
	// paper and Vimeo's production deployment settled on: at most 25% above
	// fair share while keeping spill-over (and thus cache/affinity loss) low.
	DefaultLoadFactor = 1.25
	// DefaultSlowStart is the default ramp window for new/re-admitted upstreams.
	DefaultSlowStart = 30 * time.Second
	// minRamp is the effective-weight fraction at the very start of slow start.
	// It is not zero so that an upstream that is alone (or ramping together
	// with all its peers) still has a well-defined, finite score.
	minRamp = 0.01
)

// Node is a coordinator. ID must be a stable node identity, never its
// network address: hashing addresses would reshuffle every session whenever a
// node is re-addressed. Weight <= 0 (or NaN/Inf) is treated as 1, so the zero
// Weight is usable.
type Node struct {
	ID     string
	Weight float64
}

// Options configures a Picker. The zero value gives the defaults.
type Options struct {
	// LoadFactor is c in the bounded-loads bound; it must be > 1 (a bound of
	// exactly the average can make every upstream full). Values <= 1, NaN or
	// Inf select DefaultLoadFactor.
	LoadFactor float64
	// SlowStart is the window over which a re-admitted or newly added upstream
	// ramps its effective weight from ~0 to full. 0 selects DefaultSlowStart;
	// a negative value disables slow start.
	SlowStart time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake clock.
	Now func() time.Time
}

// upstream is the Picker's per-upstream state.
type upstream struct {
	id      string
	weight  float64
	healthy bool
	load    int
	since   time.Time // start of the slow-start window
}

// Picker chooses upstreams for sessions. It is safe for concurrent use.
type Picker struct {
	c         float64
	slowStart time.Duration
	now       func() time.Time

	mu   sync.Mutex
	ups  []*upstream          // in Set order; the order does not affect results
	byID map[string]*upstream // same entries as ups
	effw []float64            // scratch for Pick, guarded by mu
}

// New returns a Picker with no upstreams.
func New(o Options) *Picker {
	p := &Picker{
		c:         o.LoadFactor,
		slowStart: o.SlowStart,
		now:       o.Now,
		byID:      map[string]*upstream{},
	}
	if !(p.c > 1) || math.IsInf(p.c, 0) {
		p.c = DefaultLoadFactor
	}
	if p.slowStart == 0 {
		p.slowStart = DefaultSlowStart
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// Set replaces the upstream list. Upstreams already known keep their health,
// open-session count and slow-start state (only the weight is updated); new
// ones start healthy and in slow start; removed ones are forgotten, including
// their load. Duplicate IDs keep the first occurrence; empty IDs are ignored.
func (p *Picker) Set(ups []Node) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	byID := make(map[string]*upstream, len(ups))
	list := make([]*upstream, 0, len(ups))
	for _, u := range ups {
		if u.ID == "" {
			continue
		}
		if _, dup := byID[u.ID]; dup {
			continue
		}
		st, ok := p.byID[u.ID]
		if !ok {
			st = &upstream{id: u.ID, healthy: true, since: now}
		}
		st.weight = normWeight(u.Weight)
		byID[u.ID] = st
		list = append(list, st)
	}
	p.ups, p.byID = list, byID
}

// SetHealthy marks an upstream ejected (ok=false: no new sessions, Pinned
// reports false) or admitted. A transition from ejected to healthy restarts
// slow start. Unknown IDs are ignored.
func (p *Picker) SetHealthy(id string, ok bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.byID[id]
	if u == nil || u.healthy == ok {
		return
	}
	u.healthy = ok
	if ok {
		u.since = now
	}
}

// Pick returns the upstream for a new session with this key and counts the
// session open on it; the caller must call Done when the session ends.
//
// The result is the first healthy upstream in the key's HRW order whose open
// sessions are below its bound ceil(c × (total+1) × w/W), where total counts
// open sessions on healthy upstreams, w is the upstream's effective weight
// and W the sum over healthy upstreams (with equal weights this is
// ceil(c × (total+1)/n) from the paper). The bounds sum to at least
// c × (total+1) > total, so some upstream always has room.
func (p *Picker) Pick(key string) (string, error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()

	if cap(p.effw) < len(p.ups) {
		p.effw = make([]float64, len(p.ups))
	}
	effw := p.effw[:len(p.ups)]
	var sumW float64
	total := 0
	for i, u := range p.ups {
		if !u.healthy {
			continue
		}
		w := p.effectiveWeight(u, now)
		effw[i] = w
		sumW += w
		total += u.load
	}
	if sumW == 0 {
		return "", ErrNoUpstream
	}

	kh := keyHash(key)
	budget := p.c * float64(total+1) / sumW
	var best, fallback *upstream
	bestScore, fallbackScore := math.Inf(-1), math.Inf(-1)
	for i, u := range p.ups {
		if !u.healthy {
			continue
		}
		s := score(kh, u.id, effw[i])
		if better(s, u.id, fallbackScore, fallback) {
			fallback, fallbackScore = u, s
		}
		if float64(u.load) >= math.Ceil(budget*effw[i]) {
			continue // full
		}
		if better(s, u.id, bestScore, best) {
			best, bestScore = u, s
		}
	}
	if best == nil {
		// Unreachable by the bound argument above; kept so rounding can
		// never turn into a spurious error.
		best = fallback
	}
	best.load++
	return best.id, nil
}

// Pinned reports whether an existing session on upstream id may stay there:
// true while id is known and healthy. On false the caller re-picks (and calls
// Done(id) for the old placement).
func (p *Picker) Pinned(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.byID[id]
	return u != nil && u.healthy
}

// Acquire counts a session open on upstream id that was placed without Pick:
// a client's valid pin re-registers its session (issued by another proxy, or
// by this one before its table forgot it), and the bound must see that load
// too, or every proxy but the placing one would under-count it. The caller
// then owes Done. It returns false, counting nothing, for an unknown id.
// Health is not checked: pinned sessions stay on a draining upstream.
func (p *Picker) Acquire(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.byID[id]
	if u == nil {
		return false
	}
	u.load++
	return true
}

// Done records that a session on upstream id closed. Unknown IDs (e.g. removed
// by Set since) and upstreams with no open sessions are ignored.
func (p *Picker) Done(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.byID[id]; u != nil && u.load > 0 {
		u.load--
	}
}

// Loads returns the open-session count of every known upstream, healthy or not.
func (p *Picker) Loads() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.ups))
	for _, u := range p.ups {
		m[u.id] = u.load
	}
	return m
}

// Order returns the healthy upstreams in HRW order for key (best first),
// ignoring load, using current effective weights. The proxy retries on the
// next candidate when a connection to the first one fails.
func (p *Picker) Order(key string) []string {
	now := p.now()
	p.mu.Lock()
	type cand struct {
		id string
		s  float64
	}
	kh := keyHash(key)
	cs := make([]cand, 0, len(p.ups))
	for _, u := range p.ups {
		if u.healthy {
			cs = append(cs, cand{u.id, score(kh, u.id, p.effectiveWeight(u, now))})
		}
	}
	p.mu.Unlock()
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].s != cs[j].s {
			return cs[i].s > cs[j].s
		}
		return cs[i].id < cs[j].id
	})
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out
}

// effectiveWeight is the weight scaled by the linear slow-start ramp, floored
// at minRamp. Linear in weight means, for HRW, roughly linear in share of new
// sessions. A clock going backwards is treated as the start of the window.
func (p *Picker) effectiveWeight(u *upstream, now time.Time) float64 {
	if p.slowStart <= 0 {
		return u.weight
	}
	el := now.Sub(u.since)
	if el >= p.slowStart {
		return u.weight
	}
	f := float64(el) / float64(p.slowStart)
	if f < minRamp {
		f = minRamp
	}
	return u.weight * f
}

// better orders candidates by score, breaking exact ties by ID so that the
// result never depends on the order of the upstream list.
func better(s float64, id string, bs float64, b *upstream) bool {
	return b == nil || s > bs || (s == bs && id < b.id)
}

func normWeight(w float64) float64 {
	if !(w > 0) || math.IsInf(w, 0) {
		return 1
	}
	return w
}

// Hashing. The hash must be identical in every proxy process and version, so
// it is fully specified here: FNV-1a 64 over key, a 0x00 separator (so that
// ("ab","c") and ("a","bc") differ) and the upstream ID, followed by the
// splitmix64 finalizer, which fixes FNV's weak avalanche in the high bits.
// hash/maphash is not usable: its seeds are per-process.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// keyHash is the FNV-1a state after key and the separator, computed once per
// Pick and continued for each upstream.
func keyHash(key string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime
	}
	h ^= 0 // separator byte 0x00
	h *= fnvPrime
	return h
}

// hash64 is the full hash of (key, id) given keyHash(key).
func hash64(kh uint64, id string) uint64 {
	h := kh
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= fnvPrime
	}
	// splitmix64 finalizer
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// hash01 maps the top 53 bits to the open interval (0, 1), so ln never sees 0
// or 1.
func hash01(kh uint64, id string) float64 {
	return (float64(hash64(kh, id)>>11) + 0.5) / (1 << 53)
}

// score is the weighted-HRW score -w/ln(u). For u uniform on (0,1), -ln(u)/w
// is exponential with rate w, so the upstream with the smallest such value
// (largest score) wins with probability w/ΣW: exact weighted shares, and
// changing one weight only moves keys to or from that upstream.
func score(kh uint64, id string, w float64) float64 {
	return -w / math.Log(hash01(kh, id))
}
