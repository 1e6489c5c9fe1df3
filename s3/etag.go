package s3

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// ETagFromMD5 is the ETag of a single-part object (or of one part): the hex
// MD5 of its bytes, in quotes.
func ETagFromMD5(sum []byte) string {
	return `"` + hex.EncodeToString(sum) + `"`
}

// MultipartETag is the ETag S3 gives an object completed from parts: the hex
// MD5 of the concatenated binary part MD5s, then "-" and the part count, in
// quotes. Clients (and `aws s3` sync) recognise multipart objects by it.
func MultipartETag(partMD5s [][]byte) string {
	h := md5.New()
	for _, p := range partMD5s {
		h.Write(p)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(partMD5s)) + `"`
}

// QuoteETag returns etag in double quotes, adding them only if missing.
func QuoteETag(etag string) string {
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag
	}
	return `"` + etag + `"`
}

// UnquoteETag strips one pair of surrounding double quotes, if present.
func UnquoteETag(etag string) string {
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag[1 : len(etag)-1]
	}
	return etag
}

// ETagsEqual compares two ETags ignoring quotes and hex case, as clients
// send part ETags in CompleteMultipartUpload either way.
func ETagsEqual(a, b string) bool {
	return strings.EqualFold(UnquoteETag(strings.TrimSpace(a)), UnquoteETag(strings.TrimSpace(b)))
}

// ContentMD5 decodes a Content-MD5 header: base64 of the 16-byte digest.
// Anything else is InvalidDigest.
func ContentMD5(header string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(header))
	if err != nil || len(b) != md5.Size {
		return nil, ErrorFor(CodeInvalidDigest, "")
	}
	return b, nil
}
