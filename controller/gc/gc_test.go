package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/meta"
)

// machines are real datanode stores behind their chunk API, registered in etcd as the
// datanode role registers them.
type machines map[string]*datanode.Store

func startDatanodes(t *testing.T, cli *clientv3.Client, names ...string) machines {
	t.Helper()
	ms := machines{}
	for _, name := range names {
		st, err := datanode.Open(datanode.Options{Dir: t.TempDir(), MinFreeBytes: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		srv := httptest.NewServer(datanode.Handler(st))
		t.Cleanup(srv.Close)
		reg, err := cluster.Register(context.Background(), cli, cluster.Registration{Machine: name, Role: "datanode", Address: srv.URL}, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		ms[name] = st
	}
	return ms
}

// put stores a one-byte chunk id on each of machines.
func (ms machines) put(t *testing.T, id string, on ...string) meta.Chunk {
	t.Helper()
	for _, m := range on {
		if _, err := ms[m].Put(context.Background(), id, bytes.NewReader([]byte{1}), 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	return meta.Chunk{ID: id, Size: 1, Replicas: on}
}

// where lists the machines holding chunk id.
func (ms machines) where(t *testing.T, id string) []string {
	t.Helper()
	var out []string
	for name, st := range ms {
		if _, err := st.Stat(id); err == nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func newCollector(cli *clientv3.Client, s *meta.Store) *Collector {
	return &Collector{
		Etcd: cli, Meta: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Datanodes:    &datanode.Client{HTTP: &http.Client{}, HeaderTimeout: 2 * time.Second, TransferBase: 2 * time.Second},
		WriteTimeout: time.Hour, GiveUp: time.Hour, Metrics: NewMetrics(prometheus.NewRegistry()),
	}
}

// One collection round end to end: the replaced chunks of an overwrite and the chunks of an
// abandoned write go from every datanode, live data and queued garbage not yet due stay, and a
// record whose replica is on a machine that is not there stays until GiveUp.
func TestRound(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Start(t, "127.0.89.4")
	s := meta.New(cli)
	ms := startDatanodes(t, cli, "m1", "m2", "m3")
	if err := s.CreateBucket(ctx, meta.Bucket{Name: "b"}); err != nil {
		t.Fatal(err)
	}

	// An overwrite: the first version's chunk is queued, due at once.
	v1 := ms.put(t, meta.ChunkID(meta.NewWriteID(), 0), "m1", "m2")
	v2 := ms.put(t, meta.ChunkID(meta.NewWriteID(), 0), "m2", "m3")
	for _, c := range []meta.Chunk{v1, v2} {
		if err := s.PutObject(ctx, "b", "overwritten", &meta.Object{Size: 1, Chunks: []meta.Chunk{c}}, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	// A delete whose grace period has not passed: readers may still be streaming it.
	kept := ms.put(t, meta.ChunkID(meta.NewWriteID(), 0), "m1", "m3")
	if err := s.PutObject(ctx, "b", "deleted", &meta.Object{Size: 1, Chunks: []meta.Chunk{kept}}, "", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteObject(ctx, "b", "deleted", time.Hour); err != nil {
		t.Fatal(err)
	}
	// A write abandoned two hours ago: its chunks are on machines its intent never named, one
	// datanode holding more than a page of its listing (1000).
	abandoned := meta.NewWriteID()
	in, _ := json.Marshal(meta.Intent{ID: abandoned, Bucket: "b", Key: "big", Writer: "m9", Started: time.Now().Add(-2 * time.Hour), Touched: time.Now().Add(-2 * time.Hour)})
	if _, err := cli.Put(ctx, meta.IntentPrefix+abandoned, string(in)); err != nil {
		t.Fatal(err)
	}
	for i := range 1005 {
		ms.put(t, meta.ChunkID(abandoned, i), "m1")
	}
	ms.put(t, meta.ChunkID(abandoned, 1005), "m3")
	// A write still running (its intent fresh), with a chunk stored already.
	running := meta.NewWriteID()
	if err := s.BeginWrite(ctx, meta.Intent{ID: running, Bucket: "b", Key: "running", Writer: "m1"}); err != nil {
		t.Fatal(err)
	}
	runningChunk := ms.put(t, meta.ChunkID(running, 0), "m2")
	// Garbage with a replica on m9, which is not registered: kept within GiveUp, dropped after.
	recent := ms.put(t, meta.ChunkID(meta.NewWriteID(), 0), "m1")
	recent.Replicas = append(recent.Replicas, "m9")
	old := ms.put(t, meta.ChunkID(meta.NewWriteID(), 0), "m2")
	old.Replicas = append(old.Replicas, "m9")
	for id, g := range map[string]*meta.Garbage{
		"recent": {After: time.Now().UTC(), Chunks: []meta.Chunk{recent}},
		"old":    {After: time.Now().Add(-2 * time.Hour).UTC(), Chunks: []meta.Chunk{old}},
	} {
		if _, err := cli.Put(ctx, meta.GCPrefix+id, string(meta.EncodeGarbage(g))); err != nil {
			t.Fatal(err)
		}
	}

	c := newCollector(cli, s)
	// A deposed master's round: its fence fails, so no record is removed and no intent expires.
	fence := clientv3.Compare(clientv3.Version("term"), ">", 0)
	if _, err := c.Round(ctx, fence); err == nil {
		t.Fatal("a fenced round succeeded")
	}
	if resp, _ := cli.Get(ctx, meta.IntentPrefix+abandoned); len(resp.Kvs) != 1 {
		t.Fatal("a fenced round expired an intent")
	}
	if n, err := s.GarbageCount(ctx); err != nil || n != 4 {
		t.Fatalf("after a fenced round: %d garbage records, %v; want all 4", n, err)
	}
	if _, err := cli.Put(ctx, "term", "1"); err != nil {
		t.Fatal(err)
	}
	// The abandoned write's intent expires and is collected in the same round.
	if n, err := c.Round(ctx, fence); err != nil || n != 3 {
		t.Fatalf("round: %d records done, %v; want 3", n, err)
	}

	for _, c := range []struct {
		name  string
		chunk string
		want  []string
	}{
		{"replaced version", v1.ID, nil},
		{"current version", v2.ID, []string{"m2", "m3"}},
		{"deleted within its grace", kept.ID, []string{"m1", "m3"}},
		{"abandoned write, first chunk", meta.ChunkID(abandoned, 0), nil},
		{"abandoned write, past the first page (ids sort as text)", meta.ChunkID(abandoned, 999), nil},
		{"abandoned write, chunk it never reported", meta.ChunkID(abandoned, 1005), nil},
		{"running write", runningChunk.ID, []string{"m2"}},
		{"replica on a missing machine, recent", recent.ID, nil},
		{"replica on a missing machine, past GiveUp", old.ID, nil},
	} {
		if got := ms.where(t, c.chunk); !slices.Equal(got, c.want) {
			t.Errorf("%s: on %q, want %q", c.name, got, c.want)
		}
	}
	var left []string
	resp, err := cli.Get(ctx, meta.GCPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		left = append(left, string(kv.Key[len(meta.GCPrefix):]))
	}
	// What stays queued: the delete within its grace, and the record still waiting for m9.
	if len(left) != 2 || !slices.Contains(left, "recent") {
		t.Errorf("garbage records left: %q, want the one not yet due and \"recent\"", left)
	}
	if resp, _ := cli.Get(ctx, meta.IntentPrefix+running); len(resp.Kvs) != 1 {
		t.Error("the running write's intent expired")
	}
	// v1 on 2 machines, 1006 chunks of the abandoned write, recent and old on one each.
	if got := testutil.ToFloat64(c.Metrics.ChunksDeleted); got != 2+1006+2 {
		t.Errorf("chunks deleted: %v, want %d", got, 2+1006+2)
	}
	if got := testutil.ToFloat64(c.Metrics.RecordsDone); got != 3 {
		t.Errorf("records done: %v, want 3 (the overwrite, the abandoned write, the one past GiveUp)", got)
	}
}
