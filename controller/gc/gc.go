// Package gc is the active master's garbage collector. It deletes, from every datanode, the
// chunks of overwritten and deleted objects once their grace period has passed, and the chunks
// of writes that failed or were abandoned (their intent expired), then removes the queue
// record. Expiring intents and removing records are fenced by the master's term; the deletions
// themselves are not (a deposed master may still delete chunks of a due record, which no record
// references any more: the transaction that queued them took them out of every record).
package gc

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/meta"
)

// Collector runs collection rounds.
type Collector struct {
	Etcd      *clientv3.Client
	Meta      *meta.Store
	Datanodes *datanode.Client
	Log       *slog.Logger
	// WriteTimeout: intents untouched for this long are abandoned writes.
	WriteTimeout time.Duration
	// GiveUp: a record whose replicas stay unreachable this long past its due time is dropped
	// (the chunks leak on a machine that never came back) rather than kept for ever.
	GiveUp time.Duration

	// Metrics are where the collector counts; nil counts nowhere.
	Metrics *Metrics
}

// callTimeout bounds each datanode call of a round; a datanode that misses it is left alone
// for the rest of the round (its records stay for the next one).
const callTimeout = 10 * time.Second

// Metrics are the counters of the active master's collection loops. A controller makes one
// set and hands it to the loops of every term it leads (a registry takes a metric once).
type Metrics struct {
	ChunksDeleted  prometheus.Counter
	RecordsDone    prometheus.Counter
	UploadsExpired prometheus.Counter
	// LifecycleExpired counts what lifecycle rules removed (lifecycle.go).
	LifecycleExpired prometheus.Counter
}

// NewMetrics makes the counters and registers them with reg (nil: registered nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ChunksDeleted:  prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_gc_chunks_deleted_total", Help: "Chunk replicas deleted by the garbage collector."}),
		RecordsDone:    prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_gc_records_done_total", Help: "Garbage records fully collected."}),
		UploadsExpired: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_gc_uploads_expired_total", Help: "Abandoned multipart uploads aborted by the active master."}),
		LifecycleExpired: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_lifecycle_expired_total",
			Help: "Versions, delete markers and multipart uploads removed by bucket lifecycle rules."}),
	}
	if reg != nil {
		reg.MustRegister(m.ChunksDeleted, m.RecordsDone, m.UploadsExpired, m.LifecycleExpired)
	}
	return m
}

// Run collects every interval until ctx ends. guard is the master's fence.
func (c *Collector) Run(ctx context.Context, interval time.Duration, guard clientv3.Cmp) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := c.Round(ctx, guard); err != nil && ctx.Err() == nil {
			c.Log.Warn("garbage collection round", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round runs one collection round and returns how many records it finished.
func (c *Collector) Round(ctx context.Context, guard ...clientv3.Cmp) (int, error) {
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if ids, err := c.Meta.ExpireIntents(ctx, time.Now().Add(-c.WriteTimeout), guard...); err != nil {
		return 0, err
	} else if len(ids) > 0 {
		c.Log.Info("abandoned writes found; collecting their chunks", "writes", len(ids))
	}
	due, err := c.Meta.DueGarbage(ctx, 256)
	if err != nil {
		return 0, err
	}
	live, err := c.datanodes(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, g := range due {
		complete := c.collect(ctx, g, live)
		if ctx.Err() != nil {
			return done, ctx.Err()
		}
		if !complete && time.Since(g.After) < c.GiveUp {
			continue
		}
		if !complete {
			c.Log.Warn("dropping a garbage record whose datanodes stayed unreachable; their copies leak", "record", g.Key)
		}
		if err := c.Meta.Collected(ctx, g.Key, guard...); err != nil {
			if errors.Is(err, meta.ErrConflict) {
				return done, errors.New("fenced: no longer the active master")
			}
			return done, err
		}
		c.Metrics.RecordsDone.Inc()
		done++
	}
	return done, nil
}

// datanodes maps live datanode machines to their chunk API URLs.
func (c *Collector) datanodes(ctx context.Context) (map[string]string, error) {
	regs, err := cluster.Nodes(ctx, c.Etcd)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range regs {
		if r.Role == config.RoleDatanode {
			out[r.Machine] = r.Address
		}
	}
	return out, nil
}

// collect deletes a record's chunks; it reports whether every copy is known to be gone.
func (c *Collector) collect(ctx context.Context, g meta.GarbageEntry, live map[string]string) bool {
	complete := true
	del := func(machine, id string) {
		addr, ok := live[machine]
		if !ok {
			complete = false
			return
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := c.Datanodes.Delete(cctx, addr, id)
		cancel()
		switch {
		case err == nil:
			c.Metrics.ChunksDeleted.Inc()
		case errors.Is(err, datanode.ErrNotFound):
		default:
			complete = false
			if cctx.Err() != nil || datanode.Unreachable(err) {
				delete(live, machine) // hung or gone: not again this round
			}
			c.Log.Debug("deleting a chunk", "chunk", id, "machine", machine, "err", err)
		}
	}
	for _, ch := range g.Chunks {
		for _, m := range ch.Replicas {
			del(m, ch.ID)
		}
	}
	if g.Intent != "" {
		// A failed write's chunks are found by name on every datanode: the write may have
		// reached machines it never reported.
		prefix := g.Intent + "-"
		for m, addr := range live {
			after := prefix
			for {
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				infos, next, err := c.Datanodes.List(cctx, addr, after, 1000)
				cancel()
				if err != nil {
					complete = false
					if cctx.Err() != nil || datanode.Unreachable(err) {
						delete(live, m)
					}
					break
				}
				more := next != ""
				for _, in := range infos {
					if !strings.HasPrefix(in.ID, prefix) {
						more = false
						break
					}
					del(m, in.ID)
				}
				if !more {
					break
				}
				after = next
			}
		}
		// Machines that are down may hold some too; they are not waited for (their intent
		// covered at most this write, and a machine returning after GiveUp keeps its copies).
	}
	return complete
}
