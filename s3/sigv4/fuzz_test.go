package sigv4

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024")
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/20130524/r/s3/aws4_request,SignedHeaders=host,Signature=FE5F80F77D5FA3BECA038A248FF027D0445342FE2855DDC963176630326F1024")
	f.Add("AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=")
	f.Add("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=")
	f.Fuzz(func(t *testing.T, h string) {
		p, err := parseAuthorization(h)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" || e.Status != http.StatusBadRequest {
				t.Fatalf("error %#v is not a 400 *Error", err)
			}
			return
		}
		if p.cred.accessKey == "" || len(p.cred.date) != 8 || p.cred.region == "" || p.cred.service == "" {
			t.Fatalf("incomplete credential %+v", p.cred)
		}
		if len(p.signature) != sha256.Size || len(p.signedHeaders) == 0 {
			t.Fatalf("bad parse %+v", p)
		}
		// Re-serialising the parsed value must give the same parse.
		again := algorithm + " Credential=" + p.cred.accessKey + "/" + p.cred.scope() +
			", SignedHeaders=" + strings.Join(p.signedHeaders, ";") + ", Signature=" + string(hexLower(p.signature))
		p2, err := parseAuthorization(again)
		if err != nil || p2.cred != p.cred || !bytes.Equal(p2.signature, p.signature) ||
			strings.Join(p2.signedHeaders, ";") != strings.Join(p.signedHeaders, ";") {
			t.Fatalf("reparse of %q: %+v, %v", again, p2, err)
		}
	})
}

func hexLower(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func FuzzPresignQuery(f *testing.F) {
	f.Add("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
	f.Add("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=-1&X-Amz-Expires=1&prefix=a+b%2Fc&empty&;=;&%zz=1")
	f.Add("response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD")
	f.Fuzz(func(t *testing.T, raw string) {
		params, _ := parseQuery(raw)
		canon := canonicalQuery(params, true)
		// The canonical form is a fixed point: decoding and re-encoding it
		// changes nothing.
		again, err := parseQuery(canon)
		if err != nil {
			t.Fatalf("canonical query %q does not parse: %v", canon, err)
		}
		if c2 := canonicalQuery(again, true); c2 != canon {
			t.Fatalf("canonical query not stable: %q -> %q", canon, c2)
		}
		p, err := parsePresign(params)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeAuthorizationQueryParametersError {
				t.Fatalf("unexpected error %#v", err)
			}
			return
		}
		if p.expires < 1 || p.expires > maxPresignExpires {
			t.Fatalf("expires %d accepted", p.expires)
		}
		if _, err := time.Parse(amzDateFormat, p.amzDate); err != nil || len(p.amzDate) != 16 {
			t.Fatalf("date %q accepted", p.amzDate)
		}
		if len(p.signature) != sha256.Size || p.cred.accessKey == "" {
			t.Fatalf("bad parse %+v", p)
		}
	})
}

// chunkedFixture is a verified Auth plus the request headers Body looks at.
type chunkedFixture struct {
	auth *Auth
	hdr  http.Header
}

// chunkedFixtures returns deterministic Auths (fixed time, fixed request)
// for each aws-chunked mode, and a valid encoded body for each, so that the
// seeds exercise the success paths too.
func chunkedFixtures(tb testing.TB, payload []byte) ([]chunkedFixture, [][]byte) {
	tb.Helper()
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	v := &Verifier{Lookup: testLookup, Region: testRegion, Now: func() time.Time { return at }}
	var fx []chunkedFixture
	var bodies [][]byte
	add := func(req *http.Request) {
		enc, err := io.ReadAll(req.Body)
		if err != nil {
			tb.Fatal(err)
		}
		req.Body = io.NopCloser(bytes.NewReader(enc))
		req.ContentLength = int64(len(enc))
		sr := toServer(tb, req)
		a, err := v.Verify(sr)
		if err != nil {
			tb.Fatal(err)
		}
		fx = append(fx, chunkedFixture{a, sr.Header})
		bodies = append(bodies, enc)
	}
	mk := func() *http.Request {
		return newRequest(tb, http.MethodPut, "http://"+testHost+"/bucket/fuzz", payload)
	}
	h := sha256Hasher{sha256.New()}
	add(signer.StreamingSignV4(mk(), testAK, testSK, "", testRegion, int64(len(payload)), at, h))

	req := mk()
	req.Trailer = http.Header{"X-Amz-Checksum-Crc32c": {sum(newCRC32C(), payload)}}
	add(signer.StreamingSignV4(req, testAK, testSK, "", testRegion, int64(len(payload)), at, h))

	// Unsigned trailer: the body needs no signature, only the mode.
	req = mk()
	req.Header.Set("X-Amz-Date", at.Format(amzDateFormat))
	req.Header.Set("X-Amz-Content-Sha256", StreamingUnsignedPayloadTrailer)
	req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
	req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(payload)))
	req.Trailer = http.Header{"X-Amz-Checksum-Crc32": {sum(crc32.NewIEEE(), payload)}}
	req = signer.StreamingUnsignedV4(req, "", int64(len(payload)), at)
	enc, _ := io.ReadAll(req.Body)
	fx = append(fx, chunkedFixture{&Auth{PayloadHash: StreamingUnsignedPayloadTrailer}, req.Header.Clone()})
	bodies = append(bodies, enc)

	// Unsigned, nothing declared: the most lenient configuration.
	req = signer.StreamingUnsignedV4(mk(), "", int64(len(payload)), at)
	enc, _ = io.ReadAll(req.Body)
	fx = append(fx, chunkedFixture{&Auth{PayloadHash: StreamingUnsignedPayloadTrailer}, http.Header{}})
	bodies = append(bodies, enc)
	return fx, bodies
}

// fuzzPayload is the payload of the FuzzChunkedBody fixtures; small so the
// fuzzer can mutate and minimise quickly.
var fuzzPayload = []byte("fuzz payload: hello, aws-chunked world")

// encodeSigned writes a signed aws-chunked stream with the given chunk
// sizes and the AWS documentation's CRLF framing (minio-go always uses
// 64 KiB chunks and bare-LF trailer lines), chaining from a's seed.
func encodeSigned(a *Auth, payload []byte, sizes []int, trailer string) []byte {
	sign := func(sts string) string {
		m := hmac.New(sha256.New, a.key)
		m.Write([]byte(sts))
		return hex.EncodeToString(m.Sum(nil))
	}
	prefix := a.amzDate + "\n" + a.scope + "\n"
	prev := a.seed
	var b bytes.Buffer
	for _, n := range append(sizes, 0) {
		chunk := payload[:n]
		payload = payload[n:]
		prev = sign("AWS4-HMAC-SHA256-PAYLOAD\n" + prefix + prev + "\n" + emptySHA256 + "\n" + hexSHA256(chunk))
		fmt.Fprintf(&b, "%x;chunk-signature=%s\r\n", n, prev)
		if n > 0 {
			b.Write(chunk)
			b.WriteString("\r\n")
		}
	}
	if trailer == "" {
		b.WriteString("\r\n")
		return b.Bytes()
	}
	tsig := sign("AWS4-HMAC-SHA256-TRAILER\n" + prefix + prev + "\n" + hexSHA256([]byte(trailer+"\n")))
	b.WriteString(trailer + "\r\nx-amz-trailer-signature:" + tsig + "\r\n\r\n")
	return b.Bytes()
}

// fuzzSeeds returns valid bodies (with the index of their fixture) for the
// FuzzChunkedBody fixtures.
func fuzzSeeds(tb testing.TB, fx []chunkedFixture, minioBodies [][]byte) (seeds [][]byte, modes []uint8) {
	for i, b := range minioBodies {
		seeds, modes = append(seeds, b), append(modes, uint8(i))
	}
	sizes := []int{10, 20, len(fuzzPayload) - 30}
	seeds = append(seeds,
		encodeSigned(fx[0].auth, fuzzPayload, sizes, ""),
		encodeSigned(fx[1].auth, fuzzPayload, sizes, "x-amz-checksum-crc32c:"+sum(newCRC32C(), fuzzPayload)),
		[]byte(fmt.Sprintf("a\r\n%s\r\n%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n",
			fuzzPayload[:10], len(fuzzPayload)-10, fuzzPayload[10:], sum(crc32.NewIEEE(), fuzzPayload))),
	)
	modes = append(modes, 0, 1, 2)
	return seeds, modes
}

func FuzzChunkedBody(f *testing.F) {
	fx, bodies := chunkedFixtures(f, fuzzPayload)
	seeds, modes := fuzzSeeds(f, fx, bodies)
	for i := range seeds {
		f.Add(seeds[i], modes[i])
	}
	f.Add([]byte("1\r\na\r\n0\r\n\r\n"), uint8(3))
	f.Add([]byte("0;chunk-signature="+strings.Repeat("0", 64)+"\r\n\r\n"), uint8(0))

	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		c := fx[int(mode)%len(fx)]
		r := httptest.NewRequest(http.MethodPut, "/bucket/fuzz", bytes.NewReader(data))
		r.Header = c.hdr.Clone()
		rc, err := c.auth.Body(r)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		if n > int64(len(data)) {
			t.Fatalf("decoded %d bytes from %d bytes of input", n, len(data))
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" {
				t.Fatalf("error %#v is not an *Error", err)
			}
		}
		if bc := cap(rc.(*chunkedReader).buf); bc > max(minChunkBuf, 2*len(data)) {
			t.Fatalf("buffer of %d bytes for %d bytes of input", bc, len(data))
		}
	})
}

// The fuzz seeds must reach the success path, or the fuzzer starts from
// nothing but errors; this also checks multi-chunk minio-go streams.
func TestChunkedFixturesDecode(t *testing.T) {
	check := func(name string, c chunkedFixture, body, want []byte) {
		t.Helper()
		r := httptest.NewRequest(http.MethodPut, "/bucket/fuzz", bytes.NewReader(body))
		r.Header = c.hdr.Clone()
		rc, err := c.auth.Body(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v, %d bytes", name, err, len(got))
		}
	}
	big := randBytes(2*64<<10 + 10)
	fx, bodies := chunkedFixtures(t, big)
	for i := range fx {
		check(fmt.Sprint("big ", i), fx[i], bodies[i], big)
	}
	fx, bodies = chunkedFixtures(t, fuzzPayload)
	seeds, modes := fuzzSeeds(t, fx, bodies)
	for i := range seeds {
		check(fmt.Sprint("seed ", i), fx[modes[i]], seeds[i], fuzzPayload)
	}
}
