package s3

import (
	"net/http"
	"net/url"
	"testing"
)

func TestCheckHeaders(t *testing.T) {
	for _, tc := range []struct {
		op     string
		header string
		value  string
		code   string // "" = accepted
	}{
		{OpWriteObject, "Content-Type", "text/plain", ""},
		{OpWriteObject, "X-Amz-Acl", "private", ""},
		{OpWriteObject, "X-Amz-Acl", "bucket-owner-full-control", ""},
		{OpWriteObject, "X-Amz-Acl", "public-read", ""}, // ACLs are served (RequestACL reads them)
		{OpCreateBucket, "X-Amz-Acl", "public-read-write", ""},
		{OpCreateBucket, "X-Amz-Grant-Read", "id=x", ""},
		{OpWriteObject, "X-Amz-Server-Side-Encryption", "AES256", ""},  // SSE-S3: the coordinator serves it
		{OpWriteObject, "X-Amz-Server-Side-Encryption", "aws:kms", ""}, // SSE-KMS: the built-in KMS serves it
		{OpWriteObject, "X-Amz-Server-Side-Encryption", "aws:kms:dsse", CodeNotImplemented},
		{OpWriteObject, "X-Amz-Server-Side-Encryption", "DES", CodeInvalidArgument},
		{OpWriteObject, "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", "k", CodeInvalidArgument}, // without aws:kms
		{OpWriteObject, "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled", "true", CodeNotImplemented},
		{OpWriteObject, "X-Amz-Server-Side-Encryption-Customer-Algorithm", "AES256", ""}, // SSE-C: checked by the coordinator
		{OpWritePart, "X-Amz-Server-Side-Encryption-Customer-Key", "a2V5", ""},
		{OpWritePart, "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key", "a2V5", ""},
		{OpWritePart, "X-Amz-Acl", "public-read", ""}, // not a part's header; S3 ignores it there too
		{OpReadObject, "X-Amz-Server-Side-Encryption-Customer-Key", "a2V5", ""},
		{OpReadObject, "X-Amz-Acl", "public-read", ""},
		{OpCreateBucket, "X-Amz-Bucket-Object-Lock-Enabled", "true", ""},
		{OpCreateBucket, "X-Amz-Bucket-Object-Lock-Enabled", "false", ""},
		{OpCreateBucket, "X-Amz-Object-Ownership", "BucketOwnerEnforced", ""},
		{OpCreateBucket, "X-Amz-Object-Ownership", "ObjectWriter", ""},
		{OpCreateBucket, "X-Amz-Object-Ownership", "Whoever", CodeInvalidArgument},
		{OpWriteObject, "X-Amz-Object-Lock-Mode", "COMPLIANCE", ""},
		{OpWriteObject, "X-Amz-Object-Lock-Legal-Hold", "ON", ""},
		{OpWriteObject, "X-Amz-Tagging", "a=b", ""}, // tagging is served
		{OpWriteObject, "X-Amz-Website-Redirect-Location", "/x", CodeNotImplemented},
		{OpWriteObject, "X-Amz-Storage-Class", "STANDARD", ""},
		{OpWriteObject, "X-Amz-Storage-Class", "GLACIER", CodeNotImplemented},
	} {
		h := http.Header{}
		h.Set(tc.header, tc.value)
		err := CheckHeaders(h, tc.op)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s %s: %s refused: %v", tc.op, tc.header, tc.value, err)
			}
			continue
		}
		checkCode(t, err, tc.code, "%s %s: %s", tc.op, tc.header, tc.value)
	}
}

func TestUnservedSubresource(t *testing.T) {
	for _, tc := range []struct {
		query  string
		served []string
		want   string
	}{
		{"", nil, ""},
		{"prefix=&delimiter=%2F&list-type=2", []string{"prefix", "delimiter", "list-type"}, ""},
		{"policyStatus", []string{"prefix"}, "policyStatus"},
		{"acl", nil, "acl"},
		{"acl=", nil, "acl"},
		{"tagging", []string{"tagging"}, ""},
		{"unknownThing", nil, "unknownThing"},
		{"unknown=value", nil, ""}, // a parameter with a value that S3 does not define is ignored, as AWS does
		{"x-id=GetObject&X-Amz-Expires=60&response-content-type=a", nil, ""},
		{"uploads&prefix=", []string{"prefix"}, "uploads"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if got := UnservedSubresource(q, tc.served...); got != tc.want {
			t.Errorf("UnservedSubresource(%q, %v) = %q, want %q", tc.query, tc.served, got, tc.want)
		}
	}
}
