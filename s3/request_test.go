package s3

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	domains := []string{"s3.example.com", "example.com", "localhost:9000"}
	for _, tc := range []struct {
		host, target string // target as sent on the wire (escaped)
		bucket, key  string
		code         string
	}{
		// Path style.
		{"s3.example.com", "/", "", "", ""},
		{"s3.example.com:9000", "/", "", "", ""},
		{"10.0.0.1:9000", "/", "", "", ""},
		{"s3.example.com", "/bucket", "bucket", "", ""},
		{"s3.example.com", "/bucket/", "bucket", "", ""},
		{"s3.example.com", "/bucket?list-type=2", "bucket", "", ""},
		{"s3.example.com", "/bucket/key", "bucket", "key", ""},
		{"s3.example.com", "/bucket/dir/sub/file.txt", "bucket", "dir/sub/file.txt", ""},
		{"s3.example.com", "/bucket/dir/", "bucket", "dir/", ""},
		{"s3.example.com", "/bucket//double", "bucket", "/double", ""},
		{"s3.example.com", "/bucket/a%20b%2Fc+d%3F", "bucket", "a b/c+d?", ""},
		{"s3.example.com", "/bucket/%E6%97%A5", "bucket", "日", ""},
		{"[::1]:9000", "/bucket/key", "bucket", "key", ""},
		{"unknown.host", "/bucket/key", "bucket", "key", ""},
		{"", "/bucket/key", "bucket", "key", ""},
		{"localhost:9000", "/bucket/key", "bucket", "key", ""},
		{"EXAMPLE.COM", "/bucket/key", "bucket", "key", ""},
		// Virtual-host style: the whole path is the key.
		{"bucket.s3.example.com", "/", "bucket", "", ""},
		{"bucket.s3.example.com:443", "/key", "bucket", "key", ""},
		{"bucket.s3.example.com", "/dir/key", "bucket", "dir/key", ""},
		{"bucket.s3.example.com", "//key", "bucket", "/key", ""},
		{"Bucket.S3.Example.COM", "/Key", "bucket", "Key", ""},
		{"my.dotted.bucket.s3.example.com", "/k", "my.dotted.bucket", "k", ""},
		{"bucket.example.com", "/k", "bucket", "k", ""},
		{"bucket.s3.example.com.", "/k", "bucket", "k", ""},
		{"bucket.localhost:9000", "/k", "bucket", "k", ""},
		{"bucket.localhost", "/k", "bucket", "k", ""},
		// "s3" under example.com would be a bucket, but s3.example.com is a domain itself.
		{"s3.example.com", "/kkk", "kkk", "", ""},
		// Not below a domain: a suffix that is not a label boundary.
		{"bucketexample.com", "/bkt/k", "bkt", "k", ""},
		// Errors.
		{"s3.example.com", "/Bad_Bucket/key", "", "", CodeInvalidBucketName},
		{"s3.example.com", "/ab", "", "", CodeInvalidBucketName},
		{"s3.example.com", "//key", "", "", CodeInvalidBucketName},
		{"BAD_.s3.example.com", "/key", "", "", CodeInvalidBucketName},
		{".s3.example.com", "/key", "", "", CodeInvalidBucketName},
		{"s3.example.com", "/bucket/" + strings.Repeat("k", 1025), "", "", CodeKeyTooLongError},
		{"s3.example.com", "/bucket/%FF", "", "", CodeInvalidArgument},
		{"bucket.s3.example.com", "/%FF", "", "", CodeInvalidArgument},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://placeholder"+tc.target, nil)
		r.Host = tc.host
		bucket, key, err := ParseRequest(r, domains)
		if tc.code != "" {
			checkCode(t, err, tc.code, "ParseRequest(%s %.40s)", tc.host, tc.target)
			continue
		}
		if err != nil || bucket != tc.bucket || key != tc.key {
			t.Errorf("ParseRequest(%s %s) = %q, %q, %v; want %q, %q", tc.host, tc.target, bucket, key, err, tc.bucket, tc.key)
		}
	}
}

func TestParseRequestNoDomains(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/bucket.with.dots/k", nil)
	r.Host = "bucket.s3.example.com"
	b, k, err := ParseRequest(r, nil)
	if err != nil || b != "bucket.with.dots" || k != "k" {
		t.Errorf("got %q %q %v", b, k, err)
	}
	// An empty URL path (possible with a hand-built request) is the service.
	r = &http.Request{Host: "x"}
	if b, k, err := ParseRequest(r, nil); err != nil || b != "" || k != "" {
		t.Errorf("nil URL: %q %q %v", b, k, err)
	}
}
