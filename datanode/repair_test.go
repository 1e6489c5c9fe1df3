package datanode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The store's identity survives a reopen; a fresh directory gets another.
func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	s1, err := Open(Options{Dir: dir, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	id := s1.Identity()
	s1.Close()
	s2, err := Open(Options{Dir: dir, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Identity() != id || len(id) != 32 {
		t.Fatalf("identity %q after reopen, was %q", s2.Identity(), id)
	}
	s3, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if s3.Identity() == id {
		t.Fatal("a fresh directory has the same identity")
	}
}

func repairPeer(t *testing.T, rate int64) (*Store, string, *Client) {
	st, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &Client{HTTP: &http.Client{}, HeaderTimeout: 5 * time.Second}
	srv := httptest.NewServer(NewHandler(st, NewRepair(RepairOptions{Peers: c, Rate: rate})))
	t.Cleanup(srv.Close)
	return st, srv.URL, c
}

// A pull copies a chunk from a peer and keeps it only when its SHA-256 matches; a second pull
// finds it there; a missing source is ErrSource; Have lists what is held. The transfer is held
// to the repair rate.
func TestPull(t *testing.T) {
	ctx := context.Background()
	src, srcURL, c := repairPeer(t, 1<<20)
	dst, dstURL, _ := repairPeer(t, 1<<20)
	data := bytes.Repeat([]byte("hanode"), 300<<10/6)
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	if _, err := src.Put(ctx, "c1", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	wrong := sha256.Sum256([]byte("other"))
	if _, err := c.Pull(ctx, dstURL, "c1", srcURL, int64(len(data)), hex.EncodeToString(wrong[:]), 10*time.Second); !errors.Is(err, ErrChecksum) {
		t.Fatalf("pull with a wrong SHA-256: %v, want ErrChecksum", err)
	}
	if _, err := dst.Stat("c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused pull left a chunk: %v", err)
	}
	pr, err := c.Pull(ctx, dstURL, "c1", srcURL, int64(len(data)), sha, 10*time.Second)
	if err != nil || pr.Existed || pr.Info.SHA256 != sha {
		t.Fatalf("pull: %+v, %v", pr, err)
	}
	if err := dst.Verify("c1"); err != nil {
		t.Fatal(err)
	}
	if pr, err := c.Pull(ctx, dstURL, "c1", srcURL, int64(len(data)), sha, 10*time.Second); err != nil || !pr.Existed {
		t.Fatalf("second pull: %+v, %v; want existed", pr, err)
	}
	if _, err := c.Pull(ctx, dstURL, "c2", srcURL, 10, sha, 10*time.Second); !errors.Is(err, ErrSource) {
		t.Fatalf("pull of a chunk the source lacks: %v, want ErrSource", err)
	}
	have, store, err := c.Have(ctx, dstURL, []string{"c1", "c2", "BAD"})
	if err != nil || !have["c1"] || have["c2"] || len(have) != 1 || store != dst.Identity() {
		t.Fatalf("have: %v %q %v", have, store, err)
	}
}

// The repair rate holds a pull: 3 MiB at 1 MiB/s (a 1 MiB burst) takes about two seconds.
func TestPullRate(t *testing.T) {
	ctx := context.Background()
	src, srcURL, c := repairPeer(t, 1<<20)
	_, dstURL, _ := repairPeer(t, 1<<20)
	data := bytes.Repeat([]byte{7}, 3<<20)
	sum := sha256.Sum256(data)
	if _, err := src.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Pull(ctx, dstURL, "big", srcURL, int64(len(data)), hex.EncodeToString(sum[:]), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("3 MiB pulled in %v at a 1 MiB/s repair rate", d)
	}
}
