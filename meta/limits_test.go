package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// chunksOf returns n chunks of a write, replicated on two machines.
func chunksOf(write string, n int) []Chunk {
	out := make([]Chunk, n)
	for i := range out {
		out[i] = Chunk{ID: ChunkID(write, i), Size: 8 << 20, Replicas: []string{"machine-a", "machine-b"}}
		out[i].SHA256[0], out[i].SHA256[31] = byte(i), byte(i>>8)
	}
	return out
}

// uploadWithParts creates an upload of `parts` parts of `chunks` chunks each, and returns it
// with every chunk id it holds.
func uploadWithParts(t *testing.T, s *Store, bucket, key string, parts, chunks int) (*Upload, []string) {
	t.Helper()
	ctx := context.Background()
	u := &Upload{Bucket: bucket, Key: key, ID: NewUploadID(), Initiated: time.Now().UTC()}
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for n := 1; n <= parts; n++ {
		w := NewWriteID()
		if err := s.BeginWrite(ctx, Intent{ID: w, Bucket: bucket, Key: key}); err != nil {
			t.Fatal(err)
		}
		p := &Part{Number: n, Size: int64(chunks) << 23, ETag: "e", Modified: time.Now().UTC(), Chunks: chunksOf(w, chunks)}
		if err := s.PutPart(ctx, u, p, w, 0); err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Chunks {
			ids = append(ids, c.ID)
		}
	}
	return u, ids
}

// queued returns the chunk ids of every garbage record, and how many records there are.
func queued(t *testing.T, s *Store) ([]string, int) {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), GCPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, kv := range resp.Kvs {
		g, err := DecodeGarbage(kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range g.Chunks {
			ids = append(ids, c.ID)
		}
	}
	return ids, len(resp.Kvs)
}

func count(t *testing.T, s *Store, prefix string) int64 {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// An upload whose part records exceed etcd's request limit (8 MiB here, as the controllers
// configure) can be aborted: its parts are deleted in several transactions and every chunk is
// queued exactly once. The old code tried one transaction, which etcd refused, so the upload
// and its chunks stayed for ever.
func TestAbortUploadLargerThanOneRequest(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "big"}); err != nil {
		t.Fatal(err)
	}
	// 5 parts of 40,000 chunks: ~2.4 MB per part record, 12 MB in all.
	u, ids := uploadWithParts(t, s, "big", "k", 5, 40000)
	if err := s.AbortUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUpload(ctx, "big", "k", u.ID); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("upload after abort: %v", err)
	}
	if n := count(t, s, PartPrefix+u.ID+"/"); n != 0 {
		t.Fatalf("%d parts left after abort", n)
	}
	if n := count(t, s, Prefix+"a/"); n != 0 {
		t.Fatalf("%d abort markers left", n)
	}
	got, records := queued(t, s)
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("garbage queued %d chunk ids, the parts held %d (each must be queued exactly once)", len(got), len(ids))
	}
	t.Logf("aborted an upload of %d chunks with %d garbage records", len(ids), records)
}

// A multipart object whose record would exceed the record limit is refused with ErrTooLarge
// before anything is written: the upload and its parts stay as they were, nothing is queued,
// and the upload can then be aborted.
func TestCompleteUploadTooLarge(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	s.lim.request = 256 << 10 // records of at most ~124 KiB: ~2,000 chunks
	for _, tc := range []struct {
		name                  string
		parts, chunks, unused int
	}{
		{"record over the limit", 3, 800, 0},
		{"parts over one request", 6, 800, 3},
	} {
		u, _ := uploadWithParts(t, s, "b", tc.name, tc.parts, tc.chunks)
		g0, _ := queued(t, s)
		err := func() error {
			parts, rev, err := s.AllParts(ctx, u.ID)
			if err != nil {
				return err
			}
			o := &Object{Modified: time.Now()}
			var unused []Chunk
			for i, p := range parts {
				if i < len(parts)-tc.unused {
					o.Chunks = append(o.Chunks, p.Chunks...)
				} else {
					unused = append(unused, p.Chunks...)
				}
			}
			return s.CompleteUpload(ctx, u, o, unused, rev, 0)
		}()
		if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCommitUnknown) {
			t.Fatalf("%s: complete: %v, want ErrTooLarge (a definite refusal)", tc.name, err)
		}
		if _, err := s.GetObject(ctx, "b", tc.name); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("%s: object after a refused complete: %v", tc.name, err)
		}
		if _, err := s.GetUpload(ctx, "b", tc.name, u.ID); err != nil {
			t.Fatalf("%s: upload after a refused complete: %v", tc.name, err)
		}
		if n := count(t, s, PartPrefix+u.ID+"/"); n != int64(tc.parts) {
			t.Fatalf("%s: %d parts after a refused complete, want %d", tc.name, n, tc.parts)
		}
		if g, _ := queued(t, s); len(g) != len(g0) {
			t.Fatalf("%s: a refused complete queued %d chunks", tc.name, len(g)-len(g0))
		}
		if err := s.AbortUpload(ctx, u); err != nil {
			t.Fatalf("%s: abort: %v", tc.name, err)
		}
		if g, _ := queued(t, s); len(g)-len(g0) != tc.parts*tc.chunks {
			t.Fatalf("%s: abort queued %d chunks, want %d", tc.name, len(g)-len(g0), tc.parts*tc.chunks)
		}
	}
}

// The record limit is what etcd accepts: the largest record the store allows replaces
// another largest record in one transaction on a real etcd at the real limit, and an object
// over the limit is refused (a 512 GiB object at 8 MiB chunks fits, as the docs say).
func TestLargestRecordsReplaceEachOther(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	// A completed upload's record, which names its upload, is the largest kind.
	o := &Object{Size: 1, ETag: "0123456789abcdef0123456789abcdef-1000", Headers: map[string]string{"content-type": "application/octet-stream"}, Upload: NewUploadID()}
	lo, hi := 0, s.recordLimit()/40
	for lo < hi { // the most chunks whose record fits
		mid := (lo + hi + 1) / 2
		if o.Chunks = chunksOf("00112233445566778899aabbccddeeff", mid); len(EncodeObject(o)) <= s.recordLimit() {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	largest := func(write string) *Object {
		l := *o
		l.Chunks = chunksOf(write, lo)
		return &l
	}
	a, b := largest(NewWriteID()), largest(NewWriteID())
	if len(a.Chunks) < 512<<30/(8<<20) {
		t.Fatalf("the largest record holds %d chunks, fewer than a 512 GiB object's", len(a.Chunks))
	}
	t.Logf("largest record: %d chunks, %d bytes", len(a.Chunks), len(EncodeObject(a)))
	if err := s.PutObject(ctx, "b", "k", a, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.PutObject(ctx, "b", "k", b, "", time.Hour); err != nil {
		t.Fatalf("replacing a largest record with another: %v", err)
	}
	// And through CompleteUpload, with a part left unused.
	u, _ := uploadWithParts(t, s, "b", "k", 1, 10)
	parts, rev, err := s.AllParts(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteUpload(ctx, u, largest(NewWriteID()), parts[0].Chunks, rev, time.Hour); err != nil {
		t.Fatalf("completing a largest record over another: %v", err)
	}
	over := largest(NewWriteID())
	over.Chunks = append(over.Chunks, chunksOf(NewWriteID(), 1)...)
	if err := s.PutObject(ctx, "b", "k", over, "", time.Hour); !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("a record over the limit: %v, want ErrTooLarge", err)
	}
	// A write refused so is aborted: its intent becomes a garbage record for its chunks.
	w := NewWriteID()
	if err := s.BeginWrite(ctx, Intent{ID: w, Bucket: "b", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutObject(ctx, "b", "k", over, w, time.Hour); !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("a write over the limit: %v, want ErrTooLarge", err)
	}
	if n := count(t, s, IntentPrefix+w); n != 0 {
		t.Fatal("the refused write's intent is still there")
	}
	if n := count(t, s, GCPrefix+w); n != 1 {
		t.Fatal("the refused write's chunks are not queued")
	}
	// etcd's own refusal, for a write the store does not check, is recognisable (the S3 layer
	// answers it like ErrTooLarge).
	if _, err := s.cli.Put(ctx, "too-large", string(make([]byte, MaxRequestBytes))); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("a put over etcd's limit: %v, want rpctypes.ErrRequestTooLarge", err)
	}
}

// An abort that stopped after removing the upload is finished from its marker, by any number
// of dismantlers at once, each chunk queued exactly once; a fenced master's guard stops it.
func TestResumeAborts(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	s.lim.request = 64 << 10 // ~30 KiB per batch: a part per batch
	u, ids := uploadWithParts(t, s, "b", "k", 12, 300)
	// The state an abort leaves when it stops after its first transaction.
	if _, err := s.cli.Txn(ctx).Then(clientv3.OpDelete(uploadKey("b", "k", u.ID)), clientv3.OpPut(AbortPrefix+u.ID, string(EncodeUpload(u)))).Commit(); err != nil {
		t.Fatal(err)
	}
	// A deposed master's guard fails: nothing is deleted.
	fence := clientv3.Compare(clientv3.Version("fence"), ">", 0)
	if _, err := s.ResumeAborts(ctx, 10, fence); !errors.Is(err, ErrConflict) {
		t.Fatalf("fenced resume: %v, want ErrConflict", err)
	}
	if n := count(t, s, PartPrefix+u.ID+"/"); n != 12 {
		t.Fatalf("a fenced resume deleted parts: %d left", n)
	}
	if _, err := s.cli.Put(ctx, "fence", "x"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.ResumeAborts(ctx, 10, fence)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, s, PartPrefix+u.ID+"/") + count(t, s, AbortPrefix); n != 0 {
		t.Fatalf("%d parts and markers left", n)
	}
	got, records := queued(t, s)
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("queued %d chunk ids for %d chunks: each must be queued exactly once", len(got), len(ids))
	}
	t.Logf("%d garbage records", records)
}

// Stale uploads are found in bounded scans that resume where the last one stopped.
func TestStaleUploads(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-8 * 24 * time.Hour).UTC()
	var want []string
	for i := range 25 {
		u := &Upload{Bucket: "b", Key: fmt.Sprintf("k%02d", i), ID: NewUploadID(), Initiated: time.Now().UTC()}
		if i%3 == 0 {
			u.Initiated = old
			want = append(want, u.Key)
		}
		if err := s.CreateUpload(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after, scans := "", 0
	for {
		ups, next, err := s.StaleUploads(ctx, time.Now().Add(-7*24*time.Hour), after, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ups {
			got = append(got, u.Key)
		}
		scans++
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(got, want) || scans != 7 {
		t.Fatalf("stale uploads %v in %d scans, want %v in 7", got, scans, want)
	}
}
