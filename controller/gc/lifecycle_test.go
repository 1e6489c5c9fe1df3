package gc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/meta"
)

func lcObject(t *testing.T, s *meta.Store, bucket, key string, at time.Time, lock meta.Lock) *meta.Object {
	t.Helper()
	w := meta.NewWriteID()
	o := &meta.Object{Size: 1, Modified: at.UTC(), ETag: "e", Lock: lock, Chunks: []meta.Chunk{{ID: meta.ChunkID(w, 0), Size: 1, Replicas: []string{"m1"}}}}
	if err := s.PutObject(context.Background(), bucket, key, o, "", 0); err != nil {
		t.Fatal(err)
	}
	return o
}

func lcVersions(t *testing.T, s *meta.Store, bucket string) []string {
	t.Helper()
	res, err := s.ListVersions(context.Background(), bucket, "", "", "", "", false, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range res.Versions {
		kind := "v"
		if v.Object.DeleteMarker {
			kind = "m"
		}
		out = append(out, v.Key+":"+kind)
	}
	return out
}

// The master's lifecycle round, days ahead of the writes: current versions expire (a marker
// in a versioned bucket, the object in an unversioned one), noncurrent versions go but the
// newest the rule keeps, a lone delete marker goes, a locked version stays, an old upload is
// aborted; and a deposed master's round changes nothing.
func TestLifecycle(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.105.40")
	ctx := context.Background()
	s := meta.New(cli)
	t0 := time.Now().Add(-time.Hour)
	if err := s.CreateBucket(ctx, meta.Bucket{Name: "plain"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucketWith(ctx, meta.Bucket{Name: "ver"}, meta.BucketConfig{Versioning: meta.VersioningEnabled, ObjectLock: true}); err != nil {
		t.Fatal(err)
	}
	lcObject(t, s, "plain", "old/a", t0, meta.Lock{})
	lcObject(t, s, "plain", "keep/b", t0, meta.Lock{})
	for i := range 3 {
		lcObject(t, s, "ver", "nc", t0.Add(time.Duration(i)*time.Minute), meta.Lock{})
	}
	lcObject(t, s, "ver", "locked", t0, meta.Lock{Mode: meta.LockCompliance, Until: time.Now().Add(30 * 24 * time.Hour)})
	lcObject(t, s, "ver", "locked", t0, meta.Lock{})
	lcObject(t, s, "ver", "gone", t0, meta.Lock{})
	if _, err := s.DeleteVersion(ctx, "ver", "gone", meta.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	u := &meta.Upload{Bucket: "ver", Key: "up", ID: meta.NewUploadID(), Initiated: t0}
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	set := func(bucket string, rules ...meta.LifecycleRule) {
		if err := s.UpdateBucketConfig(ctx, bucket, func(c *meta.BucketConfig) error { c.Lifecycle = rules; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	set("plain", meta.LifecycleRule{ID: "old", Enabled: true, Prefix: "old/", ExpireDays: 1})
	set("ver", meta.LifecycleRule{ID: "nc", Enabled: true, Prefix: "nc", NoncurrentDays: 1, NewerNoncurrent: 1},
		meta.LifecycleRule{ID: "locked", Enabled: true, Prefix: "locked", NoncurrentDays: 1},
		meta.LifecycleRule{ID: "up", Enabled: true, Prefix: "up", AbortDays: 1},
		meta.LifecycleRule{ID: "dm", Enabled: true, Prefix: "gone", ExpiredDeleteMarker: true})
	// "gone": a marker over one version, which the "dm" rule leaves (it is not alone).
	beforeVer := lcVersions(t, s, "ver")

	lc := &Lifecycle{Meta: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.Now().Add(3 * 24 * time.Hour) }}
	// A deposed master: its guard fails, and nothing changes.
	stale := clientv3.Compare(clientv3.CreateRevision("/no/such/leader/key"), "=", 12345)
	if _, err := lc.Round(ctx, stale); !errors.Is(err, meta.ErrConflict) {
		t.Fatalf("fenced round: %v", err)
	}
	if got := lcVersions(t, s, "ver"); !slices.Equal(got, beforeVer) {
		t.Fatalf("a fenced round changed %v into %v", beforeVer, got)
	}

	n, err := lc.Round(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := lcVersions(t, s, "plain"), []string{"keep/b:v"}; !slices.Equal(got, want) {
		t.Fatalf("plain bucket: %v, want %v", got, want)
	}
	// nc: current + newest noncurrent kept, oldest removed; locked: its noncurrent version is
	// under compliance and stays; gone: the marker is not alone.
	want := []string{"gone:m", "gone:v", "locked:v", "locked:v", "nc:v", "nc:v"}
	if got := lcVersions(t, s, "ver"); !slices.Equal(got, want) {
		t.Fatalf("versioned bucket: %v, want %v", got, want)
	}
	if _, err := s.GetUpload(ctx, "ver", "up", u.ID); !errors.Is(err, meta.ErrNoSuchUpload) {
		t.Fatalf("old upload: %v", err)
	}
	if n != 3 {
		t.Fatalf("%d removed, want 3 (old/a, the oldest nc, the upload)", n)
	}
	// Once the marker's version is gone, the lone marker goes too.
	res, err := s.ListVersions(ctx, "ver", "gone", "", "", "", false, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteVersion(ctx, "ver", "gone", meta.DeleteOptions{Version: res.Versions[1].Object.VersionID()}); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lcVersions(t, s, "ver"); slices.Contains(got, "gone:m") {
		t.Fatalf("the lone marker stayed: %v", got)
	}
}
