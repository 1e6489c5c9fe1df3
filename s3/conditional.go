package s3

import (
	"net/http"
	"strings"
	"time"
)

// precondition outcomes, before mapping to a status.
const (
	condPass = iota
	condNotModified
	condFailed
)

// CheckPreconditions evaluates If-Match, If-Unmodified-Since, If-None-Match
// and If-Modified-Since for a GET or HEAD of an object with the given ETag
// and modification time, in RFC 7232 §6 order (which is also S3's):
//
//   - If-Match false → 412; when If-Match is present If-Unmodified-Since is
//     not evaluated (S3: If-Match true + If-Unmodified-Since false → 200);
//   - If-Unmodified-Since false → 412;
//   - If-None-Match matching → 304;
//   - only without If-None-Match: If-Modified-Since false → 304
//     (S3: If-None-Match false + If-Modified-Since true → 304).
//
// It returns 0 when the request proceeds. ETags compare with or without
// quotes and "*" matches any; dates that do not parse are ignored.
func CheckPreconditions(h http.Header, etag string, lastModified time.Time) (status int) {
	switch evalPreconditions(h, "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", etag, lastModified) {
	case condNotModified:
		return http.StatusNotModified
	case condFailed:
		return http.StatusPreconditionFailed
	}
	return 0
}

// CheckCopySourcePreconditions evaluates the x-amz-copy-source-if-* headers
// of CopyObject and UploadPartCopy against the source object, with the same
// precedence as CheckPreconditions. Every failure, including the cases a GET
// would answer with 304, is PreconditionFailed (412), as S3 documents.
func CheckCopySourcePreconditions(h http.Header, etag string, lastModified time.Time) error {
	if evalPreconditions(h,
		"X-Amz-Copy-Source-If-Match", "X-Amz-Copy-Source-If-None-Match",
		"X-Amz-Copy-Source-If-Modified-Since", "X-Amz-Copy-Source-If-Unmodified-Since",
		etag, lastModified) != condPass {
		return ErrorFor(CodePreconditionFailed, "")
	}
	return nil
}

func evalPreconditions(h http.Header, ifMatch, ifNoneMatch, ifModSince, ifUnmodSince, etag string, lastModified time.Time) int {
	// HTTP dates have one-second resolution; compare at that resolution or a
	// client echoing Last-Modified back would never match.
	lm := lastModified.Truncate(time.Second)
	if im := headerList(h, ifMatch); im != "" {
		if !etagListMatch(im, etag, false) {
			return condFailed
		}
	} else if t, ok := headerTime(h, ifUnmodSince); ok && lm.After(t) {
		return condFailed
	}
	if inm := headerList(h, ifNoneMatch); inm != "" {
		if etagListMatch(inm, etag, true) {
			return condNotModified
		}
		return condPass
	}
	if t, ok := headerTime(h, ifModSince); ok && !lm.After(t) {
		return condNotModified
	}
	return condPass
}

// headerList joins repeated header lines the way a comma list allows.
func headerList(h http.Header, name string) string {
	return strings.TrimSpace(strings.Join(h.Values(name), ","))
}

func headerTime(h http.Header, name string) (time.Time, bool) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(v)
	return t, err == nil
}

// etagListMatch reports whether the comma list (or "*") names etag. Weak
// comparison (If-None-Match) lets W/"x" match "x"; strong (If-Match) never
// matches a weak tag. S3 ETags never contain commas, so splitting is safe.
func etagListMatch(list, etag string, weak bool) bool {
	want := UnquoteETag(etag)
	for _, c := range strings.Split(list, ",") {
		c = strings.TrimSpace(c)
		if c == "*" {
			return true
		}
		if strings.HasPrefix(c, "W/") {
			if !weak {
				continue
			}
			c = c[2:]
		}
		if c != "" && UnquoteETag(c) == want {
			return true
		}
	}
	return false
}

// ETagList returns the entity tags of a conditional write's If-Match or If-None-Match header
// (repeated lines and comma lists joined), unquoted; "*" stays "*". It returns nil when the
// header is absent or empty.
func ETagList(h http.Header, name string) []string {
	var out []string
	for _, c := range strings.Split(headerList(h, name), ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, UnquoteETag(c))
		}
	}
	return out
}
