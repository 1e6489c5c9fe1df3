package repair

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
)

var (
	// errNoSlot: every usable source or target already runs its share of transfers.
	errNoSlot = errors.New("every candidate datanode is busy")
	// ErrStale: the record no longer references the chunk (overwritten, deleted, or a part
	// whose upload completed or aborted); the copy, if one was made, is queued as garbage.
	ErrStale = errors.New("the record no longer references the chunk")
	// ErrNoTarget: no live machine can take another replica of the chunk.
	ErrNoTarget = errors.New("no machine can take another replica")
)

// maxRecordRetries bounds the compare-and-swap attempts of recording one replica: each retry
// means the record changed (another chunk of it repaired, say).
const maxRecordRetries = 16

// garbageKey is the fixed key of repair's deletion of chunk id on machine m.
func garbageKey(id, m string) string { return keyspace.S3RepairGarbage + id + "/" + m }

// current reads a record and returns its mod revision and the chunk id in it (nil: gone).
func (r *Repairer) current(ctx context.Context, key, id string) (int64, []byte, *meta.Chunk, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	resp, err := r.Etcd.Get(ctx, key)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil, nil, nil
	}
	kv := resp.Kvs[0]
	chunks, err := chunksOf(key, kv.Value)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read %s: %w", key, err)
	}
	for i := range chunks {
		if chunks[i].ID == id {
			return kv.ModRevision, kv.Value, &chunks[i], nil
		}
	}
	return kv.ModRevision, kv.Value, nil, nil
}

func isPart(key string) bool { return strings.HasPrefix(key, meta.PartPrefix) }

func chunksOf(key string, val []byte) ([]meta.Chunk, error) {
	if isPart(key) {
		p, err := meta.DecodePart(val)
		if err != nil {
			return nil, err
		}
		return p.Chunks, nil
	}
	o, err := meta.DecodeObject(val)
	if err != nil {
		return nil, err
	}
	return o.Chunks, nil
}

// withReplicas re-encodes a record with chunk id's replicas set to reps.
func withReplicas(key string, val []byte, id string, reps []string) ([]byte, error) {
	set := func(cs []meta.Chunk) {
		for i := range cs {
			if cs[i].ID == id {
				cs[i].Replicas = reps
			}
		}
	}
	if isPart(key) {
		p, err := meta.DecodePart(val)
		if err != nil {
			return nil, err
		}
		set(p.Chunks)
		return meta.EncodePart(p), nil
	}
	o, err := meta.DecodeObject(val)
	if err != nil {
		return nil, err
	}
	set(o.Chunks)
	return meta.EncodeObject(o), nil
}

// badOf reads which machines hold a copy of chunk id recorded damaged.
func (r *Repairer) badOf(ctx context.Context, id string) (map[string]bool, error) {
	p := meta.BadPrefix + id + "/"
	ctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	resp, err := r.Etcd.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("read damaged copies of chunk %s: %w", id, err)
	}
	out := map[string]bool{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key[len(p):])] = true
	}
	return out, nil
}

// repair carries out one task: it judges the chunk again on its current record, picks a
// target and a source, has the target pull the chunk, and records the new replica.
func (r *Repairer) repair(ctx context.Context, t Task) error {
	v := r.cur.Load()
	if v == nil {
		return errNoSlot
	}
	_, _, ch, err := r.current(ctx, t.Key, t.Chunk.ID)
	if err != nil {
		return err
	}
	if ch == nil {
		return nil // overwritten or deleted since the sweep: nothing to do
	}
	bad, err := r.badOf(ctx, ch.ID)
	if err != nil {
		return err
	}
	lost := func(m string) bool { return slices.Contains(t.Lost, m) }
	vd := v.judge(*ch, t.Want, lost, func(m string) bool { return bad[m] })
	if (!vd.work && t.Move == nil) || len(vd.readable) == 0 {
		return nil // healed meanwhile, or nothing left to copy from
	}
	pending, err := r.pendingGarbage(ctx, ch.ID)
	if err != nil {
		return err
	}
	var target string
	if mv := t.Move; mv != nil {
		// A rebalance move: to its machine only, while that still makes sense.
		_, live := v.live[mv.To]
		if vd.work || !r.inPlan(t.Plan) || !slices.Contains(vd.readable, mv.From) || slices.Contains(ch.Replicas, mv.To) || !live || v.draining[mv.To] || bad[mv.To] || pending[mv.To] {
			return nil
		}
		if r.load(mv.To) >= r.PerMachine {
			return errNoSlot
		}
		target = mv.To
	} else if target, err = r.pickTarget(v, ch, bad, pending, lost, vd.readable); err != nil {
		return err
	} else if vd.priority == Misplaced && slices.ContainsFunc(vd.readable, func(m string) bool { return v.zoneOf(m) == v.zoneOf(target) }) {
		return nil // no machine of a new zone free to take it now: a later sweep tries again
	}
	sources := r.pickSources(v, vd.readable)
	if len(sources) == 0 {
		return errNoSlot
	}
	r.take(target)
	defer r.release(target)
	sha := hex.EncodeToString(ch.SHA256[:])
	var pulled bool
	var lastErr error
	for _, src := range sources {
		r.take(src)
		_, err := r.Datanodes.Pull(ctx, v.live[target].Address, ch.ID, v.live[src].Address, ch.Size, sha, r.pullTimeout(ch.Size))
		r.release(src)
		if err == nil {
			pulled = true
			break
		}
		lastErr = err
		if errors.Is(err, datanode.ErrBusy) {
			return errNoSlot
		}
		if !errors.Is(err, datanode.ErrSource) {
			break
		}
	}
	if !pulled {
		return fmt.Errorf("copy chunk %s to %s: %w", ch.ID, target, lastErr)
	}
	if r.afterPull != nil {
		r.afterPull(t, target)
	}
	if err := r.record(ctx, t, target, lost); err != nil {
		if errors.Is(err, ErrStale) {
			return nil // the record moved on: nothing to repair
		}
		return err
	}
	r.Metrics.Chunks.Inc()
	r.Metrics.Bytes.Add(float64(ch.Size))
	r.progress.repaired(ch.Size)
	r.Log.Debug("replica re-created", "chunk", ch.ID, "on", target, "from", sources[0], "priority", t.Priority)
	return nil
}

// pickTarget chooses a live, undrained machine that holds no copy of the chunk, none recorded
// damaged and no pending deletion of it: first one in a zone the readable copies do not use,
// then the least busy, then the one with the most free space.
func (r *Repairer) pickTarget(v *view, ch *meta.Chunk, bad, pending map[string]bool, lost func(string) bool, readable []string) (string, error) {
	zones := map[string]bool{}
	for _, m := range readable {
		zones[v.zoneOf(m)] = true
	}
	var cands []string
	for m := range v.live {
		// A machine whose store lost its copy may take it again; one holding any other copy,
		// a damaged one or one due for deletion may not.
		if v.draining[m] || (slices.Contains(ch.Replicas, m) && !lost(m)) || bad[m] || pending[m] {
			continue
		}
		cands = append(cands, m)
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("chunk %s: %w", ch.ID, ErrNoTarget)
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := v.live[cands[i]], v.live[cands[j]]
		if za, zb := zones[v.zoneOf(a.Machine)], zones[v.zoneOf(b.Machine)]; za != zb {
			return !za
		}
		if la, lb := r.load(a.Machine), r.load(b.Machine); la != lb {
			return la < lb
		}
		if a.Free != b.Free {
			return a.Free > b.Free
		}
		return a.Machine < b.Machine
	})
	if r.load(cands[0]) >= r.PerMachine {
		return "", errNoSlot
	}
	return cands[0], nil
}

// pickSources orders the readable copies: undrained machines first, then the least busy;
// machines at their share of transfers are left out.
func (r *Repairer) pickSources(v *view, readable []string) []string {
	var out []string
	for _, m := range readable {
		if r.load(m) < r.PerMachine {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if da, db := v.draining[out[i]], v.draining[out[j]]; da != db {
			return !da
		}
		return r.load(out[i]) < r.load(out[j])
	})
	return out
}

// record adds target to chunk's replicas in its record, with a compare-and-swap on the
// record's mod revision under the master's fence, in the transaction that also takes out the
// replicas being replaced (queued for deletion under repair's fixed garbage keys) and deletes
// their damaged-replica records. It fails without writing when a deletion of the chunk on the
// target is pending. A record that no longer references the chunk gets no replica: the copy on
// the target is queued as garbage (object records: their chunk ids are never referenced again)
// or left for the collection of unreferenced chunks (part records: a completed upload's
// object record references the part's chunks, possibly on this very machine later).
func (r *Repairer) record(ctx context.Context, t Task, target string, lost func(string) bool) error {
	id := t.Chunk.ID
	for range maxRecordRetries {
		v := r.cur.Load()
		rev, val, ch, err := r.current(ctx, t.Key, id)
		if err != nil {
			return err
		}
		if ch == nil {
			if isPart(t.Key) {
				return fmt.Errorf("chunk %s on %s: %w (part record; copy left for the unreferenced-chunk collection)", id, target, ErrStale)
			}
			g := &meta.Garbage{After: time.Now().Add(r.GCGrace).UTC(), Chunks: []meta.Chunk{{ID: id, Size: t.Chunk.Size, SHA256: t.Chunk.SHA256, Replicas: []string{target}}}}
			if _, _, err := r.txn(ctx, nil, []clientv3.Op{clientv3.OpPut(garbageKey(id, target), string(meta.EncodeGarbage(g)))}); err != nil {
				return fmt.Errorf("queue the unused copy of chunk %s on %s: %w", id, target, err)
			}
			r.Log.Info("record changed during repair; the copy is garbage", "chunk", id, "record", t.Key, "on", target)
			return ErrStale
		}
		bad, err := r.badOf(ctx, id)
		if err != nil {
			return err
		}
		vd := v.judge(*ch, t.Want, lost, func(m string) bool { return bad[m] })
		drop := map[string]bool{}
		for _, m := range vd.replace {
			if m != target {
				drop[m] = true
			}
		}
		reps := []string{}
		for _, m := range ch.Replicas {
			if !drop[m] && !slices.Contains(reps, m) {
				reps = append(reps, m)
			}
		}
		if !slices.Contains(reps, target) {
			reps = append(reps, target)
		}
		// A rebalance move takes the replica off its source once enough others stay.
		if mv := t.Move; mv != nil && target == mv.To && len(reps)-1 >= t.Want && slices.Contains(reps, mv.From) {
			drop[mv.From] = true
			reps = slices.DeleteFunc(reps, func(x string) bool { return x == mv.From })
		}
		// A misplaced chunk's new replica replaces one that shares its zone with another.
		if t.Priority == Misplaced && len(reps)-1 >= t.Want {
			for _, m := range reps {
				if m != target && slices.ContainsFunc(reps, func(x string) bool { return x != m && v.zoneOf(x) == v.zoneOf(m) }) {
					drop[m] = true
					reps = slices.DeleteFunc(reps, func(x string) bool { return x == m })
					break
				}
			}
		}
		// A replica on a draining machine leaves once enough others stay.
		stay := 0
		for _, m := range reps {
			if !v.draining[m] {
				stay++
			}
		}
		for _, m := range slices.Clone(reps) {
			if v.draining[m] && stay >= t.Want && m != target {
				drop[m] = true
				reps = slices.DeleteFunc(reps, func(x string) bool { return x == m })
			}
		}
		nval, err := withReplicas(t.Key, val, id, reps)
		if err != nil {
			return fmt.Errorf("re-encode %s: %w", t.Key, err)
		}
		ops := []clientv3.Op{clientv3.OpPut(t.Key, string(nval))}
		after := time.Now().Add(r.GCGrace).UTC()
		for m := range drop {
			if !slices.Contains(ch.Replicas, m) {
				continue
			}
			if lost(m) && !bad[m] {
				continue // its store does not have it: nothing to delete there
			}
			g := &meta.Garbage{After: after, Chunks: []meta.Chunk{{ID: id, Size: ch.Size, SHA256: ch.SHA256, Replicas: []string{m}}}}
			ops = append(ops, clientv3.OpPut(garbageKey(id, m), string(meta.EncodeGarbage(g))))
			if bad[m] {
				ops = append(ops, clientv3.OpDelete(meta.BadPrefix+id+"/"+m))
			}
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(t.Key), "=", rev),
			clientv3.Compare(clientv3.Version(garbageKey(id, target)), "=", 0),
		}
		ok, resp, err := r.txn(ctx, cmps, ops, clientv3.OpGet(garbageKey(id, target), clientv3.WithCountOnly()))
		if err != nil {
			return fmt.Errorf("record chunk %s on %s in %s: %w", id, target, t.Key, err)
		}
		if ok {
			r.noteRecorded(id, target)
			if mv := t.Move; mv != nil && drop[mv.From] {
				r.mu.Lock()
				r.moved[moveKey(mv)] += ch.Size
				r.mu.Unlock()
			}
			for m := range drop {
				if slices.Contains(ch.Replicas, m) {
					r.progress.movedOff(m, ch.Size)
				}
			}
			return nil
		}
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return fmt.Errorf("record chunk %s on %s: a deletion of it there is pending", id, target)
		}
	}
	return fmt.Errorf("record chunk %s in %s: %w", id, t.Key, meta.ErrConflict)
}

// noteRecorded remembers that this term recorded chunk id on m (the unreferenced-chunk
// collection must not take a copy recorded after its sweep read the record). Entries older
// than two collection intervals are dropped.
func (r *Repairer) noteRecorded(id, m string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.recorded[id+"/"+m] = now
	if len(r.recorded)%1024 == 0 {
		for k, at := range r.recorded {
			if now.Sub(at) > 2*r.UnreferencedEvery+2*r.GCGrace {
				delete(r.recorded, k)
			}
		}
	}
}
