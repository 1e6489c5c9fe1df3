package meta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
)

// fill writes n one-chunk object records under bucket/<prefix><i> directly, 100 per
// transaction: a fast way to make a big bucket for tests that only read it.
func fill(tb testing.TB, s *Store, bucket, prefix string, n int) {
	tb.Helper()
	ctx := context.Background()
	val := string(EncodeObject(sampleObject(1)))
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, clientv3.OpPut(ObjectKey(bucket, fmt.Sprintf("%s%07d", prefix, j)), val))
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

// A bucket that is not empty is refused from its first key, read from etcd's index: no write
// transaction whose range compares make etcd read every record of the bucket.
func TestDeleteBucketNotEmptyIsCheap(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, b := range []string{"objects", "uploads", "empty"} {
		if err := s.CreateBucket(ctx, Bucket{Name: b}); err != nil {
			t.Fatal(err)
		}
	}
	fill(t, s, "objects", "k", 20000)
	for i := range 3 {
		if err := s.CreateUpload(ctx, &Upload{Bucket: "uploads", Key: fmt.Sprint("u", i), ID: NewUploadID()}); err != nil {
			t.Fatal(err)
		}
	}
	k := countKV(s)
	for _, b := range []string{"objects", "uploads"} {
		k.reset()
		if err := s.DeleteBucket(ctx, b); !errors.Is(err, ErrBucketNotEmpty) {
			t.Fatalf("delete %s: %v, want ErrBucketNotEmpty", b, err)
		}
		returned, compares, gets, streams := k.snapshot()
		for _, cs := range compares {
			for _, c := range cs {
				if pc := c.GetCompare(); len(pc.RangeEnd) > 0 {
					t.Errorf("delete %s: a transaction compares the range [%q, %q): etcd reads every record in it", b, pc.Key, pc.RangeEnd)
				}
			}
		}
		for _, g := range append(gets, streams...) {
			if len(g.RangeBytes()) > 0 && !g.IsKeysOnly() {
				t.Errorf("delete %s: reads the records of [%q, %q)", b, g.KeyBytes(), g.RangeBytes())
			}
		}
		t.Logf("delete %s: etcd sent %d keys", b, returned)
		if returned >= 5000 { // the first key, and what etcd streamed ahead before the cancel reached it

			t.Errorf("delete %s: etcd sent %d keys, want far fewer than the bucket's", b, returned)
		}
	}
	if err := s.DeleteBucket(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, "empty"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("delete twice: %v", err)
	}
}

// DeleteBucket stays atomic against a concurrent PutObject: never an object left in a deleted
// bucket.
func TestDeleteBucketRacesPutObject(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for i := range 40 {
		b := fmt.Sprint("race", i)
		if err := s.CreateBucket(ctx, Bucket{Name: b}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var putErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			putErr = s.PutObject(ctx, b, "k", sampleObject(1), "", time.Minute)
		}()
		delErr := s.DeleteBucket(ctx, b)
		wg.Wait()
		resp, err := s.cli.Get(ctx, ObjectPrefix+b+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case delErr == nil:
			if putErr == nil || !errors.Is(putErr, ErrNoSuchBucket) || resp.Count != 0 {
				t.Fatalf("round %d: bucket deleted, but put: %v and %d objects left", i, putErr, resp.Count)
			}
		case errors.Is(delErr, ErrBucketNotEmpty):
			if putErr != nil || resp.Count != 1 {
				t.Fatalf("round %d: bucket kept, put: %v, %d objects", i, putErr, resp.Count)
			}
		default:
			t.Fatalf("round %d: delete: %v", i, delErr)
		}
	}
}

// BenchmarkDeleteBucketNotEmpty measures refusing to delete a bucket of 100,000 objects, and the
// keys etcd returned for it (keysread/op; the compares of a transaction read server-side and
// show in ns/op).
func BenchmarkDeleteBucketNotEmpty(b *testing.B) {
	s := New(etcdtestStart(b))
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "full"}); err != nil {
		b.Fatal(err)
	}
	fill(b, s, "full", "k", 100000)
	k := countKV(s)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.DeleteBucket(ctx, "full"); !errors.Is(err, ErrBucketNotEmpty) {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	returned, _, _, _ := k.snapshot()
	b.ReportMetric(float64(returned)/float64(b.N), "keysread/op")
}

// etcdtestStart starts the benchmarks' etcd.
func etcdtestStart(tb testing.TB) *clientv3.Client { return etcdtest.Start(tb, "127.0.85.9") }
