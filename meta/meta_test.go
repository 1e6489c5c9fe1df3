package meta

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
)

func sampleObject(nchunks int) *Object {
	o := &Object{Size: 12345, Modified: time.Unix(1700000000, 123456789).UTC(), ETag: "0123456789abcdef0123456789abcdef",
		Headers: map[string]string{"content-type": "text/plain", "x-amz-meta-a": "b"}}
	for i := range nchunks {
		c := Chunk{ID: ChunkID("00112233445566778899aabbccddeeff", i), Size: 8 << 20, Replicas: []string{"m1", "m3"}}
		c.SHA256[0] = byte(i)
		o.Chunks = append(o.Chunks, c)
	}
	return o
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		o := sampleObject(n)
		if n == 3 {
			o.Parts = []int64{5 << 20, 5 << 20, 2}
			o.Upload = NewUploadID()
			o.Tags = map[string]string{"a": "b", "empty": ""}
			o.Checksum = "crc32:AAAAAA=="
		}
		got, err := DecodeObject(EncodeObject(o))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, o) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, o)
		}
	}
	p := &Part{Number: 7, Size: 99, ETag: "abc", Modified: time.Unix(5, 0).UTC(), Chunks: sampleObject(2).Chunks}
	if got, err := DecodePart(EncodePart(p)); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("part: %v %+v", err, got)
	}
	u := &Upload{Bucket: "b", Key: "k/x", ID: "id", Initiated: time.Unix(9, 0).UTC(), Headers: map[string]string{"content-type": "a"}}
	if got, err := DecodeUpload(EncodeUpload(u)); err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("upload: %v %+v", err, got)
	}
	u.Tags = map[string]string{"t": "v"}
	if got, err := DecodeUpload(EncodeUpload(u)); err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("upload with tags: %v %+v", err, got)
	}
	g := &Garbage{After: time.Unix(10, 0).UTC(), Intent: "w", Chunks: sampleObject(1).Chunks}
	if got, err := DecodeGarbage(EncodeGarbage(g)); err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("garbage: %v %+v", err, got)
	}
	// The compact encoding is what makes millions of objects fit: keep an eye on it.
	if n := len(EncodeObject(sampleObject(1))); n > 140 {
		t.Errorf("a one-chunk object record takes %d bytes, want <= 140", n)
	}
}

func FuzzDecodeObject(f *testing.F) {
	f.Add(EncodeObject(sampleObject(2)))
	withUpload := sampleObject(1)
	withUpload.Upload = NewUploadID()
	f.Add(EncodeObject(withUpload))
	withKMS := sampleObject(1)
	withKMS.SSE = &SSE{Algorithm: SSEKMS, KMSKeyID: "testkey-1", SealedKey: []byte("sealed"), KMSContext: "e30="}
	f.Add(EncodeObject(withKMS))
	f.Add([]byte{verObject, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(EncodeObject(inlineObject([]byte("inline data"), NewWriteID())))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeObject(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to something that decodes the same.
		o2, err := DecodeObject(EncodeObject(o))
		if err != nil || !reflect.DeepEqual(o, o2) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	cli := etcdtest.Start(t, "127.0.85.1")
	return New(cli), "bk"
}

func TestBucketsAndObjects(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "a", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket(ctx, Bucket{Name: "a"}); !errors.Is(err, ErrBucketExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := s.PutObject(ctx, "nope", "k", sampleObject(1), "", 0); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("put into missing bucket: %v", err)
	}
	// A write whose intent was expired by the collector must not commit.
	if err := s.PutObject(ctx, "a", "k", sampleObject(1), "gone", 0); !errors.Is(err, ErrIntentLost) {
		t.Fatalf("put with lost intent: %v", err)
	}
	if err := s.BeginWrite(ctx, Intent{ID: "w1", Bucket: "a", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutObject(ctx, "a", "k", sampleObject(2), "w1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Get(ctx, IntentPrefix+"w1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.GarbageCount(ctx); n != 0 {
		t.Fatalf("garbage after first put: %d", n)
	}
	// Overwrite queues the old chunks, not yet due.
	if err := s.PutObject(ctx, "a", "k", sampleObject(1), "", time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.GarbageCount(ctx); n != 1 {
		t.Fatalf("garbage after overwrite: %d", n)
	}
	if due, _ := s.DueGarbage(ctx, 10); len(due) != 0 {
		t.Fatalf("garbage due before grace: %d", len(due))
	}
	o, err := s.GetObject(ctx, "a", "k")
	if err != nil || len(o.Chunks) != 1 {
		t.Fatalf("get: %v %+v", err, o)
	}
	if _, err := s.GetObject(ctx, "a", "x"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := s.GetObject(ctx, "zz", "x"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("missing bucket: %v", err)
	}
	if err := s.DeleteBucket(ctx, "a"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete non-empty: %v", err)
	}
	if err := s.DeleteObject(ctx, "a", "k", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteObject(ctx, "a", "k", 0); err != nil {
		t.Fatalf("deleting a missing key succeeds in S3: %v", err)
	}
	if due, _ := s.DueGarbage(ctx, 10); len(due) != 1 || len(due[0].Chunks) != 1 {
		t.Fatalf("due garbage after delete: %+v", due)
	}
	if err := s.DeleteBucket(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, "a"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestListObjects(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "l"}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "b/1", "b/2", "b/3", "c", "d/x/1", "d/y", "e"}
	for i := range 1200 { // more than one etcd page inside one "directory"
		keys = append(keys, fmt.Sprintf("big/%05d", i))
	}
	for _, k := range keys {
		if err := s.PutObject(ctx, "l", k, sampleObject(0), "", 0); err != nil {
			t.Fatal(err)
		}
	}
	// Walk pages of 2 with "/" and collect everything.
	var got []string
	after, isPrefix := "", false
	for pages := 0; ; pages++ {
		r, err := s.ListObjects(ctx, "l", "", "/", after, isPrefix, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Objects {
			got = append(got, e.Key)
		}
		got = append(got, r.Prefixes...)
		if !r.Truncated {
			break
		}
		after, isPrefix = r.Next, r.NextIsPrefix
		if pages > 20 {
			t.Fatal("listing does not end")
		}
	}
	slices.Sort(got)
	want := []string{"a", "b/", "big/", "c", "d/", "e"}
	if !slices.Equal(got, want) {
		t.Fatalf("delimited listing: %v, want %v", got, want)
	}
	r, err := s.ListObjects(ctx, "l", "b/", "", "", false, 1000)
	if err != nil || len(r.Objects) != 3 || r.Truncated {
		t.Fatalf("prefix listing: %v %+v", err, r)
	}
	r, err = s.ListObjects(ctx, "l", "big/", "", "big/00099", false, 5000)
	if err != nil || len(r.Objects) != 1100 || r.Objects[0].Key != "big/00100" {
		t.Fatalf("start-after listing across pages: %v %d", err, len(r.Objects))
	}
	r, err = s.ListObjects(ctx, "l", "d/", "/", "", false, 10)
	if err != nil || !slices.Equal(r.Prefixes, []string{"d/x/"}) || len(r.Objects) != 1 {
		t.Fatalf("nested: %v %+v", err, r)
	}
}

func TestMultipart(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	u := &Upload{Bucket: "m", Key: "big", ID: NewUploadID(), Initiated: time.Now()}
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		w := NewWriteID()
		if err := s.BeginWrite(ctx, Intent{ID: w}); err != nil {
			t.Fatal(err)
		}
		p := &Part{Number: n, Size: 10, ETag: "e", Chunks: []Chunk{{ID: ChunkID(w, 0), Size: 10, Replicas: []string{"m1"}}}}
		if err := s.PutPart(ctx, u, p, w, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteBucket(ctx, "m"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("bucket with an upload: %v", err)
	}
	ups, _, err := s.ListUploads(ctx, "m", "", "", "", 10)
	if err != nil || len(ups) != 1 || ups[0].ID != u.ID {
		t.Fatalf("uploads: %v %+v", err, ups)
	}
	parts, rev, err := s.AllParts(ctx, u.ID)
	if err != nil || len(parts) != 3 {
		t.Fatalf("parts: %v %d", err, len(parts))
	}
	page, more, err := s.ListParts(ctx, u.ID, 1, 1)
	if err != nil || len(page) != 1 || page[0].Number != 2 || !more {
		t.Fatalf("list parts page: %v %+v %v", err, page, more)
	}
	o := &Object{Size: 20, Chunks: append(parts[0].Chunks, parts[1].Chunks...), Parts: []int64{10, 10}}
	if err := s.CompleteUpload(ctx, u, o, parts[2].Chunks, rev, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteUpload(ctx, u, o, nil, rev, 0); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("complete twice: %v", err)
	}
	if got, err := s.GetObject(ctx, "m", "big"); err != nil || got.Size != 20 || got.Upload != u.ID {
		t.Fatalf("completed object: %v %+v", err, got)
	}
	if due, _ := s.DueGarbage(ctx, 10); len(due) != 1 || len(due[0].Chunks) != 1 {
		t.Fatalf("unused part not queued: %+v", due)
	}
	// Abort queues every part's chunks.
	u2 := &Upload{Bucket: "m", Key: "other", ID: NewUploadID()}
	if err := s.CreateUpload(ctx, u2); err != nil {
		t.Fatal(err)
	}
	w := NewWriteID()
	_ = s.BeginWrite(ctx, Intent{ID: w})
	if err := s.PutPart(ctx, u2, &Part{Number: 1, Chunks: []Chunk{{ID: ChunkID(w, 0)}}}, w, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AbortUpload(ctx, u2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUpload(ctx, "m", "other", u2.ID); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("aborted upload still there: %v", err)
	}
	if due, _ := s.DueGarbage(ctx, 10); len(due) != 2 {
		t.Fatalf("abort did not queue: %d", len(due))
	}
}

func TestExpireIntents(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	clock := time.Now()
	s.now = func() time.Time { return clock }
	_ = s.CreateBucket(ctx, Bucket{Name: "i"})
	if err := s.BeginWrite(ctx, Intent{ID: "old"}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour)
	if err := s.BeginWrite(ctx, Intent{ID: "fresh"}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.ExpireIntents(ctx, clock.Add(-time.Minute))
	if err != nil || !slices.Equal(ids, []string{"old"}) {
		t.Fatalf("expired %v, %v", ids, err)
	}
	if err := s.PutObject(ctx, "i", "k", sampleObject(0), "old", 0); !errors.Is(err, ErrIntentLost) {
		t.Fatalf("commit after expiry: %v", err)
	}
	if err := s.PutObject(ctx, "i", "k", sampleObject(0), "fresh", 0); err != nil {
		t.Fatal(err)
	}
	due, _ := s.DueGarbage(ctx, 10)
	if len(due) != 1 || due[0].Intent != "old" {
		t.Fatalf("garbage %+v", due)
	}
	if err := s.Collected(ctx, due[0].Key); err != nil {
		t.Fatal(err)
	}
}

// The documented largest object (512 GiB at 8 MiB chunks, R = 2) fits the record limit at the
// 8 MiB etcd request limit that etcdembed configures, so it can replace, and be replaced by,
// another as large in one transaction (TestLargestRecordsReplaceEachOther does it on etcd).
func TestLargestObjectRecordFits(t *testing.T) {
	const chunks = 512 << 30 / (8 << 20)
	o := &Object{Size: 512 << 30, ETag: "0123456789abcdef0123456789abcdef-1000", Headers: map[string]string{"content-type": "application/octet-stream"}}
	w := NewWriteID()
	for i := range chunks {
		c := Chunk{ID: ChunkID(w, i), Size: 8 << 20, Replicas: []string{"machine-a", "machine-b"}}
		c.SHA256[0], c.SHA256[31] = byte(i), byte(i>>8)
		o.Chunks = append(o.Chunks, c)
	}
	s := New(nil)
	if n := len(EncodeObject(o)); n > s.recordLimit() {
		t.Fatalf("a 512 GiB object's record takes %d bytes, over the %d-byte record limit", n, s.recordLimit())
	} else {
		t.Logf("a 512 GiB object's record: %d bytes (%.1f per chunk); the limit: %d", n, float64(n)/chunks, s.recordLimit())
	}
}
