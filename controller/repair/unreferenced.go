package repair

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
)

// Collection of unreferenced chunk files: copies on a machine no record names for that chunk
// (a store restored from an old backup, a copy whose recording a deposed master never made, a
// coordinator's extra copy on a slow machine). A sweep adds every (chunk, machine) it reads to
// a Bloom filter; after the sweep, each live datanode's chunks older than write-timeout plus
// gc-grace that the filter does not hold are candidates. A candidate is collected only when a
// run at least gc-grace later finds it unreferenced again (a chunk moved from a part record to
// its object record between the two prefixes' streams, or replaced while readers stream it, is
// referenced or protected meanwhile), its write has no live intent (a long write), and repair
// did not record it on that machine in this term since it was first seen. It is queued under
// repair's fixed garbage key, which keeps repair from recording it there until the collector
// has deleted it.

// bloom is a Bloom filter of strings.
type bloom struct {
	bits []uint64
	k    uint64
}

// maxBloomWords caps a filter at 64 MiB; past that its false positives only spare files.
const maxBloomWords = 8 << 20

// newBloom sizes a filter for n entries at a 1 % false-positive rate.
func newBloom(n int64) *bloom {
	m := uint64(math.Ceil(float64(max(n, 1024)) * 9.6))
	words := min((m+63)/64, maxBloomWords)
	return &bloom{bits: make([]uint64, words), k: 7}
}

func (b *bloom) hashes(s string) (uint64, uint64) {
	h := fnv.New64a()
	h.Write([]byte(s))
	a := h.Sum64()
	g := fnv.New64()
	g.Write([]byte(s))
	return a, g.Sum64() | 1
}

func (b *bloom) add(s string) {
	h1, h2 := b.hashes(s)
	n := uint64(len(b.bits)) * 64
	for i := range b.k {
		p := (h1 + i*h2) % n
		b.bits[p/64] |= 1 << (p % 64)
	}
}

func (b *bloom) has(s string) bool {
	h1, h2 := b.hashes(s)
	n := uint64(len(b.bits)) * 64
	for i := range b.k {
		p := (h1 + i*h2) % n
		if b.bits[p/64]&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

// maxCandidates bounds the unreferenced files remembered between runs.
const maxCandidates = 100000

// collectUnreferenced runs after a complete sweep that began at start and filled seen.
func (r *Repairer) collectUnreferenced(ctx context.Context, v *view, seen *bloom, start time.Time) error {
	if r.WriteTimeout <= 0 {
		return nil // off
	}
	if !r.lastUnref.IsZero() && start.Sub(r.lastUnref) < r.UnreferencedEvery {
		return nil
	}
	r.lastUnref = start
	cutoff := start.Add(-(r.WriteTimeout + r.GCGrace))
	next := map[string]time.Time{}
	for m, reg := range v.live {
		if v.suspect(m) {
			continue // its store is still being checked against the records
		}
		after := ""
		for {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			infos, more, err := r.Datanodes.List(lctx, reg.Address, after, 1000)
			cancel()
			if err != nil {
				r.Log.Info("listing a datanode for unreferenced chunks; skipped this run", "machine", m, "err", err)
				break
			}
			for _, in := range infos {
				key := in.ID + "/" + m
				if in.Size < 0 || !in.Created.Before(cutoff) || seen.has(key) {
					continue
				}
				first, known := r.candidates[key]
				if !known {
					if len(next) < maxCandidates {
						next[key] = start
					}
					continue
				}
				if start.Sub(first) < r.GCGrace {
					next[key] = first
					continue
				}
				if err := r.collectOne(ctx, in.ID, in.Size, m, first); err != nil {
					return err
				}
			}
			if more == "" {
				break
			}
			after = more
		}
	}
	r.candidates = next
	return nil
}

// collectOne queues the copy of chunk id on m for deletion, unless its write is still running
// or repair recorded it there since first.
func (r *Repairer) collectOne(ctx context.Context, id string, size int64, m string, first time.Time) error {
	if i := strings.LastIndexByte(id, '-'); i > 0 {
		resp, err := r.Etcd.Get(ctx, meta.IntentPrefix+id[:i], clientv3.WithCountOnly())
		if err != nil {
			return fmt.Errorf("read the intent of chunk %s: %w", id, err)
		}
		if resp.Count > 0 {
			return nil
		}
	}
	r.mu.Lock()
	at, recorded := r.recorded[id+"/"+m]
	r.mu.Unlock()
	if recorded && !at.Before(first) {
		return nil
	}
	g := &meta.Garbage{After: time.Now().UTC(), Chunks: []meta.Chunk{{ID: id, Size: size, Replicas: []string{m}}}}
	k := garbageKey(id, m)
	ok, _, err := r.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.Version(k), "=", 0)}, []clientv3.Op{clientv3.OpPut(k, string(meta.EncodeGarbage(g)))})
	if err != nil {
		return fmt.Errorf("queue unreferenced chunk %s on %s: %w", id, m, err)
	}
	if ok {
		r.Metrics.Unreferenced.Inc()
		r.Log.Info("chunk file referenced by no record; queued for deletion", "chunk", id, "machine", m)
	}
	return nil
}
