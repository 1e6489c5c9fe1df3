package httprange

import (
	"errors"
	"math"
	"strconv"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		h       string
		size    int64
		off, n  int64
		wantErr error
	}{
		{"bytes=0-9", 100, 0, 10, nil},
		{"bytes=10-", 100, 10, 90, nil},
		{"bytes=-10", 100, 90, 10, nil},
		{"bytes=-1000", 100, 0, 100, nil},
		{"bytes=90-1000", 100, 90, 10, nil},
		{"Bytes= 99-99 ", 100, 99, 1, nil},
		{"bytes=0-99999999999999999999", 100, 0, 100, nil},
		{"bytes=100-", 100, 0, 0, ErrUnsatisfiable},
		{"bytes=-0", 100, 0, 0, ErrUnsatisfiable},
		{"bytes=0-", 0, 0, 0, ErrUnsatisfiable},
		{"bytes=-5", 0, 0, 0, ErrUnsatisfiable},
		{"bytes=9223372036854775807-", 100, 0, 0, ErrUnsatisfiable},
		{"bytes=5-4", 100, 0, 0, ErrSyntax},
		{"bytes=0-1,3-4", 100, 0, 0, ErrSyntax},
		{"bytes=", 100, 0, 0, ErrSyntax},
		{"bytes=-", 100, 0, 0, ErrSyntax},
		{"bytes=a-b", 100, 0, 0, ErrSyntax},
		{"bytes=+1-2", 100, 0, 0, ErrSyntax},
		{"bytes=1", 100, 0, 0, ErrSyntax},
		{"bytes 0-1", 100, 0, 0, ErrSyntax},
		{"lines=0-1", 100, 0, 0, ErrSyntax},
		{"bytes=--1", 100, 0, 0, ErrSyntax},
		{"", 100, 0, 0, ErrSyntax},
	} {
		off, n, err := Parse(tc.h, tc.size)
		if !errors.Is(err, tc.wantErr) || (err == nil && (off != tc.off || n != tc.n)) {
			t.Errorf("Parse(%q, %d) = %d, %d, %v; want %d, %d, %v", tc.h, tc.size, off, n, err, tc.off, tc.n, tc.wantErr)
		}
	}
}

// The seed corpus is in testdata/fuzz/FuzzParse; the f.Add calls cover the basics too.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=10-", "bytes=-10", "bytes=0-1,2-3", "bytes=5-4",
		"bytes=99999999999999999999-", "bytes=-99999999999999999999", "BYTES = 1-2", "bytes=", "=", ""} {
		for _, size := range []int64{0, 1, 100, math.MaxInt64} {
			f.Add(s, size)
		}
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		off, n, err := Parse(h, size)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrUnsatisfiable) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if off < 0 || n < 1 || off > size-n {
			t.Fatalf("Parse(%q, %d) = %d, %d: out of bounds", h, size, off, n)
		}
		// A well-formed single range round-trips.
		off2, n2, err := Parse("bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+n-1, 10), size)
		if err != nil || off2 != off || n2 != n {
			t.Fatalf("round trip of %d,%d: %d,%d,%v", off, n, off2, n2, err)
		}
	})
}
