package datanode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestClient(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(Handler(s))
	t.Cleanup(srv.Close)
	c := &Client{HTTP: srv.Client()}
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160,000 bytes: three blocks
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	info, err := c.Put(ctx, srv.URL, "c1", bytes.NewReader(data), int64(len(data)), want)
	if err != nil || info.Size != int64(len(data)) || info.SHA256 != want {
		t.Fatalf("put: %+v %v", info, err)
	}
	if _, err := c.Put(ctx, srv.URL, "c1", bytes.NewReader(data), int64(len(data)), want); err != nil {
		t.Fatalf("identical re-put: %v", err)
	}
	other := bytes.Repeat([]byte("x"), len(data))
	if _, err := c.Put(ctx, srv.URL, "c1", bytes.NewReader(other), int64(len(other)), ""); !errors.Is(err, ErrExists) {
		t.Fatalf("different content under the same id: %v, want ErrExists", err)
	}
	if _, err := c.Put(ctx, srv.URL, "c2", bytes.NewReader(other), int64(len(other)), want); !errors.Is(err, ErrChecksum) {
		t.Fatalf("wrong checksum: %v, want ErrChecksum", err)
	}
	if _, err := c.Put(ctx, srv.URL, "c0", bytes.NewReader(nil), 0, ""); err != nil {
		t.Fatalf("empty chunk: %v", err)
	}

	read := func(off, n int64) ([]byte, error) {
		body, err := c.Get(ctx, srv.URL, "c1", off, n)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		return io.ReadAll(body)
	}
	for _, r := range []struct{ off, n int64 }{{0, -1}, {0, 1}, {65535, 2}, {100, 70000}, {159999, 1}, {5, 0}, {70000, -1}} {
		got, err := read(r.off, r.n)
		end := int64(len(data))
		if r.n >= 0 {
			end = r.off + r.n
		}
		if err != nil || !bytes.Equal(got, data[r.off:end]) {
			t.Fatalf("get [%d,+%d): %d bytes, %v", r.off, r.n, len(got), err)
		}
	}
	if _, err := read(int64(len(data))+10, 5); !errors.Is(err, ErrBadRange) {
		t.Fatalf("range past the end: %v, want ErrBadRange", err)
	}
	if _, err := c.Get(ctx, srv.URL, "nope", 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing chunk: %v, want ErrNotFound", err)
	}

	// A flipped byte in the last block: reads of it fail, reads before it still work.
	path := filepath.Join(dir, "c1"[:2], "c1")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[150000] ^= 0xff
	if err := os.WriteFile(path, raw, 0o640); err != nil {
		t.Fatal(err)
	}
	if got, err := read(0, 1000); err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("read of an intact block: %v", err)
	}
	if got, err := read(0, -1); err == nil {
		t.Fatalf("read through a corrupt block returned %d bytes and no error", len(got))
	}

	if err := c.Delete(ctx, srv.URL, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, srv.URL, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

// A chunk found corrupt before the answer starts maps back to ErrCorrupt, so the caller can tell
// a damaged replica from a datanode that failed otherwise.
func TestClientCorrupt(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(Handler(s))
	t.Cleanup(srv.Close)
	c := &Client{HTTP: srv.Client()}
	data := bytes.Repeat([]byte("z"), 100000)
	if _, err := c.Put(context.Background(), srv.URL, "bad1", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	flipByte(t, s, "bad1", 10)
	rc, err := c.Get(context.Background(), srv.URL, "bad1", 0, -1)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("get of a corrupt chunk: %v, want ErrCorrupt", err)
	}
}
