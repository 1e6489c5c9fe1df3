package repair

import (
	"encoding/json"
	"errors"
	"fmt"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"github.com/hanode/hanode/adminapi"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/controller/gc"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
)

// node is a real datanode store behind its chunk API (with its repair side), registered in
// etcd as the datanode role registers it.
type node struct {
	name  string
	store *datanode.Store
	srv   *httptest.Server
	reg   *cluster.Registrar
}

type lab struct {
	t     testing.TB
	cli   *clientv3.Client
	nodes map[string]*node
	zones map[string]string // machine → zone label its datanode registers (none: no label)
}

func client() *datanode.Client {
	return &datanode.Client{HTTP: &http.Client{}, HeaderTimeout: 5 * time.Second, TransferBase: 5 * time.Second}
}

func newLab(t testing.TB, host string, names ...string) *lab {
	l := &lab{t: t, cli: etcdtest.Start(t, host), nodes: map[string]*node{}}
	for _, n := range names {
		l.start(n, t.TempDir())
	}
	return l
}

// start runs a datanode for machine name on dir (a fresh dir is a wiped or replaced store).
func (l *lab) start(name, dir string) *node {
	t := l.t
	st, err := datanode.Open(datanode.Options{Dir: dir, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(datanode.NewHandler(st, datanode.NewRepair(datanode.RepairOptions{Peers: client(), Rate: 64 << 20})))
	reg, err := cluster.Register(context.Background(), l.cli, cluster.Registration{Machine: name, Role: "datanode", Address: srv.URL, Store: st.Identity(), Capacity: 64 << 10, Free: 1 << 30, Zone: l.zones[name]}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, store: st, srv: srv, reg: reg}
	t.Cleanup(func() { n.stop() })
	l.nodes[name] = n
	return n
}

func (n *node) stop() {
	n.reg.Close()
	n.srv.Close()
	n.store.Close()
}

// object writes an object of chunks (each its own random content) on the machines given.
func (l *lab) object(bucket, key string, size int, on ...[]string) *meta.Object {
	t := l.t
	w := meta.NewWriteID()
	o := &meta.Object{Modified: time.Now().UTC()}
	for i, ms := range on {
		data := bytes.Repeat([]byte{byte(i + 1), byte(len(key))}, size/2)
		ch := meta.Chunk{ID: meta.ChunkID(w, i), Size: int64(len(data)), SHA256: sha256.Sum256(data), Replicas: ms}
		for _, m := range ms {
			if _, err := l.nodes[m].store.Put(context.Background(), ch.ID, bytes.NewReader(data), ch.Size, ""); err != nil {
				t.Fatal(err)
			}
		}
		o.Chunks = append(o.Chunks, ch)
		o.Size += ch.Size
	}
	if err := meta.New(l.cli).PutObject(context.Background(), bucket, key, o, "", 0); err != nil {
		t.Fatal(err)
	}
	return o
}

func (l *lab) record(bucket, key string) *meta.Object {
	l.t.Helper()
	o, err := meta.New(l.cli).GetObject(context.Background(), bucket, key)
	if err != nil {
		l.t.Fatal(err)
	}
	return o
}

// verify checks every chunk of the object is on want distinct machines, each copy intact.
func (l *lab) verify(bucket, key string, want int) {
	t := l.t
	t.Helper()
	o := l.record(bucket, key)
	for _, ch := range o.Chunks {
		seen := map[string]bool{}
		for _, m := range ch.Replicas {
			seen[m] = true
			n := l.nodes[m]
			if n == nil {
				t.Errorf("%s/%s chunk %s: replica on unknown machine %s", bucket, key, ch.ID, m)
				continue
			}
			info, err := n.store.Stat(ch.ID)
			if err != nil || info.SHA256 != hex.EncodeToString(ch.SHA256[:]) {
				t.Errorf("%s/%s chunk %s on %s: %v %v", bucket, key, ch.ID, m, info, err)
			}
			if err := n.store.Verify(ch.ID); err != nil {
				t.Errorf("%s/%s chunk %s on %s: %v", bucket, key, ch.ID, m, err)
			}
		}
		if len(seen) != want || len(ch.Replicas) != want {
			t.Errorf("%s/%s chunk %s on %q, want %d distinct machines", bucket, key, ch.ID, ch.Replicas, want)
		}
	}
}

func (l *lab) repairer() *Repairer {
	return &Repairer{Etcd: l.cli, Datanodes: client(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Grace: time.Second, Replicas: 2, PageSize: 2}
}

func (l *lab) bucket(name string) {
	if err := meta.New(l.cli).CreateBucket(context.Background(), meta.Bucket{Name: name}); err != nil {
		l.t.Fatal(err)
	}
}

// rounds sweeps and runs the queue until every object is repaired or the deadline passes.
func (l *lab) rounds(r *Repairer, d time.Duration, done func() bool) {
	t := l.t
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if err := r.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, err := range r.drain(context.Background()) {
			t.Logf("repair: %v", err)
		}
		if done() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired within %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func onAll(o *meta.Object, want int, ok func(string) bool) bool {
	for _, ch := range o.Chunks {
		n := 0
		for _, m := range ch.Replicas {
			if ok(m) {
				n++
			}
		}
		if n != want || len(ch.Replicas) != want {
			return false
		}
	}
	return true
}

// A dead machine (silent past the grace) and a wiped store (a new identity, no grace): every
// chunk returns to two distinct live machines, copied datanode to datanode and verified, across
// more than one page of records; the replaced replicas are queued for deletion; the machine
// states say what happened.
func TestRepairDeadAndWiped(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.1", "m1", "m2", "m3", "m4")
	l.bucket("b")
	keys := []string{"a", "b", "c", "d", "e"}
	for _, k := range keys {
		l.object("b", k, 70<<10, []string{"m1", "m2"}, []string{"m3", "m4"}, []string{"m2", "m4"}, []string{"m3", "m1"})
	}
	r := l.repairer()
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if errs := r.drain(ctx); len(errs) > 0 {
		t.Fatal(errs)
	}
	if n, f := r.queue.Len(); n+f != 0 {
		t.Fatal("a healthy cluster queued repairs")
	}

	// m2 dies; m3's store is wiped (same machine, new directory, new identity).
	l.nodes["m2"].stop()
	l.nodes["m3"].stop()
	l.start("m3", t.TempDir())
	waitRegs(t, l, func(live map[string]string) bool { _, ok := live["m2"]; return !ok && live["m3"] != "" })
	// Within m2's grace only the wiped store's replicas are repaired.
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	if got := machineState(st.Machines, "m2"); got != "down" {
		t.Errorf("m2 is %q within the grace, want down", got)
	}
	time.Sleep(r.Grace)
	l.rounds(r, 20*time.Second, func() bool {
		for _, k := range keys {
			if !onAll(l.record("b", k), 2, func(m string) bool { return m != "m2" }) {
				return false
			}
		}
		return true
	})
	for _, k := range keys {
		l.verify("b", k, 2)
	}
	// A last round finds nothing at risk; m3's store is now checked.
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	st = r.Status()
	for _, c := range st.AtRisk {
		if c.Chunks != 0 {
			t.Errorf("after repair: %d chunks %s", c.Chunks, c.Priority)
		}
	}
	if got := machineState(st.Machines, "m2"); got != "dead" {
		t.Errorf("m2 is %q, want dead", got)
	}
	if got := machineState(st.Machines, "m3"); got != "live" {
		t.Errorf("m3 is %q, want live (its store checked)", got)
	}
	if st.RepairedChunks == 0 || st.Sweep == nil || st.Sweep.Records != int64(len(keys)) {
		t.Errorf("status: repaired %d, sweep %+v", st.RepairedChunks, st.Sweep)
	}
	// Every replica taken off m2 is queued for deletion there.
	resp, err := l.cli.Get(ctx, keyspace.S3RepairGarbage, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	onM2 := 0
	for _, kv := range resp.Kvs {
		if bytes.HasSuffix(kv.Key, []byte("/m2")) {
			onM2++
		}
	}
	if onM2 != 2*len(keys) {
		t.Errorf("%d deletions queued on m2, want %d (two chunks of each object were there)", onM2, 2*len(keys))
	}
	// None on m3: its wiped store has nothing to delete, and m3 may take those chunks again.
	for _, kv := range resp.Kvs {
		if bytes.HasSuffix(kv.Key, []byte("/m3")) {
			t.Errorf("deletion queued on the wiped m3: %s", kv.Key)
		}
	}
}

func machineState(ms []adminapiMachine, name string) string {
	for _, m := range ms {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func waitRegs(t *testing.T, l *lab, cond func(map[string]string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		regs, err := cluster.Nodes(context.Background(), l.cli)
		if err != nil {
			t.Fatal(err)
		}
		live := map[string]string{}
		for _, r := range regs {
			live[r.Machine] = r.Address
		}
		if cond(live) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registrations %v", live)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An object overwritten or deleted between the copy and its recording keeps its new record
// (or stays deleted): the copy is queued as garbage and the collector deletes it; a change to
// another chunk of the same record is retried and the replica recorded.
func TestRepairRecordCAS(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.2", "m1", "m2", "m3")
	l.bucket("b")
	for _, k := range []string{"overwritten", "deleted", "touched"} {
		l.object("b", k, 1000, []string{"m1", "m2"}, []string{"m1", "m2"})
	}
	l.nodes["m2"].stop()
	l.start("m2", t.TempDir()) // wiped: every chunk has one copy left, on m1

	r := l.repairer()
	s := meta.New(l.cli)
	var replacement *meta.Object
	r.afterPull = func(tk Task, target string) {
		switch tk.Key {
		case meta.ObjectKey("b", "overwritten"):
			if replacement == nil {
				replacement = l.object("b", "overwritten", 1000, []string{"m1", "m3"})
			}
		case meta.ObjectKey("b", "deleted"):
			_ = s.DeleteObject(ctx, "b", "deleted", 0)
		case meta.ObjectKey("b", "touched"):
			// Another writer changes the record without touching this chunk (as the repair
			// of its other chunk does).
			o := l.record("b", "touched")
			o.ETag = "changed-" + tk.Chunk.ID
			if _, err := l.cli.Put(ctx, tk.Key, string(meta.EncodeObject(o))); err != nil {
				t.Error(err)
			}
		}
	}
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	for _, err := range r.drain(ctx) {
		t.Errorf("repair: %v", err)
	}
	// The overwrite's record is exactly the replacement; the deleted object stays deleted.
	got := l.record("b", "overwritten")
	if !slices.EqualFunc(got.Chunks, replacement.Chunks, func(a, b meta.Chunk) bool {
		return a.ID == b.ID && slices.Equal(a.Replicas, b.Replicas)
	}) {
		t.Errorf("overwritten object's record: %+v, want the replacement %+v", got.Chunks, replacement.Chunks)
	}
	if _, err := s.GetObject(ctx, "b", "deleted"); !errorsIs(err, meta.ErrNoSuchKey) {
		t.Errorf("deleted object: %v", err)
	}
	// The touched object has both its changes and both chunks back on two machines.
	l.verify("b", "touched", 2)
	// Each copy no record took is queued as garbage, and the collector deletes it.
	col := &gc.Collector{Etcd: l.cli, Meta: s, Datanodes: client(), Log: r.Log, WriteTimeout: time.Hour, GiveUp: time.Hour}
	if _, err := col.Round(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.nodes {
		infos, err := n.store.List(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			if !referenced(t, l, in.ID, n.name) {
				t.Errorf("chunk %s on %s is referenced by no record after collection", in.ID, n.name)
			}
		}
	}
}

// referenced reports whether a record names chunk id on machine m.
func referenced(t *testing.T, l *lab, id, m string) bool {
	resp, err := l.cli.Get(context.Background(), meta.ObjectPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		o, err := meta.DecodeObject(kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range o.Chunks {
			if ch.ID == id && slices.Contains(ch.Replicas, m) {
				return true
			}
		}
	}
	return false
}

// A deposed master's repair records nothing: its fence fails.
func TestRepairFenced(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.3", "m1", "m2", "m3")
	l.bucket("b")
	l.object("b", "k", 1000, []string{"m1", "m2"})
	l.nodes["m2"].stop()
	l.start("m2", t.TempDir())
	r := l.repairer()
	if err := r.Round(ctx); err != nil { // unfenced: learns the machine states
		t.Fatal(err)
	}
	r.guard = []clientv3.Cmp{clientv3.Compare(clientv3.Version("term"), ">", 0)}
	errs := r.drain(ctx)
	if len(errs) != 1 || !errorsIs(errs[0], ErrFenced) {
		t.Fatalf("fenced repair: %v, want ErrFenced", errs)
	}
	o := l.record("b", "k")
	if !slices.Equal(o.Chunks[0].Replicas, []string{"m1", "m2"}) {
		t.Fatalf("a fenced repair changed the record: %q", o.Chunks[0].Replicas)
	}
}

type adminapiMachine = adminapi.RepairMachine

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// Run end to end, with sweeps far apart (an hour): a datanode that registers with a wiped store
// and a drain mark each start a sweep at once (the watches), the workers repair and move the
// replicas, and the published status shows the drained machine empty.
func TestRunWatchesAndDrains(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := newLab(t, "127.0.44.4", "m1", "m2", "m3", "m4")
	l.bucket("b")
	for _, k := range []string{"x", "y", "z"} {
		l.object("b", k, 1000, []string{"m1", "m2"}, []string{"m2", "m3"})
	}
	r := l.repairer()
	r.Interval = time.Hour
	done := make(chan struct{})
	go func() { r.Run(ctx, clientv3.Compare(clientv3.Version("no-such-key"), "=", 0)); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitStatus := func(what string, cond func(*adminapi.Repair) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := ReadStatus(ctx, l.cli)
			if err == nil && st != nil && cond(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v, %v", what, st, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	row := func(st *adminapi.Repair, m string) adminapi.RepairMachine {
		for _, x := range st.Machines {
			if x.Name == m {
				return x
			}
		}
		return adminapi.RepairMachine{}
	}
	waitStatus("the first sweep", func(st *adminapi.Repair) bool { return st.Sweep != nil })

	// m3's store is wiped: the new registration starts a sweep.
	l.nodes["m3"].stop()
	l.start("m3", t.TempDir())
	waitStatus("m3's replicas re-created", func(st *adminapi.Repair) bool {
		return st.RepairedChunks >= 3 && row(st, "m3").State == "live"
	})
	for _, k := range []string{"x", "y", "z"} {
		l.verify("b", k, 2)
	}

	// m2 drains: the mark starts a sweep; every replica leaves m2.
	if _, err := l.cli.Put(ctx, keyspace.Drain+"m2", "{}"); err != nil {
		t.Fatal(err)
	}
	drainStart := time.Now()
	waitStatus("m2 drained", func(st *adminapi.Repair) bool {
		m2 := row(st, "m2")
		return st.Sweep.Started.After(drainStart) && m2.State == "draining" && m2.Replicas == 0 && m2.Left == 0
	})
	for _, k := range []string{"x", "y", "z"} {
		l.verify("b", k, 2)
		for _, ch := range l.record("b", k).Chunks {
			if slices.Contains(ch.Replicas, "m2") {
				t.Errorf("%s: chunk %s still on m2: %q", k, ch.ID, ch.Replicas)
			}
		}
	}
	if time.Since(drainStart) > 10*time.Second {
		t.Errorf("the drain took %v with sweeps an hour apart: the watch did not start one", time.Since(drainStart))
	}
}

// Chunk files no record names on their machine are collected once two runs gc-grace apart
// find them so, past write-timeout plus gc-grace: a stray copy of a referenced chunk and a
// chunk of no record go; the referenced replicas, a chunk of a write still running (its intent
// live) and a copy repair recorded stay.
func TestUnreferenced(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.5", "m1", "m2", "m3")
	l.bucket("b")
	o := l.object("b", "k", 1000, []string{"m1", "m2"})
	ref := o.Chunks[0]
	put := func(id, m string) {
		if _, err := l.nodes[m].store.Put(ctx, id, bytes.NewReader([]byte("stray")), 5, ""); err != nil {
			t.Fatal(err)
		}
	}
	// A stray copy of the referenced chunk on m3 (same id, its own content does not matter).
	if _, err := l.nodes["m3"].store.Put(ctx, ref.ID, bytes.NewReader(bytes.Repeat([]byte{1, 1}, 500)), 1000, ""); err != nil {
		t.Fatal(err)
	}
	orphan := meta.ChunkID(meta.NewWriteID(), 0)
	put(orphan, "m1")
	running := meta.NewWriteID()
	if err := meta.New(l.cli).BeginWrite(ctx, meta.Intent{ID: running, Bucket: "b", Key: "long"}); err != nil {
		t.Fatal(err)
	}
	put(meta.ChunkID(running, 0), "m2")

	r := l.repairer()
	// gc-grace is long enough that two rounds fit within it on a loaded machine (the check
	// below says so when they did not).
	r.WriteTimeout, r.GCGrace, r.UnreferencedEvery = time.Millisecond, 2*time.Second, time.Millisecond
	time.Sleep(r.WriteTimeout + r.GCGrace) // the files are old enough
	first := time.Now()
	if err := r.Round(ctx); err != nil { // first run: candidates only
		t.Fatal(err)
	}
	if err := r.Round(ctx); err != nil { // within gc-grace of the first: still nothing queued
		t.Fatal(err)
	}
	if n, _ := meta.New(l.cli).GarbageCount(ctx); n != 0 {
		t.Fatalf("%d garbage records within gc-grace of the first sighting (two rounds took %v, gc-grace %v)", n, time.Since(first), r.GCGrace)
	}
	time.Sleep(r.GCGrace)
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	col := &gc.Collector{Etcd: l.cli, Meta: meta.New(l.cli), Datanodes: client(), Log: r.Log, WriteTimeout: time.Hour, GiveUp: time.Hour}
	if _, err := col.Round(ctx); err != nil {
		t.Fatal(err)
	}
	has := func(m, id string) bool { _, err := l.nodes[m].store.Stat(id); return err == nil }
	for _, c := range []struct {
		what, m, id string
		want        bool
	}{
		{"referenced replica", "m1", ref.ID, true},
		{"referenced replica", "m2", ref.ID, true},
		{"stray copy of a referenced chunk", "m3", ref.ID, false},
		{"chunk of no record", "m1", orphan, false},
		{"chunk of a running write", "m2", meta.ChunkID(running, 0), true},
	} {
		if got := has(c.m, c.id); got != c.want {
			t.Errorf("%s on %s: present %v, want %v", c.what, c.m, got, c.want)
		}
	}
	l.verify("b", "k", 2)
}

// A fourth machine joins empty: the plan moves bytes to it (feasible), apply stores it, the
// master's rounds move replicas until each move is done and delete the plan, and every machine
// ends within the threshold with every chunk on two distinct machines.
func TestRebalance(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.6", "m1", "m2", "m3", "m4")
	l.bucket("b")
	pairs := [][]string{{"m1", "m2"}, {"m2", "m3"}, {"m3", "m1"}}
	var keys []string
	for i := range 12 {
		k := fmt.Sprintf("k%02d", i)
		keys = append(keys, k)
		l.object("b", k, 2000, pairs[i%3])
	}
	r := l.repairer()
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	regs, err := cluster.Nodes(ctx, l.cli)
	if err != nil {
		t.Fatal(err)
	}
	const threshold = 5
	plan := PlanRebalance(&st, regs, nil, 2, threshold)
	if !plan.Feasible || len(plan.Moves) == 0 {
		t.Fatalf("plan: %+v", plan)
	}
	for _, mv := range plan.Moves {
		if mv.To != "m4" {
			t.Errorf("move %+v: want every move to the empty m4", mv)
		}
	}
	// A machine drained out of the plan, or too few machines, makes it infeasible.
	if p := PlanRebalance(&st, regs[:1], nil, 2, threshold); p.Feasible {
		t.Errorf("a plan with one datanode for R = 2 is feasible: %+v", p)
	}
	if err := StorePlan(ctx, l.cli, &plan); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := r.Round(ctx); err != nil {
			t.Fatal(err)
		}
		for _, err := range r.drain(ctx) {
			t.Logf("repair: %v", err)
		}
		if p, err := readPlan(ctx, l.cli); err != nil {
			t.Fatal(err)
		} else if p == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plan is not done: %+v", r.rebalanceStatus())
		}
	}
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	st = r.Status()
	after := PlanRebalance(&st, regs, nil, 2, threshold)
	for _, m := range after.Machines {
		if d := 100 * (m.Before - after.Mean); d > threshold || d < -threshold {
			t.Errorf("%s at %.1f%%, mean %.1f%%: outside %d points", m.Name, 100*m.Before, 100*after.Mean, threshold)
		}
	}
	for _, k := range keys {
		l.verify("b", k, 2)
	}
}

// A new master resumes an applied plan's counts from what the last one saved (the status
// publication saves them): it neither moves again what moved nor starts the plan over.
func TestRebalanceResumesAfterFailover(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.9", "m1", "m2", "m3", "m4")
	l.bucket("b")
	pairs := [][]string{{"m1", "m2"}, {"m2", "m3"}, {"m3", "m1"}}
	for i := range 12 {
		l.object("b", fmt.Sprintf("k%02d", i), 2000, pairs[i%3])
	}
	old := l.repairer()
	if err := old.Round(ctx); err != nil {
		t.Fatal(err)
	}
	st := old.Status()
	regs, err := cluster.Nodes(ctx, l.cli)
	if err != nil {
		t.Fatal(err)
	}
	plan := PlanRebalance(&st, regs, nil, 2, 5)
	if !plan.Feasible || len(plan.Moves) == 0 {
		t.Fatalf("plan: %+v", plan)
	}
	if err := StorePlan(ctx, l.cli, &plan); err != nil {
		t.Fatal(err)
	}
	if err := old.Round(ctx); err != nil { // queues the moves
		t.Fatal(err)
	}
	for _, err := range old.drain(ctx) {
		t.Logf("repair: %v", err)
	}
	moved := old.rebalanceStatus()
	var total int64
	for _, mv := range moved.Moves {
		total += mv.Moved
	}
	if total < plan.Bytes {
		t.Fatalf("the old master moved %d of %d bytes", total, plan.Bytes)
	}
	// What publish writes every few seconds; then the old master is gone.
	if _, _, err := old.txn(ctx, nil, old.movedOps()); err != nil {
		t.Fatal(err)
	}
	nu := l.repairer()
	if err := nu.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if q, f := nu.queue.Len(); q != 0 || f != 0 {
		t.Fatalf("the new master queued %d moves again", q+f)
	}
	if p, err := readPlan(ctx, l.cli); err != nil || p != nil {
		t.Fatalf("the new master did not finish the plan: %+v %v", p, err)
	}
	if resp, err := l.cli.Get(ctx, keyspace.RepairMoved); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the saved progress outlived the plan: %v %v", resp, err)
	}
	// Counts saved for another plan do not count for a new one.
	if _, err := l.cli.Put(ctx, keyspace.RepairMoved, `{"plan":"2001-01-01T00:00:00Z","moved":{"m1>m4":999999}}`); err != nil {
		t.Fatal(err)
	}
	plan.Created = time.Now().UTC()
	if err := StorePlan(ctx, l.cli, &plan); err != nil {
		t.Fatal(err)
	}
	if err := nu.loadPlan(ctx); err != nil {
		t.Fatal(err)
	}
	for _, mv := range nu.rebalanceStatus().Moves {
		if mv.Moved != 0 {
			t.Fatalf("a new plan starts with %+v", mv)
		}
	}
}

// node remove --force asks the master; the master, under its fence, counts the machine's
// replicas lost at once (no grace) and deletes the request. A fenced master writes nothing.
func TestRemovedThroughTheMaster(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.10", "m1", "m2", "m3")
	l.bucket("b")
	l.object("b", "k", 1000, []string{"m1", "m2"})
	r := l.repairer()
	r.Grace = time.Hour
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	l.nodes["m2"].stop()
	if err := MarkRemoved(ctx, l.cli, "m2"); err != nil {
		t.Fatal(err)
	}
	state := func() MachineState {
		resp, err := l.cli.Get(ctx, keyspace.RepairMachines+"m2")
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("m2's state: %v", err)
		}
		var st MachineState
		if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	fenced := l.repairer()
	fenced.guard = []clientv3.Cmp{clientv3.Compare(clientv3.Version("term"), ">", 0)}
	if err := fenced.Round(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("a fenced master's round: %v, want ErrFenced", err)
	}
	if st := state(); st.DownSince != nil && st.DownSince.Unix() == 0 {
		t.Fatalf("a fenced master marked m2 removed: %+v", st)
	}
	l.rounds(r, 20*time.Second, func() bool {
		return onAll(l.record("b", "k"), 2, func(m string) bool { return m == "m1" || m == "m3" })
	})
	if st := state(); st.DownSince == nil || st.DownSince.Unix() != 0 {
		t.Fatalf("m2's state after the removal: %+v", st)
	}
	if resp, err := l.cli.Get(ctx, keyspace.RepairRemoved, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("removal requests left: %v %v", resp, err)
	}
	l.verify("b", "k", 2)
}

// PlanRebalance on the sweep's counts: which machines give and take, and how much.
func TestPlanRebalance(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name      string
		used, cap map[string]int64
		threshold float64
		// want: bytes each machine gives (negative) or takes, within one MiB
		want map[string]int64
	}{
		{
			// Only the new machine is beyond the threshold: every full one gives its share.
			name:      "an empty machine of twice the capacity joins",
			used:      map[string]int64{"m1": 13 * mib, "m2": 13 * mib, "m3": 13 * mib},
			cap:       map[string]int64{"m1": 64 * mib, "m2": 64 * mib, "m3": 64 * mib, "m4": 128 * mib},
			threshold: 10,
			want:      map[string]int64{"m1": -5 * mib, "m2": -5 * mib, "m3": -5 * mib, "m4": 15 * mib},
		},
		{
			name:      "one machine over, the others within",
			used:      map[string]int64{"m1": 40 * mib, "m2": 20 * mib, "m3": 20 * mib},
			cap:       map[string]int64{"m1": 100 * mib, "m2": 100 * mib, "m3": 100 * mib},
			threshold: 10,
			want:      map[string]int64{"m1": -13 * mib, "m2": 7 * mib, "m3": 7 * mib},
		},
		{
			name:      "balanced",
			used:      map[string]int64{"m1": 20 * mib, "m2": 22 * mib, "m3": 21 * mib},
			cap:       map[string]int64{"m1": 100 * mib, "m2": 100 * mib, "m3": 100 * mib},
			threshold: 10,
			want:      map[string]int64{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &adminapi.Repair{Sweep: &adminapi.RepairSweep{Finished: time.Now()}}
			var regs []cluster.Registration
			for m, c := range tc.cap {
				st.Machines = append(st.Machines, adminapi.RepairMachine{Name: m, Bytes: tc.used[m]})
				regs = append(regs, cluster.Registration{Machine: m, Role: "datanode", Capacity: c, Free: c - tc.used[m]})
			}
			p := PlanRebalance(st, regs, nil, 2, tc.threshold)
			if !p.Feasible {
				t.Fatalf("not feasible: %v", p.Problems)
			}
			got := map[string]int64{}
			for _, mv := range p.Moves {
				got[mv.From] -= mv.Bytes
				got[mv.To] += mv.Bytes
			}
			for m := range tc.cap {
				if d := got[m] - tc.want[m]; d > mib || d < -mib {
					t.Errorf("%s: %+d bytes, want %+d (moves %+v)", m, got[m], tc.want[m], p.Moves)
				}
			}
			for _, m := range p.Machines {
				if d := 100 * (m.After - p.Mean); d > tc.threshold || d < -tc.threshold {
					t.Errorf("%s ends at %.1f%%, mean %.1f%%", m.Name, 100*m.After, 100*p.Mean)
				}
			}
		})
	}
}

// rebalance-auto: the master applies a plan by itself once nothing is at risk, carries it
// out, and applies no other once the machines are within the threshold; off, it applies none.
func TestAutoRebalance(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.11", "m1", "m2", "m3", "m4")
	l.bucket("b")
	pairs := [][]string{{"m1", "m2"}, {"m2", "m3"}, {"m3", "m1"}}
	for i := range 12 {
		l.object("b", fmt.Sprintf("k%02d", i), 2000, pairs[i%3])
	}
	off := l.repairer()
	if err := off.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := readPlan(ctx, l.cli); err != nil || p != nil {
		t.Fatalf("rebalance-auto off applied %+v %v", p, err)
	}
	r := l.repairer()
	r.AutoRebalance = true
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := readPlan(ctx, l.cli)
	if err != nil || p == nil || len(p.Moves) == 0 {
		t.Fatalf("rebalance-auto on: plan %+v %v", p, err)
	}
	plans := 1
	for range 20 {
		for _, err := range r.drain(ctx) {
			t.Logf("repair: %v", err)
		}
		if err := r.Round(ctx); err != nil {
			t.Fatal(err)
		}
		q, err := readPlan(ctx, l.cli)
		if err != nil {
			t.Fatal(err)
		}
		if q != nil && !q.Created.Equal(p.Created) {
			plans++
			p = q
		}
	}
	if q, _ := readPlan(ctx, l.cli); q != nil || plans != 1 {
		t.Fatalf("after 20 rounds: %d plans applied, one still applied: %+v", plans, q)
	}
	st := r.Status()
	if m4 := slices.IndexFunc(st.Machines, func(m adminapi.RepairMachine) bool { return m.Name == "m4" }); m4 < 0 || st.Machines[m4].Replicas == 0 {
		t.Fatalf("m4 got nothing: %+v", st.Machines)
	}
}

// Zones: a chunk whose two healthy replicas share a zone while another zone has a live machine
// is misplaced (after every other priority); repair copies it to the other zone and takes one
// of the two out. Without zone labels every machine is its own zone: nothing is misplaced.
func TestMisplacedByZone(t *testing.T) {
	ctx := context.Background()
	l := &lab{t: t, cli: etcdtest.Start(t, "127.0.44.12"), nodes: map[string]*node{}, zones: map[string]string{"m1": "a", "m2": "a", "m3": "b"}}
	for _, m := range []string{"m1", "m2", "m3"} {
		l.start(m, t.TempDir())
	}
	l.bucket("b")
	l.object("b", "same", 1000, []string{"m1", "m2"}, []string{"m1", "m2"})
	l.object("b", "spread", 1000, []string{"m1", "m3"})
	r := l.repairer()
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	for _, c := range st.AtRisk {
		want := int64(0)
		if c.Priority == "misplaced" {
			want = 2
		}
		if c.Chunks != want {
			t.Errorf("%s: %d chunks, want %d", c.Priority, c.Chunks, want)
		}
	}
	l.rounds(r, 20*time.Second, func() bool {
		o := l.record("b", "same")
		for _, ch := range o.Chunks {
			if !slices.Contains(ch.Replicas, "m3") {
				return false
			}
		}
		return true
	})
	l.verify("b", "same", 2)
	l.verify("b", "spread", 2)
	if o := l.record("b", "spread"); !slices.Equal(o.Chunks[0].Replicas, []string{"m1", "m3"}) {
		t.Errorf("a well-placed chunk moved: %q", o.Chunks[0].Replicas)
	}
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Status().AtRisk {
		if c.Chunks != 0 {
			t.Errorf("after the repair: %s %d chunks", c.Priority, c.Chunks)
		}
	}
}

// A plan no chunk can go on with (every chunk of the source is on the target already) ends
// after one sweep instead of staying applied for ever; one with chunks left stays.
func TestRebalanceStuckPlanEnds(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.44.13", "m1", "m2", "m3")
	l.bucket("b")
	for i := range 4 {
		l.object("b", fmt.Sprintf("k%d", i), 2000, []string{"m1", "m2"})
	}
	r := l.repairer()
	plan := adminapi.RebalancePlan{Created: time.Now().UTC(), Feasible: true, Moves: []adminapi.RebalanceMove{{From: "m1", To: "m2", Bytes: 4000}}}
	if err := StorePlan(ctx, l.cli, &plan); err != nil {
		t.Fatal(err)
	}
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := readPlan(ctx, l.cli); err != nil || p != nil {
		t.Fatalf("a stuck plan is still applied: %+v %v", p, err)
	}
	// A plan with work left stays.
	plan = adminapi.RebalancePlan{Created: time.Now().UTC(), Feasible: true, Moves: []adminapi.RebalanceMove{{From: "m1", To: "m3", Bytes: 4000}}}
	if err := StorePlan(ctx, l.cli, &plan); err != nil {
		t.Fatal(err)
	}
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := readPlan(ctx, l.cli); err != nil || p == nil {
		t.Fatalf("a plan with chunks to move ended: %v", err)
	}
}
