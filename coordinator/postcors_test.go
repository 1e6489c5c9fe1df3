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

// The smaller bucket and object features: bucket tagging, ownership controls (enforced),
// public access block round trips, GetObjectAttributes, ListBuckets paging.
func TestS3BucketExtras(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.110.6"})
	ctx := context.Background()
	alice := tc.addUser("alice", "alice-secret-1")
	tc.addUser("bob", "bob-secret-12")
	for _, b := range []string{"b-one", "b-two", "b-three"} {
		if err := alice.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// ListBuckets pages by name.
	body := tc.expect(t, "ListBuckets max-buckets=2", 200, "alice", "GET", "/?max-buckets=2", nil)
	if !strings.Contains(body, "<Name>b-one</Name>") || !strings.Contains(body, "<Name>b-three</Name>") || strings.Contains(body, "b-two") || !strings.Contains(body, "<ContinuationToken>") {
		t.Fatalf("first page: %s", body)
	}
	tok := body[strings.Index(body, "<ContinuationToken>")+len("<ContinuationToken>") : strings.Index(body, "</ContinuationToken>")]
	body = tc.expect(t, "ListBuckets second page", 200, "alice", "GET", "/?max-buckets=2&continuation-token="+tok, nil)
	if !strings.Contains(body, "<Name>b-two</Name>") || strings.Contains(body, "b-one") || strings.Contains(body, "<ContinuationToken>") {
		t.Fatalf("second page: %s", body)
	}
	tc.expect(t, "ListBuckets max-buckets=0", 400, "alice", "GET", "/?max-buckets=0", nil)

	// Bucket tagging.
	tc.expect(t, "GetBucketTagging before any", 404, "alice", "GET", "/b-one?tagging", nil)
	tags := `<Tagging><TagSet><Tag><Key>team</Key><Value>web</Value></Tag></TagSet></Tagging>`
	if code, body, _ := tc.s3req("alice", "PUT", "/b-one?tagging", []byte(tags), nil); code != 204 {
		t.Fatalf("PutBucketTagging: %d %s", code, body)
	}
	if body := tc.expect(t, "GetBucketTagging", 200, "alice", "GET", "/b-one?tagging", nil); !strings.Contains(body, "<Key>team</Key><Value>web</Value>") {
		t.Fatalf("GetBucketTagging: %s", body)
	}
	tc.expect(t, "bob's GetBucketTagging", 403, "bob", "GET", "/b-one?tagging", nil)
	tc.expect(t, "DeleteBucketTagging", 204, "alice", "DELETE", "/b-one?tagging", nil)
	tc.expect(t, "GetBucketTagging after delete", 404, "alice", "GET", "/b-one?tagging", nil)

	// Ownership controls: BucketOwnerEnforced turns ACLs off; a public bucket must be made
	// private first.
	tc.expect(t, "GetBucketOwnershipControls before any", 404, "alice", "GET", "/b-two?ownershipControls", nil)
	enforced := `<OwnershipControls><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule></OwnershipControls>`
	tc.expect(t, "PutBucketAcl public-read", 200, "alice", "PUT", "/b-two?acl", map[string]string{"X-Amz-Acl": "public-read"})
	if code, body, _ := tc.s3req("alice", "PUT", "/b-two?ownershipControls", []byte(enforced), nil); code != 400 || !strings.Contains(body, "InvalidBucketAclWithObjectOwnership") {
		t.Fatalf("BucketOwnerEnforced on a public bucket: %d %s", code, body)
	}
	tc.expect(t, "PutBucketAcl private", 200, "alice", "PUT", "/b-two?acl", map[string]string{"X-Amz-Acl": "private"})
	if code, body, _ := tc.s3req("alice", "PUT", "/b-two?ownershipControls", []byte(enforced), nil); code != 200 {
		t.Fatalf("PutBucketOwnershipControls: %d %s", code, body)
	}
	if body := tc.expect(t, "GetBucketOwnershipControls", 200, "alice", "GET", "/b-two?ownershipControls", nil); !strings.Contains(body, "BucketOwnerEnforced") {
		t.Fatalf("GetBucketOwnershipControls: %s", body)
	}
	if code, body, _ := tc.s3req("alice", "PUT", "/b-two/o", []byte("x"), map[string]string{"X-Amz-Acl": "public-read"}); code != 400 || !strings.Contains(body, "AccessControlListNotSupported") {
		t.Fatalf("a public ACL under BucketOwnerEnforced: %d %s", code, body)
	}
	if code, body, _ := tc.s3req("alice", "PUT", "/b-two/o", []byte("x"), map[string]string{"X-Amz-Acl": "bucket-owner-full-control"}); code != 200 {
		t.Fatalf("bucket-owner-full-control under BucketOwnerEnforced: %d %s", code, body)
	}
	tc.expect(t, "PutObjectAcl under BucketOwnerEnforced", 400, "alice", "PUT", "/b-two/o?acl", map[string]string{"X-Amz-Acl": "public-read"})
	tc.expect(t, "anonymous GET under BucketOwnerEnforced", 403, "", "GET", "/b-two/o", nil)
	tc.expect(t, "DeleteBucketOwnershipControls", 204, "alice", "DELETE", "/b-two?ownershipControls", nil)

	// Public access block round trip.
	tc.expect(t, "GetPublicAccessBlock before any", 404, "alice", "GET", "/b-three?publicAccessBlock", nil)
	pab := `<PublicAccessBlockConfiguration><IgnorePublicAcls>true</IgnorePublicAcls></PublicAccessBlockConfiguration>`
	if code, body, _ := tc.s3req("alice", "PUT", "/b-three?publicAccessBlock", []byte(pab), nil); code != 200 {
		t.Fatalf("PutPublicAccessBlock: %d %s", code, body)
	}
	if body := tc.expect(t, "GetPublicAccessBlock", 200, "alice", "GET", "/b-three?publicAccessBlock", nil); !strings.Contains(body, "<IgnorePublicAcls>true</IgnorePublicAcls>") || !strings.Contains(body, "<BlockPublicAcls>false</BlockPublicAcls>") {
		t.Fatalf("GetPublicAccessBlock: %s", body)
	}
	tc.expect(t, "PutBucketAcl public-read under IgnorePublicAcls", 200, "alice", "PUT", "/b-three?acl", map[string]string{"X-Amz-Acl": "public-read"})
	tc.expect(t, "anonymous listing ignored", 403, "", "GET", "/b-three", nil)
	tc.expect(t, "DeletePublicAccessBlock", 204, "alice", "DELETE", "/b-three?publicAccessBlock", nil)
	tc.expect(t, "anonymous listing after the block is gone", 200, "", "GET", "/b-three", nil)

	// GetObjectAttributes.
	if code, body, _ := tc.s3req("alice", "PUT", "/b-three/obj", []byte("foo"), nil); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	body = tc.expect(t, "GetObjectAttributes", 200, "alice", "GET", "/b-three/obj?attributes", map[string]string{"X-Amz-Object-Attributes": "ETag,ObjectSize,StorageClass,ObjectParts"})
	if !strings.Contains(body, "<ETag>acbd18db4cc2f85cedef654fccc4a4d8</ETag>") || !strings.Contains(body, "<ObjectSize>3</ObjectSize>") || strings.Contains(body, "ObjectParts") {
		t.Fatalf("GetObjectAttributes: %s", body)
	}
	tc.expect(t, "GetObjectAttributes with an unknown attribute", 400, "alice", "GET", "/b-three/obj?attributes", map[string]string{"X-Amz-Object-Attributes": "Colour"})
	tc.expect(t, "bob's GetObjectAttributes", 403, "bob", "GET", "/b-three/obj?attributes", map[string]string{"X-Amz-Object-Attributes": "ETag"})
}
