package s3

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"testing"
)

func TestETags(t *testing.T) {
	sum := md5.Sum([]byte("hello"))
	if got := ETagFromMD5(sum[:]); got != `"5d41402abc4b2a76b9719d911017c592"` {
		t.Errorf("ETagFromMD5 = %s", got)
	}
	// Two parts, "hello" and "world": hex(md5(md5("hello") || md5("world")))
	// + "-2", computed independently with
	// (printf hello | openssl md5 -binary; printf world | openssl md5 -binary) | openssl md5
	a, b := md5.Sum([]byte("hello")), md5.Sum([]byte("world"))
	if got := MultipartETag([][]byte{a[:], b[:]}); got != `"065947336a2f2a95ba8899f3675c3be6-2"` {
		t.Errorf("MultipartETag = %s", got)
	}
	if got := MultipartETag([][]byte{a[:]}); got != `"`+hexMD5(a[:])+`-1"` {
		t.Errorf("MultipartETag one part = %s", got)
	}

	for _, tc := range []struct{ in, quoted, unquoted string }{
		{"abc", `"abc"`, "abc"},
		{`"abc"`, `"abc"`, "abc"},
		{`"abc-2"`, `"abc-2"`, "abc-2"},
		{"", `""`, ""},
		{`"`, `"""`, `"`},
		{`""`, `""`, ""},
	} {
		if got := QuoteETag(tc.in); got != tc.quoted {
			t.Errorf("QuoteETag(%q) = %q", tc.in, got)
		}
		if got := UnquoteETag(tc.in); got != tc.unquoted {
			t.Errorf("UnquoteETag(%q) = %q", tc.in, got)
		}
	}
	if !ETagsEqual(`"ABC"`, "abc") || !ETagsEqual(" abc ", `"abc"`) || ETagsEqual("abc", "abd") {
		t.Error("ETagsEqual")
	}
}

func hexMD5(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestContentMD5(t *testing.T) {
	sum := md5.Sum([]byte("hello"))
	good := base64.StdEncoding.EncodeToString(sum[:])
	if got, err := ContentMD5(good); err != nil || string(got) != string(sum[:]) {
		t.Errorf("ContentMD5(%s) = %x, %v", good, got, err)
	}
	if got, err := ContentMD5(" " + good + " "); err != nil || string(got) != string(sum[:]) {
		t.Errorf("ContentMD5 with spaces = %x, %v", got, err)
	}
	for _, bad := range []string{
		"",
		"not base64!",
		base64.StdEncoding.EncodeToString(sum[:15]),                                 // 15 bytes
		base64.StdEncoding.EncodeToString(append(sum[:], 0)),                        // 17 bytes
		base64.RawStdEncoding.EncodeToString(sum[:]),                                // no padding
		base64.URLEncoding.EncodeToString([]byte("\xff\xff\xff" + "0123456789abc")), // URL alphabet
		"XUFAKrxLKna5cZ2REBfFkg=",                                                   // bad padding
		"5d41402abc4b2a76b9719d911017c592",                                          // hex, not base64
	} {
		_, err := ContentMD5(bad)
		checkCode(t, err, CodeInvalidDigest, "ContentMD5(%q)", bad)
	}
}
