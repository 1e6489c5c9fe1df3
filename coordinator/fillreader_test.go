package coordinator

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestFillReader: each Read gathers at least min bytes from a source that gives them a few at a
// time, and the stream's end and a failure part way come through with the bytes before them.
func TestFillReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16,000 bytes
	boom := errors.New("replica went away")
	for _, tc := range []struct {
		name    string
		src     io.Reader
		want    []byte
		wantErr error
	}{
		{"whole stream, one byte at a time", iotest.OneByteReader(bytes.NewReader(data)), data, nil},
		{"a failure after 5,000 bytes", io.MultiReader(iotest.HalfReader(bytes.NewReader(data[:5000])), iotest.ErrReader(boom)), data[:5000], boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fillReader{tc.src, 4096}
			var got []byte
			buf := make([]byte, 8192)
			for {
				n, err := f.Read(buf)
				got = append(got, buf[:n]...)
				if err == nil && n < 4096 {
					t.Fatalf("a Read returned %d bytes with no error, want at least 4096", n)
				}
				if err != nil {
					if err == io.EOF {
						err = nil
					}
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("error %v, want %v", err, tc.wantErr)
					}
					break
				}
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}
