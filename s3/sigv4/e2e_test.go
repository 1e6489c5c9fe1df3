package sigv4

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// fakeS3 is just enough of an S3 server for minio-go's PutObject,
// multipart upload and GET to succeed; every request goes through
// Verify + Body.
type fakeS3 struct {
	v *Verifier

	mu      sync.Mutex
	objects map[string][]byte
	parts   map[string]map[int][]byte
	modes   map[string]bool // payload modes seen (+ trailer names)
	nextID  int
}

func newFakeS3() *fakeS3 {
	return &fakeS3{
		v:       newVerifier(),
		objects: map[string][]byte{},
		parts:   map[string]map[int][]byte{},
		modes:   map[string]bool{},
	}
}

func s3Error(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: "InternalError", Status: 500, Message: err.Error()}
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", e.Code, xmlEscape(e.Message))
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (s *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, err := s.v.Verify(r)
	if err != nil {
		s3Error(w, err)
		return
	}
	body, err := a.Body(r)
	if err != nil {
		s3Error(w, err)
		return
	}
	data, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		s3Error(w, err)
		return
	}
	mode := a.PayloadHash
	if len(mode) == 64 {
		mode = "<hex sha256>"
	}
	if a.Presigned {
		mode = "presigned " + mode
	}
	if tr := r.Header.Values("X-Amz-Trailer"); len(tr) > 0 {
		mode += " trailer=" + strings.Join(tr, ",")
	}
	if r.Header.Get("Content-Md5") != "" {
		mode += " +content-md5"
	}
	op := r.Method
	q := r.URL.Query()
	for _, k := range []string{"uploads", "uploadId", "partNumber"} {
		if q.Has(k) {
			op += " ?" + k
		}
	}
	key := r.URL.Path
	md5sum := md5.Sum(data)
	etag := `"` + hex.EncodeToString(md5sum[:]) + `"`
	shaSum := sha256.Sum256(data)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.modes[op+": "+mode] = true
	w.Header().Set("X-Test-Body-Sha256", hex.EncodeToString(shaSum[:]))
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		s.nextID++
		id := fmt.Sprint(s.nextID)
		s.parts[id] = map[int][]byte{}
		fmt.Fprintf(w, "<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>", xmlEscape(key), id)
	case r.Method == http.MethodPut && q.Has("uploadId"):
		var n int
		fmt.Sscan(q.Get("partNumber"), &n)
		s.parts[q.Get("uploadId")][n] = data
		w.Header().Set("ETag", etag)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		parts := s.parts[q.Get("uploadId")]
		nums := make([]int, 0, len(parts))
		for n := range parts {
			nums = append(nums, n)
		}
		sort.Ints(nums)
		var obj []byte
		for _, n := range nums {
			obj = append(obj, parts[n]...)
		}
		s.objects[key] = obj
		fmt.Fprintf(w, "<CompleteMultipartUploadResult><Bucket>bucket</Bucket><Key>%s</Key><ETag>%s</ETag></CompleteMultipartUploadResult>", xmlEscape(key), xmlEscape(etag))
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut:
		s.objects[key] = data
		w.Header().Set("ETag", etag)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		obj, ok := s.objects[key]
		if !ok {
			s3Error(w, &Error{Code: "NoSuchKey", Status: 404, Message: "no such key"})
			return
		}
		sum := md5.Sum(obj)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(obj)))
		if r.Method == http.MethodGet {
			w.Write(obj)
		}
	default:
		s3Error(w, &Error{Code: "NotImplemented", Status: 501, Message: op})
	}
}

func (s *fakeS3) object(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects["/bucket/"+key]
	return b, ok
}

func newClient(t *testing.T, srv *httptest.Server, ak, sk string, trailing bool) *minio.Client {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	c, err := minio.New(u.Host, &minio.Options{
		Creds:           credentials.NewStaticV4(ak, sk, ""),
		Secure:          false,
		Region:          testRegion,
		TrailingHeaders: trailing,
		MaxRetries:      1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// onlyReader hides io.Seeker/ReaderAt so minio-go cannot take shortcuts.
type onlyReader struct{ io.Reader }

func TestMinioGoEndToEnd(t *testing.T) {
	fs := newFakeS3()
	srv := httptest.NewServer(fs)
	defer srv.Close()
	plain := newClient(t, srv, testAK, testSK, false)
	trailing := newClient(t, srv, testAK, testSK, true)
	ctx := context.Background()

	cases := []struct {
		name    string
		client  *minio.Client
		size    int
		unknown bool // pass size -1 with a plain reader
		opts    minio.PutObjectOptions
	}{
		{name: "known size", client: plain, size: 1<<20 + 3},
		{name: "known size empty", client: plain, size: 0},
		{name: "known size md5", client: plain, size: 200<<10 + 1, opts: minio.PutObjectOptions{SendContentMd5: true}},
		{name: "unknown size", client: plain, size: 1<<20 + 3, unknown: true},
		{name: "unknown size md5", client: plain, size: 70 << 10, unknown: true, opts: minio.PutObjectOptions{SendContentMd5: true}},
		{name: "unsigned payload", client: plain, size: 100 << 10, opts: minio.PutObjectOptions{DisableContentSha256: true}},
		{name: "trailing client default", client: trailing, size: 1<<20 + 3},
		{name: "trailing client unknown size", client: trailing, size: 300 << 10, unknown: true},
		{name: "trailing client unsigned", client: trailing, size: 1<<20 + 3, opts: minio.PutObjectOptions{DisableContentSha256: true}},
		{name: "trailing client sha256 checksum", client: trailing, size: 1<<20 + 3, opts: minio.PutObjectOptions{Checksum: minio.ChecksumSHA256}},
		{name: "trailing client crc64nvme unsigned", client: trailing, size: 65<<10 + 7, opts: minio.PutObjectOptions{Checksum: minio.ChecksumCRC64NVME, DisableContentSha256: true}},
		{name: "multipart known size", client: plain, size: 10<<20 + 5, opts: minio.PutObjectOptions{PartSize: 5 << 20}},
		{name: "trailing client multipart", client: trailing, size: 10<<20 + 5, opts: minio.PutObjectOptions{PartSize: 5 << 20}},
		{name: "trailing client multipart unsigned", client: trailing, size: 5<<20 + 5, opts: minio.PutObjectOptions{PartSize: 5 << 20, DisableContentSha256: true}},
		{name: "trailing client sha1 unknown size", client: trailing, size: 1000, unknown: true, opts: minio.PutObjectOptions{Checksum: minio.ChecksumSHA1}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := randBytes(c.size)
			key := fmt.Sprintf("dir %d/ü+%%2F~(%d).bin", i, c.size)
			var r io.Reader = bytes.NewReader(data)
			size := int64(c.size)
			if c.unknown {
				r, size = onlyReader{r}, -1
				// Otherwise minio-go sizes parts for a 5 TiB object and
				// allocates a ~500 MiB buffer.
				c.opts.PartSize = 5 << 20
			}
			info, err := c.client.PutObject(ctx, "bucket", key, r, size, c.opts)
			if err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if info.Size != int64(c.size) {
				t.Fatalf("size %d", info.Size)
			}
			got, ok := fs.object(key)
			if !ok || !bytes.Equal(got, data) {
				t.Fatalf("stored object differs (found=%v, %d bytes)", ok, len(got))
			}
			obj, err := c.client.GetObject(ctx, "bucket", key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			back, err := io.ReadAll(obj)
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("GetObject: %v, %d bytes", err, len(back))
			}
		})
	}

	t.Run("presigned GET", func(t *testing.T) {
		key := "pre signed/ü+%2F.txt"
		data := []byte("presigned content")
		if _, err := plain.PutObject(ctx, "bucket", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		params := url.Values{"response-content-disposition": {`attachment; filename="a b+c.txt"`}}
		u, err := plain.PresignedGetObject(ctx, "bucket", key, time.Hour, params)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
		bad := *u
		bad.RawQuery = strings.Replace(bad.RawQuery, "X-Amz-Expires=3600", "X-Amz-Expires=7200", 1)
		resp, err = http.Get(bad.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !bytes.Contains(body, []byte(CodeSignatureDoesNotMatch)) {
			t.Fatalf("tampered URL: status %d body %q", resp.StatusCode, body)
		}
	})

	t.Run("bad credentials", func(t *testing.T) {
		for _, c := range []struct{ ak, sk, code string }{
			{testAK, "wrong", CodeSignatureDoesNotMatch},
			{"NOSUCHKEY", testSK, CodeInvalidAccessKeyID},
		} {
			cl := newClient(t, srv, c.ak, c.sk, false)
			_, err := cl.PutObject(ctx, "bucket", "x", bytes.NewReader([]byte("data")), 4, minio.PutObjectOptions{})
			if got := minio.ToErrorResponse(err).Code; got != c.code {
				t.Fatalf("got %q (%v), want %q", got, err, c.code)
			}
		}
	})

	fs.mu.Lock()
	var seen []string
	for m := range fs.modes {
		seen = append(seen, m)
	}
	fs.mu.Unlock()
	sort.Strings(seen)
	t.Logf("requests seen (method, payload mode):\n  %s", strings.Join(seen, "\n  "))
	all := strings.Join(seen, "\n")
	for _, want := range []string{
		StreamingSignedPayload + " ", StreamingSignedPayloadTrailer, StreamingUnsignedPayloadTrailer,
		UnsignedPayload, "<hex sha256>", "presigned " + UnsignedPayload,
	} {
		if !strings.Contains(all+" ", want) {
			t.Errorf("payload mode %q never exercised", want)
		}
	}
}
