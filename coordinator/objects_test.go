package coordinator

import (
	"net/http"
	"testing"
)

func TestObjectHeadersContentEncoding(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"gzip", "gzip"},
		{"deflate, gzip", "deflate, gzip"}, // kept as sent
		{"deflate,gzip", "deflate,gzip"},
		{"gzip, aws-chunked", "gzip"},
		{"aws-chunked,deflate, gzip", "deflate, gzip"},
		{"aws-chunked", ""},
		{"AWS-Chunked", ""},
	} {
		h := http.Header{"Content-Encoding": {tc.in}}
		out, err := objectHeaders(h)
		if err != nil || out["content-encoding"] != tc.want {
			t.Errorf("Content-Encoding %q stored as %q (%v), want %q", tc.in, out["content-encoding"], err, tc.want)
		}
	}
}
