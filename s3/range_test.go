package s3

import (
	"errors"
	"testing"
)

func TestParseRange(t *testing.T) {
	const (
		ignored = "ignored"
		invalid = "invalid"
	)
	for _, tc := range []struct {
		header      string
		size        int64
		off, length int64
		want        string // "", ignored or invalid
	}{
		// Plain ranges.
		{"bytes=0-0", 10, 0, 1, ""},
		{"bytes=0-9", 10, 0, 10, ""},
		{"bytes=2-5", 10, 2, 4, ""},
		{"bytes=9-9", 10, 9, 1, ""},
		// End past the object is clamped (S3 and RFC 9110).
		{"bytes=0-100", 10, 0, 10, ""},
		{"bytes=5-99999999999999999999999", 10, 5, 5, ""},
		// Open ranges.
		{"bytes=0-", 10, 0, 10, ""},
		{"bytes=9-", 10, 9, 1, ""},
		// Suffix ranges.
		{"bytes=-1", 10, 9, 1, ""},
		{"bytes=-3", 10, 7, 3, ""},
		{"bytes=-10", 10, 0, 10, ""},
		{"bytes=-11", 10, 0, 10, ""},
		{"bytes=-99999999999999999999999", 10, 0, 10, ""},
		// Unsatisfiable: start at or past the end, -0, any range on an empty object.
		{"bytes=10-", 10, 0, 0, invalid},
		{"bytes=10-20", 10, 0, 0, invalid},
		{"bytes=99999999999999999999999-", 10, 0, 0, invalid},
		{"bytes=-0", 10, 0, 0, invalid},
		{"bytes=0-", 0, 0, 0, invalid},
		{"bytes=0-0", 0, 0, 0, invalid},
		{"bytes=-1", 0, 0, 0, invalid},
		{"bytes=-0", 0, 0, 0, invalid},
		// Ignored by S3: the whole object is served with 200.
		{"", 10, 0, 0, ignored},
		{"bytes=5-1", 10, 0, 0, ignored},
		{"bytes=5-1", 0, 0, 0, ignored},
		{"bytes=0-1,3-4", 10, 0, 0, ignored},
		{"bytes=0-1,", 10, 0, 0, ignored},
		{"bytes=", 10, 0, 0, ignored},
		{"bytes=-", 10, 0, 0, ignored},
		{"bytes=--1", 10, 0, 0, ignored},
		{"bytes=1", 10, 0, 0, ignored},
		{"bytes=a-b", 10, 0, 0, ignored},
		{"bytes=+1-2", 10, 0, 0, ignored},
		{"bytes=1-+2", 10, 0, 0, ignored},
		{"bytes=0x1-2", 10, 0, 0, ignored},
		{"bytes=1-2-3", 10, 0, 0, ignored},
		{"bytes 0-1", 10, 0, 0, ignored},
		{"items=0-1", 10, 0, 0, ignored},
		{"0-1", 10, 0, 0, ignored},
		{"abc", 0, 0, 0, ignored},
		// Tolerated spacing and unit case (RFC 9110: unit is case-insensitive, OWS allowed).
		{"Bytes=1-2", 10, 1, 2, ""},
		{" bytes= 1 - 2 ", 10, 1, 2, ""},
	} {
		off, length, err := ParseRange(tc.header, tc.size)
		switch tc.want {
		case ignored:
			if !errors.Is(err, ErrRangeIgnored) {
				t.Errorf("ParseRange(%q, %d) = %v, want ErrRangeIgnored", tc.header, tc.size, err)
			}
		case invalid:
			checkCode(t, err, CodeInvalidRange, "ParseRange(%q, %d)", tc.header, tc.size)
		default:
			if err != nil || off != tc.off || length != tc.length {
				t.Errorf("ParseRange(%q, %d) = %d, %d, %v; want %d, %d", tc.header, tc.size, off, length, err, tc.off, tc.length)
			}
		}
	}
}

func TestContentRange(t *testing.T) {
	if got := ContentRange(0, 10, 10); got != "bytes 0-9/10" {
		t.Errorf("ContentRange = %q", got)
	}
	if got := ContentRange(7, 3, 10); got != "bytes 7-9/10" {
		t.Errorf("ContentRange = %q", got)
	}
	if got := ContentRangeUnsatisfied(10); got != "bytes */10" {
		t.Errorf("ContentRangeUnsatisfied = %q", got)
	}
}
