package balancer

import (
	"context"
	"sync"
	"time"
)

// sessionTable maps a session id to its upstream. It is what makes the
// balancer's bounded loads meaningful: Pick counts a session open, and the
// table calls Picker.Done when the session ends, which is when it has been
// idle for Config.SessionIdle, when it moves to another upstream, or when it
// is evicted.
//
// Eviction: the table is split into up to 64 shards by session id (for lock
// contention); each shard holds at most ceil(MaxSessions/shards) entries and,
// when full, evicts its least recently seen entry. An evicted session loses
// nothing but its count: its client still holds a valid pin, and the next
// request re-registers the session on the same upstream without a Pick.
// Clients keyed only by address (no cookie, no header) are re-placed by HRW,
// which sends them to the same upstream unless loads changed meanwhile.
type sessionTable struct {
	shards []sessionShard
}

type sessionShard struct {
	mu   sync.Mutex
	m    map[string]*session
	root session // sentinel of the LRU ring: root.next is the most recent
	max  int
}

type session struct {
	sid     string
	up      *upstream
	counted bool  // counted by Picker.Pick or Acquire, so Picker.Done is owed
	placed  int64 // unix seconds of the placement, compared with pin times
	seen    time.Time

	prev, next *session
}

func newSessionTable(max int) *sessionTable {
	n := 1
	for n < 64 && max/(n*2) >= 1024 {
		n *= 2
	}
	t := &sessionTable{shards: make([]sessionShard, n)}
	per := (max + n - 1) / n
	for i := range t.shards {
		sh := &t.shards[i]
		sh.m = map[string]*session{}
		sh.root.next, sh.root.prev = &sh.root, &sh.root
		sh.max = per
	}
	return t
}

func (t *sessionTable) shard(sid string) *sessionShard {
	// FNV-1a; sids are already hashes, so any mixing would do.
	h := uint32(2166136261)
	for i := 0; i < len(sid); i++ {
		h ^= uint32(sid[i])
		h *= 16777619
	}
	return &t.shards[h%uint32(len(t.shards))]
}

func (t *sessionTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

func (sh *sessionShard) unlink(s *session) {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

func (sh *sessionShard) pushFront(s *session) {
	s.prev, s.next = &sh.root, sh.root.next
	s.prev.next, s.next.prev = s, s
}

// touch marks s as seen now; caller holds sh.mu.
func (sh *sessionShard) touch(s *session, now time.Time) {
	s.seen = now
	if sh.root.next != s {
		sh.unlink(s)
		sh.pushFront(s)
	}
}

// place records sid on u, releasing any previous placement; caller holds
// sh.mu.
func (p *Proxy) place(sh *sessionShard, sid string, u *upstream, counted bool, placed int64, now time.Time) {
	s := sh.m[sid]
	if s != nil {
		p.release(s)
	} else {
		if len(sh.m) >= sh.max {
			old := sh.root.prev
			sh.unlink(old)
			delete(sh.m, old.sid)
			p.release(old)
		}
		s = &session{sid: sid}
		sh.m[sid] = s
		sh.pushFront(s)
	}
	s.up, s.counted, s.placed = u, counted, placed
	u.sessions.Add(1)
	sh.touch(s, now)
}

// release ends s's placement: the balancer's count is returned only if the
// balancer placed it and its upstream was not removed since (after removal
// the Picker has forgotten the load, and a re-added namesake must not lose
// one of its own sessions).
func (p *Proxy) release(s *session) {
	s.up.sessions.Add(-1)
	if s.counted && p.current(s.up) {
		p.picker.Done(s.up.id)
	}
	s.counted = false
}

// route resolves the upstream for st.sid, using and updating the session
// table; pin is the request's valid pin, if any. On return st.up is nil when
// no upstream can take the request.
//
// A session stays where it is (no Pick) while its upstream is healthy or
// draining. The table entry and the pin can disagree (a concurrent request
// moved the session, or another proxy did); the more recent placement wins.
func (p *Proxy) route(st *reqState, pin *pinInfo) {
	set := p.upstreams()
	now := p.now()
	sh := p.sessions.shard(st.sid)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	s := sh.m[st.sid]
	var fromTable, fromPin *upstream
	if s != nil && set.byID[s.up.id] == s.up {
		fromTable = s.up
	}
	if pin != nil {
		fromPin = set.byID[pin.node]
	}
	first, second := fromTable, fromPin
	if fromPin != nil && (fromTable == nil || (fromPin != fromTable && pin.issued > s.placed)) {
		first, second = fromPin, fromTable
	}
	for _, u := range [2]*upstream{first, second} {
		if u == nil || !u.acceptsPinned() {
			continue
		}
		st.up, st.kind = u, sessPinned
		if s != nil && s.up == u {
			sh.touch(s, now)
		} else {
			placed := now.Unix()
			if u == fromPin {
				placed = pin.issued
			}
			// Counted, so that the load bound sees sessions placed by
			// other proxies (or before this table forgot them).
			p.place(sh, st.sid, u, p.picker.Acquire(u.id), placed, now)
		}
		st.needPin = pin == nil || pin.node != u.id || pin.stale
		return
	}

	// New session, or its upstream is gone: place it anew.
	from := ""
	switch {
	case first != nil:
		from = first.id
	case pin != nil:
		from = pin.node // pinned to an upstream that was removed
	case s != nil:
		from = s.up.id
	}
	u, counted := p.pick(st.sid, set, nil)
	if u == nil {
		return
	}
	p.place(sh, st.sid, u, counted, now.Unix(), now)
	st.up, st.needPin = u, true
	if from != "" {
		st.kind, st.from = sessRepinned, from
		p.countRepin(set, from)
	} else {
		st.kind = sessNew
	}
}

// repick moves st's session off the upstream that just failed it; it
// returns false when no untried upstream is left.
func (p *Proxy) repick(st *reqState) bool {
	set := p.upstreams()
	now := p.now()
	sh := p.sessions.shard(st.sid)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	failed := st.up
	var next *upstream
	if s := sh.m[st.sid]; s != nil && s.up != failed && set.byID[s.up.id] == s.up &&
		s.up.acceptsPinned() && !st.wasTried(s.up) {
		// A concurrent request of this session already moved it.
		next = s.up
		sh.touch(s, now)
	} else {
		u, counted := p.pick(st.sid, set, st.wasTried)
		if u == nil {
			return false
		}
		p.place(sh, st.sid, u, counted, now.Unix(), now)
		next = u
	}
	st.up, st.needPin = next, true
	if st.kind != sessNew {
		if st.kind == sessPinned {
			st.from = failed.id
		}
		st.kind = sessRepinned
		failed.repins.Inc()
	}
	return true
}

// pick asks the balancer for a new placement, skipping upstreams for which
// skip returns true. Pick is preferred because it honours the load bound and
// counts the session; if it lands on a skipped upstream (one that failed
// this request but is not ejected, e.g. not yet) the next untried upstream in
// the key's HRW order is used, uncounted.
func (p *Proxy) pick(sid string, set *upstreamSet, skip func(*upstream) bool) (u *upstream, counted bool) {
	id, err := p.picker.Pick(sid)
	if err != nil {
		return nil, false
	}
	if u := set.byID[id]; u != nil && (skip == nil || !skip(u)) {
		return u, true
	}
	// Skipped, or an ID from a concurrent SetUpstreams not in our snapshot.
	p.picker.Done(id)
	for _, id := range p.picker.Order(sid) {
		if u := set.byID[id]; u != nil && (skip == nil || !skip(u)) {
			return u, false
		}
	}
	return nil, false
}

func (p *Proxy) countRepin(set *upstreamSet, from string) {
	if u := set.byID[from]; u != nil {
		u.repins.Inc()
		return
	}
	p.m.repins.WithLabelValues(from).Inc()
}

// touchEnd refreshes a session at the end of a long request so a transfer
// longer than SessionIdle does not expire the session under it.
func (p *Proxy) touchEnd(sid string, u *upstream) {
	sh := p.sessions.shard(sid)
	sh.mu.Lock()
	if s := sh.m[sid]; s != nil && s.up == u {
		sh.touch(s, p.now())
	}
	sh.mu.Unlock()
}

// sweep expires sessions idle for longer than SessionIdle.
func (p *Proxy) sweep() {
	cutoff := p.now().Add(-p.cfg.SessionIdle)
	for i := range p.sessions.shards {
		sh := &p.sessions.shards[i]
		for more := true; more; {
			// Bounded batches keep the lock hold time short on huge tables.
			sh.mu.Lock()
			more = false
			for n := 0; ; n++ {
				s := sh.root.prev
				if s == &sh.root || !s.seen.Before(cutoff) {
					break
				}
				if n == 1024 {
					more = true
					break
				}
				sh.unlink(s)
				delete(sh.m, s.sid)
				p.release(s)
			}
			sh.mu.Unlock()
		}
	}
}

func (p *Proxy) sweepLoop(ctx context.Context) {
	iv := min(max(p.cfg.SessionIdle/4, 10*time.Millisecond), time.Minute)
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.sweep()
		}
	}
}
