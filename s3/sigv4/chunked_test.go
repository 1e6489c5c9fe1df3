package sigv4

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/minio/crc64nvme"
)

// decodeUnsigned decodes an unsigned aws-chunked body (no signatures
// involved, so streams can be written by hand).
func decodeUnsigned(t *testing.T, body string, hdr map[string]string) ([]byte, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPut, "/b/o", strings.NewReader(body))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	a := &Auth{PayloadHash: StreamingUnsignedPayloadTrailer}
	rc, err := a.Body(r)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestUnsignedTrailerDecoder(t *testing.T) {
	data := []byte("hello world, this is the payload")
	crc := sum(crc32.NewIEEE(), data)
	crcc := sum(newCRC32C(), data)
	sha1v := sum(sha1.New(), data)
	sha256v := sum(sha256.New(), data)
	nvme := sum(crc64nvme.New(), data)
	chunks := fmt.Sprintf("10\r\n%s\r\n%x\r\n%s\r\n", data[:16], len(data)-16, data[16:])
	decl := func(names string) map[string]string {
		return map[string]string{"X-Amz-Trailer": names, "X-Amz-Decoded-Content-Length": fmt.Sprint(len(data))}
	}
	cases := []struct {
		name string
		body string
		hdr  map[string]string
		code string
	}{
		{"aws sdk framing", chunks + "0\r\nx-amz-checksum-crc32:" + crc + "\r\n\r\n", decl("x-amz-checksum-crc32"), ""},
		{"minio-go framing", chunks + "0\r\nx-amz-checksum-crc32:" + crc + "\n\r\n\r\n", decl("x-amz-checksum-crc32"), ""},
		{"no final blank line", chunks + "0\r\nx-amz-checksum-crc32:" + crc + "\r\n", decl("x-amz-checksum-crc32"), ""},
		{"all checksums", chunks + "0\r\nx-amz-checksum-crc32:" + crc + "\r\nx-amz-checksum-crc32c:" + crcc +
			"\r\nx-amz-checksum-sha1:" + sha1v + "\r\nx-amz-checksum-sha256:" + sha256v + "\r\nx-amz-checksum-crc64nvme:" + nvme + "\r\n\r\n",
			decl("x-amz-checksum-crc32, x-amz-checksum-crc32c,x-amz-checksum-sha1,x-amz-checksum-sha256,x-amz-checksum-crc64nvme"), ""},
		{"crc64nvme mismatch", chunks + "0\r\nx-amz-checksum-crc64nvme:AAAAAAAAAAA=\r\n\r\n", decl("x-amz-checksum-crc64nvme"), CodeBadDigest},
		{"sha256 mismatch", chunks + "0\r\nx-amz-checksum-sha256:" + sum(sha256.New(), nil) + "\r\n\r\n", decl("x-amz-checksum-sha256"), CodeBadDigest},
		{"unknown checksum accepted", chunks + "0\r\nx-amz-checksum-md5:whatever\r\n\r\n", decl("x-amz-checksum-md5"), ""},
		{"bad base64", chunks + "0\r\nx-amz-checksum-crc32:!!!!\r\n\r\n", decl("x-amz-checksum-crc32"), CodeInvalidArgument},
		{"undeclared trailer", chunks + "0\r\nx-amz-checksum-crc32:" + crc + "\r\n\r\n", decl(""), CodeInvalidArgument},
		{"declared trailer missing", chunks + "0\r\n\r\n", decl("x-amz-checksum-crc32"), CodeIncompleteBody},
		{"duplicate trailer", chunks + "0\r\nx-amz-checksum-crc32:" + crc + "\r\nx-amz-checksum-crc32:" + crc + "\r\n\r\n", decl("x-amz-checksum-crc32"), CodeIncompleteBody},
		{"trailer signature on unsigned stream", chunks + "0\r\nx-amz-trailer-signature:" + strings.Repeat("0", 64) + "\r\n\r\n", decl(""), CodeIncompleteBody},
		{"decoded length short", chunks + "0\r\n\r\n", map[string]string{"X-Amz-Decoded-Content-Length": fmt.Sprint(len(data) + 1)}, CodeIncompleteBody},
		{"decoded length long", chunks + "0\r\n\r\n", map[string]string{"X-Amz-Decoded-Content-Length": fmt.Sprint(len(data) - 1)}, CodeIncompleteBody},
		{"bad decoded length", chunks + "0\r\n\r\n", map[string]string{"X-Amz-Decoded-Content-Length": "-1"}, CodeInvalidArgument},
		{"no decoded length", chunks + "0\r\n\r\n", nil, ""},
		{"empty body", "", nil, CodeIncompleteBody},
		{"bad hex", "1g\r\n", nil, CodeIncompleteBody},
		{"signed size", "+1\r\na\r\n0\r\n\r\n", nil, CodeIncompleteBody},
		{"huge size", "fffffffffffffff\r\n", nil, CodeIncompleteBody},
		{"size too many digits", "0000000000000001\r\na\r\n0\r\n\r\n", nil, CodeIncompleteBody},
		{"missing crlf after data", "1\r\nab\r\n0\r\n\r\n", nil, CodeIncompleteBody},
		{"long line", strings.Repeat("0", maxLineLen+10) + "\r\n", nil, CodeIncompleteBody},
		{"long trailer line", chunks + "0\r\nx-amz-checksum-crc32:" + strings.Repeat("A", maxLineLen) + "\r\n\r\n", decl("x-amz-checksum-crc32"), CodeIncompleteBody},
		{"endless blank lines", chunks + "0\r\n" + strings.Repeat("\r\n", maxTrailerLines+1), nil, CodeIncompleteBody},
		{"bare LF lines", "1\na\r\n0\n\n", nil, ""},
		{"extensions ignored", "1;foo=bar\r\na\r\n0;x\r\n\r\n", nil, ""},
		{"truncated line", "1\r\na\r\n0", nil, CodeIncompleteBody},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeUnsigned(t, c.body, c.hdr)
			if code := errCode(err); code != c.code {
				t.Fatalf("got %q (%v), want %q", code, err, c.code)
			}
			if c.code == "" && !bytes.Equal(got, data) && !strings.HasPrefix(c.name, "bare") && !strings.HasPrefix(c.name, "ext") {
				t.Fatalf("decoded %q", got)
			}
		})
	}
}

// The decoder must stream unsigned chunks without buffering them and must
// hold signed chunks only up to their (bounded) size.
func TestDecoderMemoryBounds(t *testing.T) {
	// A signed stream claiming a chunk just under the limit but sending
	// little must not allocate the claimed size.
	a := &Auth{PayloadHash: StreamingSignedPayload, key: make([]byte, 32), seed: strings.Repeat("0", 64)}
	body := fmt.Sprintf("%x;chunk-signature=%s\r\nshort", maxSignedChunk, strings.Repeat("0", 64))
	r := httptest.NewRequest(http.MethodPut, "/b/o", strings.NewReader(body))
	rc, _ := a.Body(r)
	if _, err := io.ReadAll(rc); errCode(err) != CodeIncompleteBody {
		t.Fatalf("got %v", err)
	}
	if c := cap(rc.(*chunkedReader).buf); c > minChunkBuf {
		t.Fatalf("buffer grew to %d for 5 bytes of data", c)
	}
	body = fmt.Sprintf("%x;chunk-signature=%s\r\n", maxSignedChunk+1, strings.Repeat("0", 64))
	r = httptest.NewRequest(http.MethodPut, "/b/o", strings.NewReader(body))
	rc, _ = a.Body(r)
	if _, err := io.ReadAll(rc); errCode(err) != CodeIncompleteBody {
		t.Fatalf("oversized chunk: got %v", err)
	}

	// An unsigned 8 MiB chunk is read through a small buffer.
	big := strings.Repeat("x", 8<<20)
	r = httptest.NewRequest(http.MethodPut, "/b/o", strings.NewReader(fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big)))
	rc, _ = (&Auth{PayloadHash: StreamingUnsignedPayloadTrailer}).Body(r)
	n, err := io.CopyBuffer(io.Discard, rc, make([]byte, 32<<10))
	if err != nil || n != int64(len(big)) {
		t.Fatal(n, err)
	}
	if c := cap(rc.(*chunkedReader).buf); c != 0 {
		t.Fatalf("unsigned decoder buffered %d bytes", c)
	}
}
