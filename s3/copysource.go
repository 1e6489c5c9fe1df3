package s3

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/hanode/hanode/internal/httprange"
)

// ParseCopySource parses x-amz-copy-source: "/bucket/key" or "bucket/key",
// URL-encoded, optionally followed by "?versionId=...". The query is split off
// before decoding so an encoded '?' (%3F) stays in the key; '+' is a literal
// plus, as in a URL path. A missing bucket or key, bad escapes or an empty
// versionId are InvalidArgument; the key must pass ValidObjectKey.
func ParseCopySource(header string) (bucket, key, versionID string, err error) {
	path, query, hasQuery := strings.Cut(header, "?")
	if hasQuery {
		q, qerr := url.ParseQuery(query)
		if qerr != nil {
			return "", "", "", invalidCopySource()
		}
		if vs, ok := q["versionId"]; ok {
			if len(vs) != 1 || vs[0] == "" {
				return "", "", "", ErrorFor(CodeInvalidArgument, "Version id cannot be the empty string")
			}
			versionID = vs[0]
		}
	}
	decoded, uerr := url.PathUnescape(path)
	if uerr != nil {
		return "", "", "", invalidCopySource()
	}
	decoded = strings.TrimPrefix(decoded, "/")
	bucket, key, ok := strings.Cut(decoded, "/")
	if !ok || bucket == "" || key == "" {
		return "", "", "", invalidCopySource()
	}
	if err := ValidObjectKey(key); err != nil {
		return "", "", "", err
	}
	return bucket, key, versionID, nil
}

func invalidCopySource() error {
	return ErrorFor(CodeInvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
}

// ParseCopySourceRange parses x-amz-copy-source-range for UploadPartCopy.
// Unlike GET's Range, only "bytes=first-last" is allowed and nothing is
// clamped or ignored: a malformed value (including first > last, open or
// suffix ranges, several ranges) and a range outside the source are both
// InvalidArgument, with the messages AWS uses.
func ParseCopySourceRange(header string, size int64) (off, length int64, err error) {
	spec, ok := httprange.CutBytesUnit(header)
	if !ok {
		return 0, 0, invalidCopySourceRange()
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, invalidCopySourceRange()
	}
	start, ok1 := httprange.ParseDigits(first)
	end, ok2 := httprange.ParseDigits(last)
	if !ok1 || !ok2 || start > end {
		return 0, 0, invalidCopySourceRange()
	}
	if end >= size {
		// AWS answers a well-formed range past the source's end with InvalidRange (416).
		return 0, 0, ErrorFor(CodeInvalidRange, "Range specified is not valid for source object of size: "+strconv.FormatInt(max(size, 0), 10))
	}
	return start, end - start + 1, nil
}

func invalidCopySourceRange() error {
	return ErrorFor(CodeInvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
}
