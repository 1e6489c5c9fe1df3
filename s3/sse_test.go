package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hanode/hanode/internal/keyspace"
)

func sseHeaders(copySource bool, algo, key, sum string) http.Header {
	h := http.Header{}
	p := "X-Amz-"
	if copySource {
		p = "X-Amz-Copy-Source-"
	}
	if algo != "-" {
		h.Set(p+"Server-Side-Encryption-Customer-Algorithm", algo)
	}
	if key != "-" {
		h.Set(p+"Server-Side-Encryption-Customer-Key", key)
	}
	if sum != "-" {
		h.Set(p+"Server-Side-Encryption-Customer-Key-Md5", sum)
	}
	return h
}

func TestParseSSECustomer(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, 32)
	key := base64.StdEncoding.EncodeToString(raw)
	s := md5.Sum(raw)
	sum := base64.StdEncoding.EncodeToString(s[:])
	short := base64.StdEncoding.EncodeToString(raw[:16])
	ss := md5.Sum(raw[:16])
	cases := []struct {
		name           string
		algo, key, sum string
		code           string // "" = accepted
	}{
		{"complete", "AES256", key, sum, ""},
		{"no algorithm", "-", key, sum, CodeInvalidArgument},
		{"other algorithm", "AES128", key, sum, CodeInvalidArgument},
		{"no key", "AES256", "-", sum, CodeInvalidArgument},
		{"no md5", "AES256", key, "-", CodeInvalidArgument},
		{"wrong md5", "AES256", key, "AAAAAAAAAAAAAAAAAAAAAA==", CodeInvalidArgument},
		{"md5 not base64", "AES256", key, "!!", CodeInvalidArgument},
		{"key not base64", "AES256", "not base64!", sum, CodeInvalidArgument},
		{"128-bit key", "AES256", short, base64.StdEncoding.EncodeToString(ss[:]), CodeInvalidArgument},
	}
	for _, c := range cases {
		for _, copySource := range []bool{false, true} {
			got, err := ParseSSECustomer(sseHeaders(copySource, c.algo, c.key, c.sum), copySource)
			if c.code == "" {
				if err != nil || got == nil || !bytes.Equal(got.Key, raw) || got.KeyMD5 != sum {
					t.Errorf("%s (copy source %v): %v %+v", c.name, copySource, err, got)
				}
				continue
			}
			if !errors.Is(err, ErrorFor(c.code, "")) {
				t.Errorf("%s (copy source %v): got %v, want %s", c.name, copySource, err, c.code)
			}
		}
	}
	// The copy source's headers are not the request's, nor the reverse.
	if got, err := ParseSSECustomer(sseHeaders(true, "AES256", key, sum), false); got != nil || err != nil {
		t.Errorf("copy-source headers read as the request's: %v %v", got, err)
	}
	if got, err := ParseSSECustomer(http.Header{}, false); got != nil || err != nil {
		t.Errorf("no headers: %v %v", got, err)
	}
}

func TestParseSSE(t *testing.T) {
	const (
		kms = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
		ctx = "X-Amz-Server-Side-Encryption-Context"
	)
	okCtx := base64.StdEncoding.EncodeToString([]byte(`{"project":"x"}`))
	cases := []struct {
		h    http.Header
		want SSERequest
		code string
	}{
		{http.Header{}, SSERequest{}, ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"AES256"}}, SSERequest{Algorithm: "AES256"}, ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}}, SSERequest{Algorithm: "aws:kms"}, ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}, kms: {"testkey-1"}}, SSERequest{Algorithm: "aws:kms", KMSKeyID: "testkey-1"}, ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}, kms: {"arn:aws:kms:us-east-1:123:key/testkey-2"}}, SSERequest{Algorithm: "aws:kms", KMSKeyID: "testkey-2"}, ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}, kms: {"k"}, ctx: {okCtx}}, SSERequest{Algorithm: "aws:kms", KMSKeyID: "k", KMSContext: okCtx}, ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}, kms: {"no/such"}}, SSERequest{}, "KMS.NotFoundException"},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}, ctx: {"not base64"}}, SSERequest{}, CodeInvalidArgument},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}, ctx: {base64.StdEncoding.EncodeToString([]byte(`{"n":1}`))}}, SSERequest{}, CodeInvalidArgument},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}, ctx: {base64.StdEncoding.EncodeToString([]byte(`null`))}}, SSERequest{}, CodeInvalidArgument},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms:dsse"}}, SSERequest{}, CodeNotImplemented},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aes:kms"}}, SSERequest{}, CodeInvalidArgument},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aes256"}}, SSERequest{}, CodeInvalidArgument},
		{http.Header{"X-Amz-Server-Side-Encryption": {"AES256"}, "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled": {"false"}}, SSERequest{Algorithm: "AES256"}, ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}, "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled": {"true"}}, SSERequest{}, CodeNotImplemented},
		{http.Header{kms: {"k"}}, SSERequest{}, CodeInvalidArgument},                                             // key id without aws:kms
		{http.Header{"X-Amz-Server-Side-Encryption": {"AES256"}, kms: {"k"}}, SSERequest{}, CodeInvalidArgument}, // with SSE-S3
		{http.Header{ctx: {okCtx}}, SSERequest{}, CodeInvalidArgument},
	}
	for _, c := range cases {
		got, err := ParseSSE(c.h)
		var se *Error
		if c.code == "" && (err != nil || got != c.want) || c.code != "" && (!errors.As(err, &se) || se.Code != c.code || se.Status/100 != 4 && se.Status != 501) {
			t.Errorf("%v: got %+v %v, want %+v %s", c.h, got, err, c.want, c.code)
		}
	}
}

// FuzzParseSSE: any encryption headers are refused with an S3 error or give an algorithm
// hanode serves, a key id a KMS key can have, and a context of base64 JSON strings.
func FuzzParseSSE(f *testing.F) {
	f.Add("aws:kms", "testkey-1", "")
	f.Add("aws:kms", "arn:aws:kms:r:1:key/k", base64.StdEncoding.EncodeToString([]byte(`{"a":"b"}`)))
	f.Add("AES256", "", "")
	f.Add("", "k", "e30=")
	f.Fuzz(func(t *testing.T, algo, keyID, encCtx string) {
		h := http.Header{}
		for name, v := range map[string]string{HeaderSSE: algo, HeaderSSEKMSKeyID: keyID, HeaderSSEKMSContext: encCtx} {
			if v != "" {
				h.Set(name, v)
			}
		}
		got, err := ParseSSE(h)
		var se *Error
		switch {
		case err != nil && !errors.As(err, &se):
			t.Fatalf("not an S3 error: %v", err)
		case err != nil:
			return
		case got.Algorithm != "" && got.Algorithm != SSEAlgorithmAES256 && got.Algorithm != SSEAlgorithmKMS:
			t.Fatalf("algorithm %q", got.Algorithm)
		case got.Algorithm != SSEAlgorithmKMS && (got.KMSKeyID != "" || got.KMSContext != ""):
			t.Fatalf("a KMS key or context without aws:kms: %+v", got)
		case got.KMSKeyID != "" && !keyspace.ValidKMSKeyName(got.KMSKeyID):
			t.Fatalf("key id %q", got.KMSKeyID)
		case got.KMSContext != "" && checkKMSContext(got.KMSContext) != nil:
			t.Fatalf("context %q", got.KMSContext)
		}
	})
}

// FuzzParseSSECustomer: any header values are either refused with an S3 error or give a
// 32-byte key whose MD5 is the one echoed.
func FuzzParseSSECustomer(f *testing.F) {
	raw := bytes.Repeat([]byte{1}, 32)
	s := md5.Sum(raw)
	f.Add("AES256", base64.StdEncoding.EncodeToString(raw), base64.StdEncoding.EncodeToString(s[:]), false)
	f.Add("", "", "", true)
	f.Add("AES256", "=", "==", false)
	f.Fuzz(func(t *testing.T, algo, key, sum string, copySource bool) {
		got, err := ParseSSECustomer(sseHeaders(copySource, algo, key, sum), copySource)
		var se *Error
		switch {
		case err != nil && !errors.As(err, &se):
			t.Fatalf("not an S3 error: %v", err)
		case err != nil && se.Status != http.StatusBadRequest:
			t.Fatalf("status %d for a malformed key", se.Status)
		case err == nil && got != nil:
			m := md5.Sum(got.Key)
			if len(got.Key) != 32 || got.KeyMD5 != base64.StdEncoding.EncodeToString(m[:]) {
				t.Fatalf("accepted a %d-byte key or a wrong MD5", len(got.Key))
			}
		}
	})
}

// FuzzBucketEncryption: a PutBucketEncryption body is refused with an S3 error or sets AES256,
// or aws:kms with a key name.
func FuzzBucketEncryption(f *testing.F) {
	f.Add(`<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>`)
	f.Add(`<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>`)
	f.Add(`<ServerSideEncryptionConfiguration/>`)
	f.Fuzz(func(t *testing.T, body string) {
		var cfg ServerSideEncryptionConfiguration
		if err := DecodeXML(strings.NewReader(body), 64<<10, &cfg); err != nil {
			return
		}
		algo, keyID, err := cfg.DefaultAlgorithm()
		var se *Error
		switch {
		case err != nil && !errors.As(err, &se):
			t.Fatalf("not an S3 error: %v", err)
		case err == nil && algo != SSEAlgorithmAES256 && algo != SSEAlgorithmKMS:
			t.Fatalf("set %q", algo)
		case err == nil && (algo == SSEAlgorithmKMS) != keyspace.ValidKMSKeyName(keyID):
			t.Fatalf("set %q with key %q", algo, keyID)
		}
	})
}

func TestDefaultAlgorithm(t *testing.T) {
	rule := func(algo, key, bucketKey string) string {
		return `<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>` + algo +
			`</SSEAlgorithm>` + key + `</ApplyServerSideEncryptionByDefault>` + bucketKey + `</Rule></ServerSideEncryptionConfiguration>`
	}
	for _, c := range []struct {
		body, algo, key, code string
	}{
		{rule("AES256", "", ""), SSEAlgorithmAES256, "", ""},
		{rule("aws:kms", "<KMSMasterKeyID>testkey-1</KMSMasterKeyID>", ""), SSEAlgorithmKMS, "testkey-1", ""},
		{rule("aws:kms", "<KMSMasterKeyID>arn:aws:kms:us-east-1:1:key/k2</KMSMasterKeyID>", ""), SSEAlgorithmKMS, "k2", ""},
		{rule("aws:kms", "", ""), "", "", CodeInvalidArgument},
		{rule("aws:kms", "<KMSMasterKeyID>a b</KMSMasterKeyID>", ""), "", "", "KMS.NotFoundException"},
		{rule("aws:kms", "<KMSMasterKeyID>k</KMSMasterKeyID>", "<BucketKeyEnabled>true</BucketKeyEnabled>"), "", "", CodeNotImplemented},
		{rule("AES256", "<KMSMasterKeyID>k</KMSMasterKeyID>", ""), "", "", CodeInvalidArgument},
		{rule("aws:kms:dsse", "<KMSMasterKeyID>k</KMSMasterKeyID>", ""), "", "", CodeNotImplemented},
		{rule("DES", "", ""), "", "", CodeMalformedXML},
	} {
		var cfg ServerSideEncryptionConfiguration
		if err := DecodeXML(strings.NewReader(c.body), 64<<10, &cfg); err != nil {
			t.Fatal(err)
		}
		algo, key, err := cfg.DefaultAlgorithm()
		var se *Error
		if c.code == "" && (err != nil || algo != c.algo || key != c.key) || c.code != "" && (!errors.As(err, &se) || se.Code != c.code) {
			t.Errorf("%s: got %q %q %v, want %q %q %s", c.body, algo, key, err, c.algo, c.key, c.code)
		}
	}
}
