package coordinator

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/secrets"
)

// countKeys counts the etcd keys under prefix.
func (tc *testCluster) countKeys(prefix string) int64 {
	tc.t.Helper()
	resp, err := tc.etcd.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		tc.t.Fatal(err)
	}
	return resp.Count
}

// rawRecord is the stored bytes of bucket/key's record.
func (tc *testCluster) rawRecord(bucket, key string) []byte {
	tc.t.Helper()
	resp, err := tc.etcd.Get(context.Background(), meta.ObjectKey(bucket, key))
	if err != nil || len(resp.Kvs) == 0 {
		tc.t.Fatalf("record of %s/%s: %v", bucket, key, err)
	}
	return resp.Kvs[0].Value
}

func (tc *testCluster) mustInline(bucket, key string, want bool) *meta.Object {
	tc.t.Helper()
	o := tc.object(bucket, key)
	if got := o.Inline != nil; got != want || want && len(o.Chunks) != 0 {
		tc.t.Fatalf("%s/%s: inline %v with %d chunks, want inline %v", bucket, key, got, len(o.Chunks), want)
	}
	return o
}

func TestInlineObjects(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, inlineMax: 4096, etcdHost: "127.0.137.2"})
	ctx, mc := context.Background(), tc.minio()
	if err := mc.MakeBucket(ctx, "inl", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	small, big := pattern(4096), pattern(4097)
	put := func(key string, data []byte) minio.UploadInfo {
		t.Helper()
		info, err := mc.PutObject(ctx, "inl", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableMultipart: true, ContentType: "text/x-test"})
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return info
	}
	info := put("small", small)
	sum := md5.Sum(small)
	if info.ETag != hex.EncodeToString(sum[:]) {
		t.Fatalf("ETag %s, want the MD5", info.ETag)
	}
	tc.mustInline("inl", "small", true)
	put("empty", nil)
	tc.mustInline("inl", "empty", true)
	if n := tc.chunkCount(); n != 0 {
		t.Fatalf("%d chunk files after inline writes, want 0", n)
	}
	if n := tc.countKeys(meta.IntentPrefix) + tc.countKeys(meta.GCPrefix); n != 0 {
		t.Fatalf("%d intent or garbage records after inline writes, want 0", n)
	}
	// One byte over the threshold: chunks, on both replicas.
	put("big", big)
	tc.mustInline("inl", "big", false)
	if n := tc.chunkCount(); n != 2 {
		t.Fatalf("%d chunk files after a 4097-byte write, want 2", n)
	}

	t.Run("reads", func(t *testing.T) {
		if got, err := getBody(t, mc, "inl", "small", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, small) {
			t.Fatalf("GET: %v", err)
		}
		if got, err := getBody(t, mc, "inl", "empty", minio.GetObjectOptions{}); err != nil || len(got) != 0 {
			t.Fatalf("GET empty: %d bytes, %v", len(got), err)
		}
		st, err := mc.StatObject(ctx, "inl", "small", minio.StatObjectOptions{})
		if err != nil || st.Size != 4096 || st.ETag != info.ETag || st.ContentType != "text/x-test" {
			t.Fatalf("HEAD: %+v %v", st, err)
		}
		for _, r := range [][2]int64{{0, 0}, {100, 199}, {4000, 4095}} {
			o := minio.GetObjectOptions{}
			_ = o.SetRange(r[0], r[1])
			if got, err := getBody(t, mc, "inl", "small", o); err != nil || !bytes.Equal(got, small[r[0]:r[1]+1]) {
				t.Fatalf("GET bytes %d-%d: %v", r[0], r[1], err)
			}
		}
		o := minio.GetObjectOptions{PartNumber: 1}
		if got, err := getBody(t, mc, "inl", "small", o); err != nil || !bytes.Equal(got, small) {
			t.Fatalf("GET partNumber=1: %v", err)
		}
		attrs := tc.expect(t, "GetObjectAttributes", 200, tc.access, "GET", "/inl/small?attributes", map[string]string{"X-Amz-Object-Attributes": "ETag,ObjectSize,StorageClass"})
		if !strings.Contains(attrs, "<ObjectSize>4096</ObjectSize>") || !strings.Contains(attrs, info.ETag) {
			t.Fatalf("GetObjectAttributes: %s", attrs)
		}
		if v := testutil.ToFloat64(tc.coord.metrics.inlineReads); v < 5 {
			t.Errorf("hanode_s3_inline_reads_total %v, want >= 5", v)
		}
	})

	t.Run("copies", func(t *testing.T) {
		before := tc.chunkCount()
		if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "inl", Object: "copy"}, minio.CopySrcOptions{Bucket: "inl", Object: "small"}); err != nil {
			t.Fatal(err)
		}
		tc.mustInline("inl", "copy", true)
		if got, err := getBody(t, mc, "inl", "copy", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, small) {
			t.Fatalf("GET the copy: %v", err)
		}
		if n := tc.chunkCount(); n != before {
			t.Fatalf("an inline copy stored chunks: %d files, had %d", n, before)
		}
		if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "inl", Object: "bigcopy"}, minio.CopySrcOptions{Bucket: "inl", Object: "big"}); err != nil {
			t.Fatal(err)
		}
		tc.mustInline("inl", "bigcopy", false)
		// A part copied from an inline object is a part like any other: chunks.
		core := minio.Core{Client: mc}
		id, err := core.NewMultipartUpload(ctx, "inl", "composed", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := core.CopyObjectPart(ctx, "inl", "small", "inl", "composed", id, 1, 10, 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.CompleteMultipartUpload(ctx, "inl", "composed", id, []minio.CompletePart{{PartNumber: 1, ETag: p.ETag}}, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		tc.mustInline("inl", "composed", false)
		if got, err := getBody(t, mc, "inl", "composed", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, small[10:1010]) {
			t.Fatalf("GET the upload made of a copied part: %v", err)
		}
	})

	t.Run("browser POST upload", func(t *testing.T) {
		conds := []any{map[string]string{"bucket": "inl"}, []any{"starts-with", "$key", ""}}
		code, body, _ := tc.postForm(t, "inl", tc.access, tc.secret, conds, [][2]string{{"key", "posted"}}, "posted through a form")
		if code != http.StatusNoContent {
			t.Fatalf("POST: %d %s", code, body)
		}
		tc.mustInline("inl", "posted", true)
		if got, err := getBody(t, mc, "inl", "posted", minio.GetObjectOptions{}); err != nil || string(got) != "posted through a form" {
			t.Fatalf("GET the POST upload: %q %v", got, err)
		}
	})

	t.Run("conditional writes", func(t *testing.T) {
		if code, body, _ := tc.s3req(tc.access, http.MethodPut, "/inl/small", []byte("other"), map[string]string{"If-None-Match": "*"}); code != http.StatusPreconditionFailed {
			t.Fatalf("If-None-Match * over an inline object: %d %s", code, body)
		}
		if code, body, _ := tc.s3req(tc.access, http.MethodPut, "/inl/small", []byte("other"), map[string]string{"If-Match": `"` + info.ETag + `"`}); code != http.StatusOK {
			t.Fatalf("If-Match of the inline object's ETag: %d %s", code, body)
		}
		if got, err := getBody(t, mc, "inl", "small", minio.GetObjectOptions{}); err != nil || string(got) != "other" {
			t.Fatalf("after the conditional overwrite: %q %v", got, err)
		}
	})

	t.Run("damaged data is refused", func(t *testing.T) {
		put("victim", small)
		rec := tc.object("inl", "victim")
		rec.Inline.Data[7] ^= 0x20 // the stored checksum no longer matches
		if _, err := tc.etcd.Put(ctx, meta.ObjectKey("inl", "victim"), string(meta.EncodeObject(rec))); err != nil {
			t.Fatal(err)
		}
		before := testutil.ToFloat64(tc.coord.metrics.inlineFailures)
		_, err := getBody(t, mc, "inl", "victim", minio.GetObjectOptions{})
		if s, code := errCode(err); s != http.StatusInternalServerError {
			t.Fatalf("GET of damaged inline data: %d %s (%v), want 500", s, code, err)
		}
		if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "inl", Object: "victim-copy"}, minio.CopySrcOptions{Bucket: "inl", Object: "victim"}); err == nil {
			t.Fatal("a copy of damaged inline data succeeded")
		}
		if v := testutil.ToFloat64(tc.coord.metrics.inlineFailures); v < before+2 {
			t.Fatalf("hanode_s3_inline_checksum_failures_total %v, want >= %v", v, before+2)
		}
	})
}

// Inline writes need no datanode: a cluster with none still takes (and serves) small objects,
// and refuses larger ones as before.
func TestInlineWithoutDatanodes(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 0, replicas: 1, inlineMax: 1024, etcdHost: "127.0.137.3"})
	ctx, mc := context.Background(), tc.minio()
	if err := mc.MakeBucket(ctx, "inl", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := pattern(1024)
	if _, err := mc.PutObject(ctx, "inl", "k", bytes.NewReader(data), 1024, minio.PutObjectOptions{DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := getBody(t, mc, "inl", "k", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET: %v", err)
	}
	_, err := mc.PutObject(ctx, "inl", "big", bytes.NewReader(pattern(1025)), 1025, minio.PutObjectOptions{DisableMultipart: true})
	if s, _ := errCode(err); s != http.StatusServiceUnavailable {
		t.Fatalf("a chunked write without datanodes: %d (%v), want 503", s, err)
	}
}

// inline-max 0 keeps every object in chunks.
func TestInlineDisabled(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.137.4"})
	ctx, mc := context.Background(), tc.minio()
	if err := mc.MakeBucket(ctx, "inl", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "inl", "k", bytes.NewReader([]byte("tiny")), 4, minio.PutObjectOptions{DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	tc.mustInline("inl", "k", false)
	if n := tc.chunkCount(); n != 1 {
		t.Fatalf("%d chunk files, want 1", n)
	}
	if v := testutil.ToFloat64(tc.coord.metrics.inlineWrites); v != 0 {
		t.Fatalf("hanode_s3_inline_writes_total %v, want 0", v)
	}
}

// Noncurrent versions keep their data: each version reads back as written, after newer
// versions and a delete marker.
func TestInlineVersioned(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, inlineMax: 4096, etcdHost: "127.0.137.5"})
	ctx, mc := context.Background(), tc.minio()
	if err := mc.MakeBucket(ctx, "vbk", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := mc.EnableVersioning(ctx, "vbk"); err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{[]byte("version one"), []byte("version two, a little longer"), pattern(4096)}
	var ids []string
	for _, b := range bodies {
		info, err := mc.PutObject(ctx, "vbk", "k", bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{DisableMultipart: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.VersionID)
	}
	tc.mustInline("vbk", "k", true)
	if err := mc.RemoveObject(ctx, "vbk", "k", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		got, err := getBody(t, mc, "vbk", "k", minio.GetObjectOptions{VersionID: id})
		if err != nil || !bytes.Equal(got, bodies[i]) {
			t.Fatalf("version %d (%s): %q %v", i, id, got, err)
		}
		o, err := meta.New(tc.etcd).GetObjectVersion(ctx, "vbk", "k", id)
		if err != nil || o.Inline == nil || len(o.Chunks) != 0 {
			t.Fatalf("version %d's record: %+v %v", i, o, err)
		}
	}
	// A noncurrent inline version copied back becomes current again, inline.
	if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "vbk", Object: "k"}, minio.CopySrcOptions{Bucket: "vbk", Object: "k", VersionID: ids[0]}); err != nil {
		t.Fatal(err)
	}
	if got, err := getBody(t, mc, "vbk", "k", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, bodies[0]) {
		t.Fatalf("current after restoring version one: %q %v", got, err)
	}
	if n := tc.chunkCount(); n != 0 {
		t.Fatalf("%d chunk files, want 0", n)
	}
}

// Encrypted inline objects are sealed as chunks are: never in clear in the record, a fresh
// sealing id per object, and readable (whole and ranged) only with the key.
func TestInlineSSE(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, inlineMax: 4096, etcdHost: "127.0.137.6"})
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	tc.coord.o.DataKeys = keyringDataKeys{ring} // before any request is served
	ctx, mc := context.Background(), tc.minio()
	if err := mc.MakeBucket(ctx, "enc", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := pattern(4000)
	probe := data[1000:1064]
	ckey := customerKey(t, 3)
	for _, c := range []struct {
		key string
		sse encrypt.ServerSide
	}{{"ssec", ckey}, {"sses3", encrypt.NewSSE()}, {"ssec-again", ckey}} {
		if _, err := mc.PutObject(ctx, "enc", c.key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ServerSideEncryption: c.sse, DisableMultipart: true}); err != nil {
			t.Fatalf("%s: %v", c.key, err)
		}
		rec := tc.mustInline("enc", c.key, true)
		if rec.SSE == nil || rec.Inline.ID == "" {
			t.Fatalf("%s: record SSE %+v, seal id %q", c.key, rec.SSE, rec.Inline.ID)
		}
		if bytes.Contains(tc.rawRecord("enc", c.key), probe) {
			t.Fatalf("%s: the record holds the plaintext", c.key)
		}
	}
	a, b := tc.object("enc", "ssec"), tc.object("enc", "ssec-again")
	if a.Inline.ID == b.Inline.ID || bytes.Equal(a.Inline.Data, b.Inline.Data) {
		t.Fatal("two inline objects under one SSE-C key share a sealing id or their sealed bytes")
	}
	if n := tc.chunkCount(); n != 0 {
		t.Fatalf("%d chunk files, want 0", n)
	}
	for key, opts := range map[string]minio.GetObjectOptions{"ssec": {ServerSideEncryption: ckey}, "sses3": {}} {
		if got, err := getBody(t, mc, "enc", key, opts); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GET %s: %v", key, err)
		}
		_ = opts.SetRange(17, 3000)
		if got, err := getBody(t, mc, "enc", key, opts); err != nil || !bytes.Equal(got, data[17:3001]) {
			t.Fatalf("ranged GET %s: %v", key, err)
		}
	}
	if _, err := getBody(t, mc, "enc", "ssec", minio.GetObjectOptions{ServerSideEncryption: customerKey(t, 4)}); err == nil {
		t.Fatal("GET with a wrong SSE-C key succeeded")
	}
	if _, err := getBody(t, mc, "enc", "ssec", minio.GetObjectOptions{}); err == nil {
		t.Fatal("GET of an SSE-C object without its key succeeded")
	}
	// SSE-C inline source to an SSE-S3 inline copy, and to a copy stored as sent.
	if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "enc", Object: "copy-s3", Encryption: encrypt.NewSSE()},
		minio.CopySrcOptions{Bucket: "enc", Object: "ssec", Encryption: encrypt.SSECopy(ckey)}); err != nil {
		t.Fatal(err)
	}
	if rec := tc.mustInline("enc", "copy-s3", true); rec.SSE == nil || rec.SSE.Algorithm != meta.SSES3 {
		t.Fatalf("copy's encryption: %+v", rec.SSE)
	}
	if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "enc", Object: "copy-plain"},
		minio.CopySrcOptions{Bucket: "enc", Object: "ssec", Encryption: encrypt.SSECopy(ckey)}); err != nil {
		t.Fatal(err)
	}
	if rec := tc.mustInline("enc", "copy-plain", true); rec.SSE != nil || !bytes.Equal(rec.Inline.Data, data) {
		t.Fatalf("plain copy of an SSE-C object: SSE %+v", rec.SSE)
	}
	for _, key := range []string{"copy-s3", "copy-plain"} {
		if got, err := getBody(t, mc, "enc", key, minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GET %s: %v", key, err)
		}
	}
}
