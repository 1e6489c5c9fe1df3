package s3

import (
	"errors"
	"strconv"
	"strings"
)

// ErrRangeIgnored is returned by ParseRange when there is no Range header or
// S3 would ignore it (bad syntax, several ranges, end before start): the
// caller serves the whole object with 200, as S3 does.
var ErrRangeIgnored = errors.New("s3: range header ignored")

// ParseRange interprets a GET Range header for an object of size bytes with
// S3's rules. It returns the offset and length to serve (206), an *Error
// InvalidRange (416) when the range is well-formed but unsatisfiable, or
// ErrRangeIgnored. Forms: bytes=a-b (b past the end is clamped), bytes=a-
// and bytes=-n (the last n bytes, all of them if n > size; n = 0 is
// unsatisfiable). Any range on an empty object is unsatisfiable.
func ParseRange(header string, size int64) (off, length int64, err error) {
	spec, ok := cutBytesUnit(header)
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, ErrRangeIgnored
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, ErrRangeIgnored
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix range: the last n bytes.
		n, ok := parseDigits(last)
		if !ok {
			return 0, 0, ErrRangeIgnored
		}
		if n == 0 || size <= 0 {
			return 0, 0, invalidRange()
		}
		n = min(n, size)
		return size - n, n, nil
	}
	start, ok := parseDigits(first)
	if !ok {
		return 0, 0, ErrRangeIgnored
	}
	end := int64(-1) // open-ended
	if last != "" {
		if end, ok = parseDigits(last); !ok {
			return 0, 0, ErrRangeIgnored
		}
		if end < start {
			return 0, 0, ErrRangeIgnored
		}
	}
	if start >= size {
		return 0, 0, invalidRange()
	}
	if end < 0 || end >= size {
		end = size - 1
	}
	return start, end - start + 1, nil
}

// ContentRange is the Content-Range value of a 206 response.
func ContentRange(off, length, size int64) string {
	return "bytes " + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+length-1, 10) + "/" + strconv.FormatInt(size, 10)
}

// ContentRangeUnsatisfied is the Content-Range value of a 416 response.
func ContentRangeUnsatisfied(size int64) string {
	return "bytes */" + strconv.FormatInt(size, 10)
}

func invalidRange() error { return ErrorFor(CodeInvalidRange, "") }

// cutBytesUnit strips the "bytes=" unit; range units are case-insensitive
// (RFC 9110 §14.1).
func cutBytesUnit(h string) (string, bool) {
	const unit = "bytes="
	h = strings.TrimSpace(h)
	if len(h) < len(unit) || !strings.EqualFold(h[:len(unit)], unit) {
		return "", false
	}
	return h[len(unit):], true
}

// parseDigits parses a non-empty run of ASCII digits. Values too large for
// int64 saturate to MaxInt64: they are well-formed, just past any object, so
// an end clamps and a start is unsatisfiable rather than ignored.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			n = 1<<63 - 1
			continue // keep checking the syntax of the rest
		}
		n = n*10 + d
	}
	return n, true
}
