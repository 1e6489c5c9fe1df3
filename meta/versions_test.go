package meta

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
)

func versionedStore(t *testing.T, host string, cfg BucketConfig) *Store {
	t.Helper()
	s := New(etcdtest.Start(t, host))
	if err := s.CreateBucketWith(context.Background(), Bucket{Name: "vb", Created: time.Now()}, cfg); err != nil {
		t.Fatal(err)
	}
	return s
}

func body(tag string) *Object {
	o := sampleObject(1)
	o.ETag = fmt.Sprintf("%032x", tag)
	o.Chunks[0].ID = ChunkID(NewWriteID(), 0)
	o.Modified = time.Now().UTC()
	return o
}

// versionsOf lists every version of the bucket, one entry at a time (each a page).
func allVersions(t *testing.T, s *Store, prefix, delim string, page int) ([]string, []string) {
	t.Helper()
	var out, prefixes []string
	km, vm, isPrefix := "", "", false
	for range 1000 {
		res, err := s.ListVersions(context.Background(), "vb", prefix, delim, km, vm, isPrefix, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range res.Versions {
			kind := "v"
			if v.Object.DeleteMarker {
				kind = "m"
			}
			if v.Latest {
				kind += "*"
			}
			out = append(out, v.Key+"@"+v.Object.VersionID()+":"+kind)
		}
		prefixes = append(prefixes, res.Prefixes...)
		if !res.Truncated {
			return out, prefixes
		}
		km, vm, isPrefix = res.NextKey, res.NextVersion, res.NextVersion == ""
	}
	t.Fatal("listing does not end")
	return nil, nil
}

func TestVersioning(t *testing.T) {
	ctx := context.Background()
	s := versionedStore(t, "127.0.105.1", BucketConfig{})
	// Written before versioning: the null version.
	if err := s.PutObject(ctx, "vb", "k", body("null"), "", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateBucketConfig(ctx, "vb", func(c *BucketConfig) error { c.Versioning = VersioningEnabled; return nil }); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		o := body(fmt.Sprint(i))
		if err := s.PutObject(ctx, "vb", "k", o, "", 0); err != nil {
			t.Fatal(err)
		}
		if !ValidVersionID(o.VersionID()) || o.VersionID() == NullVersion {
			t.Fatalf("version id %q", o.VersionID())
		}
		ids = append(ids, o.VersionID())
	}
	want := []string{"k@" + ids[2] + ":v*", "k@" + ids[1] + ":v", "k@" + ids[0] + ":v", "k@null:v"}
	if got, _ := allVersions(t, s, "", "", 1000); !slices.Equal(got, want) {
		t.Fatalf("versions:\n got %v\nwant %v", got, want)
	}
	for i, id := range append(ids, NullVersion) {
		o, err := s.GetObjectVersion(ctx, "vb", "k", id)
		if err != nil {
			t.Fatal(err)
		}
		tag := "null"
		if i < 3 {
			tag = fmt.Sprint(i)
		}
		if o.ETag != fmt.Sprintf("%032x", tag) {
			t.Fatalf("version %s: etag %s", id, o.ETag)
		}
	}
	if _, err := s.GetObjectVersion(ctx, "vb", "k", "000000000000000000000000"); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("missing version: %v", err)
	}
	if _, err := s.GetObjectVersion(ctx, "vb", "k", "nope"); !errors.Is(err, ErrInvalidVersion) {
		t.Fatalf("invalid version: %v", err)
	}

	// A delete adds a marker; the object is gone for plain reads, its versions stay.
	res, err := s.DeleteVersion(ctx, "vb", "k", DeleteOptions{})
	if err != nil || !res.DeleteMarker {
		t.Fatalf("delete: %+v %v", res, err)
	}
	if _, err := s.GetObject(ctx, "vb", "k"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("get after delete: %v", err)
	}
	if dm, id, err := s.LatestIsDeleteMarker(ctx, "vb", "k"); err != nil || !dm || id != res.VersionID {
		t.Fatalf("latest is marker: %v %s %v", dm, id, err)
	}
	want = append([]string{"k@" + res.VersionID + ":m*", "k@" + ids[2] + ":v"}, want[1:]...)
	if got, _ := allVersions(t, s, "", "", 1000); !slices.Equal(got, want) {
		t.Fatalf("versions after delete:\n got %v\nwant %v", got, want)
	}
	if err := s.DeleteBucket(ctx, "vb"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete a bucket holding versions: %v", err)
	}
	// Removing the marker makes the newest version current again.
	if r, err := s.DeleteVersion(ctx, "vb", "k", DeleteOptions{Version: res.VersionID}); err != nil || !r.DeleteMarker {
		t.Fatalf("delete marker: %+v %v", r, err)
	}
	if o, err := s.GetObject(ctx, "vb", "k"); err != nil || o.VersionID() != ids[2] {
		t.Fatalf("current after removing the marker: %v %v", o, err)
	}
	// Removing the current version promotes the next; removing a middle one leaves the rest.
	if _, err := s.DeleteVersion(ctx, "vb", "k", DeleteOptions{Version: ids[2]}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteVersion(ctx, "vb", "k", DeleteOptions{Version: ids[0]}); err != nil {
		t.Fatal(err)
	}
	want = []string{"k@" + ids[1] + ":v*", "k@null:v"}
	if got, _ := allVersions(t, s, "", "", 1000); !slices.Equal(got, want) {
		t.Fatalf("versions after removals:\n got %v\nwant %v", got, want)
	}
	// Removed versions' chunks are garbage; noncurrent ones' are not.
	if n, err := s.GarbageCount(ctx); err != nil || n != 2 {
		t.Fatalf("garbage records: %d %v", n, err)
	}

	// Suspended: a write replaces the null version (its chunks become garbage) and keeps the others.
	if err := s.UpdateBucketConfig(ctx, "vb", func(c *BucketConfig) error { c.Versioning = VersioningSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	o := body("s")
	if err := s.PutObject(ctx, "vb", "k", o, "", 0); err != nil {
		t.Fatal(err)
	}
	if o.VersionID() != NullVersion {
		t.Fatalf("suspended write's version: %s", o.VersionID())
	}
	want = []string{"k@null:v*", "k@" + ids[1] + ":v"}
	if got, _ := allVersions(t, s, "", "", 1000); !slices.Equal(got, want) {
		t.Fatalf("versions after a suspended write:\n got %v\nwant %v", got, want)
	}
	if n, err := s.GarbageCount(ctx); err != nil || n != 3 {
		t.Fatalf("garbage records: %d %v", n, err)
	}
	// A suspended delete makes a null marker, replacing the null version.
	if r, err := s.DeleteVersion(ctx, "vb", "k", DeleteOptions{}); err != nil || r.VersionID != NullVersion || !r.DeleteMarker {
		t.Fatalf("suspended delete: %+v %v", r, err)
	}
	want = []string{"k@null:m*", "k@" + ids[1] + ":v"}
	if got, _ := allVersions(t, s, "", "", 1000); !slices.Equal(got, want) {
		t.Fatalf("versions after a suspended delete:\n got %v\nwant %v", got, want)
	}
	for _, id := range []string{NullVersion, ids[1]} {
		if _, err := s.DeleteVersion(ctx, "vb", "k", DeleteOptions{Version: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteBucket(ctx, "vb"); err != nil {
		t.Fatalf("delete the emptied bucket: %v", err)
	}
}

func TestVersionedMultipartAndLocks(t *testing.T) {
	ctx := context.Background()
	s := versionedStore(t, "127.0.105.2", BucketConfig{Versioning: VersioningEnabled, ObjectLock: true,
		DefaultRetention: &DefaultRetention{Mode: LockGovernance, Days: 1}})
	u := &Upload{Bucket: "vb", Key: "m", ID: NewUploadID(), Initiated: time.Now()}
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	o := body("mp")
	if err := s.CompleteUpload(ctx, u, o, nil, 0, 0); err != nil {
		t.Fatal(err)
	}
	if o.VersionID() == NullVersion || o.Lock.Mode != LockGovernance || !o.Lock.Retained(time.Now()) {
		t.Fatalf("completed version: %q %+v", o.VersionID(), o.Lock)
	}
	// A plain delete only adds a marker; removing the version is refused while retained.
	if _, err := s.DeleteVersion(ctx, "vb", "m", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteVersion(ctx, "vb", "m", DeleteOptions{Version: o.VersionID()}); !errors.Is(err, ErrLocked) {
		t.Fatalf("delete a retained version: %v", err)
	}
	if err := s.UpdateVersion(ctx, "vb", "m", o.VersionID(), func(x *Object) error { x.Lock.LegalHold = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteVersion(ctx, "vb", "m", DeleteOptions{Version: o.VersionID(), BypassGovernance: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("delete under legal hold: %v", err)
	}
	if err := s.UpdateVersion(ctx, "vb", "m", o.VersionID(), func(x *Object) error { x.Lock.LegalHold = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteVersion(ctx, "vb", "m", DeleteOptions{Version: o.VersionID(), BypassGovernance: true}); err != nil {
		t.Fatalf("delete with the governance bypass: %v", err)
	}
	// COMPLIANCE cannot be bypassed.
	c := body("c")
	c.Lock = Lock{Mode: LockCompliance, Until: time.Now().Add(time.Hour)}
	if err := s.PutObject(ctx, "vb", "c", c, "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteVersion(ctx, "vb", "c", DeleteOptions{Version: c.VersionID(), BypassGovernance: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("delete under compliance: %v", err)
	}
}

// A listing of versions is a paged range read: paged any way, it lists what one page does, and
// a page reads records in proportion to its size, not to the bucket's versions.
func TestListVersionsPaged(t *testing.T) {
	ctx := context.Background()
	s := versionedStore(t, "127.0.105.3", BucketConfig{Versioning: VersioningEnabled})
	keys := []string{"a", "a/b", "a/c", "a0", "b", "dir/x", "dir/y", "z"}
	for i, k := range keys {
		for j := range 1 + i%3 {
			if err := s.PutObject(ctx, "vb", k, body(fmt.Sprint(k, j)), "", 0); err != nil {
				t.Fatal(err)
			}
		}
		if i%2 == 1 {
			if _, err := s.DeleteVersion(ctx, "vb", k, DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct{ prefix, delim string }{{"", ""}, {"", "/"}, {"a", ""}, {"dir/", "/"}, {"a", "/"}} {
		full, fullPrefixes := allVersions(t, s, tc.prefix, tc.delim, 1000)
		if len(full) == 0 && len(fullPrefixes) == 0 {
			t.Fatalf("%+v: empty listing", tc)
		}
		for page := 1; page <= 4; page++ {
			got, gotPrefixes := allVersions(t, s, tc.prefix, tc.delim, page)
			if !slices.Equal(got, full) || !slices.Equal(gotPrefixes, fullPrefixes) {
				t.Fatalf("%+v, pages of %d:\n got %v %v\nwant %v %v", tc, page, got, gotPrefixes, full, fullPrefixes)
			}
		}
	}
	// Each key's latest version comes first and is the only one marked latest.
	full, _ := allVersions(t, s, "", "", 1000)
	if full[0] != "a@"+full[0][2:2+24]+":v*" {
		t.Fatalf("first entry %s", full[0])
	}

	// Work per page: 10,000 noncurrent versions of one key (written directly, in batches), a
	// page of 2 reads the records of its entries and what etcd streams ahead of the
	// cancellation (its chunks double from 10 keys), never the key's whole history.
	const n = 10000
	cur := body("many")
	if err := s.PutObject(ctx, "vb", "many", cur, "", 0); err != nil {
		t.Fatal(err)
	}
	seq := sortSeq(cur.Version)
	for b := 0; b < n; b += 100 {
		var ops []clientv3.Op
		for i := b; i < b+100; i++ {
			o := body("old")
			o.Version = seqHex(seq-1-uint64(i)) + fmt.Sprintf("%08x", i)
			ops = append(ops, clientv3.OpPut(VersionKey("vb", "many", o.Version), string(EncodeObject(o))))
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	k := countKV(s)
	res, err := s.ListVersions(ctx, "vb", "many", "", "", "", false, 2)
	if err != nil || len(res.Versions) != 2 || !res.Truncated || !res.Versions[0].Latest || res.Versions[1].Latest {
		t.Fatalf("page: %+v %v", res, err)
	}
	_, _, _, streams := k.snapshot()
	if len(streams) != 2 {
		t.Fatalf("a page is two range streams (current and noncurrent versions), got %d", len(streams))
	}
	sent, values := k.records()
	t.Logf("a page of 2 of %d versions: etcd sent %d keys, %d with their records", n+1, sent, values)
	if values > n/4 {
		t.Fatalf("a page of 2 read %d records of the key's %d versions", values, n+1)
	}
	// The next page starts where this one ended, at the second version, in one read again.
	k.reset()
	next, err := s.ListVersions(ctx, "vb", "many", "", res.NextKey, res.NextVersion, false, 2)
	if err != nil || len(next.Versions) != 2 || next.Versions[0].Object.Version != seqHex(seq-2)+fmt.Sprintf("%08x", 1) {
		t.Fatalf("next page: %+v %v", next, err)
	}
	if _, values := k.records(); values > n/4 {
		t.Fatalf("the next page read %d records", values)
	}
}

// The version and lock fields are trailing optional fields: they round-trip and cost a versioned,
// locked record a few dozen bytes (TestEncodeRoundTrip bounds a record without them).
func TestEncodeVersionFields(t *testing.T) {
	plain := sampleObject(1)
	before := EncodeObject(plain)
	o := sampleObject(1)
	o.Version = seqHex(12345) + "0badc0de"
	o.Lock = Lock{Mode: LockCompliance, Until: time.Unix(1900000000, 0).UTC(), LegalHold: true}
	m := &Object{Modified: time.Unix(5, 0).UTC(), Version: seqHex(7) + NullVersion, DeleteMarker: true}
	for _, x := range []*Object{o, m} {
		got, err := DecodeObject(EncodeObject(x))
		if err != nil || !reflect.DeepEqual(got, x) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, x)
		}
	}
	if n := len(EncodeObject(o)); n > len(before)+40 {
		t.Fatalf("record sizes: plain %d, versioned and locked %d", len(before), n)
	}
	if o.VersionID() != o.Version || m.VersionID() != NullVersion || sortSeq(o.SortKey()) != 12345 {
		t.Fatalf("ids: %s %s %d", o.VersionID(), m.VersionID(), sortSeq(o.SortKey()))
	}
}
