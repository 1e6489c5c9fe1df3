package coordinator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/cors"
)

func hmacSHA(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// postForm sends a browser upload: fields in order, then the file; signed with SigV4 by
// (ak, sk) when ak is set, the policy's conditions as given.
func (tc *testCluster) postForm(t *testing.T, bucket, ak, sk string, conditions []any, fields [][2]string, file string) (int, string, http.Header) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	all := append([][2]string{}, fields...)
	if ak != "" {
		date := time.Now().UTC()
		cred := ak + "/" + date.Format("20060102") + "/us-east-1/s3/aws4_request"
		doc, _ := json.Marshal(map[string]any{"expiration": date.Add(time.Hour).Format("2006-01-02T15:04:05.000Z"),
			"conditions": append(conditions, map[string]string{"x-amz-credential": cred}, map[string]string{"x-amz-algorithm": "AWS4-HMAC-SHA256"},
				map[string]string{"x-amz-date": date.Format("20060102T150405Z")})})
		pol := base64.StdEncoding.EncodeToString(doc)
		key := hmacSHA([]byte("AWS4"+sk), date.Format("20060102"))
		for _, s := range []string{"us-east-1", "s3", "aws4_request"} {
			key = hmacSHA(key, s)
		}
		all = append(all, [][2]string{{"policy", pol}, {"x-amz-credential", cred}, {"x-amz-algorithm", "AWS4-HMAC-SHA256"},
			{"x-amz-date", date.Format("20060102T150405Z")}, {"x-amz-signature", hex.EncodeToString(hmacSHA(key, pol))}}...)
	}
	for _, f := range all {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", "upload.txt")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fw, file)
	mw.Close()
	req, _ := http.NewRequest("POST", tc.s3.URL+"/"+bucket, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// Browser uploads: a signed POST policy stores the object; a violated condition, a bad
// signature, an expired or malformed policy store nothing.
func TestS3PostObject(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.110.4"})
	ctx := context.Background()
	alice := tc.addUser("alice", "alice-secret-1")
	tc.addUser("bob", "bob-secret-12")
	if err := alice.MakeBucket(ctx, "upl", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	conds := []any{map[string]string{"bucket": "upl"}, []any{"starts-with", "$key", "user/"}, map[string]string{"acl": "public-read"},
		[]any{"starts-with", "$Content-Type", "text/"}, []any{"content-length-range", 1, 64}}
	fields := [][2]string{{"key", "user/${filename}"}, {"acl", "public-read"}, {"Content-Type", "text/plain"}}
	code, body, _ := tc.postForm(t, "upl", "alice", "alice-secret-1", conds, fields, "hello form")
	if code != http.StatusNoContent {
		t.Fatalf("signed POST: %d %s", code, body)
	}
	o, err := alice.StatObject(ctx, "upl", "user/upload.txt", minio.StatObjectOptions{})
	if err != nil || o.Size != 10 || o.ContentType != "text/plain" {
		t.Fatalf("the uploaded object: %+v %v", o, err)
	}
	// The acl field applied: anyone reads it.
	tc.expect(t, "anonymous GET of a POST upload with acl public-read", 200, "", "GET", "/upl/user/upload.txt", nil)
	// success_action_status 201 answers a PostResponse.
	code, body, _ = tc.postForm(t, "upl", "alice", "alice-secret-1", append(conds, map[string]string{"success_action_status": "201"}),
		append(fields, [2]string{"success_action_status", "201"}), "again")
	if code != http.StatusCreated || !strings.Contains(body, "<Key>user/upload.txt</Key>") {
		t.Fatalf("success_action_status 201: %d %s", code, body)
	}

	for _, c := range []struct {
		name   string
		ak, sk string
		conds  []any
		fields [][2]string
		file   string
		want   int
	}{
		{"key outside the policy's prefix", "alice", "alice-secret-1", conds, [][2]string{{"key", "other/x"}, {"acl", "public-read"}, {"Content-Type", "text/plain"}}, "x", 403},
		{"an acl the policy does not allow", "alice", "alice-secret-1", conds, [][2]string{{"key", "user/x"}, {"acl", "public-read-write"}, {"Content-Type", "text/plain"}}, "x", 403},
		{"a field no condition names", "alice", "alice-secret-1", conds, append(fields, [2]string{"x-amz-meta-extra", "1"}), "x", 403},
		{"too large for content-length-range", "alice", "alice-secret-1", conds, fields, strings.Repeat("x", 65), 400},
		{"too small for content-length-range", "alice", "alice-secret-1", conds, fields, "", 400},
		{"a wrong secret", "alice", "wrong-secret", conds, fields, "x", 403},
		{"an unknown access key", "nobody", "x", conds, fields, "x", 403},
		{"bob, who may not write the bucket", "bob", "bob-secret-12", conds, fields, "x", 403},
		{"anonymous, bucket not public", "", "", nil, [][2]string{{"key", "user/anon"}}, "x", 403},
		{"no key", "alice", "alice-secret-1", conds, fields[1:], "x", 400},
		{"a condition hanode does not know", "alice", "alice-secret-1", append(conds, []any{"ends-with", "$key", "x"}), fields, "x", 400},
		{"a checksum the file does not have", "alice", "alice-secret-1", conds, append(fields, [2]string{"x-amz-checksum-sha256", sha256b64("not x")}), "x", 400},
		{"the file's checksum", "alice", "alice-secret-1", conds, append(fields, [2]string{"x-amz-checksum-sha256", sha256b64("x")}), "x", 204},
	} {
		code, body, _ := tc.postForm(t, "upl", c.ak, c.sk, c.conds, c.fields, c.file)
		if code != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, code, c.want, body)
		}
	}
	if _, err := alice.StatObject(ctx, "upl", "other/x", minio.StatObjectOptions{}); err == nil {
		t.Error("a refused POST stored its object")
	}
	// An anonymous form is a PutObject by anyone: it needs a bucket that lets anyone write.
	tc.expect(t, "PutBucketAcl public-read-write", 200, "alice", "PUT", "/upl?acl", map[string]string{"X-Amz-Acl": "public-read-write"})
	if code, body, _ := tc.postForm(t, "upl", "", "", nil, [][2]string{{"key", "anon.txt"}}, "anon"); code != http.StatusNoContent {
		t.Fatalf("anonymous POST into a public-read-write bucket: %d %s", code, body)
	}
}

// CORS: configurations are stored and returned; preflights are answered by the
// coordinator; responses to requests with an Origin carry the matching rule's headers.
func TestS3CORS(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.110.5"})
	ctx := context.Background()
	root := tc.minio()
	if err := root.MakeBucket(ctx, "web", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutObject(ctx, "web", "index.html", strings.NewReader("<p>"), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := root.SetBucketPolicy(ctx, "web", publicRead("web")); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := tc.s3req(tc.access, "GET", "/web?cors", nil, nil); code != 404 || !strings.Contains(body, "NoSuchCORSConfiguration") {
		t.Fatalf("GetBucketCors before any: %d %s", code, body)
	}
	preflight := func(origin, method, headers string) (int, http.Header) {
		req, _ := http.NewRequest("OPTIONS", tc.s3.URL+"/web/index.html", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if method != "" {
			req.Header.Set("Access-Control-Request-Method", method)
		}
		if headers != "" {
			req.Header.Set("Access-Control-Request-Headers", headers)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	if code, _ := preflight("https://app.example.com", "GET", ""); code != http.StatusForbidden {
		t.Fatalf("preflight without a configuration: %d", code)
	}
	maxAge := 600
	cfg := cors.NewConfig([]cors.Rule{
		{AllowedOrigin: []string{"https://*.example.com"}, AllowedMethod: []string{"GET", "HEAD"}, AllowedHeader: []string{"x-amz-*", "content-type"}, ExposeHeader: []string{"ETag"}, MaxAgeSeconds: maxAge},
		{AllowedOrigin: []string{"*"}, AllowedMethod: []string{"PUT"}},
	})
	if err := root.SetBucketCors(ctx, "web", cfg); err != nil {
		t.Fatal(err)
	}
	got, err := root.GetBucketCors(ctx, "web")
	if err != nil || len(got.CORSRules) != 2 || got.CORSRules[0].AllowedOrigin[0] != "https://*.example.com" {
		t.Fatalf("GetBucketCors: %+v %v", got, err)
	}
	for _, c := range []struct {
		origin, method, headers string
		want                    int
		allow                   string
	}{
		{"https://app.example.com", "GET", "x-amz-date, Content-Type", 200, "https://app.example.com"},
		{"https://app.example.com", "DELETE", "", 403, ""},
		{"https://app.example.com", "GET", "authorization", 403, ""},
		{"https://evil.test", "GET", "", 403, ""},
		{"https://evil.test", "PUT", "", 200, "*"},
		{"https://app.example.com", "", "", 400, ""},
		{"", "GET", "", 400, ""},
	} {
		code, h := preflight(c.origin, c.method, c.headers)
		if code != c.want || h.Get("Access-Control-Allow-Origin") != c.allow {
			t.Errorf("preflight %s %s %q: %d %q, want %d %q", c.origin, c.method, c.headers, code, h.Get("Access-Control-Allow-Origin"), c.want, c.allow)
		}
		if code == 200 && c.method == "GET" && (h.Get("Access-Control-Max-Age") != "600" || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type")) {
			t.Errorf("preflight headers: %v", h)
		}
	}
	// An actual request with an Origin: the headers of the rule, on errors too.
	for _, c := range []struct {
		path  string
		code  int
		allow string
	}{{"/web/index.html", 200, "https://app.example.com"}, {"/web/missing", 404, "https://app.example.com"}} {
		code, _, h := tc.s3req("", "GET", c.path, nil, map[string]string{"Origin": "https://app.example.com"})
		if code != c.code || h.Get("Access-Control-Allow-Origin") != c.allow || h.Get("Access-Control-Expose-Headers") != "ETag" {
			t.Errorf("GET %s with an Origin: %d %v", c.path, code, h)
		}
	}
	if _, _, h := tc.s3req("", "GET", "/web/index.html", nil, map[string]string{"Origin": "https://evil.test"}); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a GET from an origin no GET rule allows got CORS headers: %v", h)
	}
	if err := root.SetBucketCors(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	if code, _ := preflight("https://app.example.com", "GET", ""); code != http.StatusForbidden {
		t.Fatalf("preflight after DeleteBucketCors: %d", code)
	}
}

func sha256b64(s string) string {
	h := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}
