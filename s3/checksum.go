package s3

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"hash/crc32"
	"net/http"
	"strconv"
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

// ChecksumFields are the checksum elements of S3's XML answers (CompleteMultipartUpload, ListParts'
// parts): the one of the algorithm set, the others omitted.
type ChecksumFields struct {
	ChecksumCRC32     string `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1      string `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256    string `xml:"ChecksumSHA256,omitempty"`
}

// Field points at the element of algo (lower case); nil for an unknown algorithm.
func (f *ChecksumFields) Field(algo string) *string {
	switch algo {
	case "crc32":
		return &f.ChecksumCRC32
	case "crc32c":
		return &f.ChecksumCRC32C
	case "crc64nvme":
		return &f.ChecksumCRC64NVME
	case "sha1":
		return &f.ChecksumSHA1
	case "sha256":
		return &f.ChecksumSHA256
	}
	return nil
}

// UploadChecksumAlgorithm reads CreateMultipartUpload's x-amz-checksum-algorithm (returned in
// lower case, "" for none) and x-amz-checksum-type: fullObject when the object's checksum is to
// be the CRC of the whole object (FULL_OBJECT: CRC algorithms only, CRC64NVME's one type), else
// it is the composite checksum of the parts (COMPOSITE: the default of the others).
func UploadChecksumAlgorithm(h http.Header) (algo string, fullObject bool, err error) {
	algo = strings.ToLower(strings.TrimSpace(h.Get("X-Amz-Checksum-Algorithm")))
	typ := strings.ToUpper(strings.TrimSpace(h.Get("X-Amz-Checksum-Type")))
	switch {
	case algo == "" && typ == "":
		return "", false, nil
	case algo == "":
		return "", false, ErrorFor(CodeInvalidRequest, "x-amz-checksum-type requires x-amz-checksum-algorithm")
	case NewChecksum(algo) == nil:
		return "", false, ErrorFor(CodeInvalidRequest, "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
	case typ == "":
		return algo, algo == "crc64nvme", nil
	case typ == "FULL_OBJECT" && FullObjectAlgorithm(algo), typ == "COMPOSITE" && algo != "crc64nvme":
		return algo, typ == "FULL_OBJECT", nil
	case typ == "FULL_OBJECT" || typ == "COMPOSITE":
		return "", false, ErrorFor(CodeInvalidRequest, "The "+typ+" checksum type cannot be used with the "+algo+" checksum algorithm.")
	}
	return "", false, ErrorFor(CodeInvalidRequest, "Value for x-amz-checksum-type header is invalid.")
}

// ChecksumType is the checksum type S3 names for a stored checksum value: COMPOSITE for a
// multipart object's checksum of its parts' checksums (the value ends in "-" and the number of
// parts), FULL_OBJECT for any other.
func ChecksumType(value string) string {
	if strings.Contains(value, "-") {
		return "COMPOSITE"
	}
	return "FULL_OBJECT"
}

// CompositeChecksum is the checksum S3 gives a multipart object whose parts were summed with
// algo: the algorithm's digest of the parts' digests, one after the other, in base64, then "-"
// and the number of parts.
func CompositeChecksum(algo string, parts []string) (string, error) {
	h := NewChecksum(algo)
	if h == nil {
		return "", fmt.Errorf("composite checksum: unknown algorithm %q", algo)
	}
	for i, p := range parts {
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			return "", fmt.Errorf("composite checksum: part %d's checksum %q: %w", i+1, p, err)
		}
		h.Write(b)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(parts)), nil
}
