package meta

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
)

func inlineObject(data []byte, id string) *Object {
	o := sampleObject(0)
	o.Size = int64(len(data))
	sum := md5.Sum(data)
	o.ETag = hex.EncodeToString(sum[:])
	o.Inline = NewInline(id, data)
	return o
}

func TestEncodeInline(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    *Object
	}{
		{"plain", inlineObject(bytes.Repeat([]byte("abc"), 1000), "")},
		{"empty", inlineObject([]byte{}, "")},
		{"sealed", func() *Object {
			o := inlineObject([]byte("sealed bytes"), NewWriteID())
			o.SSE = &SSE{Algorithm: SSEC, KeyCheck: []byte("0123456789abcdef0123456789abcdef0123456789abcdef")}
			return o
		}()},
		{"versioned and locked", func() *Object {
			o := inlineObject([]byte("v"), "")
			o.Version = "00000000000000fe0123abcd"
			o.Lock = Lock{Mode: "GOVERNANCE", Until: time.Unix(2000000000, 0).UTC(), LegalHold: true}
			o.Tags = map[string]string{"a": "b"}
			return o
		}()},
	} {
		b := EncodeObject(tc.o)
		got, err := DecodeObject(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.o) {
			t.Fatalf("%s: round trip:\n got %+v\nwant %+v", tc.name, got, tc.o)
		}
		if err := got.Inline.Verify(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// The record costs the data plus a fixed few dozen bytes over a record without it.
		plain := *tc.o
		plain.Inline = nil
		if extra := len(b) - len(EncodeObject(&plain)) - len(tc.o.Inline.Data); extra > 56 {
			t.Errorf("%s: the inline fields cost %d bytes beyond the data, want <= 56", tc.name, extra)
		}
	}
	// Damaged data no longer matches its checksum.
	o := inlineObject([]byte("hello, inline"), "")
	got, _ := DecodeObject(EncodeObject(o))
	got.Inline.Data[0] ^= 1
	if err := got.Inline.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify damaged data: %v, want ErrCorrupt", err)
	}
}

func TestDecodeInlineRejects(t *testing.T) {
	base := EncodeObject(sampleObject(0))
	full := EncodeObject(inlineObject([]byte("data"), ""))
	tail := full[len(base):] // tagInline ... tagInlineSum + 32 bytes
	sumAt := len(tail) - 33
	withChunk := EncodeObject(sampleObject(1))
	for name, b := range map[string][]byte{
		"data without checksum":   append(bytes.Clone(base), tail[:sumAt]...),
		"checksum without data":   append(bytes.Clone(base), tail[sumAt:]...),
		"short checksum":          append(bytes.Clone(base), tail[:len(tail)-1]...),
		"data beside chunks":      append(bytes.Clone(withChunk), tail...),
		"data length beyond end":  append(bytes.Clone(base), tagInline, 0, 0, 0x7f, 1, 2),
		"second data unsummed":    append(bytes.Clone(full), tail[:sumAt]...),
		"checksum before data":    append(append(bytes.Clone(base), tail[sumAt:]...), tail[:sumAt]...),
		"truncated data and tail": full[:len(full)-40],
	} {
		if _, err := DecodeObject(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// An inline object is committed with no intent, in one transaction, in a bucket with or
// without versioning; a noncurrent version keeps its data, and replacing or deleting an inline
// object queues no garbage.
func TestPutInline(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.137.1")
	s := New(cli)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "b", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucketWith(ctx, Bucket{Name: "vb", Created: time.Now()}, BucketConfig{Versioning: VersioningEnabled}); err != nil {
		t.Fatal(err)
	}
	for _, bucket := range []string{"b", "vb"} {
		first := inlineObject([]byte("first"), "")
		if err := s.PutObject(ctx, bucket, "k", first, "", time.Minute); err != nil {
			t.Fatalf("%s: %v", bucket, err)
		}
		// Only when the key exists: an If-Match against it commits.
		second := inlineObject([]byte("second"), "")
		if err := s.PutObjectIf(ctx, bucket, "k", second, "", time.Minute, Condition{IfMatch: []string{first.ETag}}); err != nil {
			t.Fatalf("%s: conditional overwrite: %v", bucket, err)
		}
		if err := s.PutObjectIf(ctx, bucket, "k", inlineObject([]byte("third"), ""), "", time.Minute, Condition{IfNoneMatch: []string{"*"}}); !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("%s: If-None-Match * over an object: %v", bucket, err)
		}
		got, err := s.GetObject(ctx, bucket, "k")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Inline.Data) != "second" || len(got.Chunks) != 0 {
			t.Fatalf("%s: current %q, %d chunks", bucket, got.Inline.Data, len(got.Chunks))
		}
		if bucket == "vb" {
			old, err := s.GetObjectVersion(ctx, bucket, "k", first.VersionID())
			if err != nil {
				t.Fatal(err)
			}
			if string(old.Inline.Data) != "first" || old.Inline.Verify() != nil {
				t.Fatalf("noncurrent version: %+v", old.Inline)
			}
		}
		if err := s.DeleteObject(ctx, bucket, "k", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, pre := range []string{IntentPrefix, GCPrefix} {
		resp, err := cli.Get(ctx, pre, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != 0 {
			t.Errorf("%d records under %s, want none: inline writes need no intent and leave no garbage", resp.Count, pre)
		}
	}
}

// BenchmarkListPageInline lists a 1,000-key page (no delimiter) of a bucket of 1,000 objects
// stored as one chunk each (inline=0), or inline with that many bytes: what inline-max costs a
// listing, which reads every listed object's record. recordbytes/op is what etcd sent.
func BenchmarkListPageInline(b *testing.B) {
	s := New(etcdtest.Start(b, "127.0.137.7"))
	ctx := context.Background()
	for _, n := range []int{0, 1 << 10, 4 << 10, 16 << 10, 64 << 10} {
		bucket := fmt.Sprintf("inline-%d", n)
		if err := s.CreateBucket(ctx, Bucket{Name: bucket}); err != nil {
			b.Fatal(err)
		}
		o := sampleObject(1)
		if n > 0 {
			o = inlineObject(bytes.Repeat([]byte{'x'}, n), "")
		}
		rec := len(EncodeObject(o))
		for i := range 1000 {
			if err := s.PutObject(ctx, bucket, fmt.Sprintf("photos/2026/IMG_%06d.jpg", i), o, "", 0); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("inline=%d", n), func(b *testing.B) {
			listed := 0
			b.ReportAllocs()
			for b.Loop() {
				r, err := s.ListObjects(ctx, bucket, "", "", "", false, 1000)
				if err != nil || len(r.Objects) == 0 || len(r.Objects) < 1000 && !r.Truncated {
					b.Fatalf("%d objects, %v", len(r.Objects), err)
				}
				listed = len(r.Objects)
			}
			// listPageBytes ends a page of large records early (truncated, as S3 allows).
			b.ReportMetric(float64(listed), "objects/op")
			b.ReportMetric(float64(rec*listed), "recordbytes/op")
		})
	}
}

// An overwrite by a writer that read the key first (ReadForWrite) commits in one guarded
// transaction; without the read it takes two (the first assumes the key new and is refused).
// A prior gone stale is a lost race: the write still lands, replacing the current record.
func TestPutObjectAfterRead(t *testing.T) {
	s := New(etcdtest.Start(t, "127.0.137.8"))
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "b", Created: time.Now(), Encryption: SSES3}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ReadForWrite(ctx, "nope", "k"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("ReadForWrite of a missing bucket: %v", err)
	}
	if err := s.PutObject(ctx, "b", "k", inlineObject([]byte("one"), ""), "", 0); err != nil {
		t.Fatal(err)
	}
	k := countKV(s)
	writes := func() int {
		_, compares, _, _ := k.snapshot()
		n := 0
		for _, c := range compares {
			if len(c) > 0 {
				n++
			}
		}
		return n
	}
	b, prior, err := s.ReadForWrite(ctx, "b", "k")
	if err != nil || b.Encryption != SSES3 {
		t.Fatalf("ReadForWrite: %+v %v", b, err)
	}
	k.reset()
	if err := s.PutObjectAfter(ctx, "b", "k", inlineObject([]byte("two"), ""), "", 0, Condition{IfMatch: []string{inlineObject([]byte("one"), "").ETag}}, prior); err != nil {
		t.Fatal(err)
	}
	if n := writes(); n != 1 {
		t.Fatalf("an overwrite after ReadForWrite took %d guarded transactions, want 1", n)
	}
	k.reset()
	if err := s.PutObjectIf(ctx, "b", "k", inlineObject([]byte("three"), ""), "", 0, Condition{}); err != nil {
		t.Fatal(err)
	}
	if n := writes(); n != 2 {
		t.Fatalf("an overwrite without a prior read took %d guarded transactions, want 2", n)
	}
	// prior is stale now (it saw "one"): the write replaces "three" all the same, and an If-Match
	// on the stale record is refused.
	if err := s.PutObjectAfter(ctx, "b", "k", inlineObject([]byte("four"), ""), "", 0, Condition{}, prior); err != nil {
		t.Fatal(err)
	}
	if o, err := s.GetObject(ctx, "b", "k"); err != nil || string(o.Inline.Data) != "four" {
		t.Fatalf("after a write with a stale prior: %v", err)
	}
	if err := s.PutObjectAfter(ctx, "b", "k", inlineObject([]byte("five"), ""), "", 0, Condition{IfMatch: []string{inlineObject([]byte("one"), "").ETag}}, prior); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-Match of a replaced record with a stale prior: %v", err)
	}
}
