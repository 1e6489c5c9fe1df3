// Package httprange parses the single byte range of an HTTP Range header (RFC 9110 §14.1.2)
// against a resource of known size. The S3 API (package s3) and the datanodes' chunk API use it,
// each mapping its two errors to its own answers.
package httprange

import (
	"errors"
	"strings"
)

var (
	// ErrSyntax: no single well-formed byte range (several ranges, another unit, end before
	// start, not digits). HTTP says to ignore such a header and serve the whole resource.
	ErrSyntax = errors.New("httprange: not a single well-formed byte range")
	// ErrUnsatisfiable: a well-formed range that selects no byte (416).
	ErrUnsatisfiable = errors.New("httprange: range not satisfiable")
)

// Parse returns the offset and length that header selects of size bytes. Forms: bytes=a-b (b
// past the end is clamped), bytes=a- and bytes=-n (the last n bytes, all of them if n > size;
// n = 0 selects nothing). Any range of an empty resource is unsatisfiable. The unit is
// case-insensitive and spaces around the numbers are allowed.
func Parse(header string, size int64) (off, length int64, err error) {
	spec, ok := CutBytesUnit(header)
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, ErrSyntax
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, ErrSyntax
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix range: the last n bytes.
		n, ok := ParseDigits(last)
		if !ok {
			return 0, 0, ErrSyntax
		}
		if n == 0 || size <= 0 {
			return 0, 0, ErrUnsatisfiable
		}
		n = min(n, size)
		return size - n, n, nil
	}
	start, ok := ParseDigits(first)
	if !ok {
		return 0, 0, ErrSyntax
	}
	end := int64(-1) // open-ended
	if last != "" {
		if end, ok = ParseDigits(last); !ok || end < start {
			return 0, 0, ErrSyntax
		}
	}
	if start >= size {
		return 0, 0, ErrUnsatisfiable
	}
	if end < 0 || end >= size {
		end = size - 1
	}
	return start, end - start + 1, nil
}

// CutBytesUnit strips the "bytes=" unit (case-insensitive, RFC 9110 §14.1) and surrounding
// spaces; ok is false for another unit.
func CutBytesUnit(h string) (spec string, ok bool) {
	const unit = "bytes="
	h = strings.TrimSpace(h)
	if len(h) < len(unit) || !strings.EqualFold(h[:len(unit)], unit) {
		return "", false
	}
	return h[len(unit):], true
}

// ParseDigits parses a non-empty run of ASCII digits. Values too large for int64 saturate to
// MaxInt64: they are well-formed, just past any resource, so an end clamps and a start is
// unsatisfiable rather than a syntax error.
func ParseDigits(s string) (int64, bool) {
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
