package s3

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"net/http"
	"strings"

	"github.com/minio/crc64nvme"
)

// ChecksumAlgorithms are the additional checksums S3 accepts in x-amz-checksum-<algorithm>.
var ChecksumAlgorithms = []string{"crc32", "crc32c", "crc64nvme", "sha1", "sha256"}

// NewChecksum returns the hash of a checksum algorithm (lower case), nil for an unknown one.
func NewChecksum(algo string) hash.Hash {
	switch algo {
	case "crc32":
		return crc32.NewIEEE()
	case "crc32c":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "crc64nvme":
		return crc64nvme.New()
	case "sha1":
		return sha1.New()
	case "sha256":
		return sha256.New()
	}
	return nil
}

// Checksum is an additional checksum a request declares in a header: the algorithm and the
// base64 value, as S3 returns it in x-amz-checksum-<algorithm>.
type Checksum struct {
	Algorithm string
	Value     string
}

// Header is the response header that carries c.
func (c Checksum) Header() string {
	return "X-Amz-Checksum-" + strings.ToUpper(c.Algorithm[:1]) + c.Algorithm[1:]
}

// Matches reports whether sum (the digest of what arrived) is c's value.
func (c Checksum) Matches(sum []byte) bool { return base64.StdEncoding.EncodeToString(sum) == c.Value }

// RequestChecksum returns the x-amz-checksum-<algorithm> header of a request with a body, zero
// when it has none (a checksum sent as an aws-chunked trailer is verified by the body reader).
// Two such headers are InvalidRequest; a value that is not the base64 of a digest of the
// algorithm's size can match nothing: BadDigest, as S3 answers.
func RequestChecksum(h http.Header) (Checksum, error) {
	var c Checksum
	for _, algo := range ChecksumAlgorithms {
		v := strings.TrimSpace(h.Get("X-Amz-Checksum-" + algo))
		if v == "" {
			continue
		}
		if c.Algorithm != "" {
			return Checksum{}, ErrorFor(CodeInvalidRequest, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
		}
		b, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil || len(b) != NewChecksum(algo).Size() {
			return Checksum{}, ErrorFor(CodeBadDigest, "The x-amz-checksum-"+algo+" you specified did not match the calculated checksum.")
		}
		c = Checksum{Algorithm: algo, Value: v}
	}
	return c, nil
}
