// Package repair is the active master's re-replication. It sweeps every object and part record
// page by page, judges each chunk's replicas against the datanodes' liveness, their stores'
// identities and inventories, the damaged-replica records and the drain marks, queues the
// chunks that need work by priority, and has datanodes copy replicas from each other (the
// controller never carries chunk bytes). Each new replica is recorded with a compare-and-swap
// on the record's mod revision under the master's fence; a record overwritten or deleted
// meanwhile turns the copy into garbage, never into a wrong record. Everything it keeps across
// failovers is in etcd (keyspace.Repair), so a new master resumes.
package repair

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/keyspace"
)

// ErrFenced: a newer master exists; this one's writes are refused.
var ErrFenced = errors.New("fenced: no longer the active master")

// Repairer runs the active master's repair for one term.
type Repairer struct {
	Etcd      *clientv3.Client
	Datanodes *datanode.Client
	Log       *slog.Logger
	// Grace: a datanode machine silent this long is dead (repair-grace).
	Grace time.Duration
	// GCGrace delays the deletion of replicas repair takes out of records (readers may be
	// streaming them).
	GCGrace time.Duration
	// Rate is repair-rate, bytes per second per datanode: it sizes the pulls' deadlines.
	Rate int64
	// Replicas is the default replication factor (a bucket may override it).
	Replicas int
	// Name and Epoch identify the master in the published status.
	Name  string
	Epoch int64
	// Interval is the least time between the starts of two sweeps (default 10 s).
	Interval time.Duration
	// Workers bound the transfers in flight (default 8), PerMachine those one datanode is
	// source or target of (default datanode.DefaultRepairStreams).
	Workers, PerMachine int
	// PageSize is how many records one etcd read of a sweep takes (default 256).
	PageSize int
	// QueueSize bounds the queue (default 10000).
	QueueSize int
	// WriteTimeout (write-timeout) enables the collection of unreferenced chunk files older
	// than it plus GCGrace (0: off); UnreferencedEvery spaces its runs (default 1h; each lists
	// every datanode's chunks).
	WriteTimeout, UnreferencedEvery time.Duration
	Metrics                         *Metrics
	// AutoRebalance (rebalance-auto): the master applies a rebalance plan by itself when the
	// machines differ by more than 10 points and nothing is at risk (a machine joined, say).
	AutoRebalance bool

	guard []clientv3.Cmp
	// afterPull, in tests, runs between a copy and its recording.
	afterPull func(t Task, target string)
	queue     *Queue
	cur       atomic.Pointer[view]

	kick chan struct{} // asks for a sweep now (a drain, a datanode come or gone, a queue done)

	lastUnref  time.Time            // start of the sweep the last unreferenced run followed
	candidates map[string]time.Time // unreferenced "<chunk>/<machine>" → sweep start it was first seen after

	plan     *adminapi.RebalancePlan // the applied rebalance plan, as of the round's start
	planDone time.Time               // when this term last finished a plan
	planRev  int64                   // the plan key's mod revision, as of the round's start
	// moveCands counts the chunks this round's sweep found able to go on with the plan
	// (queued now, or queued or in flight already).
	moveCands int
	reserved  map[string]int64 // per move: bytes moved plus bytes queued by this sweep

	mu       sync.Mutex
	moved    map[string]int64     // per move ("<from>><to>"): bytes moved under the current plan
	recorded map[string]time.Time // "<chunk>/<machine>" recorded by this term's repair → when
	busy     map[string]int       // transfers in flight per machine
	progress progress
}

func (r *Repairer) defaults() {
	if r.Interval <= 0 {
		r.Interval = 10 * time.Second
	}
	if r.Workers <= 0 {
		r.Workers = 8
	}
	if r.PerMachine <= 0 {
		r.PerMachine = datanode.DefaultRepairStreams
	}
	if r.PageSize <= 0 {
		r.PageSize = 256
	}
	if r.QueueSize <= 0 {
		r.QueueSize = 10000
	}
	if r.Replicas <= 0 {
		r.Replicas = 2
	}
	if r.Rate <= 0 {
		r.Rate = datanode.DefaultRepairRate
	}
	if r.Metrics == nil {
		r.Metrics = NewMetrics(nil)
	}
	if r.queue == nil {
		r.queue = NewQueue(r.QueueSize)
	}
	if r.busy == nil {
		r.busy = map[string]int{}
	}
	if r.UnreferencedEvery <= 0 {
		r.UnreferencedEvery = time.Hour
	}
	if r.recorded == nil {
		r.recorded = map[string]time.Time{}
	}
	if r.kick == nil {
		r.kick = make(chan struct{}, 1)
	}
}

// Run sweeps and repairs until ctx ends. guard is the master's fence.
func (r *Repairer) Run(ctx context.Context, guard clientv3.Cmp) {
	r.defaults()
	r.guard = []clientv3.Cmp{guard}
	var wg sync.WaitGroup
	for range r.Workers {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Go(func() { r.publish(ctx) })
	wg.Go(func() { r.watch(ctx) })
	for {
		start := time.Now()
		if err := r.Round(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("repair sweep", "err", err)
			if errors.Is(err, ErrFenced) {
				break
			}
		}
		// The next sweep: after Interval, or after a second when something changed.
		next := time.NewTimer(time.Until(start.Add(r.Interval)))
		select {
		case <-ctx.Done():
		case <-next.C:
		case <-r.kick:
			next.Stop()
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(start.Add(minSweepGap))):
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
}

// minSweepGap is the least time between the starts of two sweeps.
const minSweepGap = time.Second

// poke asks for a sweep as soon as minSweepGap allows.
func (r *Repairer) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// watch pokes a sweep when a machine starts or stops draining or is removed, when a rebalance
// plan is applied or cancelled, and when a datanode registers
// or goes away (not on the registrations' periodic refreshes).
func (r *Repairer) watch(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		drains := r.Etcd.Watch(wctx, keyspace.Drain, clientv3.WithPrefix())
		removals := r.Etcd.Watch(wctx, keyspace.RepairRemoved, clientv3.WithPrefix(), clientv3.WithFilterDelete())
		plans := r.Etcd.Watch(wctx, keyspace.RepairRebalance)
		nodes := r.Etcd.Watch(wctx, keyspace.Nodes, clientv3.WithPrefix())
		for open := true; open; {
			select {
			case <-ctx.Done():
				open = false
			case resp, ok := <-drains:
				if !ok || resp.Err() != nil {
					open = false
					break
				}
				r.poke()
			case resp, ok := <-removals:
				if !ok || resp.Err() != nil {
					open = false
					break
				}
				r.poke()
			case resp, ok := <-plans:
				if !ok || resp.Err() != nil {
					open = false
					break
				}
				r.poke()
			case resp, ok := <-nodes:
				if !ok || resp.Err() != nil {
					open = false
					break
				}
				for _, ev := range resp.Events {
					k := string(ev.Kv.Key)
					if strings.HasSuffix(k, "/"+config.RoleDatanode) && (ev.Type == clientv3.EventTypeDelete || ev.IsCreate()) {
						r.poke()
					}
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// drain runs the queued tasks one by one until the queue is empty (tests).
func (r *Repairer) drain(ctx context.Context) []error {
	var errs []error
	for {
		t, ok := r.queue.Pop()
		if !ok {
			return errs
		}
		if err := r.repair(ctx, t); err != nil {
			errs = append(errs, err)
		}
		r.queue.Done(t.Chunk.ID)
	}
}

// etcdCallTimeout bounds the etcd calls of one repair (reading the record and its damaged
// copies, recording the replica): the master's own member answers in milliseconds unless it
// has lost its quorum. The sweep's reads end with the master's term.
const etcdCallTimeout = 10 * time.Second

// txn runs cmps → ops under the fence; it reports whether cmps held.
// A txn whose answer is lost (the deadline, a leader change) returns the error: its callers
// write nothing on the strength of it (a copy it may have recorded is found by the next sweep,
// one it did not is left for the collection of unreferenced chunks).
func (r *Repairer) txn(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op, els ...clientv3.Op) (bool, *clientv3.TxnResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	resp, err := r.Etcd.Txn(ctx).If(r.guard...).Then(clientv3.OpTxn(cmps, ops, els)).Commit()
	if err != nil {
		return false, nil, err
	}
	if !resp.Succeeded {
		return false, nil, ErrFenced
	}
	inner := resp.Responses[0].GetResponseTxn()
	return inner.Succeeded, &clientv3.TxnResponse{Header: resp.Header, Succeeded: inner.Succeeded, Responses: inner.Responses}, nil
}

// work runs queued tasks until ctx ends.
func (r *Repairer) work(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		t, ok := r.queue.Pop()
		if !ok {
			select {
			case <-ctx.Done():
			case <-r.queue.Ready():
			case <-tick.C:
			}
			continue
		}
		err := r.repair(ctx, t)
		r.queue.Done(t.Chunk.ID)
		switch {
		case err == nil:
			// The queue ran dry after a repair: a sweep confirms what is left (a drain's end).
			if q, f := r.queue.Len(); q == 0 && f == 0 {
				r.poke()
			}
		case errors.Is(err, errNoSlot):
			// Every candidate is busy: back in the queue, and a pause before the next try.
			r.queue.Push(t)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		case ctx.Err() != nil:
		case errors.Is(err, ErrNoTarget):
			// Too few machines for R (every sweep finds it again): counted, logged quietly.
			r.Metrics.Failures.Inc()
			r.progress.failed()
			r.Log.Debug("no machine can take the chunk", "chunk", t.Chunk.ID, "priority", t.Priority)
		default:
			r.Metrics.Failures.Inc()
			r.progress.failed()
			r.Log.Warn("repairing a chunk", "chunk", t.Chunk.ID, "record", t.Key, "priority", t.Priority, "err", err)
		}
	}
}

func (r *Repairer) take(ms ...string) {
	r.mu.Lock()
	for _, m := range ms {
		r.busy[m]++
	}
	r.mu.Unlock()
}

func (r *Repairer) release(ms ...string) {
	r.mu.Lock()
	for _, m := range ms {
		if r.busy[m]--; r.busy[m] <= 0 {
			delete(r.busy, m)
		}
	}
	r.mu.Unlock()
}

func (r *Repairer) load(m string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[m]
}

// pullTimeout bounds one pull of size bytes: the target shares its rate with its other streams.
func (r *Repairer) pullTimeout(size int64) time.Duration {
	perStream := max(r.Rate/int64(r.PerMachine), 1)
	return 30*time.Second + time.Duration(float64(2*size)/float64(perStream)*float64(time.Second))
}
