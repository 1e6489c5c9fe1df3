package s3

import (
	"errors"
	"strconv"

	"github.com/hanode/hanode/internal/httprange"
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
	off, length, err = httprange.Parse(header, size)
	switch {
	case errors.Is(err, httprange.ErrSyntax):
		return 0, 0, ErrRangeIgnored
	case errors.Is(err, httprange.ErrUnsatisfiable):
		return 0, 0, invalidRange()
	}
	return off, length, err
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
