package coordinator

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/hanode/hanode/controller/gc"
	"github.com/hanode/hanode/meta"
)

func randData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func s3code(err error) string { return minio.ToErrorResponse(err).Code }

func mustBucket(t *testing.T, mc *minio.Client, name string) {
	t.Helper()
	if err := mc.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, mc *minio.Client, bucket, key string, opts minio.GetObjectOptions) ([]byte, error) {
	t.Helper()
	o, err := mc.GetObject(context.Background(), bucket, key, opts)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

func TestS3API(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, etcdHost: "127.0.88.1"})
	mc, ctx := tc.minio(), context.Background()

	// Buckets.
	mustBucket(t, mc, "alpha")
	// Re-creating one's own bucket in us-east-1 is 200, as AWS answers there, when the request
	// asks for the settings the bucket has; asking for others is BucketAlreadyOwnedByYou.
	if err := mc.MakeBucket(ctx, "alpha", minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("second MakeBucket: %v", err)
	}
	for _, h := range []http.Header{{"X-Amz-Acl": {"public-read"}}, {"X-Hanode-Replicas": {"3"}}, {"X-Amz-Bucket-Object-Lock-Enabled": {"true"}}} {
		if r := tc.do(http.MethodPut, "/alpha", h, nil); r.status != http.StatusConflict || r.code() != "BucketAlreadyOwnedByYou" {
			t.Fatalf("re-creating with %v: %d %s", h, r.status, r.body)
		}
	}
	if err := mc.MakeBucket(ctx, "Bad_Name", minio.MakeBucketOptions{}); err == nil {
		t.Fatal("invalid bucket name accepted")
	}
	if ok, err := mc.BucketExists(ctx, "alpha"); !ok || err != nil {
		t.Fatalf("BucketExists: %v %v", ok, err)
	}
	if ok, _ := mc.BucketExists(ctx, "missing"); ok {
		t.Fatal("missing bucket exists")
	}

	// Objects across several chunks, with metadata.
	data := randData(700<<10+3, 1)
	sum := md5.Sum(data)
	info, err := mc.PutObject(ctx, "alpha", "dir/one", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType: "text/x-test", UserMetadata: map[string]string{"color": "blue"}, SendContentMd5: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.ETag != hex.EncodeToString(sum[:]) {
		t.Fatalf("ETag %s, want MD5 %x", info.ETag, sum)
	}
	got, err := get(t, mc, "alpha", "dir/one", minio.GetObjectOptions{})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET: %v, equal=%v", err, bytes.Equal(got, data))
	}
	st, err := mc.StatObject(ctx, "alpha", "dir/one", minio.StatObjectOptions{})
	if err != nil || st.ContentType != "text/x-test" || st.UserMetadata["Color"] != "blue" || st.Size != int64(len(data)) {
		t.Fatalf("Stat: %v %+v", err, st)
	}
	// Every chunk on two distinct machines.
	obj := tc.object("alpha", "dir/one")
	if len(obj.Chunks) != 3 {
		t.Fatalf("%d chunks, want 3 of 256 KiB", len(obj.Chunks))
	}
	for _, ch := range obj.Chunks {
		if len(ch.Replicas) != 2 || ch.Replicas[0] == ch.Replicas[1] {
			t.Fatalf("chunk %s replicas %v: want 2 distinct machines", ch.ID, ch.Replicas)
		}
	}

	// Ranges, including across chunk boundaries, and conditionals.
	for _, r := range [][2]int64{{0, 0}, {5, 10}, {256<<10 - 3, 256<<10 + 7}, {int64(len(data)) - 1, int64(len(data)) - 1}} {
		o := minio.GetObjectOptions{}
		if err := o.SetRange(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
		got, err := get(t, mc, "alpha", "dir/one", o)
		if err != nil || !bytes.Equal(got, data[r[0]:r[1]+1]) {
			t.Fatalf("range %v: %v (%d bytes)", r, err, len(got))
		}
	}
	o := minio.GetObjectOptions{}
	_ = o.SetRange(int64(len(data))+10, int64(len(data))+20)
	if _, err := get(t, mc, "alpha", "dir/one", o); s3code(err) != "InvalidRange" {
		t.Fatalf("unsatisfiable range: %v", err)
	}
	o = minio.GetObjectOptions{}
	_ = o.SetMatchETag("not-the-etag")
	if _, err := get(t, mc, "alpha", "dir/one", o); s3code(err) != "PreconditionFailed" {
		t.Fatalf("If-Match mismatch: %v", err)
	}
	o = minio.GetObjectOptions{}
	_ = o.SetMatchETagExcept(info.ETag)
	if _, err := get(t, mc, "alpha", "dir/one", o); err == nil {
		t.Fatal("If-None-Match on the current ETag must not return the body")
	}

	// Listing with prefixes, delimiters and paging.
	for i := range 25 {
		if _, err := mc.PutObject(ctx, "alpha", fmt.Sprintf("list/%02d", i), strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for oi := range mc.ListObjects(ctx, "alpha", minio.ListObjectsOptions{Prefix: "list/", MaxKeys: 7}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	if len(keys) != 25 || keys[0] != "list/00" || keys[24] != "list/24" {
		t.Fatalf("paged V2 listing: %d keys %v", len(keys), keys)
	}
	var top []string
	for oi := range mc.ListObjects(ctx, "alpha", minio.ListObjectsOptions{MaxKeys: 1}) {
		top = append(top, oi.Key)
	}
	if !slices.Equal(top, []string{"dir/", "list/"}) {
		t.Fatalf("delimited listing: %v", top)
	}
	var v1 []string
	for oi := range mc.ListObjects(ctx, "alpha", minio.ListObjectsOptions{Prefix: "list/1", UseV1: true, MaxKeys: 3}) {
		v1 = append(v1, oi.Key)
	}
	if len(v1) != 10 {
		t.Fatalf("V1 listing: %v", v1)
	}
	// A V1 marker equal to the prefix is not a common prefix of the listing: every key under
	// the prefix comes after it (it was taken for one, and the listing came back empty).
	v1 = nil
	for oi := range mc.ListObjects(ctx, "alpha", minio.ListObjectsOptions{Prefix: "list/", StartAfter: "list/", UseV1: true, MaxKeys: 10}) {
		v1 = append(v1, oi.Key)
	}
	if len(v1) != 25 {
		t.Fatalf("V1 listing after a marker equal to the prefix: %v", v1)
	}

	// Copy, delete, multi-delete.
	if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "alpha", Object: "copy"}, minio.CopySrcOptions{Bucket: "alpha", Object: "dir/one"}); err != nil {
		t.Fatal(err)
	}
	if got, err := get(t, mc, "alpha", "copy", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy: %v", err)
	}
	if err := mc.RemoveBucket(ctx, "alpha"); s3code(err) != "BucketNotEmpty" {
		t.Fatalf("RemoveBucket of a full bucket: %v", err)
	}
	objs := make(chan minio.ObjectInfo, 30)
	for i := range 25 {
		objs <- minio.ObjectInfo{Key: fmt.Sprintf("list/%02d", i)}
	}
	close(objs)
	for e := range mc.RemoveObjects(ctx, "alpha", objs, minio.RemoveObjectsOptions{}) {
		t.Fatalf("RemoveObjects: %v", e.Err)
	}
	for _, k := range []string{"dir/one", "copy", "never-existed"} {
		if err := mc.RemoveObject(ctx, "alpha", k, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("RemoveObject %s: %v", k, err)
		}
	}
	if _, err := mc.StatObject(ctx, "alpha", "dir/one", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("stat after delete: %v", err)
	}
	if err := mc.RemoveBucket(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.ListBuckets(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMultipart(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, chunkSize: 1 << 20, etcdHost: "127.0.88.2"})
	mc, ctx := tc.minio(), context.Background()
	mustBucket(t, mc, "mpu")
	data := randData(17<<20+5, 2)
	info, err := mc.PutObject(ctx, "mpu", "big", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.ETag, "-4") {
		t.Fatalf("multipart ETag %q, want 4 parts", info.ETag)
	}
	got, err := get(t, mc, "mpu", "big", minio.GetObjectOptions{})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET multipart object: %v", err)
	}
	obj := tc.object("mpu", "big")
	if len(obj.Parts) != 4 || obj.Size != int64(len(data)) {
		t.Fatalf("record: %d parts, size %d", len(obj.Parts), obj.Size)
	}
	// A part read back by number.
	o := minio.GetObjectOptions{PartNumber: 2}
	if got, err := get(t, mc, "mpu", "big", o); err != nil || !bytes.Equal(got, data[5<<20:10<<20]) {
		t.Fatalf("partNumber=2: %v (%d bytes)", err, len(got))
	}
	// Abort leaves nothing behind; listing shows uploads in progress.
	core := minio.Core{Client: mc}
	id, err := core.NewMultipartUpload(ctx, "mpu", "aborted", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.PutObjectPart(ctx, "mpu", "aborted", id, 1, bytes.NewReader(data[:1<<20]), 1<<20, minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := core.ListMultipartUploads(ctx, "mpu", "", "", "", "", 100)
	if err != nil || len(res.Uploads) != 1 || res.Uploads[0].UploadID != id {
		t.Fatalf("ListMultipartUploads: %v %+v", err, res)
	}
	parts, err := core.ListObjectParts(ctx, "mpu", "aborted", id, 0, 100)
	if err != nil || len(parts.ObjectParts) != 1 {
		t.Fatalf("ListObjectParts: %v %+v", err, parts)
	}
	// Too-small parts are refused at completion.
	if _, err := core.PutObjectPart(ctx, "mpu", "aborted", id, 2, strings.NewReader("tail"), 4, minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	small, err := core.PutObjectPart(ctx, "mpu", "aborted", id, 3, strings.NewReader("tail"), 4, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := core.ListObjectParts(ctx, "mpu", "aborted", id, 1, 1)
	_, err = core.CompleteMultipartUpload(ctx, "mpu", "aborted", id, []minio.CompletePart{{PartNumber: 2, ETag: p2.ObjectParts[0].ETag}, {PartNumber: 3, ETag: small.ETag}}, minio.PutObjectOptions{})
	if s3code(err) != "EntityTooSmall" {
		t.Fatalf("complete with a 4-byte first part: %v", err)
	}
	if err := core.AbortMultipartUpload(ctx, "mpu", "aborted", id); err != nil {
		t.Fatal(err)
	}
	if _, err := core.ListObjectParts(ctx, "mpu", "aborted", id, 0, 100); s3code(err) != "NoSuchUpload" {
		t.Fatalf("parts of an aborted upload: %v", err)
	}
	// The aborted parts' chunks are collected.
	col := &gc.Collector{Etcd: tc.etcd, Meta: meta.New(tc.etcd), Datanodes: tc.coord.o.Datanodes, Log: tc.coord.log, WriteTimeout: time.Hour, GiveUp: time.Hour}
	before := tc.chunkCount()
	if _, err := col.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if after := tc.chunkCount(); after != before-2*3 {
		t.Fatalf("chunks %d -> %d after collecting an aborted upload of 3 one-chunk parts at R=2", before, after)
	}
}

func TestReadsSurviveDeadAndCorruptReplicas(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, etcdHost: "127.0.88.3"})
	mc, ctx := tc.minio(), context.Background()
	mustBucket(t, mc, "rep")
	data := randData(1<<20, 3)
	if _, err := mc.PutObject(ctx, "rep", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj := tc.object("rep", "k")
	// Corrupt the first replica of every chunk on disk: reads must still be exact.
	for _, ch := range obj.Chunks {
		n := tc.nodes[tc.coord.replicaOrder(ch)[0]]
		f, err := os.OpenFile(n.chunkFile(ch.ID), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := []byte{0}
		_, _ = f.ReadAt(b, 1000)
		b[0] ^= 0xff
		_, _ = f.WriteAt(b, 1000)
		f.Close()
	}
	got, err := get(t, mc, "rep", "k", minio.GetObjectOptions{})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET with a corrupt replica per chunk: %v equal=%v", err, bytes.Equal(got, data))
	}
	bad, err := meta.New(tc.etcd).BadReplicas(ctx, 100)
	if err != nil || len(bad) != len(obj.Chunks) {
		t.Fatalf("recorded bad replicas: %v %+v (want %d)", err, bad, len(obj.Chunks))
	}
	// Now kill one machine: every chunk still has a replica somewhere readable, or the
	// read fails loudly (never wrong bytes).
	data2 := randData(1<<20, 4)
	if _, err := mc.PutObject(ctx, "rep", "k2", bytes.NewReader(data2), int64(len(data2)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.kill("m2")
	for range 5 {
		got, err := get(t, mc, "rep", "k2", minio.GetObjectOptions{})
		if err != nil || !bytes.Equal(got, data2) {
			t.Fatalf("GET after a datanode died: %v", err)
		}
	}
	// Writes keep succeeding with 3 machines, R = 2 and one dead (still registered).
	for i := range 5 {
		d := randData(600<<10, uint64(10+i))
		if _, err := mc.PutObject(ctx, "rep", fmt.Sprintf("w%d", i), bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("PUT with a dead datanode: %v", err)
		}
		for _, ch := range tc.object("rep", fmt.Sprintf("w%d", i)).Chunks {
			if slices.Contains(ch.Replicas, "m2") {
				t.Fatalf("chunk placed on the dead machine: %v", ch.Replicas)
			}
		}
	}
	// With two of three machines gone, R = 2 cannot be met: 503, nothing visible.
	tc.nodes["m3"].reg.Close()
	tc.nodes["m2"].reg.Close()
	tc.waitLive(1)
	_, err = mc.PutObject(ctx, "rep", "nope", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if s3code(err) != "ServiceUnavailable" {
		t.Fatalf("PUT with 1 of R=2 machines: %v", err)
	}
	if _, err := mc.StatObject(ctx, "rep", "nope", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
		t.Fatalf("failed PUT became visible: %v", err)
	}
}

func TestConcurrentWritersOneKey(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, chunkSize: 64 << 10, etcdHost: "127.0.88.4"})
	mc, ctx := tc.minio(), context.Background()
	mustBucket(t, mc, "cww")
	const writers = 8
	versions := make([][]byte, writers)
	for i := range versions {
		versions[i] = randData(200<<10, uint64(100+i)) // 4 chunks each
	}
	if _, err := mc.PutObject(ctx, "cww", "k", bytes.NewReader(versions[0]), int64(len(versions[0])), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 100)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if _, err := mc.PutObject(ctx, "cww", "k", bytes.NewReader(versions[i]), int64(len(versions[i])), minio.PutObjectOptions{}); err != nil {
					errs <- err
				}
			}
		}()
	}
	var rg sync.WaitGroup
	for range 3 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := get(t, mc, "cww", "k", minio.GetObjectOptions{})
				if err != nil {
					errs <- err
					continue
				}
				if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) }) {
					errs <- errors.New("a reader saw a torn object")
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, _ := get(t, mc, "cww", "k", minio.GetObjectOptions{})
	if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) }) {
		t.Fatal("final object is not one writer's whole object")
	}
	// Every replaced version's chunks are collected (grace 0): what remains is one object.
	col := &gc.Collector{Etcd: tc.etcd, Meta: meta.New(tc.etcd), Datanodes: tc.coord.o.Datanodes, Log: tc.coord.log, WriteTimeout: time.Hour, GiveUp: time.Hour}
	if _, err := col.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if n := tc.chunkCount(); n != 4*2 {
		t.Fatalf("%d chunk files remain, want 8 (4 chunks x R=2)", n)
	}
}

func TestBadRequestsStoreNothing(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.88.5"})
	mc, ctx := tc.minio(), context.Background()
	mustBucket(t, mc, "bad")
	data := randData(300<<10, 5)
	cases := []struct {
		name string
		mc   *minio.Client
		want string
	}{
		{"wrong secret", tc.client(tc.access, "not-the-secret"), "SignatureDoesNotMatch"},
		{"unknown key", tc.client("NOBODY", "whatever-secret"), "InvalidAccessKeyId"},
	}
	for _, c := range cases {
		_, err := c.mc.PutObject(ctx, "bad", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		if s3code(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	// Raw requests: anonymous, a truncated body, a bad Content-MD5, an oversized header.
	host := strings.TrimPrefix(tc.s3.URL, "http://")
	resp, err := http.Get(tc.s3.URL + "/bad/k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous GET: %d", resp.StatusCode)
	}
	// A signed PUT whose connection dies halfway through the body.
	presigned, err := mc.PresignedPutObject(ctx, "bad", "trunc", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", presigned.RequestURI(), host, len(data))
	_, _ = conn.Write(data[:len(data)/2])
	conn.Close()
	// A bad Content-MD5.
	req, _ := http.NewRequest(http.MethodPut, tc.s3.URL+"/bad/md5", bytes.NewReader(data))
	req.Header.Set("Content-Md5", "AAAAAAAAAAAAAAAAAAAAAA==")
	signed, err := mc.PresignedPutObject(ctx, "bad", "md5", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req.URL = signed
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("BadDigest")) {
		t.Errorf("bad Content-MD5: %d %s", resp.StatusCode, body)
	}
	// An oversized header section.
	req, _ = http.NewRequest(http.MethodGet, tc.s3.URL+"/bad/k", nil)
	req.Header.Set("X-Amz-Meta-Big", strings.Repeat("x", 20<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("RequestHeaderSectionTooLarge")) {
		t.Errorf("oversized header: %d %s", resp.StatusCode, body)
	}
	// Nothing became visible, and once failed writes are collected nothing is left on disk.
	deadline := time.Now().Add(5 * time.Second)
	for {
		col := &gc.Collector{Etcd: tc.etcd, Meta: meta.New(tc.etcd), Datanodes: tc.coord.o.Datanodes, Log: tc.coord.log, WriteTimeout: time.Hour, GiveUp: time.Hour}
		if _, err := col.Round(ctx); err != nil {
			t.Fatal(err)
		}
		if tc.chunkCount() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d chunk files left by failed writes", tc.chunkCount())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for oi := range mc.ListObjects(ctx, "bad", minio.ListObjectsOptions{Recursive: true}) {
		t.Errorf("failed write visible: %+v", oi)
	}
}

func TestDiskFull(t *testing.T) {
	// Every datanode refuses puts that would leave less than 1 PiB free.
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, minFree: 1 << 50, etcdHost: "127.0.88.6"})
	mc, ctx := tc.minio(), context.Background()
	mustBucket(t, mc, "full")
	_, err := mc.PutObject(ctx, "full", "k", bytes.NewReader(randData(1000, 6)), 1000, minio.PutObjectOptions{})
	if s3code(err) != "ServiceUnavailable" {
		t.Fatalf("PUT on full disks: %v", err)
	}
	if tc.chunkCount() != 0 {
		t.Fatal("a full disk kept a partial chunk")
	}
}

func TestVirtualHostAndPresigned(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.88.7", domains: []string{"s3.hanode.test"}})
	ctx := context.Background()
	addr := strings.TrimPrefix(tc.s3.URL, "http://")
	_, port, _ := net.SplitHostPort(addr)
	// Every *.s3.hanode.test name dials the test server: virtual-host style without DNS.
	var hosts []string
	var mu sync.Mutex
	tr := &http.Transport{DialContext: func(ctx context.Context, network, host string) (net.Conn, error) {
		mu.Lock()
		hosts = append(hosts, host)
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	vh, err := minio.New("s3.hanode.test:"+port, &minio.Options{Creds: credentials.NewStaticV4(tc.access, tc.secret, ""), Transport: tr, BucketLookup: minio.BucketLookupDNS})
	if err != nil {
		t.Fatal(err)
	}
	mustBucket(t, tc.minio(), "vhost")
	data := randData(1000, 7)
	if _, err := vh.PutObject(ctx, "vhost", "a/b c", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := get(t, tc.minio(), "vhost", "a/b c", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("virtual-host PUT read back path-style: %v", err)
	}
	if !slices.ContainsFunc(hosts, func(h string) bool { return strings.HasPrefix(h, "vhost.s3.hanode.test:") }) {
		t.Fatalf("the client did not use virtual-host style: dialled %v", hosts)
	}
	// A presigned GET works with a plain HTTP client; a tampered one does not.
	u, err := tc.minio().PresignedGetObject(ctx, "vhost", "a/b c", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) || resp.Header.Get("X-Hanode-Node") != "m1" {
		t.Fatalf("presigned GET: %d, %d bytes, node %q", resp.StatusCode, len(body), resp.Header.Get("X-Hanode-Node"))
	}
	resp, err = http.Get(strings.Replace(u.String(), "a/b%20c", "a/b%20d", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered presigned GET: %d", resp.StatusCode)
	}
}
