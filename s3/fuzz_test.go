package s3

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seed corpora live in testdata/fuzz/<Name>/; the f.Add calls below cover
// the basics so the targets also run from a clean checkout.

func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"bytes=0-0", "bytes=0-", "bytes=-1", "bytes=5-1", "bytes=-0", "bytes=0-1,2-3", ""} {
		f.Add(h, int64(10))
		f.Add(h, int64(0))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		off, length, err := ParseRange(header, size)
		if err != nil {
			var e *Error
			if !errors.Is(err, ErrRangeIgnored) && !(errors.As(err, &e) && e.Code == CodeInvalidRange) {
				t.Fatalf("ParseRange(%q, %d): unexpected error %v", header, size, err)
			}
			return
		}
		// A range served must lie within [0, size) and be non-empty.
		if off < 0 || length <= 0 || off >= size || length > size-off {
			t.Fatalf("ParseRange(%q, %d) = %d, %d: outside the object", header, size, off, length)
		}
		cr := ContentRange(off, length, size)
		if !strings.HasPrefix(cr, "bytes ") {
			t.Fatalf("ContentRange = %q", cr)
		}
		// Copy-source ranges are a stricter subset: never wider than the object.
		if o2, l2, err := ParseCopySourceRange(header, size); err == nil && (o2 < 0 || l2 <= 0 || l2 > size-o2) {
			t.Fatalf("ParseCopySourceRange(%q, %d) = %d, %d", header, size, o2, l2)
		}
	})
}

func FuzzDecodeXML(f *testing.F) {
	f.Add([]byte(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"a"</ETag></Part></CompleteMultipartUpload>`), uint16(4096))
	f.Add([]byte(`<Delete><Quiet>true</Quiet><Object><Key>k</Key><VersionId>v</VersionId></Object></Delete>`), uint16(4096))
	f.Add([]byte(`<Delete><Object><Key>k</Key></Object></Delete>`), uint16(10))
	f.Add([]byte(""), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		var c CompleteMultipartUpload
		errC := DecodeXML(bytes.NewReader(data), int64(limit), &c)
		var d Delete
		errD := DecodeXML(bytes.NewReader(data), int64(limit), &d)
		for _, err := range []error{errC, errD} {
			if err == nil {
				if len(data) > int(limit) {
					t.Fatalf("accepted %d bytes with limit %d", len(data), limit)
				}
				continue
			}
			// Every failure on an in-memory body is MalformedXML.
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeMalformedXML {
				t.Fatalf("DecodeXML: %v", err)
			}
		}
		if errC == nil {
			_ = c.Validate()
		}
		if errD == nil {
			_ = d.Validate()
		}
	})
}

func FuzzParseCopySource(f *testing.F) {
	for _, h := range []string{"/bucket/key", "bucket/key?versionId=v1", "/b/a%2Fb%3F", "/bucket/", "/bucket/%zz", "//k"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, header string) {
		bucket, key, version, err := ParseCopySource(header)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Code != CodeInvalidArgument && e.Code != CodeKeyTooLongError) {
				t.Fatalf("ParseCopySource(%q): %v", header, err)
			}
			return
		}
		if bucket == "" || strings.Contains(bucket, "/") || ValidObjectKey(key) != nil {
			t.Fatalf("ParseCopySource(%q) = %q, %q", header, bucket, key)
		}
		// Re-encoding what was parsed gives the same answer (the header a
		// well-behaved SDK would send for this source).
		again := "/" + url.PathEscape(bucket) + "/" + strings.ReplaceAll(url.PathEscape(key), "%2F", "/")
		if version != "" {
			again += "?versionId=" + url.QueryEscape(version)
		}
		b2, k2, v2, err := ParseCopySource(again)
		if err != nil || b2 != bucket || k2 != key || v2 != version {
			t.Fatalf("re-parse of %q (from %q) = %q, %q, %q, %v; want %q, %q, %q", again, header, b2, k2, v2, err, bucket, key, version)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range [][2]string{
		{"s3.example.com", "/bucket/key"},
		{"bucket.s3.example.com:9000", "/dir/key"},
		{"s3.example.com", "/"},
		{"[::1]:9000", "/bucket"},
		{".s3.example.com", "//x"},
		{"BUCKET.EXAMPLE.COM.", "/%FF"},
	} {
		f.Add(s[0], s[1])
	}
	domains := []string{"s3.example.com", "example.com"}
	f.Fuzz(func(t *testing.T, host, path string) {
		r := &http.Request{Method: http.MethodGet, Host: host, URL: &url.URL{Path: path}}
		bucket, key, err := ParseRequest(r, domains)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("ParseRequest(%q, %q): %v", host, path, err)
			}
			return
		}
		if bucket == "" {
			if key != "" {
				t.Fatalf("ParseRequest(%q, %q): key %q without a bucket", host, path, key)
			}
			return
		}
		if ValidBucketName(bucket) != nil {
			t.Fatalf("ParseRequest(%q, %q): invalid bucket %q", host, path, bucket)
		}
		if key != "" && (len(key) > MaxKeyLength || !utf8.ValidString(key)) {
			t.Fatalf("ParseRequest(%q, %q): invalid key %q", host, path, key)
		}
		// The key is always a suffix of the path: nothing is invented.
		if !strings.HasSuffix(path, key) {
			t.Fatalf("ParseRequest(%q, %q): key %q not from the path", host, path, key)
		}
	})
}
