package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/meta"
)

// labChunks reads every object record: chunk id → its chunk.
func labChunks(t *testing.T, ec *clientv3.Client) map[string]meta.Chunk {
	t.Helper()
	resp, err := ec.Get(context.Background(), meta.ObjectPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]meta.Chunk{}
	for _, kv := range resp.Kvs {
		o, err := meta.DecodeObject(kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range o.Chunks {
			out[ch.ID] = ch
		}
	}
	return out
}

// chunkOnDisk reports whether machine m's datanode holds chunk ch intact: its file starts with
// exactly the chunk's bytes (the file format puts the data first).
func chunkOnDisk(l *Lab, m string, ch meta.Chunk) bool {
	mc := l.Machine(m)
	if mc == nil {
		return false
	}
	pp := ch.ID[:2]
	f, err := os.Open(filepath.Join(mc.DataDir, "datanode", pp, ch.ID))
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if n, err := io.CopyN(h, f, ch.Size); err != nil || n != ch.Size {
		return false
	}
	return [32]byte(h.Sum(nil)) == ch.SHA256
}

// redundant reports whether every chunk has want replicas on distinct machines, each of them
// holding the chunk intact, and none on machines in not.
func redundant(l *Lab, chunks map[string]meta.Chunk, want int, not ...string) (bool, string) {
	for _, ch := range chunks {
		seen := map[string]bool{}
		for _, m := range ch.Replicas {
			if seen[m] || slices.Contains(not, m) || !chunkOnDisk(l, m, ch) {
				return false, fmt.Sprintf("chunk %s on %q (%s missing or repeated)", ch.ID, ch.Replicas, m)
			}
			seen[m] = true
		}
		if len(seen) != want {
			return false, fmt.Sprintf("chunk %s on %q", ch.ID, ch.Replicas)
		}
	}
	return true, ""
}

// TestLabRepair: on three machines with R = 2, a datanode is killed (-9), its chunk directory
// deleted and the datanode restarted: every chunk returns to two distinct machines without an
// operator, each copy intact on disk, and every object reads back byte-identical. Then the same
// on another machine, with the active master killed while the repair is under way: the new
// master finishes it. hanode repair's status says so. Last, bytes flipped in chunk files that
// no client reads: the datanodes' scrubs find every one, and repair restores R.
func TestLabRepair(t *testing.T) {
	l, drv := startLab(t, "127.0.40", 3, "--repair-grace", "3s", "--chunk-size", "65536", "--repair-rate", "1MiB", "--scrub-interval", "2s")
	healthy(t, l)
	ctx := context.Background()
	mc := labS3(t, l, l.Endpoints.S3[0])
	if err := mc.MakeBucket(ctx, "heal", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	const objects, size = 40, 256 << 10
	sums := putSummed(ctx, t, mc, "heal", "o%02d", objects, size, 1000, 500)
	ec, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	readAll := func() {
		t.Helper()
		checkSummed(ctx, t, mc, "heal", sums, "read back")
	}
	wipe := func(m string) (map[string]meta.Chunk, time.Time) {
		t.Helper()
		before := labChunks(t, ec)
		if err := l.Signal(drv, m+"/datanode", "KILL"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, m+"'s datanode to exit", 10*time.Second, func() bool {
			_, ps, _ := l.Select(m + "/datanode")
			return !drv.Alive(l, l.Machine(m), ps[0])
		})
		if err := os.RemoveAll(filepath.Join(l.Machine(m).DataDir, "datanode")); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		if err := l.Restart(ctx, drv, m+"/datanode", 60*time.Second); err != nil {
			t.Fatal(err)
		}
		return before, at
	}
	waitRedundant := func(what string, d time.Duration) {
		t.Helper()
		var why string
		waitFor(t, what+" ("+why+")", d, func() bool {
			var ok bool
			ok, why = redundant(l, labChunks(t, ec), 2)
			return ok
		})
	}

	// 1. A wiped datanode: no grace to wait for.
	before, at := wipe("m3")
	onM3 := 0
	for _, ch := range before {
		if slices.Contains(ch.Replicas, "m3") {
			onM3++
		}
	}
	waitRedundant("every chunk back on two machines after m3's store was wiped", 60*time.Second)
	t.Logf("m3 wiped: %d of %d chunks had a replica there; full redundancy %v after the restart", onM3, len(before), time.Since(at).Round(100*time.Millisecond))
	readAll()

	// 2. m2 wiped, and the active master killed while the repair runs.
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ac.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, at = wipe("m2")
	changed := func() (int, int) {
		now := labChunks(t, ec)
		moved, atRisk := 0, 0
		for id, ch := range before {
			if !slices.Contains(ch.Replicas, "m2") {
				continue
			}
			atRisk++
			if !slices.Equal(now[id].Replicas, ch.Replicas) {
				moved++
			}
		}
		return moved, atRisk
	}
	waitFor(t, "the repair of m2's replicas to be under way", 60*time.Second, func() bool {
		moved, _ := changed()
		return moved > 0
	})
	moved, atRisk := changed()
	if moved == atRisk {
		t.Fatalf("the repair finished (%d chunks) before the master could be killed mid-way", atRisk)
	}
	if err := l.Signal(drv, old.Name+"/controller", "KILL"); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the active master %s with %d of %d chunks repaired", old.Name, moved, atRisk)
	nl := newLeaderOtherThan(t, l, &adminapi.LeaderInfo{Name: old.Name, Epoch: old.Epoch})
	waitRedundant("the new master "+nl.Name+" to finish the repair", 90*time.Second)
	t.Logf("m2 wiped: %d chunks at risk; full redundancy %v after the restart, across a master failover", atRisk, time.Since(at).Round(100*time.Millisecond))
	readAll()

	// The new master's status: nothing at risk once a sweep has seen it.
	ac, err = l.AdminClient(controllerURLsExcept(l, old.Name))
	if err != nil {
		t.Fatal(err)
	}
	var st adminapi.Repair
	waitFor(t, "the repair status to show nothing at risk", 60*time.Second, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := ac.Get(cctx, "/v1/repair", &st); err != nil || st.Master != nl.Name || st.Sweep == nil {
			return false
		}
		for _, c := range st.AtRisk {
			if c.Chunks > 0 {
				return false
			}
		}
		return st.Unrecoverable == 0
	})
	if st.RepairedChunks == 0 {
		t.Errorf("the new master reports no replicas repaired: %+v", st)
	}
	regs, err := cluster.Nodes(ctx, ec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repair status: %d replicas (%d bytes) repaired by %s; %d registrations", st.RepairedChunks, st.RepairedBytes, st.Master, len(regs))

	// 3. Silent corruption: one byte flipped in eight chunk files on m1, no read of them.
	var flipped []string
	for _, ch := range labChunks(t, ec) {
		if len(flipped) == 8 {
			break
		}
		if !slices.Contains(ch.Replicas, "m1") {
			continue
		}
		p := filepath.Join(l.Machine("m1").DataDir, "datanode", ch.ID[:2], ch.ID)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, ch.Size/2); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, ch.Size/2); err != nil {
			t.Fatal(err)
		}
		f.Close()
		flipped = append(flipped, ch.ID)
	}
	at = time.Now()
	waitRedundant("the scrub to find the flipped chunks and repair to restore them", 90*time.Second)
	t.Logf("%d corrupt chunks on m1 found by scrub and repaired in %v", len(flipped), time.Since(at).Round(100*time.Millisecond))
	// The datanode's registration carries its scrub report, refreshed every 5 s.
	var corrupt int64
	waitFor(t, "m1's scrub to report the corrupt chunks", 20*time.Second, func() bool {
		var sc adminapi.Scrub
		if _, err := ac.Get(ctx, "/v1/scrub", &sc); err != nil {
			return false
		}
		for _, d := range sc.Datanodes {
			if d.Machine == "m1" {
				corrupt = d.Corrupt
			}
		}
		return corrupt >= int64(len(flipped))
	})
	readAll()
}

// TestLabRepairOverwrite: objects are overwritten and deleted while repair re-creates their
// chunks (m3's store wiped, repair at 1 MiB/s): no read returns wrong bytes, a deleted object
// stays deleted, every remaining chunk is back on two machines, and once the collectors have
// run no chunk file is left on any disk that no record references.
func TestLabRepairOverwrite(t *testing.T) {
	l, drv := startLab(t, "127.0.91", 3, "--repair-grace", "3s", "--chunk-size", "65536", "--repair-rate", "1MiB",
		"--gc-grace", "2s", "--write-timeout", "5s")
	healthy(t, l)
	ctx := context.Background()
	mc := labS3(t, l, l.Endpoints.S3[0])
	if err := mc.MakeBucket(ctx, "race", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	const objects, size = 40, 256 << 10
	sums := map[string][32]byte{}
	put := func(key string, seed uint64) {
		t.Helper()
		d := labData(size+int(seed%1000), seed)
		if _, err := mc.PutObject(ctx, "race", key, bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		sums[key] = sha256.Sum256(d)
	}
	for i := range objects {
		put(fmt.Sprintf("w%02d", i), uint64(700+i))
	}
	ec, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	before := labChunks(t, ec)
	if err := l.Signal(drv, "m3/datanode", "KILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m3's datanode to exit", 10*time.Second, func() bool {
		_, ps, _ := l.Select("m3/datanode")
		return !drv.Alive(l, l.Machine("m3"), ps[0])
	})
	if err := os.RemoveAll(filepath.Join(l.Machine("m3").DataDir, "datanode")); err != nil {
		t.Fatal(err)
	}
	if err := l.Restart(ctx, drv, "m3/datanode", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// As soon as the first replica is re-created, overwrite and delete objects whose chunks are
	// still waiting or in flight.
	waitFor(t, "the repair of m3's replicas to start", 60*time.Second, func() bool {
		now := labChunks(t, ec)
		for id, ch := range before {
			if !slices.Equal(now[id].Replicas, ch.Replicas) {
				return true
			}
		}
		return false
	})
	var overwritten, deleted int
	for i := range objects {
		key := fmt.Sprintf("w%02d", i)
		switch i % 4 {
		case 0:
			put(key, uint64(9000+i))
			overwritten++
		case 1:
			if err := mc.RemoveObject(ctx, "race", key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			delete(sums, key)
			deleted++
		}
	}
	moved := 0
	now := labChunks(t, ec)
	for id, ch := range before {
		if n, ok := now[id]; ok && !slices.Equal(n.Replicas, ch.Replicas) {
			moved++
		}
	}
	t.Logf("overwrote %d and deleted %d objects while the repair ran (%d chunks repaired by then, %d in all)", overwritten, deleted, moved, len(before))
	var why string
	waitFor(t, "every remaining chunk on two machines ("+why+")", 90*time.Second, func() bool {
		var ok bool
		ok, why = redundant(l, labChunks(t, ec), 2)
		return ok
	})
	for i := range objects {
		key := fmt.Sprintf("w%02d", i)
		got, err := readSum(ctx, mc, "race", key)
		sum, live := sums[key]
		switch {
		case !live && (err == nil || minio.ToErrorResponse(err).Code != "NoSuchKey"):
			t.Fatalf("deleted %s reads back: %v", key, err)
		case live && (err != nil || got != sum):
			t.Fatalf("%s: %v, bytes differ: %v", key, err, got != sum)
		}
	}
	// Every chunk file on every disk is referenced by a record on that machine, once the
	// garbage of the overwrites, the deletions and the repairs' stale copies is collected.
	var stray []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("unreferenced chunk files: %q", stray)
		}
	})
	waitFor(t, "no unreferenced chunk file on any disk", 120*time.Second, func() bool {
		ref := map[string]bool{}
		for _, ch := range labChunks(t, ec) {
			for _, m := range ch.Replicas {
				ref[ch.ID+"/"+m] = true
			}
		}
		stray = stray[:0]
		for _, m := range []string{"m1", "m2", "m3"} {
			for _, f := range chunkFiles(t, l, m) {
				if !ref[f+"/"+m] {
					stray = append(stray, f+"/"+m)
				}
			}
		}
		return len(stray) == 0
	})
	// How many copies the race turned into garbage (the master logs each).
	garbage := 0
	for _, m := range l.Machines {
		for _, p := range m.Processes {
			if slices.Contains(p.Roles, "controller") {
				garbage += strings.Count(tail(p.Log, 100000), "record changed during repair; the copy is garbage")
			}
		}
	}
	t.Logf("%d repaired copies found their record changed and were queued as garbage", garbage)
}
