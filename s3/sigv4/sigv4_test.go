package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/minio/minio-go/v7/pkg/signer"
)

const (
	testAK     = "AKIDEXAMPLE"
	testSK     = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	testRegion = "us-east-1"
	testHost   = "127.0.0.1:9000"
)

func testLookup(_ context.Context, ak string) (string, error) {
	if ak == testAK {
		return testSK, nil
	}
	return "", fmt.Errorf("lookup %q: %w", ak, ErrUnknownAccessKey)
}

func newVerifier() *Verifier { return &Verifier{Lookup: testLookup, Region: testRegion} }

// sha256Hasher adapts a hash.Hash to minio-go's md5simd.Hasher.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

func randBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// sum returns the base64 checksum of data, as sent in x-amz-checksum-*.
func sum(h hash.Hash, data []byte) string {
	h.Write(data)
	return b64(h.Sum(nil))
}

func newCRC32C() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }

// objectURL builds a path-style URL the way minio-go does (EncodePath).
func objectURL(t testing.TB, object, rawQuery string) string {
	t.Helper()
	u := "http://" + testHost + "/bucket/" + s3utils.EncodePath(object)
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	return u
}

func newRequest(t testing.TB, method, rawURL string, body []byte) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, r)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// toServer serialises a client request and parses it back, so the request
// looks exactly as a net/http server handler would see it.
func toServer(t testing.TB, req *http.Request) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatal(err)
	}
	sr, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

func errCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "non-sigv4 error: " + err.Error()
	}
	return ""
}

type payloadMode int

const (
	modeSHA256 payloadMode = iota
	modeUnsigned
	modeStreaming
	modeStreamingTrailer
	modeUnsignedTrailer
)

func (m payloadMode) String() string {
	return [...]string{"sha256", "unsigned", "streaming", "streaming-trailer", "unsigned-trailer"}[m]
}

// signPut signs a PUT of data with minio-go's signer in the given mode.
func signPut(t testing.TB, m payloadMode, ak, sk, rawURL string, data []byte) *http.Request {
	t.Helper()
	req := newRequest(t, http.MethodPut, rawURL, data)
	req.Header.Set("X-Amz-Meta-Note", "  two   spaces\tand tab ")
	req.Header.Set("Content-Type", "application/octet-stream")
	now := time.Now().UTC()
	switch m {
	case modeSHA256:
		sum := sha256.Sum256(data)
		req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		return signer.SignV4(*req, ak, sk, "", testRegion)
	case modeUnsigned:
		req.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
		return signer.SignV4(*req, ak, sk, "", testRegion)
	case modeStreaming:
		return signer.StreamingSignV4(req, ak, sk, "", testRegion, int64(len(data)), now, sha256Hasher{sha256.New()})
	case modeStreamingTrailer:
		req.Trailer = http.Header{"X-Amz-Checksum-Crc32c": {sum(newCRC32C(), data)}}
		return signer.StreamingSignV4(req, ak, sk, "", testRegion, int64(len(data)), now, sha256Hasher{sha256.New()})
	case modeUnsignedTrailer:
		req.Header.Set("X-Amz-Content-Sha256", StreamingUnsignedPayloadTrailer)
		return signer.SignV4Trailer(*req, ak, sk, "", testRegion, http.Header{"X-Amz-Checksum-Crc32": {sum(crc32.NewIEEE(), data)}})
	}
	t.Fatalf("bad mode %d", m)
	return nil
}

// verifyAndRead runs Verify and reads the whole decoded body.
func verifyAndRead(v *Verifier, r *http.Request) (*Auth, []byte, error) {
	a, err := v.Verify(r)
	if err != nil {
		return nil, nil, err
	}
	body, err := a.Body(r)
	if err != nil {
		return a, nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	return a, data, err
}

var objectNames = []string{
	"plain.txt",
	"dir/with space/ünïcode 日本語.bin",
	"a+b=c&d;e,f",
	"literal%2Fslash%20and%",
	"odd~*'()!$:@[]{}^`|\"<>#.txt",
}

func TestRoundTripModes(t *testing.T) {
	sizes := []int{0, 1, 64 << 10, 64<<10 + 1, 1<<20 + 3}
	v := newVerifier()
	for m := modeSHA256; m <= modeUnsignedTrailer; m++ {
		for _, size := range sizes {
			for i, name := range objectNames {
				if size > 1<<16+1 && i > 1 {
					continue // big bodies once or twice is plenty
				}
				t.Run(fmt.Sprintf("%v/%d/%d", m, size, i), func(t *testing.T) {
					data := randBytes(size)
					query := "x-id=PutObject&prefix=" + url.QueryEscape("a b+c/日本~*") + "&empty="
					req := signPut(t, m, testAK, testSK, objectURL(t, name, query), data)
					a, got, err := verifyAndRead(v, toServer(t, req))
					if err != nil {
						t.Fatalf("error %v", err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("decoded body differs: got %d bytes, want %d", len(got), len(data))
					}
					if a.AccessKey != testAK || a.Presigned {
						t.Fatalf("bad auth %+v", a)
					}
				})
			}
		}
	}
}
