package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestLabRepairBench measures re-replication on three machines (R = 2, default chunk size and
// repair-rate): the time from a wiped datanode's restart to full redundancy (no grace applies),
// and from a datanode's kill -9 to full redundancy with repair-grace 10s included, each with
// the bytes re-created per second. It runs only when HANODE_BENCH_REPAIR_MIB names the data
// size in MiB:
//
//	HANODE_BENCH_REPAIR_MIB=512 flock /tmp/hanode-heavy.lock go test -count=1 -v -run TestLabRepairBench ./testenv/
func TestLabRepairBench(t *testing.T) {
	mib, err := strconv.Atoi(os.Getenv("HANODE_BENCH_REPAIR_MIB"))
	if err != nil || mib <= 0 {
		t.Skip("set HANODE_BENCH_REPAIR_MIB to run the repair benchmark")
	}
	const grace = 10 * time.Second
	l, drv := startLab(t, "127.0.42", 3, "--repair-grace", grace.String())
	healthy(t, l)
	ctx := context.Background()
	mc := labS3(t, l, l.Endpoints.S3[0])
	if err := mc.MakeBucket(ctx, "bench", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	const objSize = 32 << 20
	buf := make([]byte, objSize)
	for i := range max(mib*(1<<20)/objSize, 1) {
		_, _ = rand.Read(buf)
		if _, err := mc.PutObject(ctx, "bench", fmt.Sprintf("b%04d", i), bytes.NewReader(buf), objSize, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The disk's ceiling for chunk-sized durable writes, in the same run: 8 MiB files, each
	// fsynced, as a datanode writes a chunk.
	probe := filepath.Join(l.Dir, "disk-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		t.Fatal(err)
	}
	pstart := time.Now()
	for i := range 16 {
		f, err := os.Create(filepath.Join(probe, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(buf[:8<<20]); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	t.Logf("disk: 128 MiB in fsynced 8 MiB files at %.1f MiB/s", 128/time.Since(pstart).Seconds())
	os.RemoveAll(probe)
	ec, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	on := func(m string) (n int, bytes int64) {
		for _, ch := range labChunks(t, ec) {
			if slices.Contains(ch.Replicas, m) {
				n++
				bytes += ch.Size
			}
		}
		return
	}
	wait := func(what string, not ...string) {
		t.Helper()
		waitFor(t, what, 10*time.Minute, func() bool {
			ok, _ := redundant(l, labChunks(t, ec), 2, not...)
			return ok
		})
	}
	// A wiped store: repaired from its restart, no grace.
	n, b := on("m3")
	if err := l.Signal(drv, "m3/datanode", "KILL"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := os.RemoveAll(filepath.Join(l.Machine("m3").DataDir, "datanode")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := l.Restart(ctx, drv, "m3/datanode", time.Minute); err != nil {
		t.Fatal(err)
	}
	wait("redundancy after m3's store was wiped")
	d := time.Since(start)
	t.Logf("wiped store: %d replicas, %.0f MiB re-created in %v from the restart: %.1f MiB/s", n, float64(b)/(1<<20), d.Round(100*time.Millisecond), float64(b)/(1<<20)/d.Seconds())

	// A dead datanode: repaired once repair-grace has passed.
	n, b = on("m2")
	start = time.Now()
	if err := l.Signal(drv, "m2/datanode", "KILL"); err != nil {
		t.Fatal(err)
	}
	wait("redundancy after m2's datanode died", "m2")
	d = time.Since(start)
	t.Logf("dead datanode: %d replicas, %.0f MiB re-created in %v from the kill (repair-grace %v included; %v excluded): %.1f MiB/s after the grace",
		n, float64(b)/(1<<20), d.Round(100*time.Millisecond), grace, (d - grace).Round(100*time.Millisecond), float64(b)/(1<<20)/(d-grace).Seconds())
}
