package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hanode/hanode/datanode"
)

// Bounds of the adaptive delays of the read path.
const (
	// A read's next replica is started when the first has delivered no byte within the recent
	// p95 time to first byte of its datanode, clamped to [hedgeMin, hedgeMax] (hedgeDefault
	// until there are enough samples).
	hedgeMin     = 20 * time.Millisecond
	hedgeMax     = time.Second
	hedgeDefault = 100 * time.Millisecond
	// A stream silent for stallFactor × that p95, clamped to [stallMin, stallMax], has stalled:
	// it resumes on another replica.
	stallFactor = 8
	stallMin    = 500 * time.Millisecond
	stallMax    = 2 * time.Second
	// ttfbSamples recent times to first byte are kept per datanode; p95 needs minSamples.
	ttfbSamples = 64
	minSamples  = 8
	// Suspect datanodes are probed every probeEvery, each probe bounded by probeTimeout.
	probeEvery   = 500 * time.Millisecond
	probeTimeout = time.Second
	// A datanode that lost maxLostRaces races in a row (a read or write of it overtaken, after
	// its adaptive delay, by another replica) without answering anything meanwhile is suspect.
	maxLostRaces = 3
)

// health is the coordinator's view of how each datanode answers: the recent times to first
// byte of its reads (which set the hedging delay and the stall limit), and whether it is
// suspect. A datanode that misses a deadline, cannot be connected to, or loses maxLostRaces
// hedged races in a row becomes suspect: new chunks avoid it and reads try it last. It stops
// being suspect when it answers again: a successful call, or a probe (GET /v1/usage) every
// probeEvery.
type health struct {
	dn  *datanode.Client
	log *slog.Logger
	// addr resolves a registered datanode's address.
	addr    func(machine string) (string, bool)
	suspect *prometheus.GaugeVec

	mu    sync.Mutex
	nodes map[string]*nodeHealth // by machine; pruned of machines that left and are not suspect
}

type nodeHealth struct {
	ttfb    [ttfbSamples]time.Duration // ring
	n       int                        // samples held, up to ttfbSamples
	next    int                        // ring position of the next sample
	p95     time.Duration              // of the ring, refreshed every few samples
	suspect bool
	since   time.Time
	probing bool
	lost    int // races lost in a row
}

func newHealth(dn *datanode.Client, log *slog.Logger, addr func(string) (string, bool), reg prometheus.Registerer) *health {
	h := &health{dn: dn, log: log, addr: addr, nodes: map[string]*nodeHealth{},
		suspect: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hanode_s3_datanode_suspect",
			Help: "1 while a datanode is suspect (missed a deadline, not answered since): new chunks avoid it, reads try it last."}, []string{"machine"})}
	if reg != nil {
		reg.MustRegister(h.suspect)
	}
	return h
}

// node returns machine's entry; the caller holds mu.
func (h *health) node(machine string) *nodeHealth {
	nh := h.nodes[machine]
	if nh == nil {
		nh = &nodeHealth{}
		h.nodes[machine] = nh
	}
	return nh
}

// firstByte records how long a read of machine took to deliver its first bytes. It is an
// answer: a suspect datanode is suspect no more.
func (h *health) firstByte(machine string, d time.Duration) {
	h.mu.Lock()
	nh := h.node(machine)
	nh.ttfb[nh.next] = d
	nh.next = (nh.next + 1) % ttfbSamples
	nh.n = min(nh.n+1, ttfbSamples)
	if nh.n >= minSamples && (nh.n < ttfbSamples || nh.next%8 == 0) {
		s := slices.Clone(nh.ttfb[:nh.n])
		slices.Sort(s)
		nh.p95 = s[(len(s)*95+99)/100-1]
	}
	h.mu.Unlock()
	h.answered(machine)
}

// p95 is the recent p95 time to first byte of machine, 0 without enough samples.
func (h *health) p95(machine string) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if nh := h.nodes[machine]; nh != nil && nh.n >= minSamples {
		return nh.p95
	}
	return 0
}

// hedgeDelay is how long a read waits for machine's first bytes before starting another replica.
func (h *health) hedgeDelay(machine string) time.Duration {
	p := h.p95(machine)
	if p == 0 {
		return hedgeDefault
	}
	return min(max(p, hedgeMin), hedgeMax)
}

// stallLimit is how long a stream from machine may deliver nothing before it resumes elsewhere.
func (h *health) stallLimit(machine string) time.Duration {
	return min(max(stallFactor*h.p95(machine), stallMin), stallMax)
}

// isSuspect reports whether machine is suspect.
func (h *health) isSuspect(machine string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	nh := h.nodes[machine]
	return nh != nil && nh.suspect
}

// failed takes note of a failed call to machine: one that missed a deadline or could not
// connect makes it suspect.
func (h *health) failed(machine, op string, err error) {
	if datanode.Unreachable(err) {
		h.suspectNow(machine, op, err.Error())
	}
}

// lostRace takes note of a call to machine overtaken by another replica after waiting longer
// than its adaptive delay, and cancelled unanswered.
func (h *health) lostRace(machine, op string) {
	h.mu.Lock()
	nh := h.node(machine)
	nh.lost++
	lost := nh.lost
	h.mu.Unlock()
	if lost >= maxLostRaces {
		h.suspectNow(machine, op, fmt.Sprintf("overtaken by other replicas %d times in a row", lost))
	}
}

// suspectNow makes machine suspect (logged once per transition).
func (h *health) suspectNow(machine, op, why string) {
	h.mu.Lock()
	nh := h.node(machine)
	was := nh.suspect
	if !was {
		nh.suspect, nh.since = true, time.Now()
	}
	h.mu.Unlock()
	if !was {
		h.suspect.WithLabelValues(machine).Set(1)
		h.log.Warn("datanode is suspect: new chunks avoid it and reads try it last until it answers", "machine", machine, "op", op, "why", why)
	}
}

// answered takes note of an answer from machine: it is suspect no more.
func (h *health) answered(machine string) {
	h.mu.Lock()
	nh := h.nodes[machine]
	was := nh != nil && nh.suspect
	var since time.Time
	if nh != nil {
		nh.lost = 0
	}
	if was {
		nh.suspect, since = false, nh.since
	}
	h.mu.Unlock()
	if was {
		h.suspect.WithLabelValues(machine).Set(0)
		h.log.Info("datanode answers again; no longer suspect", "machine", machine, "suspect_for", time.Since(since).Round(time.Millisecond))
	}
}

// run probes suspect datanodes until ctx ends, and forgets datanodes that left and are not
// suspect (a datanode that left while suspect stays suspect until it answers).
func (h *health) run(ctx context.Context) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		var probe []string
		for m, nh := range h.nodes {
			_, registered := h.addr(m)
			switch {
			case !nh.suspect && !registered:
				delete(h.nodes, m)
			case nh.suspect && registered && !nh.probing:
				nh.probing = true
				probe = append(probe, m)
			}
		}
		h.mu.Unlock()
		for _, m := range probe {
			go h.probe(ctx, m)
		}
	}
}

func (h *health) probe(ctx context.Context, machine string) {
	defer func() {
		h.mu.Lock()
		if nh := h.nodes[machine]; nh != nil {
			nh.probing = false
		}
		h.mu.Unlock()
	}()
	addr, ok := h.addr(machine)
	if !ok {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := h.dn.Usage(pctx, addr); err == nil {
		h.answered(machine)
	}
}
