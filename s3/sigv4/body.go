package sigv4

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/crc64nvme"
)

// Body wraps r.Body according to the payload mode so the caller reads the
// decoded object bytes:
//   - hex SHA-256: passthrough that hashes; at EOF returns
//     XAmzContentSHA256Mismatch instead of io.EOF on mismatch
//   - UNSIGNED-PAYLOAD: passthrough
//   - STREAMING-AWS4-HMAC-SHA256-PAYLOAD: aws-chunked decoder verifying each
//     chunk signature, chained from the seed signature
//   - STREAMING-UNSIGNED-PAYLOAD-TRAILER and
//     STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: aws-chunked with trailing
//     headers; the trailer signature is verified for the signed variant, and
//     x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256} trailers are
//     verified (BadDigest); other trailer names are accepted unverified.
//
// For aws-chunked bodies the decoded length must equal
// x-amz-decoded-content-length when that header is present. A truncated
// body gives IncompleteBody. Errors from the underlying body other than
// truncation are returned wrapped.
func (a *Auth) Body(r *http.Request) (io.ReadCloser, error) {
	if a == nil {
		return nil, newError(CodeInternalError, "sigv4: Body called on nil Auth")
	}
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	switch a.PayloadHash {
	case UnsignedPayload:
		return &hashReader{body: body}, nil
	case StreamingSignedPayload, StreamingSignedPayloadTrailer, StreamingUnsignedPayloadTrailer:
		return a.chunked(r, body)
	}
	want, err := hex.DecodeString(a.PayloadHash)
	if err != nil || len(want) != sha256.Size {
		return nil, newError(CodeInvalidArgument, "invalid x-amz-content-sha256")
	}
	return &hashReader{body: body, h: sha256.New(), want: want}, nil
}

func (a *Auth) chunked(r *http.Request, body io.ReadCloser) (io.ReadCloser, error) {
	c := &chunkedReader{
		src:     bufio.NewReaderSize(body, maxLineLen),
		body:    body,
		decoded: -1,
	}
	if s := r.Header.Get("X-Amz-Decoded-Content-Length"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, newError(CodeInvalidArgument, "invalid x-amz-decoded-content-length")
		}
		c.decoded = n
	}
	switch a.PayloadHash {
	case StreamingSignedPayload:
		c.signed = true
	case StreamingSignedPayloadTrailer:
		c.signed, c.signedTrailer, c.trailers = true, true, true
	case StreamingUnsignedPayloadTrailer:
		c.trailers = true
	}
	if c.signed {
		c.key, c.prevSig, c.scope, c.amzDate = a.key, a.seed, a.scope, a.amzDate
	}
	if c.trailers {
		for _, v := range r.Header.Values("X-Amz-Trailer") {
			for _, name := range strings.Split(v, ",") {
				name = strings.ToLower(strings.TrimSpace(name))
				if name == "" {
					continue
				}
				if len(c.declared) >= maxTrailers {
					return nil, newError(CodeInvalidArgument, "too many names in x-amz-trailer")
				}
				if c.find(name) >= 0 {
					return nil, newError(CodeInvalidArgument, "duplicate name in x-amz-trailer")
				}
				c.declared = append(c.declared, trailer{name: name, h: checksumHash(name)})
			}
		}
	}
	return c, nil
}

// checksumHash returns the hash for a checksum trailer name, or nil if it is
// not one this package verifies.
func checksumHash(name string) hash.Hash {
	switch name {
	case "x-amz-checksum-crc32":
		return crc32.NewIEEE()
	case "x-amz-checksum-crc32c":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli)) // MakeTable caches Castagnoli
	case "x-amz-checksum-crc64nvme":
		return crc64nvme.New()
	case "x-amz-checksum-sha1":
		return sha1.New()
	case "x-amz-checksum-sha256":
		return sha256.New()
	}
	return nil
}

// hashReader is the body for non-chunked payloads: it optionally checks the
// SHA-256 at EOF and turns truncation into IncompleteBody.
type hashReader struct {
	body io.ReadCloser
	h    hash.Hash // nil for UNSIGNED-PAYLOAD
	want []byte
	err  error
}

func (h *hashReader) Read(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	n, err := h.body.Read(p)
	if h.h != nil {
		h.h.Write(p[:n])
	}
	switch {
	case err == nil:
	case err == io.EOF:
		if h.h != nil && !hmac.Equal(h.h.Sum(nil), h.want) {
			err = newError(CodeXAmzContentSHA256Mismatch, "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		h.err = err
	default:
		err = bodyError(err)
		h.err = err
	}
	return n, err
}

func (h *hashReader) Close() error { return h.body.Close() }

// bodyError maps a read error from the underlying body: truncation is
// IncompleteBody, anything else (client gone, size limit) is passed on.
func bodyError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return wrapError(CodeIncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header.", err)
	}
	return err
}
