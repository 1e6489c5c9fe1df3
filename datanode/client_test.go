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
	"time"

	"github.com/hanode/hanode/internal/faults"
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

// A hung datanode (its process stopped: connections accepted, nothing answered) fails every call
// with ErrDeadline within its deadline instead of blocking the caller.
func TestClientDeadlines(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fz := faults.NewFreezer(Handler(s))
	srv := httptest.NewServer(fz)
	t.Cleanup(srv.Close)
	t.Cleanup(fz.Thaw) // before the server closes: handlers waiting on the freeze return
	c := &Client{HTTP: srv.Client(), HeaderTimeout: 200 * time.Millisecond, TransferBase: 200 * time.Millisecond,
		MinRate: 100 << 20, IdleTimeout: 200 * time.Millisecond}
	ctx := context.Background()
	data := randBytes(1<<20, 5)
	if _, err := c.PutBuffers(ctx, srv.URL, "d1", [][]byte{data[:1000], data[1000:]}, shaHex(data)); err != nil {
		t.Fatal(err)
	}

	// Mid-stream: the datanode stops after 100,000 bytes; the body fails after the idle limit.
	fz.FreezeAfter(100000)
	rc, err := c.Read(ctx, srv.URL, "d1", 0, -1, ReadOptions{Idle: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, ErrDeadline) || !Unreachable(err) || len(got) < 100000 || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("stream stalled mid-way: %d bytes, %v; want the first bytes, then ErrDeadline", len(got), err)
	}

	// Frozen from the start: every call fails with ErrDeadline.
	fz.Freeze()
	calls := map[string]func() error{
		"get": func() error { _, err := c.Get(ctx, srv.URL, "d1", 0, -1); return err },
		"put": func() error {
			_, err := c.PutBuffers(ctx, srv.URL, "d2", [][]byte{data}, "")
			return err
		},
		"delete": func() error { return c.Delete(ctx, srv.URL, "d1") },
		"list":   func() error { _, _, err := c.List(ctx, srv.URL, "", 10); return err },
		"usage":  func() error { _, err := c.Usage(ctx, srv.URL); return err },
	}
	for name, call := range calls {
		t0 := time.Now()
		err := call()
		if !errors.Is(err, ErrDeadline) {
			t.Errorf("%s on a frozen datanode: %v, want ErrDeadline", name, err)
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("%s on a frozen datanode returned after %v", name, d)
		}
	}
	// The caller's own cancellation is not a missed deadline.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Get(cctx, srv.URL, "d1", 0, -1); err == nil || errors.Is(err, ErrDeadline) {
		t.Fatalf("get cancelled by the caller: %v, want the caller's error", err)
	}
	fz.Thaw()
	if _, err := c.Usage(ctx, srv.URL); err != nil {
		t.Fatalf("after thaw: %v", err)
	}
}

// PutBuffers never reads its buffers after it returns, even when the call failed while the
// transport was still sending them.
func TestPutBuffersDetaches(t *testing.T) {
	r := &buffersReader{bufs: [][]byte{[]byte("abc"), []byte("de")}}
	p := make([]byte, 4)
	if n, err := r.Read(p); n != 4 || err != nil || string(p) != "abcd" {
		t.Fatalf("read %q %v", p[:n], err)
	}
	r.detach()
	if n, err := r.Read(p); n != 0 || err == nil {
		t.Fatalf("read after detach: %d %v", n, err)
	}
}
