package s3

import (
	"net/http"
	"testing"
	"time"
)

// TestPreconditionMatrix runs every combination of the four headers (each
// absent, true or false) and checks RFC 7232 §6 precedence, which S3 follows:
// it is the matrix S3-compatibility suites run against AWS.
func TestPreconditionMatrix(t *testing.T) {
	const etag = `"9b2cf535f27731c974343645a3985328"`
	lm := time.Date(2024, 5, 1, 12, 0, 0, 500e6, time.UTC)
	before := lm.Add(-72 * time.Hour).Format(http.TimeFormat) // modified since: IMS true, IUS false
	after := lm.Add(time.Second).Format(http.TimeFormat)      // not modified: IMS false, IUS true
	etags := []struct{ name, v string }{{"bad", `"nope"`}, {"good", etag}, {"nil", ""}}
	dates := []struct{ name, v string }{{"before", before}, {"after", after}, {"nil", ""}}
	// want[ifMatch][ifNoneMatch] lists the outcome for (IMS, IUS) in the order
	// (before,before) (before,after) (before,nil) (after,before) … (nil,nil):
	// '.' proceed, 'M' 304 Not Modified, 'F' 412 Precondition Failed.
	want := map[string]map[string]string{
		"bad":  {"bad": "FFFFFFFFF", "good": "FFFFFFFFF", "nil": "FFFFFFFFF"},
		"good": {"bad": ".........", "good": "MMMMMMMMM", "nil": "...MMM..."},
		"nil":  {"bad": "F..F..F..", "good": "FMMFMMFMM", "nil": "F..FMMF.."},
	}
	for _, im := range etags {
		for _, inm := range etags {
			for i, ims := range dates {
				for j, ius := range dates {
					exp := want[im.name][inm.name][i*3+j]
					h := http.Header{}
					c := http.Header{}
					set := func(name, v string) {
						if v != "" {
							h.Set(name, v)
							c.Set("X-Amz-Copy-Source-"+name, v)
						}
					}
					set("If-Match", im.v)
					set("If-None-Match", inm.v)
					set("If-Modified-Since", ims.v)
					set("If-Unmodified-Since", ius.v)
					status := map[byte]int{'.': 0, 'M': 304, 'F': 412}[exp]
					if got := CheckPreconditions(h, etag, lm); got != status {
						t.Errorf("If-Match=%s If-None-Match=%s IMS=%s IUS=%s: status %d, want %d",
							im.name, inm.name, ims.name, ius.name, got, status)
					}
					// Copy source: every failure, 304 included, is 412.
					copyCode := ""
					if exp != '.' {
						copyCode = CodePreconditionFailed
					}
					checkCode(t, CheckCopySourcePreconditions(c, etag, lm), copyCode,
						"copy If-Match=%s If-None-Match=%s IMS=%s IUS=%s", im.name, inm.name, ims.name, ius.name)
				}
			}
		}
	}
}

func TestPreconditionDetails(t *testing.T) {
	const etag = `"abc"`
	lm := time.Date(2024, 5, 1, 12, 0, 0, 999e6, time.UTC)
	same := lm.Format(http.TimeFormat) // Last-Modified echoed back, sub-second part lost
	for _, tc := range []struct {
		name string
		h    http.Header
		want int
	}{
		{"no headers", http.Header{}, 0},
		{"If-Match unquoted", http.Header{"If-Match": {"abc"}}, 0},
		{"If-Match quoted", http.Header{"If-Match": {`"abc"`}}, 0},
		{"If-Match star", http.Header{"If-Match": {"*"}}, 0},
		{"If-Match list", http.Header{"If-Match": {`"x", "abc"`}}, 0},
		{"If-Match repeated lines", http.Header{"If-Match": {`"x"`, `"abc"`}}, 0},
		{"If-Match list no match", http.Header{"If-Match": {`"x", "y"`}}, 412},
		{"If-Match weak never matches", http.Header{"If-Match": {`W/"abc"`}}, 412},
		{"If-Match empty quotes", http.Header{"If-Match": {`""`}}, 412},
		{"If-None-Match unquoted", http.Header{"If-None-Match": {"abc"}}, 304},
		{"If-None-Match star", http.Header{"If-None-Match": {"*"}}, 304},
		{"If-None-Match weak", http.Header{"If-None-Match": {`W/"abc"`}}, 304},
		{"If-None-Match list", http.Header{"If-None-Match": {`"x","abc"`}}, 304},
		{"If-None-Match other", http.Header{"If-None-Match": {`"x"`}}, 0},
		{"If-Modified-Since same second", http.Header{"If-Modified-Since": {same}}, 304},
		{"If-Unmodified-Since same second", http.Header{"If-Unmodified-Since": {same}}, 0},
		{"If-Modified-Since RFC 850", http.Header{"If-Modified-Since": {lm.Format(time.RFC850)}}, 304},
		{"If-Modified-Since ANSI C", http.Header{"If-Modified-Since": {lm.Format(time.ANSIC)}}, 304},
		{"If-Modified-Since invalid is ignored", http.Header{"If-Modified-Since": {"not a date"}}, 0},
		{"If-Unmodified-Since invalid is ignored", http.Header{"If-Unmodified-Since": {"2024-05-01"}}, 0},
		{"If-None-Match absent value", http.Header{"If-None-Match": {""}, "If-Modified-Since": {same}}, 304},
	} {
		if got := CheckPreconditions(tc.h, etag, lm); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	// The stored ETag may come without quotes too.
	if got := CheckPreconditions(http.Header{"If-Match": {`"abc"`}}, "abc", lm); got != 0 {
		t.Errorf("unquoted stored etag: %d", got)
	}
}
