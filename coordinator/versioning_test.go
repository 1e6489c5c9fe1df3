package coordinator

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/hanode/hanode/s3"
)

func getVersion(t *testing.T, mc *minio.Client, bucket, key, version string) ([]byte, error) {
	t.Helper()
	o, err := mc.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

type listedVersion struct {
	id             string
	latest, marker bool
}

func listVersions(t *testing.T, mc *minio.Client, bucket string) []listedVersion {
	t.Helper()
	var out []listedVersion
	for o := range mc.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, listedVersion{o.VersionID, o.IsLatest, o.IsDeleteMarker})
	}
	return out
}

func TestVersioning(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.105.30"})
	ctx := context.Background()
	mc := tc.minio()
	mustBucket(t, mc, "ver")
	if cfg, err := mc.GetBucketVersioning(ctx, "ver"); err != nil || cfg.Status != "" {
		t.Fatalf("versioning of a new bucket: %+v %v", cfg, err)
	}
	if err := mc.EnableVersioning(ctx, "ver"); err != nil {
		t.Fatal(err)
	}
	if cfg, err := mc.GetBucketVersioning(ctx, "ver"); err != nil || cfg.Status != "Enabled" {
		t.Fatalf("versioning after enabling: %+v %v", cfg, err)
	}
	var ids []string
	for i := range 3 {
		body := bytes.Repeat([]byte{byte('a' + i)}, 100+i)
		info, err := mc.PutObject(ctx, "ver", "k", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		if err != nil || info.VersionID == "" || info.VersionID == s3.NullVersion || slices.Contains(ids, info.VersionID) {
			t.Fatalf("put %d: version %q %v", i, info.VersionID, err)
		}
		ids = append(ids, info.VersionID)
	}
	for i, id := range ids {
		if got, err := getVersion(t, mc, "ver", "k", id); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte('a' + i)}, 100+i)) {
			t.Fatalf("version %d: %q %v", i, got, err)
		}
	}
	want := []listedVersion{{ids[2], true, false}, {ids[1], false, false}, {ids[0], false, false}}
	if got := listVersions(t, mc, "ver"); !slices.Equal(got, want) {
		t.Fatalf("versions: %+v, want %+v", got, want)
	}

	t.Run("a delete adds a marker that hides the object and can be removed", func(t *testing.T) {
		r := tc.do(http.MethodDelete, "/ver/k", nil, nil)
		marker := r.header.Get("X-Amz-Version-Id")
		if r.status != http.StatusNoContent || r.header.Get("X-Amz-Delete-Marker") != "true" || marker == "" {
			t.Fatalf("delete: %d %v", r.status, r.header)
		}
		if r := tc.do(http.MethodHead, "/ver/k", nil, nil); r.status != http.StatusNotFound || r.header.Get("X-Amz-Delete-Marker") != "true" {
			t.Fatalf("HEAD behind a marker: %d %v", r.status, r.header)
		}
		if r := tc.do(http.MethodGet, "/ver/k?versionId="+marker, nil, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("X-Amz-Delete-Marker") != "true" {
			t.Fatalf("GET of the marker: %d %v", r.status, r.header)
		}
		got := listVersions(t, mc, "ver")
		if len(got) != 4 || got[0] != (listedVersion{marker, true, true}) || got[1].latest {
			t.Fatalf("versions with a marker: %+v", got)
		}
		if err := mc.RemoveObject(ctx, "ver", "k", minio.RemoveObjectOptions{VersionID: marker}); err != nil {
			t.Fatal(err)
		}
		if got, err := getVersion(t, mc, "ver", "k", ""); err != nil || got[0] != 'c' {
			t.Fatalf("current after removing the marker: %q %v", got, err)
		}
	})

	t.Run("copy from a version", func(t *testing.T) {
		r := tc.do(http.MethodPut, "/ver/copy", http.Header{"X-Amz-Copy-Source": {"/ver/k?versionId=" + ids[0]}}, nil)
		if r.status != http.StatusOK || r.header.Get("X-Amz-Copy-Source-Version-Id") != ids[0] || r.header.Get("X-Amz-Version-Id") == "" {
			t.Fatalf("copy: %d %v %s", r.status, r.header, r.body)
		}
		if got, err := getVersion(t, mc, "ver", "copy", ""); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{'a'}, 100)) {
			t.Fatalf("copied: %q %v", got, err)
		}
	})

	t.Run("a multipart upload makes a version", func(t *testing.T) {
		body := bytes.Repeat([]byte("m"), 6<<20)
		info, err := mc.PutObject(ctx, "ver", "mp", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{PartSize: 5 << 20})
		if err != nil || info.VersionID == "" || info.VersionID == s3.NullVersion {
			t.Fatalf("multipart: %q %v", info.VersionID, err)
		}
	})

	t.Run("tags by version", func(t *testing.T) {
		r := tc.do(http.MethodPut, "/ver/k?tagging&versionId="+ids[1], nil,
			[]byte(`<Tagging><TagSet><Tag><Key>v</Key><Value>1</Value></Tag></TagSet></Tagging>`))
		if r.status != http.StatusOK {
			t.Fatalf("tag a version: %d %s", r.status, r.body)
		}
		if r := tc.do(http.MethodGet, "/ver/k?tagging&versionId="+ids[1], nil, nil); !bytes.Contains(r.body, []byte("<Key>v</Key>")) {
			t.Fatalf("tags of the version: %s", r.body)
		}
		if r := tc.do(http.MethodGet, "/ver/k?tagging", nil, nil); bytes.Contains(r.body, []byte("<Key>v</Key>")) {
			t.Fatalf("the current version got the tags: %s", r.body)
		}
	})

	t.Run("suspended: writes replace the null version", func(t *testing.T) {
		if err := mc.SuspendVersioning(ctx, "ver"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			info, err := mc.PutObject(ctx, "ver", "k", bytes.NewReader([]byte("s")), 1, minio.PutObjectOptions{})
			// The null version is not named in the answer (as in S3).
			if err != nil || info.VersionID != "" {
				t.Fatalf("suspended put: %q %v", info.VersionID, err)
			}
		}
		var nulls int
		for _, v := range listVersions(t, mc, "ver") {
			if v.id == s3.NullVersion {
				nulls++
			}
		}
		if nulls != 1 {
			t.Fatalf("%d null versions", nulls)
		}
	})

	t.Run("every version deleted, the bucket is empty", func(t *testing.T) {
		// Only noncurrent versions and markers: the bucket stays, with its uploads.
		for _, k := range []string{"k", "copy", "mp"} {
			if err := mc.RemoveObject(ctx, "ver", k, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if r := tc.do(http.MethodPost, "/ver/pending?uploads", nil, nil); r.status != http.StatusOK {
			t.Fatalf("create upload: %d %s", r.status, r.body)
		}
		if err := mc.RemoveBucket(ctx, "ver"); s3code(err) != s3.CodeBucketNotEmpty {
			t.Fatalf("delete a bucket holding versions: %v", err)
		}
		var ups struct {
			Uploads []struct {
				Key      string `xml:"Key"`
				UploadID string `xml:"UploadId"`
			} `xml:"Upload"`
		}
		if err := xml.Unmarshal(tc.do(http.MethodGet, "/ver?uploads", nil, nil).body, &ups); err != nil || len(ups.Uploads) != 1 {
			t.Fatalf("a refused bucket delete aborted its upload: %+v %v", ups, err)
		}
		if r := tc.do(http.MethodDelete, "/ver/pending?uploadId="+ups.Uploads[0].UploadID, nil, nil); r.status != http.StatusNoContent {
			t.Fatalf("abort: %d %s", r.status, r.body)
		}
		objs := make(chan minio.ObjectInfo)
		go func() {
			defer close(objs)
			for o := range mc.ListObjects(ctx, "ver", minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
				objs <- o
			}
		}()
		for e := range mc.RemoveObjects(ctx, "ver", objs, minio.RemoveObjectsOptions{}) {
			t.Fatalf("remove %s %s: %v", e.ObjectName, e.VersionID, e.Err)
		}
		if got := listVersions(t, mc, "ver"); len(got) != 0 {
			t.Fatalf("left: %+v", got)
		}
		if err := mc.RemoveBucket(ctx, "ver"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestObjectLock(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.105.31"})
	ctx := context.Background()
	mc := tc.minio()
	if err := mc.MakeBucket(ctx, "locked", minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := mc.GetBucketVersioning(ctx, "locked"); err != nil || cfg.Status != "Enabled" {
		t.Fatalf("a locked bucket's versioning: %+v %v", cfg, err)
	}
	if err := mc.SuspendVersioning(ctx, "locked"); s3code(err) != s3.CodeInvalidBucketState {
		t.Fatalf("suspend versioning of a locked bucket: %v", err)
	}
	gov, days := minio.Governance, uint(1)
	unit := minio.Days
	if err := mc.SetObjectLockConfig(ctx, "locked", &gov, &days, &unit); err != nil {
		t.Fatal(err)
	}
	if enabled, mode, v, _, err := mc.GetObjectLockConfig(ctx, "locked"); err != nil || enabled != "Enabled" || *mode != gov || *v != 1 {
		t.Fatalf("lock configuration: %s %v %v %v", enabled, mode, v, err)
	}

	put := func(key string, opts minio.PutObjectOptions) string {
		t.Helper()
		info, err := mc.PutObject(ctx, "locked", key, bytes.NewReader([]byte("x")), 1, opts)
		if err != nil {
			t.Fatal(err)
		}
		return info.VersionID
	}
	t.Run("default retention: governance, bypassed only when asked", func(t *testing.T) {
		v := put("g", minio.PutObjectOptions{})
		if mode, until, err := mc.GetObjectRetention(ctx, "locked", "g", v); err != nil || *mode != gov || until.Before(time.Now().Add(23*time.Hour)) {
			t.Fatalf("retention: %v %v %v", mode, until, err)
		}
		if err := mc.RemoveObject(ctx, "locked", "g", minio.RemoveObjectOptions{VersionID: v}); s3code(err) != s3.CodeAccessDenied {
			t.Fatalf("delete a retained version: %v", err)
		}
		// A delete without a version only adds a marker.
		if err := mc.RemoveObject(ctx, "locked", "g", minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := mc.RemoveObject(ctx, "locked", "g", minio.RemoveObjectOptions{VersionID: v, GovernanceBypass: true}); err != nil {
			t.Fatalf("delete with the bypass: %v", err)
		}
	})
	t.Run("compliance: never shortened, never deleted", func(t *testing.T) {
		comp, until := minio.Compliance, time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		v := put("c", minio.PutObjectOptions{Mode: comp, RetainUntilDate: until})
		shorter := until.Add(-time.Minute)
		err := mc.PutObjectRetention(ctx, "locked", "c", minio.PutObjectRetentionOptions{VersionID: v, Mode: &comp, RetainUntilDate: &shorter, GovernanceBypass: true})
		if s3code(err) != s3.CodeAccessDenied {
			t.Fatalf("shorten compliance: %v", err)
		}
		if err := mc.RemoveObject(ctx, "locked", "c", minio.RemoveObjectOptions{VersionID: v, GovernanceBypass: true}); s3code(err) != s3.CodeAccessDenied {
			t.Fatalf("delete under compliance: %v", err)
		}
		objs := make(chan minio.ObjectInfo, 1)
		objs <- minio.ObjectInfo{Key: "c", VersionID: v}
		close(objs)
		n := 0
		for e := range mc.RemoveObjects(ctx, "locked", objs, minio.RemoveObjectsOptions{GovernanceBypass: true}) {
			if s3code(e.Err) != s3.CodeAccessDenied {
				t.Fatalf("DeleteObjects entry: %v", e.Err)
			}
			n++
		}
		if n != 1 {
			t.Fatal("DeleteObjects removed a version under compliance")
		}
		if got, err := getVersion(t, mc, "locked", "c", v); err != nil || string(got) != "x" {
			t.Fatalf("the version after refused deletes: %q %v", got, err)
		}
	})
	t.Run("legal hold", func(t *testing.T) {
		v := put("h", minio.PutObjectOptions{})
		on, off := minio.LegalHoldEnabled, minio.LegalHoldDisabled
		if err := mc.PutObjectLegalHold(ctx, "locked", "h", minio.PutObjectLegalHoldOptions{VersionID: v, Status: &on}); err != nil {
			t.Fatal(err)
		}
		if st, err := mc.GetObjectLegalHold(ctx, "locked", "h", minio.GetObjectLegalHoldOptions{VersionID: v}); err != nil || *st != on {
			t.Fatalf("legal hold: %v %v", st, err)
		}
		if r := tc.do(http.MethodHead, "/locked/h", nil, nil); r.header.Get("X-Amz-Object-Lock-Legal-Hold") != "ON" || r.header.Get("X-Amz-Object-Lock-Mode") != "GOVERNANCE" {
			t.Fatalf("HEAD's lock headers: %v", r.header)
		}
		if err := mc.RemoveObject(ctx, "locked", "h", minio.RemoveObjectOptions{VersionID: v, GovernanceBypass: true}); s3code(err) != s3.CodeAccessDenied {
			t.Fatalf("delete under legal hold: %v", err)
		}
		if err := mc.PutObjectLegalHold(ctx, "locked", "h", minio.PutObjectLegalHoldOptions{VersionID: v, Status: &off}); err != nil {
			t.Fatal(err)
		}
		if err := mc.RemoveObject(ctx, "locked", "h", minio.RemoveObjectOptions{VersionID: v, GovernanceBypass: true}); err != nil {
			t.Fatalf("delete after the hold: %v", err)
		}
	})
	t.Run("a bucket without object lock refuses it", func(t *testing.T) {
		mustBucket(t, mc, "plain")
		if _, err := mc.PutObject(ctx, "plain", "k", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{Mode: minio.Governance, RetainUntilDate: time.Now().Add(time.Hour)}); s3code(err) != s3.CodeInvalidRequest {
			t.Fatalf("put with a retention: %v", err)
		}
		if _, _, err := mc.GetObjectRetention(ctx, "plain", "k", ""); s3code(err) != s3.CodeInvalidRequest {
			t.Fatalf("get retention: %v", err)
		}
		if _, _, _, _, err := mc.GetObjectLockConfig(ctx, "plain"); s3code(err) != s3.CodeObjectLockConfigNotFound {
			t.Fatalf("lock configuration of a plain bucket: %v", err)
		}
		if err := mc.SetObjectLockConfig(ctx, "plain", &gov, &days, &unit); s3code(err) != s3.CodeInvalidBucketState {
			t.Fatalf("lock an unversioned bucket: %v", err)
		}
	})
}

// TestVersionACLAndAttributes: PutObjectAcl and GetObjectAcl by versionId act on that version
// (an anonymous read of it follows its ACL, not the current one's), and GetObjectAttributes
// names the version it describes, as GET and HEAD do.
func TestVersionACLAndAttributes(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.134.32"})
	ctx := context.Background()
	mc := tc.minio()
	mustBucket(t, mc, "vacl")
	if err := mc.EnableVersioning(ctx, "vacl"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		info, err := mc.PutObject(ctx, "vacl", "xyz", bytes.NewReader([]byte{byte('a' + i)}), 1, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.VersionID)
	}
	old := ids[1]
	tc.expect(t, "PutObjectAcl of a noncurrent version", 200, tc.access, "PUT", "/vacl/xyz?acl&versionId="+old, map[string]string{"X-Amz-Acl": "public-read"})
	if body := tc.expect(t, "GetObjectAcl of that version", 200, tc.access, "GET", "/vacl/xyz?acl&versionId="+old, nil); !strings.Contains(body, "AllUsers") {
		t.Fatalf("the version's ACL: %s", body)
	}
	if body := tc.expect(t, "GetObjectAcl of the current version", 200, tc.access, "GET", "/vacl/xyz?acl", nil); strings.Contains(body, "AllUsers") {
		t.Fatalf("the current version's ACL changed: %s", body)
	}
	tc.expect(t, "anonymous GET of the public version", 200, "", "GET", "/vacl/xyz?versionId="+old, nil)
	tc.expect(t, "anonymous GET of the current version", 403, "", "GET", "/vacl/xyz", nil)
	tc.expect(t, "PutObjectAcl of a version that does not exist", 404, tc.access, "PUT", "/vacl/xyz?acl&versionId=AAAAAAAAAAAAAAAAAAAAAAAA", map[string]string{"X-Amz-Acl": "public-read"})

	for _, c := range []struct{ asked, want string }{{"", ids[2]}, {old, old}} {
		attrs, err := mc.GetObjectAttributes(ctx, "vacl", "xyz", minio.ObjectAttributesOptions{VersionID: c.asked})
		if err != nil {
			t.Fatal(err)
		}
		if attrs.VersionID != c.want || attrs.ObjectSize != 1 {
			t.Fatalf("GetObjectAttributes (versionId %q): version %q size %d, want %q", c.asked, attrs.VersionID, attrs.ObjectSize, c.want)
		}
	}
}
