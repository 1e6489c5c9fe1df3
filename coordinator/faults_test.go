package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hanode/hanode/controller/gc"
	"github.com/hanode/hanode/meta"
)

// within runs op with a deadline, so that a data path that hangs fails the test instead of
// blocking it.
func within(t *testing.T, d time.Duration, what string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := op(ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: not done within %v", what, d)
	}
}

func getExact(ctx context.Context, mc *minio.Client, bucket, key string, want []byte) error {
	o, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return err
	}
	defer o.Close()
	got, err := io.ReadAll(o)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s/%s: %d bytes differ from the %d written", bucket, key, len(got), len(want))
	}
	return nil
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A datanode that hangs (stopped, still registered: the case before its lease expires, or a
// hung disk behind a live process) costs reads a hedging delay and writes a replacement
// replica, never a failure; it becomes suspect, new chunks avoid it, and once it answers
// again it is suspect no more.
func TestFrozenDatanode(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, etcdHost: "127.0.88.20"})
	mc := tc.minio()
	mustBucket(t, mc, "frz")
	objs := map[string][]byte{}
	for i := range 12 {
		key := fmt.Sprintf("k%d", i)
		objs[key] = randData(600<<10, uint64(100+i)) // three chunks
		within(t, 20*time.Second, "put "+key, func(ctx context.Context) error {
			_, err := mc.PutObject(ctx, "frz", key, bytes.NewReader(objs[key]), int64(len(objs[key])), minio.PutObjectOptions{})
			return err
		})
	}
	for range 3 { // every datanode gets a time-to-first-byte history
		for key, want := range objs {
			within(t, 20*time.Second, "warm-up get "+key, func(ctx context.Context) error { return getExact(ctx, mc, "frz", key, want) })
		}
	}

	tc.nodes["m2"].fz.Freeze()
	t0 := time.Now()
	for range 3 {
		for key, want := range objs {
			within(t, 20*time.Second, "get with m2 frozen "+key, func(ctx context.Context) error { return getExact(ctx, mc, "frz", key, want) })
		}
	}
	t.Logf("%d GETs of 600 KiB with m2 frozen: %v", 3*len(objs), time.Since(t0))
	waitUntil(t, 10*time.Second, "m2 to be suspect", func() bool { return tc.coord.health.isSuspect("m2") })
	if v := testutil.ToFloat64(tc.coord.health.suspect.WithLabelValues("m2")); v != 1 {
		t.Fatalf("hanode_s3_datanode_suspect{machine=m2} = %v, want 1", v)
	}
	t0 = time.Now()
	for i := range 6 {
		key := fmt.Sprintf("new%d", i)
		data := randData(600<<10, uint64(200+i))
		within(t, 20*time.Second, "put with m2 frozen "+key, func(ctx context.Context) error {
			_, err := mc.PutObject(ctx, "frz", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
			return err
		})
		for _, ch := range tc.object("frz", key).Chunks {
			if slices.Contains(ch.Replicas, "m2") {
				t.Fatalf("chunk %s placed on the frozen machine: %v", ch.ID, ch.Replicas)
			}
		}
		within(t, 20*time.Second, "get "+key, func(ctx context.Context) error { return getExact(ctx, mc, "frz", key, data) })
	}
	t.Logf("6 PUTs and GETs of 600 KiB with m2 frozen and suspect: %v", time.Since(t0))

	tc.nodes["m2"].fz.Thaw()
	waitUntil(t, 10*time.Second, "m2 to answer its probe", func() bool { return !tc.coord.health.isSuspect("m2") })
	if v := testutil.ToFloat64(tc.coord.health.suspect.WithLabelValues("m2")); v != 0 {
		t.Fatalf("hanode_s3_datanode_suspect{machine=m2} = %v after thaw, want 0", v)
	}
}

// A write that cannot reach R replicas because a datanode hangs fails cleanly (503, nothing
// visible) once the replica misses its deadline, instead of hanging.
func TestWriteFailsCleanlyWhenADatanodeHangs(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.88.21"})
	u, _ := url.Parse(tc.s3.URL)
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(tc.access, tc.secret, ""), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	mustBucket(t, mc, "hang")
	tc.nodes["m2"].fz.Freeze()
	data := randData(300<<10, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = mc.PutObject(ctx, "hang", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if s3code(err) != "ServiceUnavailable" {
		t.Fatalf("PUT with 1 of R=2 datanodes answering: %v, want ServiceUnavailable", err)
	}
	if _, err := mc.StatObject(ctx, "hang", "k", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("failed PUT became visible: %v", err)
	}
}

// With R = 3 on three machines and one refusing connections (dead, still registered), the
// others acknowledge and no machine is left to replace it: the write fails with 503 at once.
func TestWriteFailsWhenNoMachineCanReplace(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 3, etcdHost: "127.0.88.26"})
	u, _ := url.Parse(tc.s3.URL)
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(tc.access, tc.secret, ""), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	mustBucket(t, mc, "dead")
	tc.kill("m3")
	data := randData(300<<10, 2)
	within(t, 20*time.Second, "PUT with 2 of R=3 machines answering", func(ctx context.Context) error {
		_, err := mc.PutObject(ctx, "dead", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		if s3code(err) != "ServiceUnavailable" {
			return fmt.Errorf("%v, want ServiceUnavailable", err)
		}
		return nil
	})
}

// A replica that stops sending in the middle of a chunk is abandoned after its stall limit and
// the read resumes at the same byte on another replica: the client gets every byte, once.
func TestStalledStreamResumes(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, chunkSize: 4 << 20, etcdHost: "127.0.88.22"})
	mc := tc.minio()
	mustBucket(t, mc, "stl")
	data := randData(3<<20, 9)
	within(t, 20*time.Second, "put", func(ctx context.Context) error {
		_, err := mc.PutObject(ctx, "stl", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		return err
	})
	ch := tc.object("stl", "k").Chunks[0]
	first := tc.coord.readOrder(ch)[0]
	tc.nodes[first].fz.FreezeAfter(200 << 10)
	t0 := time.Now()
	within(t, 20*time.Second, "get through a stalling replica", func(ctx context.Context) error { return getExact(ctx, mc, "stl", "k", data) })
	t.Logf("3 MiB GET whose first replica stalled after 200 KiB: %v", time.Since(t0))
	if !tc.coord.health.isSuspect(first) {
		t.Fatalf("%s stalled mid-stream but is not suspect", first)
	}
	bad, err := meta.New(tc.etcd).BadReplicas(context.Background(), 10)
	if err != nil || len(bad) != 0 {
		t.Fatalf("a stalled (not damaged) replica was recorded as bad: %v %+v", err, bad)
	}
}

// Uploads whose clients stop sending are cut with RequestTimeout and hold no share of the
// write budget meanwhile: 64 of them, far more than the budget's four chunks, do not keep a
// normal PUT from completing.
func TestTricklingUploadsDoNotBlockPuts(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, memory: 1 << 20, body: 500 * time.Millisecond, etcdHost: "127.0.88.23"})
	mc := tc.minio()
	mustBucket(t, mc, "trk")
	const tricklers = 64
	type answer struct {
		status int
		body   string
		err    error
	}
	answers := make(chan answer, tricklers)
	var started sync.WaitGroup
	for i := range tricklers {
		u, err := mc.PresignedPutObject(context.Background(), "trk", fmt.Sprintf("slow%d", i), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		req, _ := http.NewRequest(http.MethodPut, u.String(), pr)
		req.ContentLength = 1 << 20
		started.Add(1)
		go func() {
			defer started.Done()
			pw.Write(make([]byte, 1000)) // returns once the transport took it; then nothing more
		}()
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{status: resp.StatusCode, body: string(b)}
		}()
	}
	started.Wait()
	data := randData(1<<20, 3)
	t0 := time.Now()
	within(t, 20*time.Second, "a normal PUT beside 64 stalled uploads", func(ctx context.Context) error {
		_, err := mc.PutObject(ctx, "trk", "normal", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		return err
	})
	t.Logf("normal 1 MiB PUT beside %d stalled uploads: %v", tricklers, time.Since(t0))
	timeout := time.After(20 * time.Second)
	for range tricklers {
		select {
		case a := <-answers:
			if a.err != nil || a.status != http.StatusBadRequest || !strings.Contains(a.body, "<Code>RequestTimeout</Code>") {
				t.Fatalf("stalled upload: %d %q %v, want 400 RequestTimeout", a.status, a.body, a.err)
			}
		case <-timeout:
			t.Fatal("stalled uploads were not cut")
		}
	}
	if _, err := mc.StatObject(context.Background(), "trk", "slow0", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("a cut upload became visible: %v", err)
	}
}

// A GET that streams for longer than the grace period of an overwrite finds the old chunks
// collected under it: it fails cleanly (cut, never short) and records no replica as missing,
// since the object no longer references them.
func TestLongGetAfterOverwriteRecordsNothingBad(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, etcdHost: "127.0.88.24"})
	mc := tc.minio()
	mustBucket(t, mc, "long")
	old := randData(16<<20, 5) // 64 chunks
	within(t, 60*time.Second, "put", func(ctx context.Context) error {
		_, err := mc.PutObject(ctx, "long", "k", bytes.NewReader(old), int64(len(old)), minio.PutObjectOptions{})
		return err
	})
	u, err := mc.PresignedGetObject(context.Background(), "long", "k", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The reader stops after its first bytes: the coordinator gets ahead of it only by what the
	// socket buffers hold (a few MiB), far from the end of the object.
	slow := &http.Client{Transport: &http.Transport{}}
	resp, err := slow.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, head); err != nil || !bytes.Equal(head, old[:1000]) {
		t.Fatalf("first bytes: %v", err)
	}
	// Overwrite; the old chunks' grace (0 here) passes; the collector deletes them.
	within(t, 60*time.Second, "overwrite", func(ctx context.Context) error {
		d := randData(300<<10, 6)
		_, err := mc.PutObject(ctx, "long", "k", bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{})
		return err
	})
	col := &gc.Collector{Etcd: tc.etcd, Meta: meta.New(tc.etcd), Datanodes: tc.coord.o.Datanodes, Log: tc.coord.log, WriteTimeout: time.Hour, GiveUp: time.Hour}
	within(t, 60*time.Second, "collect", func(ctx context.Context) error { _, err := col.Round(ctx); return err })
	rest, err := io.ReadAll(resp.Body)
	got := append(head, rest...)
	if err == nil {
		if !bytes.Equal(got, old) {
			t.Fatalf("the GET ended cleanly with %d bytes that are not the old object", len(got))
		}
		t.Fatal("the GET finished although its chunks were collected under it: the test did not exercise the case")
	}
	if !bytes.Equal(got, old[:len(got)]) {
		t.Fatalf("the cut GET's %d bytes differ from the old object", len(got))
	}
	bad, err := meta.New(tc.etcd).BadReplicas(context.Background(), 100)
	if err != nil || len(bad) != 0 {
		t.Fatalf("collected chunks recorded as damaged replicas: %v %+v", err, bad)
	}
}

// The collector's calls to a hung datanode end at their deadline: a round finishes, leaving the
// records that need that datanode for a later round, which completes them once it answers.
func TestCollectorSkipsAHungDatanode(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, etcdHost: "127.0.88.25"})
	mc := tc.minio()
	mustBucket(t, mc, "gch")
	for i := range 4 {
		d := randData(600<<10, uint64(i))
		within(t, 20*time.Second, "put", func(ctx context.Context) error {
			_, err := mc.PutObject(ctx, "gch", fmt.Sprintf("k%d", i), bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{})
			return err
		})
		within(t, 20*time.Second, "delete", func(ctx context.Context) error {
			return mc.RemoveObject(ctx, "gch", fmt.Sprintf("k%d", i), minio.RemoveObjectOptions{})
		})
	}
	tc.nodes["m2"].fz.Freeze()
	col := &gc.Collector{Etcd: tc.etcd, Meta: meta.New(tc.etcd), Datanodes: tc.coord.o.Datanodes, Log: tc.coord.log, WriteTimeout: time.Hour, GiveUp: time.Hour}
	var done int
	within(t, 30*time.Second, "a collection round with m2 hung", func(ctx context.Context) (err error) {
		done, err = col.Round(ctx)
		return err
	})
	if done == 4 {
		t.Fatal("every record collected although m2, which holds replicas, was hung")
	}
	tc.nodes["m2"].fz.Thaw()
	within(t, 30*time.Second, "a collection round after m2 answers", func(ctx context.Context) (err error) {
		n, err := col.Round(ctx)
		done += n
		return err
	})
	if done != 4 || tc.chunkCount() != 0 {
		t.Fatalf("%d of 4 records collected, %d chunks left", done, tc.chunkCount())
	}
}
