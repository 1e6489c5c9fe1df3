package s3

import (
	"strings"
	"testing"
)

func TestParseCopySource(t *testing.T) {
	for _, tc := range []struct {
		header, bucket, key, version string
	}{
		{"/bucket/key", "bucket", "key", ""},
		{"bucket/key", "bucket", "key", ""},
		{"bucket/dir/sub/key.txt", "bucket", "dir/sub/key.txt", ""},
		{"/bucket/a%20b%2Bc+d", "bucket", "a b+c+d", ""},
		{"/bucket/a%2Fb", "bucket", "a/b", ""},
		{"/bucket/what%3F.txt", "bucket", "what?.txt", ""},
		{"/bucket/%E6%97%A5%E6%9C%AC", "bucket", "日本", ""},
		{"/bucket/key?versionId=3HL4kqtJlcpXroDTDmJ%2BrmSpXd3dIbrHY", "bucket", "key", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"},
		{"bucket/key?versionId=null", "bucket", "key", "null"},
		{"/bucket/key?other=1", "bucket", "key", ""},
		{"/bucket//key", "bucket", "/key", ""},
		{"/bucket/key/", "bucket", "key/", ""},
		{"/bucket/" + strings.Repeat("k", 1024), "bucket", strings.Repeat("k", 1024), ""},
	} {
		b, k, v, err := ParseCopySource(tc.header)
		if err != nil || b != tc.bucket || k != tc.key || v != tc.version {
			t.Errorf("ParseCopySource(%q) = %q, %q, %q, %v; want %q, %q, %q", tc.header, b, k, v, err, tc.bucket, tc.key, tc.version)
		}
	}
	for _, tc := range []struct{ header, code string }{
		{"", CodeInvalidArgument},
		{"/", CodeInvalidArgument},
		{"bucket", CodeInvalidArgument},
		{"/bucket", CodeInvalidArgument},
		{"/bucket/", CodeInvalidArgument},
		{"//key", CodeInvalidArgument},
		{"/bucket/a%zzb", CodeInvalidArgument},
		{"/bucket/a%", CodeInvalidArgument},
		{"/bucket/key?versionId=", CodeInvalidArgument},
		{"/bucket/key?versionId=a&versionId=b", CodeInvalidArgument},
		{"/bucket/key?versionId=%zz", CodeInvalidArgument},
		{"/bucket/bad%FFutf8", CodeInvalidArgument},
		{"/bucket/" + strings.Repeat("k", 1025), CodeKeyTooLongError},
	} {
		_, _, _, err := ParseCopySource(tc.header)
		checkCode(t, err, tc.code, "ParseCopySource(%.60q)", tc.header)
	}
}

func TestParseCopySourceRange(t *testing.T) {
	for _, tc := range []struct {
		header      string
		size        int64
		off, length int64
	}{
		{"bytes=0-0", 10, 0, 1},
		{"bytes=0-9", 10, 0, 10},
		{"bytes=3-7", 10, 3, 5},
		{"bytes=9-9", 10, 9, 1},
		{"Bytes=1-2", 10, 1, 2},
	} {
		off, length, err := ParseCopySourceRange(tc.header, tc.size)
		if err != nil || off != tc.off || length != tc.length {
			t.Errorf("ParseCopySourceRange(%q, %d) = %d, %d, %v", tc.header, tc.size, off, length, err)
		}
	}
	// Malformed values are InvalidArgument and ranges past the source
	// InvalidRange, as in AWS (unlike GET, nothing is clamped or ignored).
	for _, tc := range []struct {
		header string
		size   int64
		msg    string
	}{
		{"", 10, "must be of the form"},
		{"byte=1-2", 10, "must be of the form"},
		{"0-2", 10, "must be of the form"},
		{"bytes=invalid-range", 10, "must be of the form"},
		{"bytes=200-100", 1000, "must be of the form"},
		{"bytes=-2-300", 1000, "must be of the form"},
		{"bytes=aa-12", 10, "must be of the form"},
		{"bytes=12-aa", 10, "must be of the form"},
		{"bytes=bb-", 10, "must be of the form"},
		{"bytes=0-", 10, "must be of the form"},
		{"bytes=-5", 10, "must be of the form"},
		{"bytes=0-1,2-3", 10, "must be of the form"},
		{"bytes=+1-2", 10, "must be of the form"},
		{"bytes=0-10", 10, "object of size: 10"},
		{"bytes=10-10", 10, "object of size: 10"},
		{"bytes=100-1005", 1000, "object of size: 1000"},
		{"bytes=0-0", 0, "object of size: 0"},
		{"bytes=0-99999999999999999999", 10, "object of size: 10"},
	} {
		_, _, err := ParseCopySourceRange(tc.header, tc.size)
		code := CodeInvalidArgument
		if strings.Contains(tc.msg, "object of size") {
			code = CodeInvalidRange
		}
		checkCode(t, err, code, "ParseCopySourceRange(%q, %d)", tc.header, tc.size)
		if err != nil && !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseCopySourceRange(%q, %d) message %q, want %q", tc.header, tc.size, err, tc.msg)
		}
	}
}
