package repair

import (
	"context"
	"testing"
	"time"

	"github.com/hanode/hanode/controller/gc"
	"github.com/hanode/hanode/meta"
)

// A noncurrent version's chunks are referenced: the sweep reads noncurrent versions as it reads
// current ones, so the collection of unreferenced files leaves them alone. Once the version is
// deleted, its chunks are garbage and the collector deletes them; the current version's stay.
func TestNoncurrentVersionChunks(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, "127.0.105.20", "m1", "m2")
	st := meta.New(l.cli)
	if err := st.CreateBucketWith(ctx, meta.Bucket{Name: "b"}, meta.BucketConfig{Versioning: meta.VersioningEnabled}); err != nil {
		t.Fatal(err)
	}
	old := l.object("b", "k", 1000, []string{"m1", "m2"})
	cur := l.object("b", "k", 1000, []string{"m1", "m2"})
	if old.VersionID() == cur.VersionID() || old.VersionID() == meta.NullVersion {
		t.Fatalf("versions %q and %q", old.VersionID(), cur.VersionID())
	}
	has := func(m, id string) bool { _, err := l.nodes[m].store.Stat(id); return err == nil }
	present := func(o *meta.Object) bool {
		for _, ch := range o.Chunks {
			for _, m := range ch.Replicas {
				if !has(m, ch.ID) {
					return false
				}
			}
		}
		return true
	}
	absent := func(o *meta.Object) bool {
		for _, ch := range o.Chunks {
			for _, m := range []string{"m1", "m2"} {
				if has(m, ch.ID) {
					return false
				}
			}
		}
		return true
	}

	r := l.repairer()
	r.WriteTimeout, r.GCGrace, r.UnreferencedEvery = time.Millisecond, 200*time.Millisecond, time.Millisecond
	col := &gc.Collector{Etcd: l.cli, Meta: st, Datanodes: client(), Log: r.Log, WriteTimeout: time.Hour, GiveUp: time.Hour}
	time.Sleep(r.WriteTimeout + r.GCGrace) // the files are old enough to be candidates
	// Two sightings gc-grace apart would queue an unreferenced file; these are referenced.
	for range 2 {
		if err := r.Round(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(r.GCGrace)
	}
	if err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := st.GarbageCount(ctx); err != nil || n != 0 {
		t.Fatalf("%d garbage records (%v) while every version is referenced", n, err)
	}
	if _, err := col.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if !present(old) || !present(cur) {
		t.Fatalf("a referenced version's chunks were collected: noncurrent present %v, current present %v", present(old), present(cur))
	}

	// Deleting the noncurrent version queues its chunks; the collector takes them.
	if _, err := st.DeleteVersion(ctx, "b", "k", meta.DeleteOptions{Version: old.VersionID()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !absent(old) {
		if time.Now().After(deadline) {
			t.Fatal("the deleted version's chunks were not collected")
		}
		if _, err := col.Round(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !present(cur) {
		t.Fatal("the current version's chunks went with the deleted version's")
	}
	l.verify("b", "k", 2)
}
