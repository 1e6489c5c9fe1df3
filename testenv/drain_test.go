package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// chunkFiles lists the chunk files in machine m's datanode directory.
func chunkFiles(t *testing.T, l *Lab, m string) []string {
	t.Helper()
	var out []string
	dir := filepath.Join(l.Machine(m).DataDir, "datanode")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() || len(e.Name()) != 2 {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(dir, e.Name()))
		for _, f := range files {
			if !strings.HasPrefix(f.Name(), ".") {
				out = append(out, f.Name())
			}
		}
	}
	return out
}

// TestLabDrain: `hanode node drain m3 --wait` under read load moves every replica off m3 with
// no failed read, then the collector empties m3's disk; undrain ends the drain. A stopped
// machine still holding replicas cannot be removed without --force; with it, its replicas are
// re-created on the others at once.
func TestLabDrain(t *testing.T) {
	l, drv := startLab(t, "127.0.41", 3, "--chunk-size", "65536", "--repair-grace", "1h", "--gc-grace", "2s", "--repair-rate", "4MiB")
	healthy(t, l)
	ctx := context.Background()
	mc := labS3(t, l, l.Endpoints.S3[0])
	if err := mc.MakeBucket(ctx, "drain", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	const objects, size = 30, 256 << 10
	sums := make([][32]byte, objects)
	for i := range objects {
		d := labData(size+i*777, uint64(900+i))
		sums[i] = sha256.Sum256(d)
		if _, err := mc.PutObject(ctx, "drain", fmt.Sprintf("d%02d", i), bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ec, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	hanodeCmd := func(args string) (string, error) {
		out, err := exec.Command("bash", "-c", fmt.Sprintf("source %s && %s %s", filepath.Join(l.Dir, EnvFile), binary, args)).CombinedOutput()
		return string(out), err
	}

	var reads, failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(objects)
				rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				o, err := mc.GetObject(rctx, "drain", fmt.Sprintf("d%02d", i), minio.GetObjectOptions{})
				if err == nil {
					h := sha256.New()
					_, err = io.Copy(h, o)
					o.Close()
					if err == nil && [32]byte(h.Sum(nil)) != sums[i] {
						err = fmt.Errorf("wrong bytes")
					}
				}
				cancel()
				if err != nil {
					failures.Add(1)
					t.Errorf("GET d%02d during the drain: %v", i, err)
					continue
				}
				reads.Add(1)
			}
		})
	}
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt)
	waitFor(t, "reads under way", 30*time.Second, func() bool { return reads.Load() > 20 })

	start := time.Now()
	out, err := hanodeCmd("node drain m3 --wait --every 1s --timeout 60s")
	if err != nil || !strings.Contains(out, "m3 is drained") {
		t.Fatalf("node drain m3 --wait: %v\n%s", err, out)
	}
	t.Logf("drain of m3 under read load took %v:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	r0 := reads.Load()
	waitFor(t, "reads after the drain", 30*time.Second, func() bool { return reads.Load() > r0+20 })
	halt()
	if failures.Load() > 0 {
		t.Fatalf("%d reads failed during the drain (%d succeeded)", failures.Load(), reads.Load())
	}
	chunks := labChunks(t, ec)
	if ok, why := redundant(l, chunks, 2, "m3"); !ok {
		t.Fatalf("after the drain: %s", why)
	}
	// The collector deletes the moved replicas from m3's disk once gc-grace has passed.
	waitFor(t, "m3's disk to hold no chunk", 60*time.Second, func() bool { return len(chunkFiles(t, l, "m3")) == 0 })
	if out, err := hanodeCmd("node undrain m3"); err != nil || !strings.Contains(out, "no longer draining") {
		t.Fatalf("node undrain m3: %v %s", err, out)
	}

	// m2 stops for good while holding replicas: removal is refused until --force.
	if err := l.Stop(drv, "m2", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node remove m2 to be refused for its replicas", 30*time.Second, func() bool {
		out, err = hanodeCmd("node remove m2")
		return err != nil && strings.Contains(out, "still holds")
	})
	if out, err := hanodeCmd("node remove m2 --force"); err != nil {
		t.Fatalf("node remove m2 --force: %v %s", err, out)
	}
	var why string
	waitFor(t, "m2's replicas re-created on m1 and m3 (no repair-grace after a removal)", 60*time.Second, func() bool {
		var ok bool
		ok, why = redundant(l, labChunks(t, ec), 2, "m2")
		return ok
	})
	_ = why
	for _, ch := range labChunks(t, ec) {
		if !slices.Contains(ch.Replicas, "m1") || !slices.Contains(ch.Replicas, "m3") {
			t.Fatalf("chunk %s on %q", ch.ID, ch.Replicas)
		}
	}
}
