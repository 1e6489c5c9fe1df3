package coordinator

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/minio/minio-go/v7/pkg/sse"

	"github.com/hanode/hanode/internal/sealstream"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/secrets"
)

// keyringDataKeys serves data keys from a cluster keyring in this process, as a controller
// does over the admin API (controller/sse.go calls the same keyring methods).
type keyringDataKeys struct{ ring *secrets.Keyring }

func (k keyringDataKeys) New(context.Context) ([]byte, []byte, error) { return k.ring.NewDataKey() }
func (k keyringDataKeys) Open(_ context.Context, sealed []byte) ([]byte, error) {
	return k.ring.OpenDataKey(sealed)
}

// newSSECluster is a one-machine cluster whose coordinator can reach a keyring for SSE-S3.
func newSSECluster(t *testing.T) (*testCluster, *secrets.Keyring) {
	t.Helper()
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.120.1"})
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	tc.coord.o.DataKeys = keyringDataKeys{ring} // before any request is served
	if err := tc.minio().MakeBucket(context.Background(), "enc", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	return tc, ring
}

// pattern is recognisable plaintext: a search of the datanodes' files for it finds it only if
// it was stored in the clear.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "hanode-plaintext-"[i%17]
	}
	return b
}

func customerKey(t *testing.T, seed byte) encrypt.ServerSide {
	t.Helper()
	sse, err := encrypt.NewSSEC(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return sse
}

func errCode(err error) (int, string) {
	r := minio.ToErrorResponse(err)
	return r.StatusCode, r.Code
}

// storedInClear reports whether any chunk file of the cluster holds a 4 KiB piece of data.
func (tc *testCluster) storedInClear(data []byte) bool {
	tc.t.Helper()
	probe := data[len(data)/2 : len(data)/2+4096]
	for _, n := range tc.nodes {
		infos, err := n.store.List(context.Background(), "", 100000)
		if err != nil {
			tc.t.Fatal(err)
		}
		for _, ci := range infos {
			b, err := os.ReadFile(n.chunkFile(ci.ID))
			if err != nil {
				tc.t.Fatal(err)
			}
			if bytes.Contains(b, probe) {
				return true
			}
		}
	}
	return false
}

func getBody(t *testing.T, mc *minio.Client, bucket, key string, opts minio.GetObjectOptions) ([]byte, error) {
	t.Helper()
	o, err := mc.GetObject(context.Background(), bucket, key, opts)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

func TestSSEC(t *testing.T) {
	tc, _ := newSSECluster(t)
	ctx, mc := context.Background(), tc.minio()
	data := pattern(3*256<<10 + 12345) // four chunks of 256 KiB, each of several 64 KiB blocks
	key := customerKey(t, 1)
	info, err := mc.PutObject(ctx, "enc", "c", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ServerSideEncryption: key, DisableMultipart: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	if info.ETag == hex.EncodeToString(sum[:]) {
		t.Error("the ETag of an SSE-C object is the MD5 of its plaintext")
	}
	if tc.storedInClear(data) {
		t.Fatal("the datanodes hold the plaintext of an SSE-C object")
	}
	rec := tc.object("enc", "c")
	if rec.SSE == nil || rec.SSE.Algorithm != meta.SSEC || bytes.Contains(rec.SSE.KeyCheck, bytes.Repeat([]byte{1}, 8)) || len(rec.SSE.SealedKey) != 0 {
		t.Fatalf("record's encryption: %+v", rec.SSE)
	}
	if rec.Size != int64(len(data)) || rec.Chunks[0].Size != sealstream.SealedSize(256<<10) {
		t.Fatalf("record sizes: object %d, first chunk %d", rec.Size, rec.Chunks[0].Size)
	}

	got, err := getBody(t, mc, "enc", "c", minio.GetObjectOptions{ServerSideEncryption: key})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET with the key: %v (%d bytes)", err, len(got))
	}
	st, err := mc.StatObject(ctx, "enc", "c", minio.StatObjectOptions{ServerSideEncryption: key})
	if err != nil || st.Size != int64(len(data)) || st.Metadata.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "AES256" {
		t.Fatalf("HEAD with the key: %v %+v", err, st.Metadata)
	}

	// Refusals, as AWS answers them.
	refusals := []struct {
		name   string
		opts   minio.GetObjectOptions
		status int
		code   string
	}{
		{"no key", minio.GetObjectOptions{}, http.StatusBadRequest, "InvalidRequest"},
		{"wrong key", minio.GetObjectOptions{ServerSideEncryption: customerKey(t, 2)}, http.StatusForbidden, "AccessDenied"},
	}
	for _, r := range refusals {
		_, err := getBody(t, mc, "enc", "c", r.opts)
		if s, c := errCode(err); s != r.status || c != r.code {
			t.Errorf("GET, %s: %d %s (%v), want %d %s", r.name, s, c, err, r.status, r.code)
		}
		_, err = mc.StatObject(ctx, "enc", "c", minio.StatObjectOptions{ServerSideEncryption: r.opts.ServerSideEncryption})
		if s, _ := errCode(err); s != r.status {
			t.Errorf("HEAD, %s: %d (%v), want %d", r.name, s, err, r.status)
		}
	}
	// A key given for an object not stored with SSE-C.
	if _, err := mc.PutObject(ctx, "enc", "plain", bytes.NewReader(data[:10]), 10, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := getBody(t, mc, "enc", "plain", minio.GetObjectOptions{ServerSideEncryption: key}); err == nil {
		t.Error("an SSE-C key accepted on an object stored without it")
	}
	// A read names no encryption method: the record knows it (AWS: 400).
	req0, _ := http.NewRequest(http.MethodHead, tc.s3.URL+"/enc/plain", nil)
	req0.Header.Set("X-Amz-Server-Side-Encryption", "AES256")
	if resp := tc.signedDo(req0); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("HEAD with x-amz-server-side-encryption: %d, want 400", resp.StatusCode)
	}
	// A key whose MD5 header is wrong is refused on PUT.
	req, _ := http.NewRequest(http.MethodPut, tc.s3.URL+"/enc/bad", strings.NewReader("x"))
	h := http.Header{}
	key.Marshal(h)
	h.Set("X-Amz-Server-Side-Encryption-Customer-Key-Md5", "AAAAAAAAAAAAAAAAAAAAAA==")
	for k, v := range h {
		req.Header[k] = v
	}
	if resp := tc.signedDo(req); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PUT with a wrong key MD5: %d, want 400", resp.StatusCode)
	}
}

// signedDo signs req with the harness's root key (SigV4, unsigned payload) and sends it.
func (tc *testCluster) signedDo(req *http.Request) *http.Response {
	tc.t.Helper()
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	req = signer.SignV4(*req, tc.access, tc.secret, "", "us-east-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tc.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestSSERangedReads(t *testing.T) {
	tc, _ := newSSECluster(t)
	ctx, mc := context.Background(), tc.minio()
	const chunk = 256 << 10
	data := make([]byte, 2*chunk+3*sealstream.BlockSize+77)
	for i := range data {
		data[i] = byte(i*31 + i>>9)
	}
	for _, enc := range []encrypt.ServerSide{customerKey(t, 3), encrypt.NewSSE()} {
		name := "r-" + string(enc.Type())
		if _, err := mc.PutObject(ctx, "enc", name, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ServerSideEncryption: enc, DisableMultipart: true}); err != nil {
			t.Fatal(err)
		}
		read := minio.GetObjectOptions{}
		if enc.Type() == encrypt.SSEC {
			read.ServerSideEncryption = enc
		}
		B := int64(sealstream.BlockSize)
		for _, r := range []struct{ from, to int64 }{
			{0, 0},
			{B - 1, B},                       // across a block boundary
			{B - 10, 3*B + 10},               // several blocks, partial at both ends
			{chunk - 5, chunk + 5},           // across a chunk boundary
			{chunk + B - 1, 2*chunk + B + 1}, // a whole chunk and blocks of two others
			{int64(len(data)) - 1, int64(len(data)) - 1}, // the last byte, in a short block
			{2 * chunk, int64(len(data)) - 1},            // the short last chunk
		} {
			o := read
			if err := o.SetRange(r.from, r.to); err != nil {
				t.Fatal(err)
			}
			got, err := getBody(t, mc, "enc", name, o)
			if err != nil || !bytes.Equal(got, data[r.from:r.to+1]) {
				t.Fatalf("%s range %d-%d: %v (%d bytes)", name, r.from, r.to, err, len(got))
			}
		}
	}
}

func TestSSECMultipart(t *testing.T) {
	tc, _ := newSSECluster(t)
	ctx, mc := context.Background(), tc.minio()
	data := pattern(11<<20 + 3) // parts of 5, 5 and 1 MiB (+3)
	key := customerKey(t, 4)
	if _, err := mc.PutObject(ctx, "enc", "mp", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ServerSideEncryption: key, PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	rec := tc.object("enc", "mp")
	if len(rec.Parts) != 3 || rec.SSE == nil || rec.SSE.Algorithm != meta.SSEC {
		t.Fatalf("record: %d parts, encryption %+v", len(rec.Parts), rec.SSE)
	}
	if tc.storedInClear(data) {
		t.Fatal("the datanodes hold the plaintext of a multipart SSE-C object")
	}
	got, err := getBody(t, mc, "enc", "mp", minio.GetObjectOptions{ServerSideEncryption: key})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET: %v (%d bytes)", err, len(got))
	}
	o := minio.GetObjectOptions{ServerSideEncryption: key}
	if err := o.SetRange(5<<20-100, 5<<20+100); err != nil { // across the first part boundary
		t.Fatal(err)
	}
	if got, err := getBody(t, mc, "enc", "mp", o); err != nil || !bytes.Equal(got, data[5<<20-100:5<<20+101]) {
		t.Fatalf("ranged GET across parts: %v", err)
	}

	// A part in another key than the upload's is refused.
	core := minio.Core{Client: mc}
	id, err := core.NewMultipartUpload(ctx, "enc", "mp2", minio.PutObjectOptions{ServerSideEncryption: key})
	if err != nil {
		t.Fatal(err)
	}
	part := data[:1<<20]
	_, err = core.PutObjectPart(ctx, "enc", "mp2", id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{SSE: customerKey(t, 5)})
	if s, _ := errCode(err); s != http.StatusBadRequest {
		t.Errorf("part in another key: %d (%v), want 400", s, err)
	}
	_, err = core.PutObjectPart(ctx, "enc", "mp2", id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
	if s, _ := errCode(err); s != http.StatusBadRequest {
		t.Errorf("part without the key: %d (%v), want 400", s, err)
	}
	p1, err := core.PutObjectPart(ctx, "enc", "mp2", id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{SSE: key})
	if err != nil {
		t.Fatalf("part in the upload's key: %v", err)
	}
	// Completing takes the upload's key too.
	parts := []minio.CompletePart{{PartNumber: 1, ETag: p1.ETag}}
	for name, sse := range map[string]encrypt.ServerSide{"no key": nil, "another key": customerKey(t, 5)} {
		_, err := core.CompleteMultipartUpload(ctx, "enc", "mp2", id, parts, minio.PutObjectOptions{ServerSideEncryption: sse})
		if s, _ := errCode(err); s != http.StatusBadRequest {
			t.Errorf("completion with %s: %d (%v), want 400", name, s, err)
		}
	}
	if _, err := core.CompleteMultipartUpload(ctx, "enc", "mp2", id, parts, minio.PutObjectOptions{ServerSideEncryption: key}); err != nil {
		t.Fatalf("completion with the key: %v", err)
	}
	if got, err := getBody(t, mc, "enc", "mp2", minio.GetObjectOptions{ServerSideEncryption: key}); err != nil || !bytes.Equal(got, part) {
		t.Fatalf("GET of the completed upload: %v", err)
	}
}

func TestSSES3AndRotation(t *testing.T) {
	tc, ring := newSSECluster(t)
	ctx, mc := context.Background(), tc.minio()
	data := pattern(600 << 10)
	info, err := mc.PutObject(ctx, "enc", "s3", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ServerSideEncryption: encrypt.NewSSE(), DisableMultipart: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum := md5.Sum(data); info.ETag != hex.EncodeToString(sum[:]) {
		t.Errorf("SSE-S3 ETag %s, want the plaintext's MD5 (as AWS)", info.ETag)
	}
	if tc.storedInClear(data) {
		t.Fatal("the datanodes hold the plaintext of an SSE-S3 object")
	}
	// A multipart SSE-S3 object: one data key for all its parts.
	big := pattern(6 << 20)
	if _, err := mc.PutObject(ctx, "enc", "s3mp", bytes.NewReader(big), int64(len(big)), minio.PutObjectOptions{ServerSideEncryption: encrypt.NewSSE(), PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	before := tc.object("enc", "s3").SSE.SealedKey
	oldID := ring.PrimaryID()

	// Rotate: the data keys are re-sealed with the new key, the data untouched.
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	chunks := tc.object("enc", "s3").Chunks
	n, err := meta.New(tc.etcd).Reseal(ctx, ring.ResealDataKey)
	if err != nil || n != 2 {
		t.Fatalf("re-sealed %d data keys (%v), want 2", n, err)
	}
	after := tc.object("enc", "s3")
	if bytes.Equal(after.SSE.SealedKey, before) || !slicesEqualChunks(after.Chunks, chunks) {
		t.Fatal("rotation did not re-seal the data key, or touched the chunks")
	}
	if n, err := meta.New(tc.etcd).Reseal(ctx, ring.ResealDataKey); err != nil || n != 0 {
		t.Fatalf("a second re-seal rewrote %d records (%v), want 0", n, err)
	}
	// Without the old key the objects still open: nothing depends on it any more.
	newOnly := withoutKey(t, ring, oldID)
	tc.coord.o.DataKeys = keyringDataKeys{newOnly}
	tc.coord.dataKeys = dataKeyCache{} // forget the keys opened before
	for key, want := range map[string][]byte{"s3": data, "s3mp": big} {
		got, err := getBody(t, mc, "enc", key, minio.GetObjectOptions{})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("GET %s after rotation with only the new key: %v", key, err)
		}
	}
	// A keyring that does not hold the key: the read fails with 503, and writes nothing out.
	other, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	tc.coord.o.DataKeys = keyringDataKeys{other}
	tc.coord.dataKeys = dataKeyCache{}
	if _, err := getBody(t, mc, "enc", "s3", minio.GetObjectOptions{}); func() bool {
		s, c := errCode(err)
		return s != http.StatusServiceUnavailable || c != "ServiceUnavailable"
	}() {
		t.Fatalf("GET with a data key no keyring opens: %v, want 503", err)
	}
}

func slicesEqualChunks(a, b []meta.Chunk) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].SHA256 != b[i].SHA256 || a[i].Size != b[i].Size {
			return false
		}
	}
	return true
}

func TestSSECopy(t *testing.T) {
	tc, _ := newSSECluster(t)
	ctx, mc := context.Background(), tc.minio()
	data := pattern(300 << 10)
	key := customerKey(t, 6)
	if _, err := mc.PutObject(ctx, "enc", "src", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ServerSideEncryption: key, DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	// SSE-C source, SSE-S3 target.
	_, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "enc", Object: "dst", Encryption: encrypt.NewSSE()},
		minio.CopySrcOptions{Bucket: "enc", Object: "src", Encryption: encrypt.SSECopy(key)})
	if err != nil {
		t.Fatal(err)
	}
	if rec := tc.object("enc", "dst"); rec.SSE == nil || rec.SSE.Algorithm != meta.SSES3 {
		t.Fatalf("copy target's encryption: %+v", rec.SSE)
	}
	if got, err := getBody(t, mc, "enc", "dst", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET the copy: %v", err)
	}
	// The source's key is needed, and must be right.
	for name, src := range map[string]minio.CopySrcOptions{
		"no source key":    {Bucket: "enc", Object: "src"},
		"wrong source key": {Bucket: "enc", Object: "src", Encryption: encrypt.SSECopy(customerKey(t, 7))},
	} {
		_, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "enc", Object: "dst2"}, src)
		if s, _ := errCode(err); s != http.StatusBadRequest && s != http.StatusForbidden {
			t.Errorf("copy with %s: %d (%v), want a refusal", name, s, err)
		}
	}
	// SSE-C to SSE-C under a new key, then a ranged read of the copy.
	key2 := customerKey(t, 8)
	if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "enc", Object: "dst3", Encryption: key2},
		minio.CopySrcOptions{Bucket: "enc", Object: "src", Encryption: encrypt.SSECopy(key)}); err != nil {
		t.Fatal(err)
	}
	o := minio.GetObjectOptions{ServerSideEncryption: key2}
	_ = o.SetRange(100, 200<<10)
	if got, err := getBody(t, mc, "enc", "dst3", o); err != nil || !bytes.Equal(got, data[100:200<<10+1]) {
		t.Fatalf("ranged GET of an SSE-C copy: %v", err)
	}
}

func TestBucketDefaultEncryption(t *testing.T) {
	tc, _ := newSSECluster(t)
	ctx, mc := context.Background(), tc.minio()
	if _, err := mc.GetBucketEncryption(ctx, "enc"); func() bool { _, c := errCode(err); return c != "ServerSideEncryptionConfigurationNotFoundError" }() {
		t.Fatalf("encryption of a bucket without it: %v", err)
	}
	if err := mc.SetBucketEncryption(ctx, "enc", nil); err == nil {
		t.Error("an empty configuration accepted")
	}
	if err := mc.SetBucketEncryption(ctx, "enc", sse.NewConfigurationSSEKMS("key-1")); func() bool { s, _ := errCode(err); return s != http.StatusNotImplemented }() {
		t.Errorf("a KMS default: %v, want 501", err)
	}
	if err := mc.SetBucketEncryption(ctx, "enc", sse.NewConfigurationSSES3()); err != nil {
		t.Fatal(err)
	}
	cfg, err := mc.GetBucketEncryption(ctx, "enc")
	if err != nil || len(cfg.Rules) != 1 || cfg.Rules[0].Apply.SSEAlgorithm != "AES256" {
		t.Fatalf("GetBucketEncryption: %v %+v", err, cfg)
	}
	data := pattern(100 << 10)
	if _, err := mc.PutObject(ctx, "enc", "d", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	if rec := tc.object("enc", "d"); rec.SSE == nil || rec.SSE.Algorithm != meta.SSES3 || tc.storedInClear(data) {
		t.Fatalf("an object written without headers to a bucket with default encryption: %+v", rec.SSE)
	}
	if err := mc.RemoveBucketEncryption(ctx, "enc"); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "enc", "e", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	if rec := tc.object("enc", "e"); rec.SSE != nil || !tc.storedInClear(data) {
		t.Fatal("default encryption still applied after DeleteBucketEncryption (or the probe finds no plaintext at all)")
	}
	if got, err := getBody(t, mc, "enc", "d", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET: %v", err)
	}
}

func TestSSEKMSNotImplemented(t *testing.T) {
	tc, _ := newSSECluster(t)
	kms, err := encrypt.NewSSEKMS("key-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tc.minio().PutObject(context.Background(), "enc", "k", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{ServerSideEncryption: kms})
	if s, c := errCode(err); s != http.StatusNotImplemented || c != "NotImplemented" {
		t.Fatalf("SSE-KMS PUT: %d %s, want 501 NotImplemented", s, c)
	}
	if _, err := tc.minio().StatObject(context.Background(), "enc", "k", minio.StatObjectOptions{}); err == nil {
		t.Fatal("the refused SSE-KMS PUT stored an object")
	}
}

// withoutKey returns ring without its key id: what a controller holds once that key is
// retired, to show nothing depends on it any more.
func withoutKey(t *testing.T, ring *secrets.Keyring, id string) *secrets.Keyring {
	t.Helper()
	js, err := json.Marshal(ring)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc["keys"].(map[string]any), id)
	js, _ = json.Marshal(doc)
	var out secrets.Keyring
	if err := out.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return &out
}
