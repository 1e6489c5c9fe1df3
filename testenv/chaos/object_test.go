package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// A GET is corrupt when its bytes are not the version it claims, however they are wrong; a
// stream cut by the transport is unknown unless what arrived was already wrong.
func TestVerifyBody(t *testing.T) {
	const key, v = "k", "c1.7"
	body := Body(key, v)
	etag := ETag(key, v)
	other := Body(key, "c1.8")
	flipped := bytes.Clone(body)
	flipped[len(flipped)/2] ^= 1
	cut := errors.New("connection reset")
	tests := []struct {
		name    string
		version string
		etag    string
		r       io.Reader
		want    Result
	}{
		{"whole", v, etag, bytes.NewReader(body), ResultFound},
		{"no version header", "", etag, bytes.NewReader(body), ResultCorrupt},
		{"another version's bytes", v, etag, bytes.NewReader(other), ResultCorrupt},
		{"a flipped bit", v, etag, bytes.NewReader(flipped), ResultCorrupt},
		{"short body, clean end", v, etag, bytes.NewReader(body[:len(body)-1]), ResultCorrupt},
		{"long body", v, etag, io.MultiReader(bytes.NewReader(body), bytes.NewReader([]byte("x"))), ResultCorrupt},
		{"wrong ETag", v, ETag(key, "c1.8"), bytes.NewReader(body), ResultCorrupt},
		{"cut stream, right bytes so far", v, etag, io.MultiReader(bytes.NewReader(body[:len(body)/2]), iotestErr(cut)), ResultUnknown},
		{"cut stream, wrong bytes before", v, etag, io.MultiReader(bytes.NewReader(flipped[:len(flipped)/2+1]), iotestErr(cut)), ResultCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := verifyBody(key, tc.version, tc.etag, tc.r)
			if got.Result != tc.want {
				t.Fatalf("got %s (%s), want %s", got.Result, got.Detail, tc.want)
			}
			if got.Result == ResultFound && got.Version != v {
				t.Fatalf("found version %q", got.Version)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func iotestErr(err error) io.Reader { return errReader{err} }

// Bodies are deterministic, distinct per version and key, and of the sizes the runs need.
func TestBody(t *testing.T) {
	if !bytes.Equal(Body("k", "c0.1"), Body("k", "c0.1")) {
		t.Fatal("Body is not deterministic")
	}
	if bytes.Equal(Body("k", "c0.1"), Body("k", "c0.2")) || bytes.Equal(Body("k", "c0.1"), Body("j", "c0.1")) {
		t.Fatal("two versions have the same bytes")
	}
	var small, mid, big int
	for i := range 2000 {
		n := bodySize("k", fmt.Sprintf("c0.%d", i))
		switch {
		case n > 8<<20:
			big++
		case n >= 1<<20:
			mid++
		default:
			small++
		}
	}
	if small == 0 || mid == 0 || big == 0 {
		t.Fatalf("sizes: %d small, %d of 1-3 MiB, %d over 8 MiB", small, mid, big)
	}
}
