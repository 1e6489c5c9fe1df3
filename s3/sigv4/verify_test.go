package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
)

func TestVerifyErrors(t *testing.T) {
	data := []byte("hello, world")
	rawURL := objectURL(t, "dir/ü b+c.txt", "tagging=&prefix=a%20b")
	cases := []struct {
		name   string
		ak, sk string
		mutate func(*http.Request) // client side, after signing
		setup  func(*Verifier)
		code   string
	}{
		{name: "ok", code: ""},
		{name: "wrong secret", sk: "wrong-secret", code: CodeSignatureDoesNotMatch},
		{name: "unknown key", ak: "NOSUCHKEY", code: CodeInvalidAccessKeyID},
		{name: "tampered signed header", mutate: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, code: CodeSignatureDoesNotMatch},
		{name: "tampered x-amz header", mutate: func(r *http.Request) { r.Header.Set("X-Amz-Meta-Note", "other") }, code: CodeSignatureDoesNotMatch},
		{name: "tampered query value", mutate: func(r *http.Request) { r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "a%20b", "a%20c", 1) }, code: CodeSignatureDoesNotMatch},
		{name: "added query param", mutate: func(r *http.Request) { r.URL.RawQuery += "&versionId=1" }, code: CodeSignatureDoesNotMatch},
		{name: "tampered path", mutate: func(r *http.Request) { r.URL, _ = url.Parse(objectURL(t, "dir/ü b+d.txt", r.URL.RawQuery)) }, code: CodeSignatureDoesNotMatch},
		{name: "path re-encoded", mutate: func(r *http.Request) { r.URL.RawPath = strings.Replace(r.URL.RawPath, "%2B", "+", 1) }, code: CodeSignatureDoesNotMatch},
		{name: "tampered method", mutate: func(r *http.Request) { r.Method = http.MethodPost }, code: CodeSignatureDoesNotMatch},
		{name: "tampered host", mutate: func(r *http.Request) { r.Host = "evil.example:9000" }, code: CodeSignatureDoesNotMatch},
		{name: "tampered signature", mutate: func(r *http.Request) {
			r.Header.Set("Authorization", flipLast(r.Header.Get("Authorization")))
		}, code: CodeSignatureDoesNotMatch},
		{name: "unsigned x-amz header", mutate: func(r *http.Request) { r.Header.Set("X-Amz-Acl", "public-read") }, code: CodeAccessDenied},
		{name: "skew future", setup: func(v *Verifier) { v.Now = func() time.Time { return time.Now().Add(-20 * time.Minute) } }, code: CodeRequestTimeTooSkewed},
		{name: "skew past", setup: func(v *Verifier) { v.Now = func() time.Time { return time.Now().Add(20 * time.Minute) } }, code: CodeRequestTimeTooSkewed},
		{name: "skew within custom", setup: func(v *Verifier) {
			v.MaxSkew = time.Hour
			v.Now = func() time.Time { return time.Now().Add(50 * time.Minute) }
		}, code: ""},
		{name: "other region", setup: func(v *Verifier) { v.Region = "eu-west-1" }, code: CodeAuthorizationHeaderMalformed},
		{name: "any region", setup: func(v *Verifier) { v.Region = "" }, code: ""},
		{name: "anonymous", mutate: func(r *http.Request) { r.Header.Del("Authorization") }, code: CodeAccessDenied},
		{name: "v2 auth", mutate: func(r *http.Request) { r.Header.Set("Authorization", "AWS "+testAK+":c2lnbmF0dXJl") }, code: CodeInvalidArgument},
		{name: "malformed auth", mutate: func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAK) }, code: CodeAuthorizationHeaderMalformed},
		{name: "two auth headers", mutate: func(r *http.Request) { r.Header.Add("Authorization", r.Header.Get("Authorization")) }, code: CodeAuthorizationHeaderMalformed},
		{name: "missing content sha256", mutate: func(r *http.Request) { r.Header.Del("X-Amz-Content-Sha256") }, code: CodeMissingSecurityHeader},
		{name: "bad x-amz-date", mutate: func(r *http.Request) { r.Header.Set("X-Amz-Date", "yesterday") }, code: CodeAccessDenied},
		{name: "header and query auth", mutate: func(r *http.Request) { r.URL.RawQuery += "&X-Amz-Algorithm=AWS4-HMAC-SHA256" }, code: CodeInvalidArgument},
		{name: "lookup failure", setup: func(v *Verifier) {
			v.Lookup = func(_ context.Context, _ string) (string, error) { return "", errors.New("etcd down") }
		}, code: CodeInternalError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ak, sk := testAK, testSK
			if c.ak != "" {
				ak = c.ak
			}
			if c.sk != "" {
				sk = c.sk
			}
			req := signPut(t, modeSHA256, ak, sk, rawURL, data)
			if c.mutate != nil {
				c.mutate(req)
			}
			v := newVerifier()
			if c.setup != nil {
				c.setup(v)
			}
			_, got, err := verifyAndRead(v, toServer(t, req))
			if code := errCode(err); code != c.code {
				t.Fatalf("got %q (%v), want %q", code, err, c.code)
			}
			if c.code == "" && !bytes.Equal(got, data) {
				t.Fatalf("body %q", got)
			}
			var e *Error
			if errors.As(err, &e) && (e.Status != 400 && e.Status != 403 && e.Status != 500) {
				t.Fatalf("status %d", e.Status)
			}
		})
	}
}

func TestAnonymousAndUnknownKeyAreDetectable(t *testing.T) {
	v := newVerifier()
	_, err := v.Verify(toServer(t, newRequest(t, http.MethodGet, objectURL(t, "x", ""), nil)))
	if !errors.Is(err, ErrAnonymous) || errCode(err) != CodeAccessDenied {
		t.Fatalf("anonymous: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusForbidden {
		t.Fatalf("anonymous status: %v", err)
	}
	req := signPut(t, modeUnsigned, "GHOST", testSK, objectURL(t, "x", ""), nil)
	_, err = v.Verify(toServer(t, req))
	if !errors.Is(err, ErrUnknownAccessKey) || errCode(err) != CodeInvalidAccessKeyID {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestBadPayloadHashValue(t *testing.T) {
	req := newRequest(t, http.MethodPut, objectURL(t, "x", ""), []byte("x"))
	req.Header.Set("X-Amz-Content-Sha256", "not-a-hash")
	req = signer.SignV4(*req, testAK, testSK, "", testRegion)
	if _, err := newVerifier().Verify(toServer(t, req)); errCode(err) != CodeInvalidArgument {
		t.Fatalf("got %v", err)
	}
}

func TestContentSHA256Mismatch(t *testing.T) {
	data := randBytes(100 << 10)
	req := newRequest(t, http.MethodPut, objectURL(t, "x", ""), data)
	other := sha256.Sum256([]byte("something else"))
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(other[:]))
	req = signer.SignV4(*req, testAK, testSK, "", testRegion)
	_, got, err := verifyAndRead(newVerifier(), toServer(t, req))
	if errCode(err) != CodeXAmzContentSHA256Mismatch {
		t.Fatalf("got %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("data before the error should be passed through: %d bytes", len(got))
	}
}

func TestDateHeaderFallback(t *testing.T) {
	// No x-amz-date: the Date header is used, converted to ISO 8601 in the
	// string to sign. Signed by hand because minio-go always sets x-amz-date.
	now := time.Now().UTC().Truncate(time.Second)
	req := newRequest(t, http.MethodGet, objectURL(t, "x", "list-type=2"), nil)
	sr := toServer(t, req)
	sr.Header.Set("Date", now.Format(http.TimeFormat))
	sr.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	date := now.Format("20060102")
	canon := "GET\n/bucket/x\nlist-type=2\ndate:" + now.Format(http.TimeFormat) + "\nhost:" + testHost +
		"\nx-amz-content-sha256:" + emptySHA256 + "\n\ndate;host;x-amz-content-sha256\n" + emptySHA256
	sts := "AWS4-HMAC-SHA256\n" + now.Format("20060102T150405Z") + "\n" + date + "/us-east-1/s3/aws4_request\n" + hexSHA256([]byte(canon))
	sig := refSign(testSK, date, "us-east-1", sts)
	sr.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAK+"/"+date+"/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256, Signature="+sig)
	if _, err := newVerifier().Verify(sr); err != nil {
		t.Fatal(err)
	}
}

func TestPresigned(t *testing.T) {
	names := append(objectNames, "")
	for i, name := range names {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			q := url.Values{
				"response-content-disposition": {`attachment; filename="a b+c ü.txt"`},
				"response-content-type":        {"text/plain;charset=utf-8"},
				"versionId":                    {"null"},
			}
			req := newRequest(t, http.MethodGet, objectURL(t, name, q.Encode()), nil)
			req = signer.PreSignV4(*req, testAK, testSK, "", testRegion, 3600)
			a, got, err := verifyAndRead(newVerifier(), toServer(t, req))
			if err != nil {
				t.Fatal(err)
			}
			if !a.Presigned || a.PayloadHash != UnsignedPayload || a.AccessKey != testAK || len(got) != 0 {
				t.Fatalf("auth %+v body %q", a, got)
			}
		})
	}

	t.Run("put with body and signed header", func(t *testing.T) {
		data := randBytes(70000)
		sign := func() *http.Request {
			req := newRequest(t, http.MethodPut, objectURL(t, "up load", ""), data)
			req.Header.Set("X-Amz-Meta-Owner", "alice")
			return signer.PreSignV4(*req, testAK, testSK, "", testRegion, 60)
		}
		_, got, err := verifyAndRead(newVerifier(), toServer(t, sign()))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("err %v, %d bytes", err, len(got))
		}
		req := sign()
		req.Header.Set("X-Amz-Meta-Owner", "mallory")
		if _, _, err := verifyAndRead(newVerifier(), toServer(t, req)); errCode(err) != CodeSignatureDoesNotMatch {
			t.Fatalf("tampered header: %v", err)
		}
	})

	later := func(d time.Duration) func(*Verifier) {
		return func(v *Verifier) { v.Now = func() time.Time { return time.Now().Add(d) } }
	}
	cases := []struct {
		name    string
		sk      string
		ak      string
		expires int64
		mutate  func(*url.URL)
		setup   func(*Verifier)
		code    string
	}{
		{name: "valid", code: ""},
		{name: "expired", setup: later(61 * time.Minute), code: CodeAccessDenied},
		{name: "not yet valid", setup: later(-20 * time.Minute), code: CodeAccessDenied},
		{name: "wrong secret", sk: "nope", code: CodeSignatureDoesNotMatch},
		{name: "unknown key", ak: "NOPE", code: CodeInvalidAccessKeyID},
		{name: "tampered query", mutate: func(u *url.URL) { u.RawQuery = strings.Replace(u.RawQuery, "text%2Fplain", "text%2Fhtml", 1) }, code: CodeSignatureDoesNotMatch},
		{name: "longer expiry", mutate: func(u *url.URL) {
			u.RawQuery = strings.Replace(u.RawQuery, "X-Amz-Expires=3600", "X-Amz-Expires=7200", 1)
		}, code: CodeSignatureDoesNotMatch},
		{name: "tampered path", mutate: func(u *url.URL) { u.Path += "x"; u.RawPath = "" }, code: CodeSignatureDoesNotMatch},
		{name: "tampered signature", mutate: func(u *url.URL) { u.RawQuery = flipLast(u.RawQuery) }, code: CodeSignatureDoesNotMatch},
		{name: "duplicate signature", mutate: func(u *url.URL) { u.RawQuery += "&X-Amz-Signature=00" }, code: CodeAuthorizationQueryParametersError},
		{name: "missing date", mutate: func(u *url.URL) { u.RawQuery = dropParam(u.RawQuery, "X-Amz-Date") }, code: CodeAuthorizationQueryParametersError},
		{name: "bad algorithm", mutate: func(u *url.URL) {
			u.RawQuery = strings.Replace(u.RawQuery, "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256", 1)
		}, code: CodeAuthorizationQueryParametersError},
		{name: "expires too long", expires: 604801, code: CodeAccessDenied},
		{name: "expires negative", expires: -7, code: CodeAccessDenied},
		{name: "expires zero", mutate: func(u *url.URL) {
			u.RawQuery = strings.Replace(u.RawQuery, "X-Amz-Expires=3600", "X-Amz-Expires=0", 1)
		}, code: CodeAccessDenied},
		{name: "expires max", expires: 604800, code: ""},
		{name: "other region", setup: func(v *Verifier) { v.Region = "eu-central-1" }, code: CodeAuthorizationQueryParametersError},
		{name: "plus as space", mutate: func(u *url.URL) {
			u.RawQuery = strings.Replace(u.RawQuery, "text%2Fplain%3Bcharset", "text%2Fplain%3B+charset", 1)
		}, code: CodeSignatureDoesNotMatch},
		{name: "unsigned x-amz header", code: CodeAccessDenied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ak, sk, exp := testAK, testSK, int64(3600)
			if c.ak != "" {
				ak = c.ak
			}
			if c.sk != "" {
				sk = c.sk
			}
			if c.expires != 0 {
				exp = c.expires
			}
			q := url.Values{"response-content-type": {"text/plain;charset=utf-8"}}
			req := newRequest(t, http.MethodGet, objectURL(t, "some/key", q.Encode()), nil)
			req = signer.PreSignV4(*req, ak, sk, "", testRegion, exp)
			if c.mutate != nil {
				c.mutate(req.URL)
			}
			if c.name == "unsigned x-amz header" {
				req.Header.Set("X-Amz-Server-Side-Encryption", "AES256")
			}
			v := newVerifier()
			if c.setup != nil {
				c.setup(v)
			}
			_, err := v.Verify(toServer(t, req))
			if code := errCode(err); code != c.code {
				t.Fatalf("got %q (%v), want %q", code, err, c.code)
			}
			if c.name == "expired" && !strings.Contains(err.Error(), "Request has expired") {
				t.Fatalf("message: %v", err)
			}
		})
	}
}

func dropParam(raw, name string) string {
	var keep []string
	for _, p := range strings.Split(raw, "&") {
		if !strings.HasPrefix(p, name+"=") {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "&")
}

// streamBody returns a signed streaming request with its encoded body
// replaced by f(encoded).
func streamBody(t *testing.T, m payloadMode, data []byte, f func([]byte) []byte) *http.Request {
	t.Helper()
	req := signPut(t, m, testAK, testSK, objectURL(t, "stream", ""), data)
	enc, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	enc = f(bytes.Clone(enc))
	req.Body = io.NopCloser(bytes.NewReader(enc))
	req.ContentLength = int64(len(enc))
	return req
}

func TestStreamingTampering(t *testing.T) {
	data := randBytes(3*64<<10 + 17)
	firstData := func(enc []byte) int { return bytes.Index(enc, []byte("\r\n")) + 2 }
	cases := []struct {
		name string
		mode payloadMode
		f    func([]byte) []byte
		code string
	}{
		{"untouched", modeStreaming, func(b []byte) []byte { return b }, ""},
		{"untouched trailer", modeStreamingTrailer, func(b []byte) []byte { return b }, ""},
		{"untouched unsigned trailer", modeUnsignedTrailer, func(b []byte) []byte { return b }, ""},
		{"flipped data byte", modeStreaming, func(b []byte) []byte { b[firstData(b)+100] ^= 1; return b }, CodeSignatureDoesNotMatch},
		{"flipped chunk signature", modeStreaming, func(b []byte) []byte {
			i := bytes.Index(b, []byte("chunk-signature=")) + 20
			b[i] = "10"[b[i]&1] // another hex digit
			return b
		}, CodeSignatureDoesNotMatch},
		{"non-hex chunk signature", modeStreaming, func(b []byte) []byte {
			i := bytes.Index(b, []byte("chunk-signature=")) + 20
			b[i] = 'x'
			return b
		}, CodeIncompleteBody},
		{"dropped second chunk", modeStreaming, func(b []byte) []byte {
			n := 64 << 10
			first := firstData(b) + n + 2
			second := first + bytes.Index(b[first:], []byte("\r\n")) + 2 + n + 2
			return append(b[:first], b[second:]...)
		}, CodeSignatureDoesNotMatch},
		{"truncated", modeStreaming, func(b []byte) []byte { return b[:len(b)-100] }, CodeIncompleteBody},
		{"truncated in final chunk", modeStreaming, func(b []byte) []byte { return b[:len(b)-10] }, CodeIncompleteBody},
		{"no final chunk", modeStreaming, func(b []byte) []byte { return b[:bytes.LastIndex(b, []byte("0;chunk-signature"))] }, CodeIncompleteBody},
		{"trailing garbage", modeStreaming, func(b []byte) []byte { return append(b, "junk\r\n"...) }, CodeIncompleteBody},
		{"signed trailer checksum changed", modeStreamingTrailer, func(b []byte) []byte {
			i := bytes.Index(b, []byte("x-amz-checksum-crc32c:")) + 22
			b[i] ^= 1
			return b
		}, CodeSignatureDoesNotMatch},
		{"signed trailer signature dropped", modeStreamingTrailer, func(b []byte) []byte {
			return b[:bytes.Index(b, []byte("x-amz-trailer-signature:"))]
		}, CodeSignatureDoesNotMatch},
		{"unsigned trailer checksum changed", modeUnsignedTrailer, func(b []byte) []byte {
			i := bytes.Index(b, []byte("x-amz-checksum-crc32:")) + 21
			b[i] = 'A' + (b[i]-'A'+1)%26
			return b
		}, CodeBadDigest},
		{"unsigned trailer data changed", modeUnsignedTrailer, func(b []byte) []byte { b[firstData(b)+1] ^= 1; return b }, CodeBadDigest},
		{"unsigned trailer missing", modeUnsignedTrailer, func(b []byte) []byte {
			return b[:bytes.Index(b, []byte("x-amz-checksum-crc32:"))]
		}, CodeIncompleteBody},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := streamBody(t, c.mode, data, c.f)
			_, got, err := verifyAndRead(newVerifier(), toServer(t, req))
			if code := errCode(err); code != c.code {
				t.Fatalf("got %q (%v), want %q", code, err, c.code)
			}
			if c.code == "" && !bytes.Equal(got, data) {
				t.Fatal("body differs")
			}
			if c.mode == modeStreaming && c.code == CodeSignatureDoesNotMatch && len(got) > 0 && !bytes.Equal(got, data[:len(got)]) {
				t.Fatal("unverified data was released")
			}
		})
	}
}

// A body cut short on the wire (Content-Length not reached) is reported as
// IncompleteBody in every mode.
func TestShortBodyOnWire(t *testing.T) {
	data := randBytes(200 << 10)
	for m := modeSHA256; m <= modeUnsignedTrailer; m++ {
		t.Run(m.String(), func(t *testing.T) {
			req := signPut(t, m, testAK, testSK, objectURL(t, "short", ""), data)
			var buf bytes.Buffer
			if err := req.Write(&buf); err != nil {
				t.Fatal(err)
			}
			wire := buf.Bytes()[:buf.Len()-1000]
			sr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire)))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := verifyAndRead(newVerifier(), sr); errCode(err) != CodeIncompleteBody {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// flipLast changes the last hex digit of s (a signature at the end), always to another digit:
// overwriting it with a constant would leave it unchanged whenever it already was that constant.
func flipLast(s string) string {
	c := byte('0')
	if s[len(s)-1] == '0' {
		c = '1'
	}
	return s[:len(s)-1] + string(c)
}
