package s3

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestValidBucketName(t *testing.T) {
	for _, name := range []string{
		"abc",
		"my-bucket",
		"my.bucket.name",
		"bucket-1.example",
		"1bucket",
		"bucket1",
		"a-b-c",
		"a--b",
		strings.Repeat("a", 63),
		"192.168.5",        // three numbers: not an IP
		"192.168.5.4a",     // not all digits
		"xn-bucket",        // only the xn-- prefix is reserved
		"bucket-s3alias-x", // only as a suffix
		"s3alias",
	} {
		if err := ValidBucketName(name); err != nil {
			t.Errorf("ValidBucketName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{
		"",
		"ab",
		strings.Repeat("a", 64),
		"MyBucket",
		"my_bucket",
		"my bucket",
		"-bucket",
		"bucket-",
		".bucket",
		"bucket.",
		"my..bucket",
		"my-.bucket",
		"my.-bucket",
		"192.168.5.4",
		"0.0.0.0",
		"999.999.999.999",
		"xn--bucket",
		"sthree-bucket",
		"sthree-configurator",
		"amzn-s3-demo-bucket",
		"bucket-s3alias",
		"bucket--ol-s3",
		"bucket.mrap",
		"bucket--x-s3",
		"bucket--table-s3",
		"bücket",
		"bucket/x",
		"buck\x00et",
	} {
		checkCode(t, ValidBucketName(name), CodeInvalidBucketName, "ValidBucketName(%q)", name)
	}
}

func TestValidObjectKey(t *testing.T) {
	for _, key := range []string{
		"a",
		"photos/2006/February/sample.jpg",
		"/leading/slash",
		"trailing/",
		"../dots/./are/fine",
		"spaces and +plus+ and %percent",
		"ünïcödé/日本語",
		strings.Repeat("k", 1024),
		strings.Repeat("é", 512), // 1024 bytes
	} {
		if err := ValidObjectKey(key); err != nil {
			t.Errorf("ValidObjectKey(%.40q) = %v", key, err)
		}
	}
	checkCode(t, ValidObjectKey(""), CodeInvalidArgument, "empty key")
	checkCode(t, ValidObjectKey(strings.Repeat("k", 1025)), CodeKeyTooLongError, "1025 bytes")
	checkCode(t, ValidObjectKey(strings.Repeat("é", 513)), CodeKeyTooLongError, "513 two-byte runes")
	checkCode(t, ValidObjectKey("bad\xffutf8"), CodeInvalidArgument, "invalid UTF-8")
	checkCode(t, ValidObjectKey("\xed\xa0\x80"), CodeInvalidArgument, "surrogate half")
	checkCode(t, ValidObjectKey("a\x00b"), CodeInvalidArgument, "NUL")
}

func TestUserMetadata(t *testing.T) {
	h := http.Header{}
	h.Set("X-Amz-Meta-Color", "blue")
	h.Add("x-amz-meta-tags", "a")
	h.Add("X-Amz-Meta-Tags", "b")
	h.Set("Content-Type", "text/plain")
	h.Set("X-Amz-Metadata-Directive", "REPLACE") // not user metadata
	h["x-amz-meta-Raw"] = []string{"r"}          // a non-canonical key set directly
	h["X-Amz-Meta-"] = []string{"nameless"}
	md, err := UserMetadata(h)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"color": "blue", "tags": "a,b", "raw": "r"}
	if !reflect.DeepEqual(md, want) {
		t.Errorf("UserMetadata = %v, want %v", md, want)
	}

	if md, err := UserMetadata(http.Header{"Content-Type": {"x"}}); err != nil || md != nil {
		t.Errorf("no metadata: %v, %v", md, err)
	}

	// The limit counts names (without the prefix) and values: exactly 2 KiB passes.
	ok := http.Header{}
	ok.Set("X-Amz-Meta-K", strings.Repeat("v", 2047))
	if _, err := UserMetadata(ok); err != nil {
		t.Errorf("2048 bytes: %v", err)
	}
	ok.Set("X-Amz-Meta-K", strings.Repeat("v", 2048))
	_, err = UserMetadata(ok)
	checkCode(t, err, CodeMetadataTooLarge, "2049 bytes")

	many := http.Header{}
	for i := range 200 {
		many.Set("X-Amz-Meta-"+strings.Repeat("n", 5)+string(rune('a'+i%26))+string(rune('a'+i/26)), "vvvvv")
	}
	_, err = UserMetadata(many)
	checkCode(t, err, CodeMetadataTooLarge, "200 entries")

	// Duplicates under non-canonical keys merge and count once per name.
	dup := http.Header{"X-Amz-Meta-A": {"1"}, "x-amz-meta-a": {"2"}}
	md, err = UserMetadata(dup)
	if err != nil || (md["a"] != "1,2" && md["a"] != "2,1") {
		t.Errorf("duplicates: %v, %v", md, err)
	}
}

func TestSetUserMetadata(t *testing.T) {
	h := http.Header{}
	SetUserMetadata(h, map[string]string{"color": "blue", "my-tag": "x"})
	// Lower-case names, as S3 sends them (h.Get would canonicalise the name it looks up).
	if !reflect.DeepEqual(h["x-amz-meta-color"], []string{"blue"}) || !reflect.DeepEqual(h["x-amz-meta-my-tag"], []string{"x"}) || len(h) != 2 {
		t.Errorf("headers: %v", h)
	}
	md, err := UserMetadata(h)
	if err != nil || !reflect.DeepEqual(md, map[string]string{"color": "blue", "my-tag": "x"}) {
		t.Errorf("round trip: %v, %v", md, err)
	}
}
