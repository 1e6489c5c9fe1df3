package coordinator

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"
)

// s3req sends a request signed by ak (anonymous when ak is "") with extra headers and returns
// the status, the body and the response headers.
func (tc *testCluster) s3req(ak, method, path string, body []byte, hdr map[string]string) (int, string, http.Header) {
	tc.t.Helper()
	req, err := http.NewRequest(method, tc.s3.URL+path, bytes.NewReader(body))
	if err != nil {
		tc.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if ak != "" {
		sk := tc.secret
		if v, ok := tc.users.Load(ak); ok {
			sk = v.(string)
		}
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		req = signer.SignV4(*req, ak, sk, "", "us-east-1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// expect polls until the request answers want (the coordinator's cache follows etcd by a
// watch; this coordinator forgets what it changed itself, so most answer at once).
func (tc *testCluster) expect(t *testing.T, what string, want int, ak, method, path string, hdr map[string]string) string {
	t.Helper()
	var body string
	eventually(t, what, func() error {
		var code int
		code, body, _ = tc.s3req(ak, method, path, nil, hdr)
		if code != want {
			return fmt.Errorf("%s %s by %q: %d, want %d: %s", method, path, ak, code, want, body)
		}
		return nil
	})
	return body
}

// ACLs are enforced: what a public-read ACL opens, setting it back to private closes; bucket
// and object ACLs, groups, users and the owner's powers.
func TestS3ACLsEnforced(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.110.2"})
	ctx := context.Background()
	alice := tc.addUser("alice", "alice-secret-1")
	tc.addUser("bob", "bob-secret-12")
	if err := alice.MakeBucket(ctx, "photos", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.PutObject(ctx, "photos", "cat.jpg", strings.NewReader("meow"), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// Default: private. The owner's ACL names it with FULL_CONTROL.
	tc.expect(t, "anonymous GET of a private object", 403, "", "GET", "/photos/cat.jpg", nil)
	tc.expect(t, "bob's GET of a private object", 403, "bob", "GET", "/photos/cat.jpg", nil)
	if body := tc.expect(t, "GetObjectAcl", 200, "alice", "GET", "/photos/cat.jpg?acl", nil); !strings.Contains(body, "<ID>alice</ID>") || !strings.Contains(body, "FULL_CONTROL") || strings.Contains(body, "AllUsers") {
		t.Fatalf("default object ACL: %s", body)
	}

	// public-read opens the object to anyone, private closes it again.
	tc.expect(t, "PutObjectAcl public-read", 200, "alice", "PUT", "/photos/cat.jpg?acl", map[string]string{"X-Amz-Acl": "public-read"})
	if body := tc.expect(t, "anonymous GET after public-read", 200, "", "GET", "/photos/cat.jpg", nil); body != "meow" {
		t.Fatalf("anonymous GET: %q", body)
	}
	tc.expect(t, "bob's GET after public-read", 200, "bob", "GET", "/photos/cat.jpg", nil)
	tc.expect(t, "anonymous GetObjectAcl (READ is not READ_ACP)", 403, "", "GET", "/photos/cat.jpg?acl", nil)
	tc.expect(t, "anonymous listing (the object's ACL is not the bucket's)", 403, "", "GET", "/photos", nil)
	tc.expect(t, "anonymous PUT", 403, "", "PUT", "/photos/dog.jpg", nil)
	tc.expect(t, "PutObjectAcl private", 200, "alice", "PUT", "/photos/cat.jpg?acl", map[string]string{"X-Amz-Acl": "private"})
	tc.expect(t, "anonymous GET after private", 403, "", "GET", "/photos/cat.jpg", nil)
	tc.expect(t, "bob's GET after private", 403, "bob", "GET", "/photos/cat.jpg", nil)

	// authenticated-read: any user, not anonymous clients. Bob may not change the ACL.
	tc.expect(t, "PutObjectAcl authenticated-read", 200, "alice", "PUT", "/photos/cat.jpg?acl", map[string]string{"X-Amz-Acl": "authenticated-read"})
	tc.expect(t, "bob's GET with authenticated-read", 200, "bob", "GET", "/photos/cat.jpg", nil)
	tc.expect(t, "anonymous GET with authenticated-read", 403, "", "GET", "/photos/cat.jpg", nil)
	tc.expect(t, "bob's PutObjectAcl", 403, "bob", "PUT", "/photos/cat.jpg?acl", map[string]string{"X-Amz-Acl": "public-read"})

	// An ACL document naming bob: READ_ACP lets him read the ACL but not the object.
	doc := `<AccessControlPolicy><Owner><ID>alice</ID></Owner><AccessControlList>` +
		`<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>alice</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>` +
		`<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>bob</ID></Grantee><Permission>READ_ACP</Permission></Grant>` +
		`</AccessControlList></AccessControlPolicy>`
	if code, body, _ := tc.s3req("alice", "PUT", "/photos/cat.jpg?acl", []byte(doc), nil); code != 200 {
		t.Fatalf("PutObjectAcl with a document: %d %s", code, body)
	}
	tc.expect(t, "bob's GetObjectAcl with READ_ACP", 200, "bob", "GET", "/photos/cat.jpg?acl", nil)
	tc.expect(t, "bob's GET with only READ_ACP", 403, "bob", "GET", "/photos/cat.jpg", nil)
	for _, c := range []struct{ name, doc, code string }{
		{"unknown user", strings.Replace(doc, "<ID>bob</ID>", "<ID>nobody</ID>", 1), "InvalidArgument"},
		{"e-mail grantee", strings.Replace(doc, `xsi:type="CanonicalUser"><ID>bob</ID>`, `xsi:type="AmazonCustomerByEmail"><EmailAddress>b@example.com</EmailAddress>`, 1), "UnresolvableGrantByEmailAddress"},
		{"bad permission", strings.Replace(doc, "READ_ACP", "EVERYTHING", 1), "MalformedACLError"},
		{"another owner", strings.Replace(doc, "<Owner><ID>alice</ID>", "<Owner><ID>bob</ID>", 1), "AccessDenied"},
		{"not XML", "<AccessControlPolicy>", "MalformedACLError"},
	} {
		if code, body, _ := tc.s3req("alice", "PUT", "/photos/cat.jpg?acl", []byte(c.doc), nil); !strings.Contains(body, "<Code>"+c.code+"</Code>") {
			t.Errorf("%s: %d %s, want %s", c.name, code, body, c.code)
		}
	}
	tc.expect(t, "a refused ACL changed nothing", 200, "bob", "GET", "/photos/cat.jpg?acl", nil)

	// A public-read bucket ACL opens the listing, not the objects.
	tc.expect(t, "PutBucketAcl public-read", 200, "alice", "PUT", "/photos?acl", map[string]string{"X-Amz-Acl": "public-read"})
	tc.expect(t, "anonymous listing of a public-read bucket", 200, "", "GET", "/photos", nil)
	tc.expect(t, "anonymous GET of a private object in a public bucket", 403, "", "GET", "/photos/cat.jpg", nil)
	tc.expect(t, "anonymous GET of a missing object, listing allowed", 404, "", "GET", "/photos/none", nil)
	tc.expect(t, "PutBucketAcl private", 200, "alice", "PUT", "/photos?acl", map[string]string{"X-Amz-Acl": "private"})
	tc.expect(t, "anonymous listing after private", 403, "", "GET", "/photos", nil)
	tc.expect(t, "anonymous GET of a missing object, listing refused", 403, "", "GET", "/photos/none", nil)

	// public-read-write: anyone writes; bob's object is bob's, and its default ACL is his
	// alone — but the bucket's owner keeps everything on her bucket (hanode's owner level).
	tc.expect(t, "PutBucketAcl public-read-write", 200, "alice", "PUT", "/photos?acl", map[string]string{"X-Amz-Acl": "public-read-write"})
	if code, body, _ := tc.s3req("bob", "PUT", "/photos/bob.txt", []byte("bob's"), nil); code != 200 {
		t.Fatalf("bob's PUT into a public-read-write bucket: %d %s", code, body)
	}
	if body := tc.expect(t, "bob's GetObjectAcl", 200, "bob", "GET", "/photos/bob.txt?acl", nil); !strings.Contains(body, "<Owner><ID>bob</ID>") {
		t.Fatalf("the writer does not own its object: %s", body)
	}
	tc.expect(t, "anonymous GET of bob's private object", 403, "", "GET", "/photos/bob.txt", nil)
	tc.expect(t, "alice reads bob's object in her bucket", 200, "alice", "GET", "/photos/bob.txt", nil)
	if code, body, _ := tc.s3req("", "PUT", "/photos/anon.txt", []byte("anon"), nil); code != 200 {
		t.Fatalf("anonymous PUT into a public-read-write bucket: %d %s", code, body)
	}
	tc.expect(t, "PutBucketAcl private again", 200, "alice", "PUT", "/photos?acl", map[string]string{"X-Amz-Acl": "private"})
	tc.expect(t, "anonymous PUT after private", 403, "", "PUT", "/photos/anon2.txt", nil)

	// Grant headers on PutObject; a canned ACL and grants together are refused.
	if code, body, _ := tc.s3req("alice", "PUT", "/photos/shared.txt", []byte("x"), map[string]string{"X-Amz-Grant-Read": "id=bob"}); code != 200 {
		t.Fatalf("PUT with x-amz-grant-read: %d %s", code, body)
	}
	tc.expect(t, "bob reads what a grant header gave him", 200, "bob", "GET", "/photos/shared.txt", nil)
	if code, _, _ := tc.s3req("alice", "PUT", "/photos/x.txt", []byte("x"), map[string]string{"X-Amz-Grant-Read": "id=bob", "X-Amz-Acl": "private"}); code != 400 {
		t.Errorf("canned ACL with grant headers: %d, want 400", code)
	}
	if code, _, _ := tc.s3req("alice", "PUT", "/photos/x.txt", []byte("x"), map[string]string{"X-Amz-Acl": "log-delivery-write"}); code != 501 {
		t.Errorf("log-delivery-write: %d, want 501", code)
	}
	if _, err := tc.etcd.Get(ctx, "/hanode/s3/o/photos/x.txt"); err != nil {
		t.Fatal(err)
	}
	if o, err := alice.StatObject(ctx, "photos", "x.txt", minio.StatObjectOptions{}); err == nil {
		t.Errorf("a refused PUT stored %+v", o)
	}
	// CreateBucket with a canned ACL.
	if code, body, _ := tc.s3req("bob", "PUT", "/bobs", nil, map[string]string{"X-Amz-Acl": "public-read"}); code != 200 {
		t.Fatalf("CreateBucket public-read: %d %s", code, body)
	}
	tc.expect(t, "anonymous listing of a bucket created public-read", 200, "", "GET", "/bobs", nil)
}

// Bucket policies are evaluated: Deny beats every Allow (the owner's level too, but never
// for the policy operations), users are principals, conditions narrow.
func TestS3PolicyEvaluated(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, etcdHost: "127.0.110.3"})
	ctx := context.Background()
	alice := tc.addUser("alice", "alice-secret-1")
	tc.addUser("bob", "bob-secret-12")
	if err := alice.MakeBucket(ctx, "docs", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"public/a.txt", "private/b.txt", "public/secret.txt"} {
		if _, err := alice.PutObject(ctx, "docs", k, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	policy := `{"Version":"2012-10-17","Statement":[
	 {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::docs/public/*"},
	 {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::docs/public/secret*"},
	 {"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::docs","Condition":{"StringLike":{"s3:prefix":"public/*"}}},
	 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam:::user/bob"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::docs/inbox/*"},
	 {"Effect":"Deny","Principal":"*","Action":["s3:PutBucketPolicy","s3:DeleteObject"],"Resource":["arn:aws:s3:::docs","arn:aws:s3:::docs/*"]}]}`
	if err := alice.SetBucketPolicy(ctx, "docs", policy); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who, method, path string
		want              int
	}{
		{"", "GET", "/docs/public/a.txt", 200},
		{"", "GET", "/docs/private/b.txt", 403},
		{"", "GET", "/docs/public/secret.txt", 403},
		{"alice", "GET", "/docs/public/secret.txt", 403}, // Deny beats the owner's level
		{"alice", "GET", "/docs/private/b.txt", 200},
		{"bob", "GET", "/docs?prefix=public/", 200},
		{"bob", "GET", "/docs?prefix=private/", 403},
		{"bob", "GET", "/docs", 403},
		{"", "GET", "/docs?prefix=public/", 403}, // the list statement names bob only
		{"bob", "PUT", "/docs/inbox/n.txt", 200},
		{"bob", "PUT", "/docs/private/n.txt", 403},
		{"alice", "DELETE", "/docs/private/b.txt", 403},
		{"alice", "GET", "/docs?policy", 200},
	} {
		tc.expect(t, c.who+" "+c.method+" "+c.path, c.want, c.who, c.method, c.path, nil)
	}
	// DeleteObjects decides each key: the Deny on s3:DeleteObject holds for every key.
	del := `<Delete><Object><Key>private/b.txt</Key></Object></Delete>`
	if code, body, _ := tc.s3req("alice", "POST", "/docs?delete", []byte(del), map[string]string{"Content-Md5": md5b64(del)}); code != 200 || !strings.Contains(body, "<Code>AccessDenied</Code>") {
		t.Errorf("DeleteObjects under a Deny: %d %s", code, body)
	}
	// The owner may always manage the policy, even one that denies it that.
	if err := alice.SetBucketPolicy(ctx, "docs", ""); err != nil {
		t.Fatalf("the owner could not delete a policy denying it: %v", err)
	}
	tc.expect(t, "anonymous GET after the policy is gone", 403, "", "GET", "/docs/public/a.txt", nil)
	tc.expect(t, "the owner's DELETE after the Deny is gone", 204, "alice", "DELETE", "/docs/private/b.txt", nil)
	// A public access block refuses public policies and ACLs.
	block := `<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls><BlockPublicPolicy>true</BlockPublicPolicy></PublicAccessBlockConfiguration>`
	if code, body, _ := tc.s3req("alice", "PUT", "/docs?publicAccessBlock", []byte(block), nil); code != 200 {
		t.Fatalf("PutPublicAccessBlock: %d %s", code, body)
	}
	if err := alice.SetBucketPolicy(ctx, "docs", publicRead("docs")); s3Code(err) != "AccessDenied" {
		t.Errorf("a public policy under BlockPublicPolicy: %v", err)
	}
	tc.expect(t, "a public ACL under BlockPublicAcls", 403, "alice", "PUT", "/docs?acl", map[string]string{"X-Amz-Acl": "public-read"})
}

func md5b64(s string) string { h := md5.Sum([]byte(s)); return base64.StdEncoding.EncodeToString(h[:]) }
