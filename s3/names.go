package s3

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// MaxKeyLength is S3's limit on an object key, in UTF-8 bytes.
const MaxKeyLength = 1024

// MaxUserMetadataSize is S3's limit on user metadata: the UTF-8 bytes of all
// names (without the x-amz-meta- prefix) and values together.
const MaxUserMetadataSize = 2 << 10

// metaPrefix is the canonical form of the user-metadata header prefix.
const metaPrefix = "X-Amz-Meta-"

// ValidBucketName applies S3's naming rules for general-purpose buckets:
// 3–63 characters of lowercase letters, digits, '.' and '-'; starting and
// ending with a letter or digit; no "..", and no '-' next to '.' (each label
// must be a DNS label so virtual-host addressing works); not shaped like an
// IPv4 address; none of the prefixes and suffixes AWS reserves.
func ValidBucketName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return invalidBucketName()
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return invalidBucketName()
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return invalidBucketName()
	}
	if strings.Contains(name, "..") || strings.Contains(name, ".-") || strings.Contains(name, "-.") {
		return invalidBucketName()
	}
	if looksLikeIPv4(name) {
		return invalidBucketName()
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return invalidBucketName()
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return invalidBucketName()
		}
	}
	return nil
}

func invalidBucketName() error { return ErrorFor(CodeInvalidBucketName, "") }

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// looksLikeIPv4 reports four dot-separated runs of digits, which S3 refuses
// whether or not the numbers form a valid address.
func looksLikeIPv4(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// ValidObjectKey checks an object key: valid UTF-8 of 1..MaxKeyLength bytes.
// Too long is KeyTooLongError; empty or not UTF-8 is InvalidArgument.
func ValidObjectKey(key string) error {
	if len(key) > MaxKeyLength {
		return ErrorFor(CodeKeyTooLongError, "")
	}
	if key == "" {
		return ErrorFor(CodeInvalidArgument, "Object key must not be empty.")
	}
	if !utf8.ValidString(key) {
		return ErrorFor(CodeInvalidArgument, "Object key is not valid UTF-8.")
	}
	// NUL separates a key from its upload ids and version sort keys in etcd (meta); XML 1.0
	// cannot carry it in a listing either.
	if strings.IndexByte(key, 0) >= 0 {
		return ErrorFor(CodeInvalidArgument, "Object key must not contain the NUL character.")
	}
	return nil
}

// UserMetadata collects the x-amz-meta-* headers: names lowercased without
// the prefix; repeated headers joined with ",", as HTTP allows. More than
// MaxUserMetadataSize bytes in total is MetadataTooLarge. It returns nil when
// there is none.
func UserMetadata(h http.Header) (map[string]string, error) {
	var md map[string]string
	size := 0
	for k, vs := range h {
		if len(k) <= len(metaPrefix) || !strings.EqualFold(k[:len(metaPrefix)], metaPrefix) {
			continue // an empty name after the prefix is skipped, not stored
		}
		name := strings.ToLower(k[len(metaPrefix):])
		v := strings.Join(vs, ",")
		if md == nil {
			md = make(map[string]string)
		}
		if old, ok := md[name]; ok {
			// Only reachable with non-canonical keys in h; merge like repeats.
			size -= len(old)
			v = old + "," + v
		} else {
			size += len(name)
		}
		md[name] = v
		size += len(v)
		if size > MaxUserMetadataSize {
			return nil, ErrorFor(CodeMetadataTooLarge, "")
		}
	}
	return md, nil
}

// SetUserMetadata writes md back as x-amz-meta-* response headers, names in
// lower case as S3 sends them: SDKs take the name after the prefix as is, so
// a canonicalised X-Amz-Meta-Foo would reach the application as "Foo".
func SetUserMetadata(h http.Header, md map[string]string) {
	for k, v := range md {
		h[MetaHeaderPrefix+strings.ToLower(k)] = []string{v}
	}
}

// MetaHeaderPrefix is the user-metadata header prefix as S3 writes it in
// responses.
const MetaHeaderPrefix = "x-amz-meta-"
