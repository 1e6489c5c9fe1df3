package coordinator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/s3access"
)

// addUser makes an S3 user that is not root, as s3users writes its index record.
func (tc *testCluster) addUser(ak, sk string) *minio.Client {
	tc.t.Helper()
	if _, err := tc.etcd.Put(context.Background(), meta.UserPrefix+ak, `{"access_key":"`+ak+`"}`); err != nil {
		tc.t.Fatal(err)
	}
	tc.users.Store(ak, sk)
	return tc.client(ak, sk)
}

func (tc *testCluster) grant(bucket, ak, level string) {
	tc.t.Helper()
	if err := s3access.New(tc.etcd).Grant(context.Background(), s3access.Grant{Bucket: bucket, AccessKey: ak, Level: level, By: "test"}); err != nil {
		tc.t.Fatal(err)
	}
}

func s3Code(err error) string { return minio.ToErrorResponse(err).Code }

// eventually polls f until it returns nil (the coordinators' caches follow etcd by a watch).
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantCode(code string, err error) error {
	if s3Code(err) != code {
		return errors.New("got " + s3Code(err) + " (" + errString(err) + "), want " + code)
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// The finding of issue 16: a second user listed, read, wrote into and deleted from root's
// bucket (0 of 5 refused). Every one is refused now, and grants open exactly what they name.
func TestS3AuthorizationDenyByDefault(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.50.1"})
	ctx := context.Background()
	root := tc.minio()
	if err := root.MakeBucket(ctx, "rootb", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	put := func(mc *minio.Client, bucket, key, body string) error {
		_, err := mc.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		return err
	}
	get := func(mc *minio.Client, bucket, key string) (string, error) {
		o, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return "", err
		}
		defer o.Close()
		b, err := io.ReadAll(o)
		return string(b), err
	}
	list := func(mc *minio.Client, bucket string) error {
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				return o.Err
			}
		}
		return nil
	}
	buckets := func(mc *minio.Client) []string {
		bs, err := mc.ListBuckets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, b := range bs {
			names = append(names, b.Name)
		}
		return names
	}
	if err := put(root, "rootb", "secret.txt", "root's data"); err != nil {
		t.Fatal(err)
	}
	bob := tc.addUser("bob", "bob-secret-key")

	// 0 of 5 refused before: now 5 of 5.
	if got := buckets(bob); slices.Contains(got, "rootb") {
		t.Errorf("bob's ListBuckets shows root's bucket: %q", got)
	}
	if err := list(bob, "rootb"); s3Code(err) != "AccessDenied" {
		t.Errorf("bob lists root's bucket: %v", err)
	}
	if body, err := get(bob, "rootb", "secret.txt"); s3Code(err) != "AccessDenied" {
		t.Errorf("bob reads root's object: %q, %v", body, err)
	}
	if err := put(bob, "rootb", "bob.txt", "bob was here"); s3Code(err) != "AccessDenied" {
		t.Errorf("bob writes into root's bucket: %v", err)
	}
	if err := bob.RemoveObject(ctx, "rootb", "secret.txt", minio.RemoveObjectOptions{}); s3Code(err) != "AccessDenied" {
		t.Errorf("bob deletes from root's bucket: %v", err)
	}
	if body, err := get(root, "rootb", "secret.txt"); err != nil || body != "root's data" {
		t.Fatalf("root's object after bob's attempts: %q, %v", body, err)
	}
	if _, err := tc.etcd.Get(ctx, meta.ObjectKey("rootb", "bob.txt")); err != nil {
		t.Fatal(err)
	}

	// read: list and get, nothing else.
	tc.grant("rootb", "bob", "read")
	eventually(t, "bob reads after a read grant", func() error {
		body, err := get(bob, "rootb", "secret.txt")
		if err != nil || body != "root's data" {
			return errors.New("read " + body + ": " + errString(err))
		}
		return list(bob, "rootb")
	})
	if got := buckets(bob); !slices.Equal(got, []string{"rootb"}) {
		t.Errorf("bob's ListBuckets with a read grant: %q", got)
	}
	if err := put(bob, "rootb", "bob.txt", "x"); s3Code(err) != "AccessDenied" {
		t.Errorf("bob writes with a read grant: %v", err)
	}
	if err := bob.RemoveObject(ctx, "rootb", "secret.txt", minio.RemoveObjectOptions{}); s3Code(err) != "AccessDenied" {
		t.Errorf("bob deletes with a read grant: %v", err)
	}

	// write: put, copy within, delete, multipart; not the bucket itself nor its policy.
	tc.grant("rootb", "bob", "write")
	eventually(t, "bob writes after a write grant", func() error { return put(bob, "rootb", "bob.txt", "bob was here") })
	if _, err := bob.CopyObject(ctx, minio.CopyDestOptions{Bucket: "rootb", Object: "copy.txt"}, minio.CopySrcOptions{Bucket: "rootb", Object: "secret.txt"}); err != nil {
		t.Errorf("bob copies within a bucket he may write: %v", err)
	}
	if err := bob.RemoveObject(ctx, "rootb", "copy.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Errorf("bob deletes with a write grant: %v", err)
	}
	if err := bob.RemoveBucket(ctx, "rootb"); s3Code(err) != "AccessDenied" {
		t.Errorf("bob deletes the bucket with a write grant: %v", err)
	}
	if err := bob.SetBucketPolicy(ctx, "rootb", publicRead("rootb")); s3Code(err) != "AccessDenied" {
		t.Errorf("bob sets a policy with a write grant: %v", err)
	}

	// owner: the policy too.
	tc.grant("rootb", "bob", "owner")
	eventually(t, "bob sets a policy as owner", func() error { return bob.SetBucketPolicy(ctx, "rootb", publicRead("rootb")) })
	if err := bob.SetBucketPolicy(ctx, "rootb", ""); err != nil {
		t.Errorf("bob deletes the policy as owner: %v", err)
	}

	// Revoked: refused again as soon as the coordinator's watch sees it.
	if err := s3access.New(tc.etcd).Revoke(ctx, "rootb", "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob refused after revoke", func() error {
		_, err := get(bob, "rootb", "secret.txt")
		return wantCode("AccessDenied", err)
	})

	// A user's own bucket: his, root sees it, another user neither sees nor touches it, and
	// cannot create it again.
	if err := bob.MakeBucket(ctx, "bobb", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := put(bob, "bobb", "k", "bob's"); err != nil {
		t.Fatal(err)
	}
	alice := tc.addUser("alice", "alice-secret-key")
	if got := buckets(alice); len(got) != 0 {
		t.Errorf("alice's ListBuckets: %q", got)
	}
	if got := buckets(root); !slices.Equal(got, []string{"bobb", "rootb"}) {
		t.Errorf("root's ListBuckets: %q", got)
	}
	if _, err := get(alice, "bobb", "k"); s3Code(err) != "AccessDenied" {
		t.Errorf("alice reads bob's bucket: %v", err)
	}
	if err := alice.MakeBucket(ctx, "bobb", minio.MakeBucketOptions{}); s3Code(err) != "BucketAlreadyExists" {
		t.Errorf("alice creates bob's bucket: %v", err)
	}
	if err := bob.MakeBucket(ctx, "bobb", minio.MakeBucketOptions{}); err != nil { // 200 in us-east-1, as AWS
		t.Errorf("bob creates his bucket again: %v", err)
	}
	if _, err := get(root, "bobb", "k"); err != nil {
		t.Errorf("root reads bob's bucket: %v", err)
	}
	// A missing bucket is NoSuchBucket, for users too.
	if _, err := get(alice, "nobucket", "k"); s3Code(err) != "NoSuchBucket" {
		t.Errorf("alice reads a missing bucket: %v", err)
	}

	// Copying needs read on the source: bob may write bobb but not read rootb any more.
	if _, err := bob.CopyObject(ctx, minio.CopyDestOptions{Bucket: "bobb", Object: "stolen"}, minio.CopySrcOptions{Bucket: "rootb", Object: "secret.txt"}); s3Code(err) != "AccessDenied" {
		t.Errorf("bob copies out of root's bucket: %v", err)
	}

	// A bucket from before owners existed (no owner recorded) is root's alone.
	if err := meta.New(tc.etcd).CreateBucket(ctx, meta.Bucket{Name: "legacy", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := list(bob, "legacy"); s3Code(err) != "AccessDenied" {
		t.Errorf("bob lists an ownerless bucket: %v", err)
	}
	if err := put(root, "legacy", "k", "v"); err != nil {
		t.Errorf("root writes an ownerless bucket: %v", err)
	}

	// Deleting a bucket deletes its grants: the same name made again starts with none.
	if err := bob.MakeBucket(ctx, "tmpb", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.grant("tmpb", "alice", "write")
	if err := bob.RemoveBucket(ctx, "tmpb"); err != nil {
		t.Fatal(err)
	}
	if g, err := s3access.New(tc.etcd).List(ctx, "tmpb", ""); err != nil || len(g) != 0 {
		t.Fatalf("grants left after the bucket's delete: %+v, %v", g, err)
	}
	if err := root.MakeBucket(ctx, "tmpb", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice refused on a bucket made again", func() error { return wantCode("AccessDenied", put(alice, "tmpb", "k", "v")) })
}

func publicRead(bucket string) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetBucketLocation","s3:ListBucket"],"Resource":["arn:aws:s3:::` +
		bucket + `"]},{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::` + bucket + `/*"]}]}`
}

// Anonymous clients read a bucket whose policy is public-read, and nothing else.
func TestS3PublicReadPolicy(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.50.2"})
	ctx := context.Background()
	root := tc.minio()
	for _, b := range []string{"pub", "priv"} {
		if err := root.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.PutObject(ctx, b, "a.txt", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	anon := func(method, path string, body []byte) (int, string) {
		req, err := http.NewRequest(method, tc.s3.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := anon("GET", "/pub/a.txt", nil); code != http.StatusForbidden {
		t.Fatalf("anonymous GET before any policy: %d", code)
	}

	// Policies that are not valid, or that use what hanode does not evaluate, are refused,
	// never stored.
	for _, c := range []struct {
		name, doc, code string
	}{
		{"not JSON", `{"Version":`, "MalformedPolicy"},
		{"unknown field", `{"Version":"2012-10-17","Statement":[],"Foo":1}`, "MalformedPolicy"},
		{"another bucket", publicRead("priv"), "MalformedPolicy"},
		{"an account principal", strings.ReplaceAll(publicRead("pub"), `["*"]`, `["arn:aws:iam::1:root"]`), "NotImplemented"},
		{"a condition key hanode does not know", strings.Replace(publicRead("pub"), `"Effect"`, `"Condition":{"StringEquals":{"aws:SourceVpc":"vpc-1"}},"Effect"`, 1), "NotImplemented"},
	} {
		if err := root.SetBucketPolicy(ctx, "pub", c.doc); s3Code(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	// (minio-go answers "" for NoSuchBucketPolicy.)
	if got, err := root.GetBucketPolicy(ctx, "pub"); got != "" || err != nil {
		t.Fatalf("GetBucketPolicy after refused puts: %q, %v", got, err)
	}
	if code, body := signedGet(t, tc, "/pub?policy"); code != http.StatusNotFound || !strings.Contains(body, "NoSuchBucketPolicy") {
		t.Fatalf("GetBucketPolicy without a policy: %d %s", code, body)
	}

	doc := publicRead("pub")
	if err := root.SetBucketPolicy(ctx, "pub", doc); err != nil {
		t.Fatal(err)
	}
	if got, err := root.GetBucketPolicy(ctx, "pub"); err != nil || got != doc {
		t.Fatalf("GetBucketPolicy: %q, %v", got, err)
	}
	eventually(t, "anonymous GET of a public-read bucket", func() error {
		if code, body := anon("GET", "/pub/a.txt", nil); code != http.StatusOK || body != "hello" {
			return errors.New("status " + http.StatusText(code) + ": " + body)
		}
		return nil
	})
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"HEAD", "/pub/a.txt", http.StatusOK},
		{"GET", "/pub", http.StatusOK},          // ListBucket is in the policy
		{"GET", "/pub?location", http.StatusOK}, // so is GetBucketLocation
		{"GET", "/pub/missing", http.StatusNotFound},
		{"PUT", "/pub/b.txt", http.StatusForbidden},
		{"DELETE", "/pub/a.txt", http.StatusForbidden},
		{"GET", "/pub?policy", http.StatusForbidden},
		{"GET", "/pub?uploads", http.StatusForbidden},
		{"GET", "/priv/a.txt", http.StatusForbidden},
		{"GET", "/priv", http.StatusForbidden},
		{"GET", "/", http.StatusForbidden},
		{"GET", "/nobucket/a.txt", http.StatusForbidden},
	} {
		if code, body := anon(c.method, c.path, []byte{}); code != c.want {
			t.Errorf("anonymous %s %s: %d, want %d: %s", c.method, c.path, code, c.want, body)
		}
	}
	if _, err := tc.etcd.Get(ctx, meta.ObjectKey("pub", "b.txt")); err != nil {
		t.Fatal(err)
	}
	// A policy with GetObject only: objects read, the listing does not.
	if err := root.SetBucketPolicy(ctx, "pub", `{"Version":"2012-10-17","Statement":[{"Sid":"r","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"}]}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "anonymous listing refused without s3:ListBucket", func() error {
		if code, _ := anon("GET", "/pub", nil); code != http.StatusForbidden {
			return errors.New(http.StatusText(code))
		}
		return nil
	})
	if code, _ := anon("GET", "/pub/a.txt", nil); code != http.StatusOK {
		t.Errorf("anonymous GET with a GetObject-only policy: %d", code)
	}
	// Deleted: refused again.
	if err := root.SetBucketPolicy(ctx, "pub", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "anonymous GET refused after DeleteBucketPolicy", func() error {
		if code, _ := anon("GET", "/pub/a.txt", nil); code != http.StatusForbidden {
			return errors.New(http.StatusText(code))
		}
		return nil
	})
}

// The same grants through Debian's curl and its --aws-sigv4 signing.
func TestS3AuthorizationCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.50.3"})
	ctx := context.Background()
	root := tc.minio()
	if err := root.MakeBucket(ctx, "data", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutObject(ctx, "data", "a.txt", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.addUser("carol", "carol-secret-key")
	var errBody bytes.Buffer
	curl := func(args ...string) string {
		t.Helper()
		errBody.Reset()
		args = append([]string{"-s", "-o", "/dev/stderr", "-w", "%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "carol:carol-secret-key",
			"-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"}, args...)
		cmd := exec.CommandContext(ctx, "curl", args...)
		cmd.Stderr = &errBody
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %q: %v", args, err)
		}
		return string(out)
	}
	obj, bucket := tc.s3.URL+"/data/a.txt", tc.s3.URL+"/data"
	// curl 7.88 signs "?policy" as "policy" where SigV4 wants "policy=": the URLs spell it out.
	put := []string{"-X", "PUT", "--data-binary", "carol", tc.s3.URL + "/data/c.txt"}
	del := []string{"-X", "DELETE", obj}
	steps := []struct {
		grant string
		args  []string
		want  string
	}{
		{"", []string{obj}, "403"},
		{"", []string{bucket}, "403"},
		{"", put, "403"},
		{"", del, "403"},
		{"read", []string{obj}, "200"},
		{"read", []string{bucket}, "200"},
		{"read", put, "403"},
		{"read", del, "403"},
		{"write", put, "200"},
		{"write", []string{"-X", "DELETE", tc.s3.URL + "/data/c.txt"}, "204"},
		{"write", []string{"-X", "DELETE", bucket}, "403"},
		{"owner", []string{"-X", "PUT", "--data-binary", publicRead("data"), bucket + "?policy="}, "204"},
		{"owner", []string{bucket + "?policy="}, "200"},
	}
	last := ""
	for _, s := range steps {
		if s.grant != last {
			tc.grant("data", "carol", s.grant)
			last = s.grant
			// Wait for the grant to reach the coordinator: a read succeeds.
			eventually(t, "grant "+s.grant, func() error {
				if got := curl(obj); got != "200" {
					return errors.New("GET " + got)
				}
				return nil
			})
		}
		if got := curl(s.args...); got != s.want {
			t.Errorf("carol with grant %q: curl %q: %s, want %s: %s", s.grant, s.args, got, s.want, errBody.String())
		}
	}
}

// signedGet sends a GET signed by the harness's root key and returns the status and body.
func signedGet(t *testing.T, tc *testCluster, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tc.s3.URL+path, nil)
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	req = signer.SignV4(*req, tc.access, tc.secret, "", "us-east-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestExpectedBucketOwner: x-amz-expected-bucket-owner (and x-amz-source-expected-bucket-owner
// for a copy's source) naming anyone but the bucket's owner is 403, for signed and anonymous
// requests alike, as in S3; naming the owner changes nothing.
func TestExpectedBucketOwner(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.134.33"})
	ctx := context.Background()
	alice := tc.addUser("alice", "alice-secret-1")
	if err := alice.MakeBucket(ctx, "ebo", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.PutObject(ctx, "ebo", "foo", strings.NewReader("bar"), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.expect(t, "public-read ACL", 200, "alice", "PUT", "/ebo?acl", map[string]string{"X-Amz-Acl": "public-read"})
	for _, c := range []struct {
		what, ak, method, path string
		hdr                    map[string]string
		want                   int
	}{
		{"listing, the owner expected", "alice", "GET", "/ebo", map[string]string{"X-Amz-Expected-Bucket-Owner": "alice"}, 200},
		{"listing, another owner expected", "alice", "GET", "/ebo", map[string]string{"X-Amz-Expected-Bucket-Owner": "alicefoo"}, 403},
		{"anonymous listing, the owner expected", "", "GET", "/ebo", map[string]string{"X-Amz-Expected-Bucket-Owner": "alice"}, 200},
		{"anonymous listing, another owner expected", "", "GET", "/ebo", map[string]string{"X-Amz-Expected-Bucket-Owner": "alicefoo"}, 403},
		{"copy, the source's owner expected", "alice", "PUT", "/ebo/copy", map[string]string{"X-Amz-Copy-Source": "/ebo/foo", "X-Amz-Source-Expected-Bucket-Owner": "alice"}, 200},
		{"copy, another source owner expected", "alice", "PUT", "/ebo/copy2", map[string]string{"X-Amz-Copy-Source": "/ebo/foo", "X-Amz-Source-Expected-Bucket-Owner": "bob"}, 403},
	} {
		if code, body, _ := tc.s3req(c.ak, c.method, c.path, nil, c.hdr); code != c.want {
			t.Errorf("%s: %d, want %d: %s", c.what, code, c.want, body)
		}
	}
	if _, err := alice.StatObject(ctx, "ebo", "copy2", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Errorf("the refused copy was made: %v", err)
	}
}
