package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
)

// A sweep streams the object and part records (never the whole keyspace in memory) and judges
// them a page of PageSize records at a time: it queues the chunks that need work and counts
// what is at risk. Its memory is one page, the counters, the bad-replica records (at most
// badLimit) and the bucket records.

// badLimit bounds the damaged-replica records one round loads.
const badLimit = 10000

// badRec is a damaged-replica record.
type badRec struct {
	key     string
	rev     int64
	matched bool // a record names the replica
}

// badSet maps chunk id → machine → record.
type badSet map[string]map[string]*badRec

func (r *Repairer) loadBad(ctx context.Context) (badSet, error) {
	resp, err := r.Etcd.Get(ctx, meta.BadPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(badLimit))
	if err != nil {
		return nil, fmt.Errorf("read damaged-replica records: %w", err)
	}
	out := badSet{}
	for _, kv := range resp.Kvs {
		rest := string(kv.Key[len(meta.BadPrefix):])
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			continue
		}
		id, m := rest[:i], rest[i+1:]
		if out[id] == nil {
			out[id] = map[string]*badRec{}
		}
		out[id][m] = &badRec{key: string(kv.Key), rev: kv.ModRevision}
	}
	return out, nil
}

// counts is one sweep's tally.
type counts struct {
	started       time.Time
	finished      time.Time
	records       int64
	chunks        int64
	atRisk        [numPriorities]class
	waiting       class
	unrecoverable int64
	machines      map[string]*class // replicas recorded per machine
}

type class struct{ chunks, bytes int64 }

// verdict is a chunk's replicas judged against a view.
type verdict struct {
	readable []string // live machines whose copy is believed good
	replace  []string // replicas to replace: dead or wiped machines, damaged copies
	pending  int      // on machines down for less than the grace
	priority Priority
	work     bool
}

// judge classifies a chunk: lost names machines whose inventory lacks it, bad those whose
// copy is recorded damaged.
func (v *view) judge(ch meta.Chunk, want int, lost, bad func(m string) bool) verdict {
	var vd verdict
	seen := map[string]bool{}
	dead := false
	for _, m := range ch.Replicas {
		if seen[m] {
			continue
		}
		seen[m] = true
		_, live := v.live[m]
		switch {
		case bad(m):
			vd.replace = append(vd.replace, m)
		case live && lost(m):
			vd.replace = append(vd.replace, m)
			dead = true
		case live:
			vd.readable = append(vd.readable, m)
		case v.dead(m):
			vd.replace = append(vd.replace, m)
			dead = true
		default:
			vd.pending++
		}
	}
	if len(vd.readable) == 0 {
		return vd
	}
	need := want - len(vd.readable) - vd.pending
	switch {
	case need > 0 || len(vd.replace) > 0:
		vd.work = true
		switch {
		case len(vd.readable) <= 1 && want > 1:
			vd.priority = Critical
		case dead:
			vd.priority = UnderReplicated
		default:
			vd.priority = Damaged
		}
	case vd.pending == 0:
		stay := 0
		for _, m := range vd.readable {
			if !v.draining[m] {
				stay++
			}
		}
		switch {
		case stay < want && stay < len(vd.readable):
			vd.work, vd.priority = true, Draining
		case v.misplaced(vd.readable, want):
			vd.work, vd.priority = true, Misplaced
		}
	}
	return vd
}

// misplaced: the readable replicas (all healthy, none waiting) use fewer zones than they
// could: fewer than both the replicas wanted and the zones the live machines offer.
func (v *view) misplaced(readable []string, want int) bool {
	zs := map[string]bool{}
	for _, m := range readable {
		zs[v.zoneOf(m)] = true
	}
	return len(zs) < min(want, len(readable), v.zones)
}

// record is one decoded record of a page.
type record struct {
	key    string
	rev    int64
	want   int
	chunks []meta.Chunk
}

// Round brings the machine states up to date and sweeps every record once.
func (r *Repairer) Round(ctx context.Context) error {
	r.defaults()
	v, err := r.machines(ctx, nil)
	if err != nil {
		return err
	}
	r.cur.Store(v)
	bad, err := r.loadBad(ctx)
	if err != nil {
		return err
	}
	buckets, err := meta.New(r.Etcd).ListBuckets(ctx)
	if err != nil {
		return err
	}
	want := map[string]int{}
	for _, b := range buckets {
		if b.Replicas > 0 {
			want[b.Name] = b.Replicas
		}
	}
	if err := r.loadPlan(ctx); err != nil {
		return err
	}
	startRev, err := r.revision(ctx)
	if err != nil {
		return err
	}
	c := &counts{started: time.Now().UTC(), machines: map[string]*class{}}
	expect := int64(0)
	if last := r.lastChunks(); last > 0 {
		expect = last * 2
	}
	seen := newBloom(expect * 2) // (chunk, machine) pairs: about R per chunk
	r.progress.sweepStarted(c)
	unknown := map[string]bool{}
	checkFailed := map[string]bool{} // machines with replicas missing or not asked about
	// Noncurrent versions (v/) are records like current ones: their chunks are repaired, and
	// counted as referenced by the collection of unreferenced files.
	for _, prefix := range []string{meta.ObjectPrefix, meta.VersionPrefix, meta.PartPrefix} {
		err := r.scan(ctx, prefix, func(kvs []*mvccpb.KeyValue) {
			recs := make([]record, 0, len(kvs))
			for _, kv := range kvs {
				if rec, ok := r.decode(kv, want); ok {
					recs = append(recs, rec)
				}
			}
			r.page(ctx, v, bad, recs, c, unknown, checkFailed)
			for _, rec := range recs {
				for _, ch := range rec.chunks {
					for _, m := range ch.Replicas {
						seen.add(ch.ID + "/" + m)
					}
				}
			}
			r.progress.swept(c)
		})
		if err != nil {
			return err
		}
	}
	c.finished = time.Now().UTC()
	r.progress.sweepDone(c)
	r.Metrics.observe(c)
	// A store is checked once a sweep found every replica recorded on it present: until then
	// the ones missing are lost (and repaired), whatever the number of sweeps it takes.
	var checked []string
	for m := range v.live {
		if v.suspect(m) && !checkFailed[m] {
			checked = append(checked, m)
		}
	}
	if err := r.markChecked(ctx, v, checked); err != nil {
		return err
	}
	if len(unknown) > 0 || len(checked) > 0 {
		nv, err := r.machines(ctx, unknown)
		if err != nil {
			return err
		}
		r.cur.Store(nv)
	}
	if err := r.dropStaleBad(ctx, bad, startRev); err != nil {
		return err
	}
	if err := r.finishPlan(ctx); err != nil {
		return err
	}
	if r.AutoRebalance {
		if err := r.autoPlan(ctx, r.cur.Load(), c); err != nil {
			return err
		}
	}
	return r.collectUnreferenced(ctx, r.cur.Load(), seen, c.started)
}

// lastChunks is the chunk count of the last complete sweep (0: none yet).
func (r *Repairer) lastChunks() int64 {
	r.progress.mu.Lock()
	defer r.progress.mu.Unlock()
	if r.progress.last == nil {
		return 0
	}
	return r.progress.last.chunks
}

func (r *Repairer) revision(ctx context.Context) (int64, error) {
	resp, err := r.Etcd.Get(ctx, meta.BadPrefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read the revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// decode reads an object or part record; unreadable ones are skipped (left to an operator).
func (r *Repairer) decode(kv *mvccpb.KeyValue, want map[string]int) (record, bool) {
	k := string(kv.Key)
	rec := record{key: k, rev: kv.ModRevision, want: r.Replicas}
	rest, ok := strings.CutPrefix(k, meta.ObjectPrefix)
	if !ok {
		rest, ok = strings.CutPrefix(k, meta.VersionPrefix)
	}
	if ok {
		o, err := meta.DecodeObject(kv.Value)
		if err != nil {
			r.Log.Warn("unreadable object record; not repaired", "key", k, "err", err)
			return rec, false
		}
		if b, _, ok := strings.Cut(rest, "/"); ok && want[b] > 0 {
			rec.want = want[b]
		}
		rec.chunks = o.Chunks
		return rec, true
	}
	p, err := meta.DecodePart(kv.Value)
	if err != nil {
		r.Log.Warn("unreadable part record; not repaired", "key", k, "err", err)
		return rec, false
	}
	rec.chunks = p.Chunks
	return rec, true
}

// page judges the chunks of one page of records and queues those that need work. Replicas on
// machines whose store is unchecked are first looked up in that store's inventory, one request
// per machine for the page.
func (r *Repairer) page(ctx context.Context, v *view, bad badSet, recs []record, c *counts, unknown, checkFailed map[string]bool) {
	ask := map[string][]string{}
	for _, rec := range recs {
		for _, ch := range rec.chunks {
			for _, m := range ch.Replicas {
				if v.suspect(m) {
					ask[m] = append(ask[m], ch.ID)
				}
			}
		}
	}
	missing := map[string]map[string]bool{} // machine → chunk ids its store lacks
	for m, ids := range ask {
		have, store, err := r.Datanodes.Have(ctx, v.live[m].Address, ids)
		if err != nil || (v.states[m] != nil && store != v.states[m].Store) {
			checkFailed[m] = true // not judged this sweep; checked again by the next
			continue
		}
		missing[m] = map[string]bool{}
		for _, id := range ids {
			if !have[id] {
				missing[m][id] = true
				checkFailed[m] = true
			}
		}
	}
	for _, rec := range recs {
		c.records++
		for _, ch := range rec.chunks {
			c.chunks++
			for _, m := range ch.Replicas {
				mc := c.machines[m]
				if mc == nil {
					mc = &class{}
					c.machines[m] = mc
					if v.states[m] == nil && len(unknown) < 1000 {
						if _, live := v.live[m]; !live {
							unknown[m] = true
						}
					}
				}
				mc.chunks++
				mc.bytes += ch.Size
				if b := bad[ch.ID][m]; b != nil {
					b.matched = true
				}
			}
			lost := func(m string) bool { return missing[m][ch.ID] }
			isBad := func(m string) bool { return bad[ch.ID][m] != nil }
			vd := v.judge(ch, rec.want, lost, isBad)
			switch {
			case len(vd.readable) == 0 && vd.pending > 0:
				c.waiting.chunks++
				c.waiting.bytes += ch.Size
			case len(vd.readable) == 0:
				c.unrecoverable++
			case vd.work:
				c.atRisk[vd.priority].chunks++
				c.atRisk[vd.priority].bytes += ch.Size
				var lostOn []string
				for _, m := range vd.replace {
					if lost(m) {
						lostOn = append(lostOn, m)
					}
				}
				r.queue.Push(Task{Key: rec.key, Rev: rec.rev, Chunk: ch, Want: rec.want, Priority: vd.priority, Lost: lostOn})
			case vd.pending > 0:
				c.waiting.chunks++
				c.waiting.bytes += ch.Size
			default:
				r.queueMove(v, rec, ch, vd)
			}
		}
	}
}

// dropStaleBad deletes damaged-replica records that no record's replica matched in a sweep
// that began after they were written: their object was overwritten or deleted (its chunks
// are garbage already).
func (r *Repairer) dropStaleBad(ctx context.Context, bad badSet, before int64) error {
	for _, ms := range bad {
		for _, b := range ms {
			if b.matched || b.rev >= before {
				continue
			}
			if _, _, err := r.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(b.key), "=", b.rev)}, []clientv3.Op{clientv3.OpDelete(b.key)}); err != nil {
				return fmt.Errorf("drop stale damaged-replica record %s: %w", b.key, err)
			}
		}
	}
	return nil
}

// pendingGarbage reads which machines have a deletion of chunk id pending from repair.
func (r *Repairer) pendingGarbage(ctx context.Context, id string) (map[string]bool, error) {
	p := garbageKey(id, "")
	resp, err := r.Etcd.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("read pending deletions of chunk %s: %w", id, err)
	}
	out := map[string]bool{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key[len(p):])] = true
	}
	return out, nil
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// scanRetries bounds how often a sweep resumes a broken stream of one prefix.
const scanRetries = 5

// scan hands the records under prefix to fn in pages of PageSize, in key order. It reads through
// etcd's RangeStream (as meta's listings do): a Range with a limit would make etcd count every
// key to the end of the prefix for each page, a sweep quadratic in the records (measured: 27 s
// for 100,000 objects with paged Range reads). A stream that breaks (a leader change, a
// compaction of its revision) resumes after the last page handed out.
func (r *Repairer) scan(ctx context.Context, prefix string, fn func([]*mvccpb.KeyValue)) error {
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	page := make([]*mvccpb.KeyValue, 0, r.PageSize)
	var err error
	for range scanRetries {
		err = meta.RangeStream(ctx, r.Etcd, from, end, 0, false, func(kv *mvccpb.KeyValue) (bool, error) {
			page = append(page, kv)
			if len(page) == r.PageSize {
				fn(page)
				from = string(page[len(page)-1].Key) + "\x00"
				page = page[:0]
			}
			return true, nil
		})
		if err == nil || ctx.Err() != nil {
			break
		}
		r.Log.Info("sweep stream broke; resuming", "after", from, "err", err)
		page = page[:0] // the partial page is read again
	}
	if err != nil {
		return fmt.Errorf("sweep %s: %w", from, err)
	}
	if len(page) > 0 {
		fn(page)
	}
	return nil
}
