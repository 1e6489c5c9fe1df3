package coordinator

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/minio/minio-go/v7/pkg/sse"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/kms"
	"github.com/hanode/hanode/security/secrets"
)

// storeKMS serves SSE-KMS data keys from the built-in KMS's store in this process, as a
// controller does over the admin API (controller/kms.go calls the same methods).
type storeKMS struct{ s *kms.Store }

func (k storeKMS) NewKMS(ctx context.Context, keyID, encCtx string) ([]byte, []byte, error) {
	return k.s.NewDataKey(ctx, keyID, encCtx)
}

func (k storeKMS) OpenKMS(ctx context.Context, keyID, encCtx string, sealed []byte) ([]byte, error) {
	return k.s.OpenDataKey(ctx, keyID, encCtx, sealed)
}

// newKMSCluster is a one-machine cluster whose coordinator reaches a cluster keyring and a
// built-in KMS holding testkey-1 and testkey-2, and caches opened KMS data keys for ttl.
func newKMSCluster(t *testing.T, ttl time.Duration) (*testCluster, *secrets.Keyring, *kms.Store) {
	return newKMSClusterOpts(t, ttl, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.131.20"})
}

func newKMSClusterOpts(t *testing.T, ttl time.Duration, o clusterOpts) (*testCluster, *secrets.Keyring, *kms.Store) {
	t.Helper()
	tc := newTestCluster(t, o)
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	store := kms.New(tc.etcd, ring)
	for _, name := range []string{"testkey-1", "testkey-2"} {
		if _, err := store.Create(context.Background(), name, "test"); err != nil {
			t.Fatal(err)
		}
	}
	// Before any request is served.
	tc.coord.o.DataKeys, tc.coord.o.KMS, tc.coord.o.KMSKeyTTL = keyringDataKeys{ring}, storeKMS{store}, ttl
	if err := tc.minio().MakeBucket(context.Background(), "enc", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	return tc, ring, store
}

func kmsKey(t *testing.T, id string, encCtx any) encrypt.ServerSide {
	t.Helper()
	s, err := encrypt.NewSSEKMS(id, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSSEKMS(t *testing.T) {
	const ttl = 300 * time.Millisecond
	tc, ring, store := newKMSCluster(t, ttl)
	ctx, mc := context.Background(), tc.minio()
	put := func(key string, data []byte, opts minio.PutObjectOptions) error {
		t.Helper()
		_, err := mc.PutObject(ctx, "enc", key, bytes.NewReader(data), int64(len(data)), opts)
		return err
	}
	a, b, big := pattern(600<<10), pattern(300<<10+7), pattern(6<<20)
	if err := put("a", a, minio.PutObjectOptions{ServerSideEncryption: kmsKey(t, "testkey-1", nil), DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	if err := put("b", b, minio.PutObjectOptions{ServerSideEncryption: kmsKey(t, "testkey-2", map[string]string{"project": "b"}), DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	if err := put("mp", big, minio.PutObjectOptions{ServerSideEncryption: kmsKey(t, "testkey-1", nil), PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	if tc.storedInClear(a) || tc.storedInClear(b) || tc.storedInClear(big) {
		t.Fatal("the datanodes hold the plaintext of an SSE-KMS object")
	}
	for key, want := range map[string]string{"a": "testkey-1", "b": "testkey-2", "mp": "testkey-1"} {
		rec := tc.object("enc", key)
		if rec.SSE == nil || rec.SSE.Algorithm != meta.SSEKMS || rec.SSE.KMSKeyID != want || len(rec.SSE.SealedKey) == 0 {
			t.Fatalf("record of %s: %+v", key, rec.SSE)
		}
	}
	if rec := tc.object("enc", "b"); rec.SSE.KMSContext == "" {
		t.Fatal("the encryption context was not kept")
	}
	// HEAD and GET name the key, as AWS does.
	for key, want := range map[string]string{"a": "testkey-1", "mp": "testkey-1", "b": "testkey-2"} {
		req, _ := http.NewRequest(http.MethodHead, tc.s3.URL+"/enc/"+key, nil)
		resp := tc.signedDo(req)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Server-Side-Encryption") != "aws:kms" ||
			resp.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != want {
			t.Fatalf("HEAD %s: %d %v", key, resp.StatusCode, resp.Header)
		}
	}
	readAll := func() map[string]error {
		out := map[string]error{}
		for key, want := range map[string][]byte{"a": a, "b": b, "mp": big} {
			got, err := getBody(t, mc, "enc", key, minio.GetObjectOptions{})
			if err == nil && !bytes.Equal(got, want) {
				t.Fatalf("GET %s: wrong bytes", key)
			}
			out[key] = err
		}
		return out
	}
	for key, err := range readAll() {
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
	}
	o := minio.GetObjectOptions{}
	_ = o.SetRange(5<<20-100, 5<<20+100)
	if got, err := getBody(t, mc, "enc", "mp", o); err != nil || !bytes.Equal(got, big[5<<20-100:5<<20+101]) {
		t.Fatalf("ranged GET across the parts: %v", err)
	}

	// Copy: KMS source, target under the other key.
	if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "enc", Object: "c", Encryption: kmsKey(t, "testkey-2", nil)},
		minio.CopySrcOptions{Bucket: "enc", Object: "a"}); err != nil {
		t.Fatal(err)
	}
	if rec := tc.object("enc", "c"); rec.SSE == nil || rec.SSE.KMSKeyID != "testkey-2" {
		t.Fatalf("copy target: %+v", rec.SSE)
	}

	// Refusals: an unknown key, aws:kms without a key in a bucket without a default.
	refusals := []struct {
		name   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"unknown key", map[string]string{"X-Amz-Server-Side-Encryption": "aws:kms", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "testkey-x"}, 400, "KMS.NotFoundException"},
		{"no key", map[string]string{"X-Amz-Server-Side-Encryption": "aws:kms"}, 400, "InvalidArgument"},
		{"key without aws:kms", map[string]string{"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "testkey-1"}, 400, "InvalidArgument"},
		{"SSE-S3 with a key", map[string]string{"X-Amz-Server-Side-Encryption": "AES256", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "testkey-1"}, 400, "InvalidArgument"},
	}
	for _, r := range refusals {
		if s, c := tc.rawPut(t, "/enc/refused", r.hdr); s != r.status || c != r.code {
			t.Errorf("PUT, %s: %d %s, want %d %s", r.name, s, c, r.status, r.code)
		}
	}
	if _, err := mc.StatObject(ctx, "enc", "refused", minio.StatObjectOptions{}); err == nil {
		t.Fatal("a refused SSE-KMS PUT stored an object")
	}

	// Disabling testkey-1 makes its objects unreadable within the cache's bound; testkey-2's
	// stay readable. Writes under it fail at once.
	if _, err := store.SetEnabled(ctx, "testkey-1", false); err != nil {
		t.Fatal(err)
	}
	disabledAt := time.Now()
	if err := put("a2", a[:10], minio.PutObjectOptions{ServerSideEncryption: kmsKey(t, "testkey-1", nil), DisableMultipart: true}); func() bool {
		s, c := errCode(err)
		return s != 400 || c != "KMS.DisabledException"
	}() {
		t.Fatalf("PUT under a disabled key: %v, want 400 KMS.DisabledException", err)
	}
	for {
		errs := readAll()
		sa, ca := errCode(errs["a"])
		smp, _ := errCode(errs["mp"])
		if errs["b"] != nil {
			t.Fatalf("testkey-2's object unreadable while testkey-1 is disabled: %v", errs["b"])
		}
		if sa == 400 && ca == "KMS.DisabledException" && smp == 400 {
			break
		}
		if time.Since(disabledAt) > ttl+5*time.Second {
			t.Fatalf("testkey-1's objects still read %v after it was disabled: %v", time.Since(disabledAt), errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := getBody(t, mc, "enc", "c", minio.GetObjectOptions{}); err != nil {
		t.Fatalf("the copy under testkey-2: %v", err)
	}
	if _, err := store.SetEnabled(ctx, "testkey-1", true); err != nil {
		t.Fatal(err)
	}
	for key, err := range readAll() {
		if err != nil {
			t.Fatalf("GET %s after enabling: %v", key, err)
		}
	}

	// A bucket default under testkey-2: writes without headers get it, and a request naming
	// aws:kms without a key uses the bucket's.
	if err := mc.SetBucketEncryption(ctx, "enc", sse.NewConfigurationSSEKMS("testkey-2")); err != nil {
		t.Fatal(err)
	}
	cfg, err := mc.GetBucketEncryption(ctx, "enc")
	if err != nil || len(cfg.Rules) != 1 || cfg.Rules[0].Apply.SSEAlgorithm != "aws:kms" || cfg.Rules[0].Apply.KmsMasterKeyID != "testkey-2" {
		t.Fatalf("GetBucketEncryption: %v %+v", err, cfg)
	}
	if err := put("d", b, minio.PutObjectOptions{DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	if s, c := tc.rawPut(t, "/enc/e", map[string]string{"X-Amz-Server-Side-Encryption": "aws:kms"}); s != http.StatusOK {
		t.Fatalf("PUT aws:kms without a key in a bucket with a KMS default: %d %s", s, c)
	}
	for _, key := range []string{"d", "e"} {
		if rec := tc.object("enc", key); rec.SSE == nil || rec.SSE.Algorithm != meta.SSEKMS || rec.SSE.KMSKeyID != "testkey-2" {
			t.Fatalf("%s in a bucket whose default is testkey-2: %+v", key, rec.SSE)
		}
	}

	// A keyring rotation re-seals the keys' material (not the objects' data keys); with only the
	// new keyring key every object still opens.
	oldID := ring.PrimaryID()
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	if n, err := secrets.Reencrypt(ctx, tc.etcd, ring, keyspace.Secrets); err != nil || n != 2 {
		t.Fatalf("re-sealed %d values (%v), want the 2 KMS keys", n, err)
	}
	if n, err := meta.New(tc.etcd).Reseal(ctx, ring.ResealDataKey); err != nil || n != 0 {
		t.Fatalf("re-sealed %d object records (%v), want none (SSE-KMS data keys are sealed under the KMS keys)", n, err)
	}
	newOnly := withoutKey(t, ring, oldID)
	tc.coord.o.KMS = storeKMS{kms.New(tc.etcd, newOnly)}
	tc.coord.dataKeys = dataKeyCache{} // forget the keys opened before
	for key, err := range readAll() {
		if err != nil {
			t.Fatalf("GET %s after rotation with only the new keyring key: %v", key, err)
		}
	}
	if got, err := getBody(t, mc, "enc", "d", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("GET d after rotation: %v", err)
	}
}

// rawPut PUTs "x" to path with headers hdr, signed with the harness's root key, and returns the
// status and the S3 error code ("" for none).
func (tc *testCluster) rawPut(t *testing.T, path string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, tc.s3.URL+path, strings.NewReader("x"))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	req = signer.SignV4(*req, tc.access, tc.secret, "", "us-east-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Code string }
	body, _ := io.ReadAll(resp.Body)
	_ = xml.Unmarshal(body, &e)
	return resp.StatusCode, e.Code
}

// An SSE-KMS object small enough to be kept inline is sealed in its record under its KMS key's
// data key: the record never holds the plaintext, and disabling the key makes it unreadable.
func TestSSEKMSInline(t *testing.T) {
	const ttl = 200 * time.Millisecond
	tc, _, store := newKMSClusterOpts(t, ttl, clusterOpts{machines: 1, replicas: 1, inlineMax: 4096, etcdHost: "127.0.131.21"})
	ctx, mc := context.Background(), tc.minio()
	data := pattern(3000)
	if _, err := mc.PutObject(ctx, "enc", "small", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ServerSideEncryption: kmsKey(t, "testkey-1", nil), DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	rec := tc.mustInline("enc", "small", true)
	if rec.SSE == nil || rec.SSE.KMSKeyID != "testkey-1" {
		t.Fatalf("record SSE %+v, want testkey-1", rec.SSE)
	}
	if bytes.Contains(tc.rawRecord("enc", "small"), data[1000:1064]) {
		t.Fatal("the record holds the plaintext")
	}
	if got, err := getBody(t, mc, "enc", "small", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET: %d bytes, %v", len(got), err)
	}
	if _, err := store.SetEnabled(ctx, "testkey-1", false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(ttl + 5*time.Second)
	for {
		_, err := getBody(t, mc, "enc", "small", minio.GetObjectOptions{})
		if s, c := errCode(err); s == 400 && c == "KMS.DisabledException" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v after disabling its key", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
