package repair

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
)

// BenchmarkSweep times one sweep of N healthy one-chunk object records (N from
// HANODE_BENCH_SWEEP_OBJECTS, default 100000) on a real etcd, with three registered datanodes
// whose stores are checked: the steady state, where a sweep reads, decodes and judges every
// record and queues nothing.
//
//	go test -run '^$' -bench BenchmarkSweep -benchtime 3x ./controller/repair
func BenchmarkSweep(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("HANODE_BENCH_SWEEP_OBJECTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	l := newLab(b, "127.0.44.9", "m1", "m2", "m3")
	l.bucket("b")
	for m, nd := range l.nodes {
		val, _ := json.Marshal(MachineState{Store: nd.store.Identity(), Checked: true})
		if _, err := l.cli.Put(ctx, keyspace.RepairMachines+m, string(val)); err != nil {
			b.Fatal(err)
		}
	}
	machines := [][]string{{"m1", "m2"}, {"m2", "m3"}, {"m3", "m1"}}
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := l.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		key := fmt.Sprintf("dir%03d/object-%08d", i%1000, i)
		w := meta.NewWriteID()
		o := &meta.Object{Size: 1 << 20, Modified: time.Now().UTC(), ETag: w, Chunks: []meta.Chunk{{ID: meta.ChunkID(w, 0), Size: 1 << 20, SHA256: sha256.Sum256([]byte(key)), Replicas: machines[i%3]}}}
		ops = append(ops, clientv3.OpPut(meta.ObjectKey("b", key), string(meta.EncodeObject(o))))
		if len(ops) == 100 {
			flush()
		}
	}
	flush()
	r := l.repairer()
	r.PageSize = 0 // the default
	b.ResetTimer()
	for b.Loop() {
		if err := r.Round(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := r.Status()
	if st.Sweep == nil || st.Sweep.Records != int64(n) {
		b.Fatalf("sweep: %+v, want %d records", st.Sweep, n)
	}
	if q, _ := r.queue.Len(); q != 0 {
		b.Fatalf("a healthy keyspace queued %d repairs", q)
	}
	b.ReportMetric(float64(n)/(float64(b.Elapsed().Seconds())/float64(b.N)), "records/s")
}
