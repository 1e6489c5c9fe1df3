package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/hanode/hanode/s3"
)

// rawResponse is a response as the wire carried it: header names in their sent case.
type rawResponse struct {
	status int
	header http.Header // canonicalised, for lookups
	names  []string    // header names as sent
	body   []byte
}

func (r *rawResponse) code() string {
	var e struct{ Code string }
	_ = xml.Unmarshal(r.body, &e)
	return e.Code
}

// do sends a request signed with SigV4 (payload hash over body) over a fresh connection and
// reads the response off the wire, so that header case is what the server sent.
func (tc *testCluster) do(method, target string, hdr http.Header, body []byte) *rawResponse {
	tc.t.Helper()
	req, err := http.NewRequest(method, tc.s3.URL+target, bytes.NewReader(body))
	if err != nil {
		tc.t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	sum := sha256.Sum256(body)
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	req = signer.SignV4(*req, tc.access, tc.secret, "", "us-east-1")
	return tc.send(req)
}

// send writes req on a new connection and parses the raw response.
func (tc *testCluster) send(req *http.Request) *rawResponse {
	tc.t.Helper()
	conn, err := net.DialTimeout("tcp", req.URL.Host, 5*time.Second)
	if err != nil {
		tc.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req.Close = true
	if err := req.Write(conn); err != nil {
		tc.t.Fatal(err)
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		tc.t.Fatal(err)
	}
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	out := &rawResponse{}
	for _, line := range strings.Split(string(head), "\r\n")[1:] {
		if name, _, ok := strings.Cut(line, ":"); ok {
			out.names = append(out.names, name)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
	if err != nil {
		tc.t.Fatal(err)
	}
	out.status, out.header = resp.StatusCode, resp.Header
	out.body, _ = io.ReadAll(resp.Body)
	return out
}

// TestCompatibility covers S3 behaviours that ceph/s3-tests checks and that SDKs rely on: each
// case was a failing case of the suite (issue 15).
func TestCompatibility(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.55.1"})
	ctx := context.Background()
	mc := tc.minio()
	mustBucket(t, mc, "compat")
	data := []byte("hello, compatible world")
	if _, err := mc.PutObject(ctx, "compat", "a b", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{UserMetadata: map[string]string{"Foo": "bar"}}); err != nil {
		t.Fatal(err)
	}

	t.Run("user metadata names come back in lower case", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r := tc.do(m, "/compat/a%20b", nil, nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", m, r.status, r.body)
			}
			found := false
			for _, n := range r.names {
				if strings.EqualFold(n, "x-amz-meta-foo") {
					if n != "x-amz-meta-foo" {
						t.Fatalf("%s: metadata header sent as %q", m, n)
					}
					found = true
				}
			}
			if !found || r.header.Get("X-Amz-Meta-Foo") != "bar" {
				t.Fatalf("%s: no x-amz-meta-foo: bar in %v", m, r.header)
			}
		}
	})

	t.Run("a presigned URL's expiry out of range is refused with 403", func(t *testing.T) {
		for _, exp := range []string{"0", "-7", "604801"} {
			u, err := mc.PresignedGetObject(ctx, "compat", "a b", time.Minute, nil)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Set("X-Amz-Expires", exp)
			u.RawQuery = q.Encode()
			req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
			r := tc.send(req)
			if r.status != http.StatusForbidden || r.code() != s3.CodeAccessDenied {
				t.Fatalf("X-Amz-Expires=%s: %d %s", exp, r.status, r.body)
			}
		}
		// A malformed one is a client error too, never a 500.
		u, _ := mc.PresignedGetObject(ctx, "compat", "a b", time.Minute, nil)
		u.RawQuery = strings.Replace(u.RawQuery, "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-X", 1)
		req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
		if r := tc.send(req); r.status != http.StatusBadRequest || r.code() != s3.CodeAuthorizationQueryParameters {
			t.Fatalf("bad algorithm: %d %s", r.status, r.body)
		}
	})

	t.Run("encoding-type=url encodes a space as %20", func(t *testing.T) {
		for _, q := range []string{"?encoding-type=url", "?list-type=2&encoding-type=url", "?versions&encoding-type=url"} {
			r := tc.do(http.MethodGet, "/compat"+q, nil, nil)
			if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("<Key>a%20b</Key>")) {
				t.Fatalf("%s: %d %s", q, r.status, r.body)
			}
		}
	})

	t.Run("an empty continuation token is echoed", func(t *testing.T) {
		r := tc.do(http.MethodGet, "/compat?list-type=2&continuation-token=", nil, nil)
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("<ContinuationToken></ContinuationToken>")) {
			t.Fatalf("%d %s", r.status, r.body)
		}
		r = tc.do(http.MethodGet, "/compat?list-type=2", nil, nil)
		if bytes.Contains(r.body, []byte("ContinuationToken")) {
			t.Fatalf("a token the request did not send: %s", r.body)
		}
	})

	t.Run("unserved subresources are refused, never answered as the plain operation", func(t *testing.T) {
		for _, c := range []struct{ method, target string }{
			{http.MethodGet, "/compat?website"},
			{http.MethodGet, "/compat?logging"},
			{http.MethodGet, "/compat?somethingNew"},
			{http.MethodPut, "/compat?website"},
			{http.MethodPut, "/compat/a%20b?restore"},
			{http.MethodGet, "/compat/a%20b?torrent"},
			{http.MethodPost, "/compat/a%20b?restore"},
			{http.MethodDelete, "/compat/a%20b?acl"},
			{http.MethodPut, "/compat/a%20b?torrent"},
		} {
			r := tc.do(c.method, c.target, nil, nil)
			if r.status != http.StatusNotImplemented || r.code() != s3.CodeNotImplemented {
				t.Fatalf("%s %s: %d %s", c.method, c.target, r.status, r.body)
			}
		}
		if got, err := get(t, mc, "compat", "a b", minio.GetObjectOptions{}); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("the object after refused subresource requests: %v", err)
		}
	})

	t.Run("unsupported features in headers are refused and store nothing", func(t *testing.T) {
		for _, c := range []struct {
			target string
			header string
			value  string
			code   string
		}{
			{"/compat/tagged", "X-Amz-Tagging", "a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11", s3.CodeInvalidTag},
			{"/compat/sse", "X-Amz-Server-Side-Encryption", "AES256", s3.CodeNotImplemented},                     // this coordinator reaches no keyring
			{"/compat/sse", "X-Amz-Server-Side-Encryption", "aws:kms", s3.CodeNotImplemented},                    // nor a KMS
			{"/compat/sse", "X-Amz-Server-Side-Encryption-Customer-Algorithm", "AES256", s3.CodeInvalidArgument}, // SSE-C without its key
			// object lock on a bucket created without it (objectlock_test.go covers the rest)
			{"/compat/locked", "X-Amz-Object-Lock-Legal-Hold", "ON", s3.CodeInvalidRequest},
			{"/compat/public", "X-Amz-Acl", "log-delivery-write", s3.CodeNotImplemented},
			{"/compat/granted", "X-Amz-Grant-Read", "id=someone", s3.CodeInvalidArgument}, // no such user
			{"/compat/granted", "X-Amz-Grant-Read", "uri=http://acs.amazonaws.com/groups/s3/LogDelivery", s3.CodeNotImplemented},
			{"/compat/tagged", "X-Amz-Tagging", strings.Repeat("k=v&", 10) + "x=y", s3.CodeInvalidTag},
			{"/publicbucket", "X-Amz-Acl", "aws-exec-read", s3.CodeNotImplemented},
		} {
			r := tc.do(http.MethodPut, c.target, http.Header{c.header: {c.value}}, []byte("secret"))
			if r.status != s3.ErrorFor(c.code, "").Status || r.code() != c.code {
				t.Fatalf("PUT %s with %s: %s: %d %s", c.target, c.header, c.value, r.status, r.body)
			}
		}
		for _, k := range []string{"sse", "locked", "public", "granted", "tagged"} {
			if _, err := mc.StatObject(ctx, "compat", k, minio.StatObjectOptions{}); s3code(err) != s3.CodeNoSuchKey {
				t.Fatalf("%s stored though refused: %v", k, err)
			}
		}
		for _, b := range []string{"publicbucket"} {
			if ok, err := mc.BucketExists(ctx, b); ok || err != nil {
				t.Fatalf("bucket %s created though refused: %v", b, err)
			}
		}
		// A read with SSE-C parameters of an object not encrypted with a customer key.
		r := tc.do(http.MethodGet, "/compat/a%20b", http.Header{"X-Amz-Server-Side-Encryption-Customer-Algorithm": {"AES256"},
			"X-Amz-Server-Side-Encryption-Customer-Key":     {"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="},
			"X-Amz-Server-Side-Encryption-Customer-Key-Md5": {"KYvwGXoFFJ42a2u2GDWhwQ=="}}, nil)
		if r.status != http.StatusBadRequest || r.code() != s3.CodeInvalidRequest {
			t.Fatalf("GET with SSE-C: %d %s", r.status, r.body)
		}
		// What hanode does anyway is accepted.
		for _, acl := range []string{"private", "bucket-owner-full-control"} {
			if r := tc.do(http.MethodPut, "/compat/acl-"+acl, http.Header{"X-Amz-Acl": {acl}}, []byte("x")); r.status != http.StatusOK {
				t.Fatalf("x-amz-acl: %s: %d %s", acl, r.status, r.body)
			}
		}
	})

	t.Run("an empty Content-MD5 is refused", func(t *testing.T) {
		r := tc.do(http.MethodPut, "/compat/md5", http.Header{"Content-Md5": {""}}, []byte("x"))
		if r.status != http.StatusBadRequest || r.code() != s3.CodeInvalidDigest {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})

	t.Run("a copy range past the source is InvalidRange", func(t *testing.T) {
		core := minio.Core{Client: mc}
		id, err := core.NewMultipartUpload(ctx, "compat", "dest", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = core.CopyObjectPart(ctx, "compat", "a b", "compat", "dest", id, 1, 0, int64(len(data)+10), nil)
		if s3code(err) != s3.CodeInvalidRange {
			t.Fatalf("copy range past the end: %v", err)
		}
		if err := core.AbortMultipartUpload(ctx, "compat", "dest", id); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("an anonymous browser upload (POST object) into a private bucket is refused", func(t *testing.T) {
		var body bytes.Buffer
		body.WriteString("--xx\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\npost\r\n--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\ndata\r\n--xx--\r\n")
		req, _ := http.NewRequest(http.MethodPost, tc.s3.URL+"/compat", &body)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=xx")
		if r := tc.send(req); r.status != http.StatusForbidden || r.code() != s3.CodeAccessDenied {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if _, err := mc.StatObject(ctx, "compat", "post", minio.StatObjectOptions{}); s3code(err) != s3.CodeNoSuchKey {
			t.Fatalf("a refused POST stored its object: %v", err)
		}
	})

	t.Run("completing a completed upload again returns the object", func(t *testing.T) {
		core := minio.Core{Client: mc}
		id, err := core.NewMultipartUpload(ctx, "compat", "mp", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := core.PutObjectPart(ctx, "compat", "mp", id, 1, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		parts := []minio.CompletePart{{PartNumber: 1, ETag: p.ETag}}
		first, err := core.CompleteMultipartUpload(ctx, "compat", "mp", id, parts, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		again, err := core.CompleteMultipartUpload(ctx, "compat", "mp", id, parts, minio.PutObjectOptions{})
		if err != nil || again.ETag != first.ETag {
			t.Fatalf("completing again: %v, ETag %q, want %q", err, again.ETag, first.ETag)
		}
		// Another upload's id, or one whose object was replaced since, is unknown.
		if _, err := core.CompleteMultipartUpload(ctx, "compat", "mp", "0123456789abcdef0123456789abcdef", parts, minio.PutObjectOptions{}); s3code(err) != s3.CodeNoSuchUpload {
			t.Fatalf("unknown upload: %v", err)
		}
		if _, err := mc.PutObject(ctx, "compat", "mp", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := core.CompleteMultipartUpload(ctx, "compat", "mp", id, parts, minio.PutObjectOptions{}); s3code(err) != s3.CodeNoSuchUpload {
			t.Fatalf("completing after the object was replaced: %v", err)
		}
	})

	t.Run("a never-versioned bucket lists, reads and deletes null versions", func(t *testing.T) {
		mustBucket(t, mc, "nullver")
		for _, k := range []string{"a", "b", "c/d", "c/e"} {
			if _, err := mc.PutObject(ctx, "nullver", k, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		type listing struct {
			IsTruncated         bool
			NextKeyMarker       string
			NextVersionIDMarker string `xml:"NextVersionIdMarker"`
			Versions            []struct {
				Key       string
				VersionID string `xml:"VersionId"`
				IsLatest  bool
				Size      int64
			} `xml:"Version"`
			CommonPrefixes []struct{ Prefix string }
		}
		var keys []string
		marker, vmarker := "", ""
		for page := 0; ; page++ {
			q := url.Values{"versions": {""}, "max-keys": {"1"}, "delimiter": {"/"}}
			if marker != "" {
				q.Set("key-marker", marker)
			}
			if vmarker != "" {
				q.Set("version-id-marker", vmarker)
			}
			r := tc.do(http.MethodGet, "/nullver?"+q.Encode(), nil, nil)
			var l listing
			if r.status != http.StatusOK || xml.Unmarshal(r.body, &l) != nil {
				t.Fatalf("page %d: %d %s", page, r.status, r.body)
			}
			for _, v := range l.Versions {
				if v.VersionID != "null" || !v.IsLatest || v.Size != int64(len(data)) {
					t.Fatalf("version %+v", v)
				}
				keys = append(keys, v.Key)
			}
			for _, p := range l.CommonPrefixes {
				keys = append(keys, p.Prefix)
			}
			if !l.IsTruncated {
				break
			}
			marker, vmarker = l.NextKeyMarker, l.NextVersionIDMarker
			if page > 10 {
				t.Fatal("listing does not end")
			}
		}
		if strings.Join(keys, ",") != "a,b,c/" {
			t.Fatalf("listed %v", keys)
		}
		// minio-go lists versions too (as backup tools do).
		n := 0
		for o := range mc.ListObjects(ctx, "nullver", minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
			if o.Err != nil || o.VersionID != "null" {
				t.Fatalf("minio-go version listing: %+v", o)
			}
			n++
		}
		if n != 4 {
			t.Fatalf("minio-go listed %d versions", n)
		}
		if r := tc.do(http.MethodGet, "/nullver/a?versionId=null", nil, nil); r.status != http.StatusOK || !bytes.Equal(r.body, data) || r.header.Get("X-Amz-Version-Id") != "null" {
			t.Fatalf("GET versionId=null: %d %s", r.status, r.body)
		}
		if r := tc.do(http.MethodGet, "/nullver/a?versionId=3HL4kqtJlcpXroDTDmjVBH40Nrjfkd", nil, nil); r.status != http.StatusNotFound || r.code() != s3.CodeNoSuchVersion {
			t.Fatalf("GET of another version: %d %s", r.status, r.body)
		}
		for v, want := range map[string]int{"null": http.StatusOK, "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd": http.StatusNotFound} {
			r := tc.do(http.MethodPut, "/nullver/copied", http.Header{"X-Amz-Copy-Source": {"/nullver/a?versionId=" + v}}, nil)
			if r.status != want {
				t.Fatalf("copy from version %s: %d %s", v, r.status, r.body)
			}
		}
		if r := tc.do(http.MethodDelete, "/nullver/copied", nil, nil); r.status != http.StatusNoContent {
			t.Fatalf("DELETE copied: %d %s", r.status, r.body)
		}
		if r := tc.do(http.MethodDelete, "/nullver/a?versionId=null", nil, nil); r.status != http.StatusNoContent {
			t.Fatalf("DELETE versionId=null: %d %s", r.status, r.body)
		}
		if _, err := mc.StatObject(ctx, "nullver", "a", minio.StatObjectOptions{}); s3code(err) != s3.CodeNoSuchKey {
			t.Fatalf("a after deleting its null version: %v", err)
		}
		// DeleteObjects naming the null version (how ceph/s3-tests empties its buckets).
		objs := make(chan minio.ObjectInfo, 3)
		for _, k := range []string{"b", "c/d", "c/e"} {
			objs <- minio.ObjectInfo{Key: k, VersionID: "null"}
		}
		close(objs)
		for e := range mc.RemoveObjects(ctx, "nullver", objs, minio.RemoveObjectsOptions{}) {
			t.Fatalf("delete %s: %v", e.ObjectName, e.Err)
		}
		if err := mc.RemoveBucket(ctx, "nullver"); err != nil {
			t.Fatalf("bucket not empty after deleting every null version: %v", err)
		}
	})

	t.Run("conditional writes", func(t *testing.T) {
		put := func(key string, set func(*minio.PutObjectOptions)) (string, error) {
			var o minio.PutObjectOptions
			if set != nil {
				set(&o)
			}
			info, err := mc.PutObject(ctx, "compat", key, bytes.NewReader(data), int64(len(data)), o)
			return info.ETag, err
		}
		etag, err := put("cond", func(o *minio.PutObjectOptions) { o.SetMatchETagExcept("*") })
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			set  func(*minio.PutObjectOptions)
			code string
		}{
			{"if-none-match * over an object", func(o *minio.PutObjectOptions) { o.SetMatchETagExcept("*") }, s3.CodePreconditionFailed},
			{"if-none-match its etag", func(o *minio.PutObjectOptions) { o.SetMatchETagExcept(etag) }, s3.CodePreconditionFailed},
			{"if-match another etag", func(o *minio.PutObjectOptions) { o.SetMatchETag("0123") }, s3.CodePreconditionFailed},
			{"if-match its etag", func(o *minio.PutObjectOptions) { o.SetMatchETag(etag) }, ""},
			{"if-none-match another etag", func(o *minio.PutObjectOptions) { o.SetMatchETagExcept("0123") }, ""},
		} {
			if _, err := put("cond", c.set); s3code(err) != c.code {
				t.Fatalf("%s: %v, want %q", c.name, err, c.code)
			}
		}
		if _, err := put("absent", func(o *minio.PutObjectOptions) { o.SetMatchETag("*") }); s3code(err) != s3.CodeNoSuchKey {
			t.Fatalf("if-match * on a missing key: %v", err)
		}
		if r := tc.do(http.MethodDelete, "/compat/cond", http.Header{"If-Match": {`"0123"`}}, nil); r.status != http.StatusPreconditionFailed {
			t.Fatalf("DELETE if-match another etag: %d %s", r.status, r.body)
		}
		// DeleteObjects: an entry's ETag is a condition; LastModifiedTime and Size are refused.
		del := `<Delete><Object><Key>cond</Key><ETag>"0123"</ETag></Object><Object><Key>cond</Key><Size>1</Size></Object></Delete>`
		r := tc.do(http.MethodPost, "/compat?delete", nil, []byte(del))
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("<Code>PreconditionFailed</Code>")) || !bytes.Contains(r.body, []byte("<Code>NotImplemented</Code>")) {
			t.Fatalf("DeleteObjects with conditions: %d %s", r.status, r.body)
		}
		if _, err := mc.StatObject(ctx, "compat", "cond", minio.StatObjectOptions{}); err != nil {
			t.Fatalf("deleted though its conditions failed: %v", err)
		}
		// CompleteMultipartUpload with If-None-Match: * over an existing object.
		core := minio.Core{Client: mc}
		id, err := core.NewMultipartUpload(ctx, "compat", "cond", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := core.PutObjectPart(ctx, "compat", "cond", id, 1, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>` + p.ETag + `</ETag></Part></CompleteMultipartUpload>`)
		if r := tc.do(http.MethodPost, "/compat/cond?uploadId="+id, http.Header{"If-None-Match": {"*"}}, body); r.status != http.StatusPreconditionFailed {
			t.Fatalf("complete if-none-match * over an object: %d %s", r.status, r.body)
		}
		if r := tc.do(http.MethodPost, "/compat/cond?uploadId="+id, http.Header{"If-Match": {"*"}}, body); r.status != http.StatusOK {
			t.Fatalf("complete if-match *: %d %s", r.status, r.body)
		}
		// Writers racing to create one key: exactly one wins.
		const n = 6
		errs := make(chan error, n)
		for i := range n {
			go func() {
				body := append([]byte{byte(i)}, data...)
				opts := minio.PutObjectOptions{}
				opts.SetMatchETagExcept("*")
				_, err := mc.PutObject(ctx, "compat", "raced", bytes.NewReader(body), int64(len(body)), opts)
				errs <- err
			}()
		}
		won := 0
		for range n {
			switch err := <-errs; {
			case err == nil:
				won++
			case s3code(err) != s3.CodePreconditionFailed:
				t.Fatalf("a racing writer: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d racing writers created the key, want 1", won)
		}
	})

	t.Run("object tagging", func(t *testing.T) {
		opts := minio.PutObjectOptions{UserTags: map[string]string{"foo": "bar", "empty": ""}}
		if _, err := mc.PutObject(ctx, "compat", "tagged", bytes.NewReader(data), int64(len(data)), opts); err != nil {
			t.Fatal(err)
		}
		got := func(key string) map[string]string {
			tg, err := mc.GetObjectTagging(ctx, "compat", key, minio.GetObjectTaggingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return tg.ToMap()
		}
		if m := got("tagged"); len(m) != 2 || m["foo"] != "bar" || m["empty"] != "" {
			t.Fatalf("tags from x-amz-tagging: %v", m)
		}
		if st, err := mc.StatObject(ctx, "compat", "tagged", minio.StatObjectOptions{}); err != nil || st.UserTagCount != 2 {
			t.Fatalf("x-amz-tagging-count: %v %d", err, st.UserTagCount)
		}
		tg, _ := tags.NewTags(map[string]string{"k1": "v1", "k2": "v2", "k3": "v3"}, true)
		if err := mc.PutObjectTagging(ctx, "compat", "tagged", tg, minio.PutObjectTaggingOptions{}); err != nil {
			t.Fatal(err)
		}
		if m := got("tagged"); len(m) != 3 || m["k3"] != "v3" {
			t.Fatalf("tags after PutObjectTagging: %v", m)
		}
		// Tags change the record only: the data reads back, an 11th tag is refused.
		if b, err := get(t, mc, "compat", "tagged", minio.GetObjectOptions{}); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("data after tagging: %v", err)
		}
		var many strings.Builder
		many.WriteString("<Tagging><TagSet>")
		for i := range 11 {
			many.WriteString("<Tag><Key>k" + string(rune('a'+i)) + "</Key><Value>v</Value></Tag>")
		}
		many.WriteString("</TagSet></Tagging>")
		if r := tc.do(http.MethodPut, "/compat/tagged?tagging", nil, []byte(many.String())); r.status != http.StatusBadRequest || r.code() != s3.CodeInvalidTag {
			t.Fatalf("11 tags: %d %s", r.status, r.body)
		}
		// A copy keeps the source's tags unless told to replace them.
		if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "compat", Object: "tag-copy"}, minio.CopySrcOptions{Bucket: "compat", Object: "tagged"}); err != nil {
			t.Fatal(err)
		}
		if m := got("tag-copy"); len(m) != 3 {
			t.Fatalf("copied tags: %v", m)
		}
		if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "compat", Object: "tag-copy", ReplaceTags: true, UserTags: map[string]string{"new": "1"}},
			minio.CopySrcOptions{Bucket: "compat", Object: "tagged"}); err != nil {
			t.Fatal(err)
		}
		if m := got("tag-copy"); len(m) != 1 || m["new"] != "1" {
			t.Fatalf("replaced tags: %v", m)
		}
		// A multipart upload's tags reach the completed object.
		core := minio.Core{Client: mc}
		id, err := core.NewMultipartUpload(ctx, "compat", "tag-mp", minio.PutObjectOptions{UserTags: map[string]string{"Hello": "World"}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := core.PutObjectPart(ctx, "compat", "tag-mp", id, 1, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.CompleteMultipartUpload(ctx, "compat", "tag-mp", id, []minio.CompletePart{{PartNumber: 1, ETag: p.ETag}}, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if m := got("tag-mp"); len(m) != 1 || m["Hello"] != "World" {
			t.Fatalf("multipart tags: %v", m)
		}
		if err := mc.RemoveObjectTagging(ctx, "compat", "tag-mp", minio.RemoveObjectTaggingOptions{}); err != nil {
			t.Fatal(err)
		}
		if m := got("tag-mp"); len(m) != 0 {
			t.Fatalf("tags after DeleteObjectTagging: %v", m)
		}
		if err := mc.PutObjectTagging(ctx, "compat", "missing", tg, minio.PutObjectTaggingOptions{}); s3code(err) != s3.CodeNoSuchKey {
			t.Fatalf("tagging a missing object: %v", err)
		}
	})

	t.Run("uploads in progress do not keep an empty bucket", func(t *testing.T) {
		core := minio.Core{Client: mc}
		for _, b := range []string{"mpu-only", "mpu-and-object"} {
			mustBucket(t, mc, b)
			if _, err := core.NewMultipartUpload(ctx, b, "pending", minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := mc.PutObject(ctx, "mpu-and-object", "obj", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := mc.RemoveBucket(ctx, "mpu-only"); err != nil {
			t.Fatalf("a bucket with only an upload in progress: %v", err)
		}
		if err := mc.RemoveBucket(ctx, "mpu-and-object"); s3code(err) != s3.CodeBucketNotEmpty {
			t.Fatalf("a bucket with an object: %v", err)
		}
		// The refused delete aborted nothing.
		res, err := core.ListMultipartUploads(ctx, "mpu-and-object", "", "", "", "", 10)
		if err != nil || len(res.Uploads) != 1 {
			t.Fatalf("uploads after a refused delete: %v %+v", err, res.Uploads)
		}
	})

	t.Run("additional checksums are verified, stored and returned", func(t *testing.T) {
		sum := sha256.Sum256(data)
		good := base64.StdEncoding.EncodeToString(sum[:])
		r := tc.do(http.MethodPut, "/compat/cksum", http.Header{"X-Amz-Checksum-Sha256": {good}}, data)
		if r.status != http.StatusOK || r.header.Get("X-Amz-Checksum-Sha256") != good {
			t.Fatalf("PUT with its sha256: %d %v %s", r.status, r.header, r.body)
		}
		if r := tc.do(http.MethodHead, "/compat/cksum", nil, nil); r.header.Get("X-Amz-Checksum-Sha256") != "" {
			t.Fatal("checksum sent without x-amz-checksum-mode")
		}
		if r := tc.do(http.MethodHead, "/compat/cksum", http.Header{"X-Amz-Checksum-Mode": {"ENABLED"}}, nil); r.header.Get("X-Amz-Checksum-Sha256") != good {
			t.Fatalf("HEAD with checksum mode: %v", r.header)
		}
		crc := base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 0})
		for _, c := range []struct {
			h    http.Header
			code string
		}{
			{http.Header{"X-Amz-Checksum-Crc32": {crc}}, s3.CodeBadDigest},
			{http.Header{"X-Amz-Checksum-Sha256": {"bad"}}, s3.CodeBadDigest},
			{http.Header{"X-Amz-Checksum-Sha256": {good}, "X-Amz-Checksum-Crc32": {crc}}, s3.CodeInvalidRequest},
		} {
			if r := tc.do(http.MethodPut, "/compat/cksum-bad", c.h, data); r.status != http.StatusBadRequest || r.code() != c.code {
				t.Fatalf("PUT with %v: %d %s", c.h, r.status, r.body)
			}
		}
		if _, err := mc.StatObject(ctx, "compat", "cksum-bad", minio.StatObjectOptions{}); s3code(err) != s3.CodeNoSuchKey {
			t.Fatalf("stored though its checksum did not match: %v", err)
		}
	})
}
