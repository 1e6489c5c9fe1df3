package meta

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
)

// TestPutObjectAfterStalePrior: ReadForWrite is a serializable read, so the prior it gives may
// be behind the cluster. Each case reads a prior, then changes the bucket or the key as another
// writer would, and commits with the prior gone stale: nothing decided from the stale read may
// stand unchecked.
func TestPutObjectAfterStalePrior(t *testing.T) {
	s := New(etcdtest.Start(t, "127.0.141.1"))
	ctx := context.Background()
	one, two := inlineObject([]byte("one"), ""), inlineObject([]byte("two"), "")
	for i, tc := range []struct {
		name   string
		before *Object                   // what the key holds when the prior is read; nil: nothing
		change func(bucket string) error // what another writer does after the read
		cond   Condition
		want   error // nil: the write commits
	}{
		{"bucket ACL changed: the write commits", nil, func(b string) error {
			return s.UpdateBucket(ctx, b, func(r *Bucket) error { r.Ownership = "BucketOwnerEnforced"; return nil })
		}, Condition{}, nil},
		{"bucket encryption changed: refused, nothing committed", nil, func(b string) error {
			return s.SetBucketEncryption(ctx, b, SSEKMS, "k1")
		}, Condition{}, ErrConflict},
		{"bucket replication changed: refused", nil, func(b string) error {
			return s.UpdateBucket(ctx, b, func(r *Bucket) error { r.Replicas = 3; return nil })
		}, Condition{}, ErrConflict},
		{"If-Match of a record written after the read: commits", nil, func(b string) error {
			return s.PutObject(ctx, b, "k", one, "", 0)
		}, Condition{IfMatch: []string{one.ETag}}, nil},
		{"If-None-Match of a record deleted after the read: commits", one, func(b string) error {
			return s.DeleteObject(ctx, b, "k", 0)
		}, Condition{IfNoneMatch: []string{one.ETag}}, nil},
		{"If-None-Match * of a key written after the read: refused", nil, func(b string) error {
			return s.PutObject(ctx, b, "k", one, "", 0)
		}, Condition{IfNoneMatch: []string{"*"}}, ErrPreconditionFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := "stale" + string(rune('a'+i))
			if err := s.CreateBucket(ctx, Bucket{Name: bucket, Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				if err := s.PutObject(ctx, bucket, "k", tc.before, "", 0); err != nil {
					t.Fatal(err)
				}
			}
			_, prior, err := s.ReadForWrite(ctx, bucket, "k")
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.change(bucket); err != nil {
				t.Fatal(err)
			}
			err = s.PutObjectAfter(ctx, bucket, "k", two, "", 0, tc.cond, prior)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("PutObjectAfter with a stale prior: %v, want %v", err, tc.want)
			}
			got, gerr := s.GetObject(ctx, bucket, "k")
			committed := gerr == nil && got.ETag == two.ETag
			if committed != (tc.want == nil) {
				t.Fatalf("committed %v (record %+v, %v), want %v", committed, got, gerr, tc.want == nil)
			}
		})
	}
}
