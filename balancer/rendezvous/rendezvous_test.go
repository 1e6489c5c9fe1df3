package rendezvous

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// clock is a manually advanced clock for Options.Now.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

const window = 30 * time.Second

// newPicker returns a Picker over ups whose initial slow start has already
// elapsed, plus its clock.
func newPicker(t testing.TB, ups []Node) (*Picker, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	p := New(Options{SlowStart: window, Now: clk.Now})
	p.Set(ups)
	clk.Advance(window)
	return p, clk
}

func equal(ids ...string) []Node {
	ups := make([]Node, len(ids))
	for i, id := range ids {
		ups[i] = Node{ID: id, Weight: 1}
	}
	return ups
}

func keys(n int, prefix string) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ks
}

func first(t *testing.T, p *Picker, key string) string {
	t.Helper()
	o := p.Order(key)
	if len(o) == 0 {
		t.Fatalf("Order(%q) empty", key)
	}
	return o[0]
}

// The hash decides placement across processes and versions; pin it so an
// accidental change (which would reshuffle sessions during a rolling upgrade
// of the proxies) fails loudly. Values cross-checked against an independent
// FNV-1a 64 + splitmix64 implementation.
func TestHashGolden(t *testing.T) {
	tests := []struct {
		key, id string
		want    uint64
	}{
		{"", "", 0x25fc6dd36ce04b20},
		{"10.0.0.1", "node-a", 0xe7b548d8fc0ff2e1},
		{"ab", "c", 0x9291f5e7171dc35a},
		{"a", "bc", 0x82a144826e72d59e},
	}
	for _, tt := range tests {
		if got := hash64(keyHash(tt.key), tt.id); got != tt.want {
			t.Errorf("hash64(%q, %q) = %#016x, want %#016x", tt.key, tt.id, got, tt.want)
		}
	}
}

// Property 1: proxies with the same upstreams and load history route alike.
func TestDeterminism(t *testing.T) {
	tests := []struct {
		name  string
		ups   []Node
		order []Node // same set, different listing order for the second picker
	}{
		{"equal", equal("a", "b", "c"), equal("c", "a", "b")},
		{"weighted", []Node{{"a", 1}, {"b", 2}, {"c", 3}}, []Node{{"c", 3}, {"b", 2}, {"a", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p1, _ := newPicker(t, tt.ups)
			p2, _ := newPicker(t, tt.order)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range 5000 {
				// Skewed keys so bounded loads actually spill.
				key := fmt.Sprintf("k%d", rng.IntN(50))
				a, err1 := p1.Pick(key)
				b, err2 := p2.Pick(key)
				if err1 != nil || err2 != nil || a != b {
					t.Fatalf("pick %d key %q: %q,%v vs %q,%v", i, key, a, err1, b, err2)
				}
				if rng.IntN(3) == 0 {
					p1.Done(a)
					p2.Done(a)
				}
			}
			l1, l2 := p1.Loads(), p2.Loads()
			for id := range l1 {
				if l1[id] != l2[id] {
					t.Fatalf("loads differ: %v vs %v", l1, l2)
				}
			}
		})
	}
}

// Property 2: adding moves keys only to the new upstream and ~1/n of them;
// removing or ejecting one moves only the keys it had.
func TestStability(t *testing.T) {
	ks := keys(10000, "key")
	tests := []struct {
		name   string
		before []string
		change func(p *Picker, clk *clock)
		added  string // upstream keys may move to ("" = none)
		gone   string // upstream keys may move from ("" = none)
		frac   [2]float64
	}{
		{
			name: "add 3 to 4", before: []string{"a", "b", "c"},
			change: func(p *Picker, clk *clock) {
				p.Set(equal("a", "b", "c", "d"))
				clk.Advance(window) // past d's slow start
			},
			added: "d", frac: [2]float64{0.5 / 4, 1.5 / 4},
		},
		{
			name: "add 9 to 10", before: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"},
			change: func(p *Picker, clk *clock) {
				p.Set(equal("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"))
				clk.Advance(window)
			},
			added: "j", frac: [2]float64{0.5 / 10, 1.5 / 10},
		},
		{
			name: "remove 4 to 3", before: []string{"a", "b", "c", "d"},
			change: func(p *Picker, _ *clock) { p.Set(equal("a", "b", "c")) },
			gone:   "d", frac: [2]float64{0.5 / 4, 1.5 / 4},
		},
		{
			name: "eject 1 of 4", before: []string{"a", "b", "c", "d"},
			change: func(p *Picker, _ *clock) { p.SetHealthy("b", false) },
			gone:   "b", frac: [2]float64{0.5 / 4, 1.5 / 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clk := newPicker(t, equal(tt.before...))
			before := make([]string, len(ks))
			for i, k := range ks {
				before[i] = first(t, p, k)
			}
			tt.change(p, clk)
			moved := 0
			for i, k := range ks {
				after := first(t, p, k)
				if after == before[i] {
					continue
				}
				moved++
				if tt.added != "" && after != tt.added {
					t.Fatalf("key %q moved %s -> %s, not to the added %s", k, before[i], after, tt.added)
				}
				if tt.gone != "" && before[i] != tt.gone {
					t.Fatalf("key %q moved %s -> %s, but only %s's keys may move", k, before[i], after, tt.gone)
				}
			}
			f := float64(moved) / float64(len(ks))
			t.Logf("moved %d/%d = %.4f (bounds [%.4f, %.4f])", moved, len(ks), f, tt.frac[0], tt.frac[1])
			if f < tt.frac[0] || f > tt.frac[1] {
				t.Errorf("moved fraction %.4f outside [%.4f, %.4f]", f, tt.frac[0], tt.frac[1])
			}
		})
	}
}

// Property 3: heavy keys cannot overload one upstream while sessions stay open.
func TestBoundedLoad(t *testing.T) {
	tests := []struct {
		name      string
		c         float64
		ups       []string
		heavyKeys int
		heavyFrac float64
		sessions  int
	}{
		{"4 heavy keys 80% c=1.25", 0, []string{"a", "b", "c"}, 4, 0.8, 10000},
		{"1 heavy key 95% c=1.25", 0, []string{"a", "b", "c"}, 1, 0.95, 10000},
		{"4 heavy keys 80% c=1.1 n=5", 1.1, []string{"a", "b", "c", "d", "e"}, 4, 0.8, 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: time.Unix(0, 0)}
			p := New(Options{LoadFactor: tt.c, SlowStart: window, Now: clk.Now})
			p.Set(equal(tt.ups...))
			clk.Advance(window)
			c := p.c
			n := float64(len(tt.ups))
			rng := rand.New(rand.NewPCG(3, 4))
			loads := map[string]int{}
			worst := 0.0 // max over time of load - ceil(c*avg)
			for i := range tt.sessions {
				var key string
				if rng.Float64() < tt.heavyFrac {
					key = fmt.Sprintf("heavy-%d", rng.IntN(tt.heavyKeys))
				} else {
					key = fmt.Sprintf("light-%d", i)
				}
				id, err := p.Pick(key)
				if err != nil {
					t.Fatal(err)
				}
				loads[id]++
				limit := math.Ceil(c*float64(i+1)/n) + 1
				for id, l := range loads {
					if float64(l) > limit {
						t.Fatalf("after %d sessions %s has %d open > ceil(%.2f*avg)+1 = %.0f", i+1, id, l, c, limit)
					}
					worst = math.Max(worst, float64(l)-math.Ceil(c*float64(i+1)/n))
				}
			}
			got := p.Loads()
			for id, l := range loads {
				if got[id] != l {
					t.Fatalf("Loads()[%s] = %d, counted %d", id, got[id], l)
				}
			}
			t.Logf("final loads %v (avg %.0f, ceil(c*avg) = %.0f); worst excess over ceil(c*avg) at any time: %.0f",
				got, float64(tt.sessions)/n, math.Ceil(c*float64(tt.sessions)/n), worst)
		})
	}
}

// Property 4: a re-admitted upstream ramps up instead of taking a full share
// (or, with open sessions, the whole backlog) at once.
func TestSlowStart(t *testing.T) {
	tests := []struct {
		name       string
		keepOpen   bool // sessions stay open, so the re-admitted one is also the least loaded
		newUp      bool // added by Set instead of re-admitted by SetHealthy
		earlyLimit float64
	}{
		{"readmit sessions closed", false, false, 0.5},
		{"readmit sessions open", true, false, 0.5},
		{"added by Set", false, true, 0.5},
	}
	const perStep, steps = 100, 60 // 6000 picks spread over the window
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ups := equal("a", "b", "c")
			if tt.newUp {
				ups = ups[:2]
			}
			p, clk := newPicker(t, ups)
			var onC []string // keys of open sessions placed on c
			if tt.keepOpen {
				for _, k := range keys(3000, "pre") {
					id, err := p.Pick(k)
					if err != nil {
						t.Fatal(err)
					}
					if id == "c" {
						onC = append(onC, k)
					}
				}
			}
			if tt.newUp {
				p.Set(equal("a", "b", "c"))
			} else {
				p.SetHealthy("c", false)
				// What the proxy does: c's sessions are no longer Pinned,
				// so they close on c and are re-picked elsewhere.
				for _, k := range onC {
					if p.Pinned("c") {
						t.Fatal("ejected c still pinned")
					}
					p.Done("c")
					if id, err := p.Pick(k); err != nil || id == "c" {
						t.Fatalf("re-pick of %q = %q, %v", k, id, err)
					}
				}
				clk.Advance(time.Second)
				p.SetHealthy("c", true)
			}
			fair := 1.0 / 3
			pick := func(k string) string {
				id, err := p.Pick(k)
				if err != nil {
					t.Fatal(err)
				}
				if !tt.keepOpen {
					p.Done(id)
				}
				return id
			}
			var early, earlyN int
			share := make([]float64, 5) // share of c per 20% of the window
			for s := range steps {
				for i := range perStep {
					id := pick(fmt.Sprintf("w-%d-%d", s, i))
					if id == "c" {
						share[s*5/steps]++
						if s < steps/5 {
							early++
						}
					}
					if s < steps/5 {
						earlyN++
					}
				}
				clk.Advance(window / steps)
			}
			for i := range share {
				share[i] /= perStep * steps / 5
			}
			// After the window.
			late, lateN := 0, 6000
			for i := range lateN {
				if pick(fmt.Sprintf("after-%d", i)) == "c" {
					late++
				}
			}
			ef, lf := float64(early)/float64(earlyN), float64(late)/float64(lateN)
			t.Logf("share of c per 20%% of window %.3f; first 20%%: %.3f (fair %.3f); after window: %.3f",
				share, ef, fair, lf)
			if ef >= tt.earlyLimit*fair {
				t.Errorf("first 20%% share %.3f, want < %.3f", ef, tt.earlyLimit*fair)
			}
			if lf < 0.85*fair {
				t.Errorf("after-window share %.3f, want >= %.3f", lf, 0.85*fair)
			}
			if !tt.keepOpen && lf > 1.15*fair {
				t.Errorf("after-window share %.3f, want <= %.3f", lf, 1.15*fair)
			}
		})
	}
}

// Property 5: shares follow weights when the bound does not bind.
func TestWeights(t *testing.T) {
	tests := []struct {
		name string
		ups  []Node
	}{
		{"2 vs 1", []Node{{"a", 2}, {"b", 1}}},
		{"2 vs 1 vs 1", []Node{{"a", 2}, {"b", 1}, {"c", 1}}},
		{"3 vs 2 vs 1", []Node{{"a", 3}, {"b", 2}, {"c", 1}}},
		{"zero weight means 1", []Node{{"a", 2}, {"b", 0}}},
	}
	const n = 30000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newPicker(t, tt.ups)
			counts := map[string]int{}
			for _, k := range keys(n, "wk") {
				id, err := p.Pick(k)
				if err != nil {
					t.Fatal(err)
				}
				p.Done(id) // no open sessions: bounds never bind
				counts[id]++
			}
			var sumW float64
			for _, u := range tt.ups {
				sumW += normWeight(u.Weight)
			}
			for _, u := range tt.ups {
				want := float64(n) * normWeight(u.Weight) / sumW
				got := float64(counts[u.ID])
				t.Logf("%s weight %.0f: %d sessions (expected %.0f, ratio %.3f)", u.ID, normWeight(u.Weight), counts[u.ID], want, got/want)
				if math.Abs(got/want-1) > 0.10 {
					t.Errorf("%s: %d sessions, want %.0f ±10%%", u.ID, counts[u.ID], want)
				}
			}
		})
	}
}

// Property 6: no healthy upstream is an error; ejected ones are not pinned.
func TestEjection(t *testing.T) {
	tests := []struct {
		name      string
		ups       []string
		eject     []string
		wantErr   bool
		pinned    map[string]bool
		wantOrder int
	}{
		{"all ejected", []string{"a", "b"}, []string{"a", "b"}, true, map[string]bool{"a": false, "b": false}, 0},
		{"empty", nil, nil, true, map[string]bool{"a": false}, 0},
		{"one left", []string{"a", "b", "c"}, []string{"a", "c"}, false, map[string]bool{"a": false, "b": true, "c": false, "zz": false}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newPicker(t, equal(tt.ups...))
			for _, id := range tt.eject {
				p.SetHealthy(id, false)
			}
			_, err := p.Pick("k")
			if tt.wantErr != errors.Is(err, ErrNoUpstream) {
				t.Errorf("Pick err = %v, want ErrNoUpstream: %v", err, tt.wantErr)
			}
			for id, want := range tt.pinned {
				if got := p.Pinned(id); got != want {
					t.Errorf("Pinned(%q) = %v, want %v", id, got, want)
				}
			}
			if got := len(p.Order("k")); got != tt.wantOrder {
				t.Errorf("len(Order) = %d, want %d", got, tt.wantOrder)
			}
		})
	}
}

// Bookkeeping: Set keeps state of surviving upstreams, Done never goes
// negative, re-admission of a healthy upstream does not restart slow start.
func TestBookkeeping(t *testing.T) {
	p, clk := newPicker(t, equal("a", "b"))
	for range 10 {
		if _, err := p.Pick("same"); err != nil {
			t.Fatal(err)
		}
	}
	before := p.Loads()
	p.Set([]Node{{"b", 1}, {"a", 1}, {"a", 5}, {"", 1}})
	if got := p.Loads(); got["a"] != before["a"] || got["b"] != before["b"] || len(got) != 2 {
		t.Fatalf("Loads after Set = %v, want %v", got, before)
	}
	p.SetHealthy("a", true) // already healthy: must not restart slow start
	p.SetHealthy("nope", false)
	for range 20 {
		p.Done("a")
		p.Done("b")
		p.Done("nope")
	}
	if got := p.Loads(); got["a"] != 0 || got["b"] != 0 {
		t.Fatalf("Loads after Done = %v", got)
	}
	// a still at full weight: equal split of first choices.
	counts := map[string]int{}
	for _, k := range keys(4000, "bk") {
		counts[first(t, p, k)]++
	}
	if counts["a"] < 1700 || counts["b"] < 1700 {
		t.Errorf("first choices %v, want ~even", counts)
	}
	p.Set(equal("b"))
	p.Done("a") // removed: ignored
	if _, ok := p.Loads()["a"]; ok {
		t.Error("removed upstream still in Loads")
	}
	clk.Advance(time.Hour)
	if id, err := p.Pick("x"); err != nil || id != "b" {
		t.Errorf("Pick = %q, %v", id, err)
	}
}

// Acquire counts pinned sessions, on draining upstreams too, and they weigh
// on the bound like picked ones.
func TestAcquire(t *testing.T) {
	p, clk := newPicker(t, equal("a", "b"))
	if p.Acquire("nope") {
		t.Fatal("Acquire counted a session on an unknown upstream")
	}
	for range 10 {
		if !p.Acquire("a") {
			t.Fatal("Acquire refused a known upstream")
		}
	}
	p.SetHealthy("b", false)
	if !p.Acquire("b") {
		t.Fatal("Acquire refused an ejected upstream")
	}
	p.SetHealthy("b", true)
	clk.Advance(window) // past b's slow start
	if got := p.Loads(); got["a"] != 10 || got["b"] != 1 {
		t.Fatalf("Loads = %v, want a=10 b=1", got)
	}
	// a is far over its bound: new sessions go to b, whatever their key.
	for _, k := range keys(5, "acq") {
		if id, err := p.Pick(k); err != nil || id != "b" {
			t.Fatalf("Pick(%s) = %q, %v; want b while a is full", k, id, err)
		}
	}
	for range 10 {
		p.Done("a")
	}
	if got := p.Loads()["a"]; got != 0 {
		t.Fatalf("load of a after Done = %d", got)
	}
}

func TestOptionsDefaults(t *testing.T) {
	tests := []struct {
		in    Options
		wantC float64
		wantS time.Duration
	}{
		{Options{}, 1.25, 30 * time.Second},
		{Options{LoadFactor: 1}, 1.25, 30 * time.Second},
		{Options{LoadFactor: math.NaN()}, 1.25, 30 * time.Second},
		{Options{LoadFactor: 2, SlowStart: -1}, 2, -1},
	}
	for _, tt := range tests {
		p := New(tt.in)
		if p.c != tt.wantC || p.slowStart != tt.wantS || p.now == nil {
			t.Errorf("New(%+v): c=%v slowStart=%v", tt.in, p.c, p.slowStart)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 30} {
		b.Run(fmt.Sprintf("upstreams=%d", n), func(b *testing.B) {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("coordinator-%02d", i)
			}
			p, _ := newPicker(b, equal(ids...))
			ks := keys(1024, "203.0.113")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				id, err := p.Pick(ks[i&1023])
				if err != nil {
					b.Fatal(err)
				}
				p.Done(id)
			}
		})
	}
}

// Concurrent use (run with -race): every Pick is matched by a Done, so all
// loads return to zero.
func TestConcurrent(t *testing.T) {
	p, _ := newPicker(t, equal("a", "b", "c"))
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 500 {
				id, err := p.Pick(fmt.Sprintf("g%d-%d", g, i%7))
				if err != nil {
					t.Error(err)
					return
				}
				p.Pinned(id)
				_ = p.Order("x")
				p.Done(id)
			}
		}()
	}
	p.SetHealthy("b", false)
	p.SetHealthy("b", true)
	for range 4 {
		<-done
	}
	for id, l := range p.Loads() {
		if l != 0 {
			t.Errorf("load[%s] = %d, want 0", id, l)
		}
	}
}
