package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
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
	cases := []struct {
		h    http.Header
		want string
		code string
	}{
		{http.Header{}, "", ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"AES256"}}, "AES256", ""},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}}, "", CodeNotImplemented},
		{http.Header{"X-Amz-Server-Side-Encryption": {"aes256"}}, "", CodeInvalidArgument},
		{http.Header{"X-Amz-Server-Side-Encryption": {"AES256"}, "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled": {"false"}}, "AES256", ""},
		{http.Header{"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": {"k"}}, "", CodeNotImplemented},
	}
	for _, c := range cases {
		got, err := ParseSSE(c.h)
		if c.code == "" && (err != nil || got != c.want) || c.code != "" && !errors.Is(err, ErrorFor(c.code, "")) {
			t.Errorf("%v: got %q %v, want %q %s", c.h, got, err, c.want, c.code)
		}
	}
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

// FuzzBucketEncryption: a PutBucketEncryption body is refused with an S3 error or sets AES256.
func FuzzBucketEncryption(f *testing.F) {
	f.Add(`<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>`)
	f.Add(`<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>`)
	f.Add(`<ServerSideEncryptionConfiguration/>`)
	f.Fuzz(func(t *testing.T, body string) {
		var cfg ServerSideEncryptionConfiguration
		if err := DecodeXML(strings.NewReader(body), 64<<10, &cfg); err != nil {
			return
		}
		algo, err := cfg.DefaultAlgorithm()
		var se *Error
		switch {
		case err != nil && !errors.As(err, &se):
			t.Fatalf("not an S3 error: %v", err)
		case err == nil && algo != SSEAlgorithmAES256:
			t.Fatalf("set %q", algo)
		}
	})
}
