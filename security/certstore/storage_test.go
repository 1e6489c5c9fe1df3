package certstore

import (
	"bytes"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
)

func TestStorageContract(t *testing.T) {
	cli := etcdtest.Start(t, hostStorage)
	ctx := testCtx(t)
	s := newStorage(t, cli, Options{Keyring: newKeyring(t)})

	files := map[string]string{
		"a/b/c.txt": "c",
		"a/b/d.txt": "dd",
		"a/e.txt":   "eee",
		"ab/x":      "x", // "a" is a component prefix of "a/…", not of "ab/…"
		"f.txt":     "ffff",
	}
	before := time.Now().Add(-time.Second)
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range files {
		got, err := s.Load(ctx, k)
		if err != nil || string(got) != v {
			t.Fatalf("Load(%s) = %q, %v; want %q", k, got, err, v)
		}
	}
	// Overwrite.
	if err := s.Store(ctx, "f.txt", []byte("F")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx, "f.txt"); string(got) != "F" {
		t.Fatalf("Load after overwrite = %q", got)
	}

	if _, err := s.Load(ctx, "a/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) err = %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Load(ctx, "a/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(directory) err = %v, want fs.ErrNotExist", err)
	}

	for k, want := range map[string]bool{"a": true, "a/b": true, "a/b/c.txt": true, "/a/b/": true, "a/b/c": false, "nope": false, "a/e": false} {
		if got := s.Exists(ctx, k); got != want {
			t.Errorf("Exists(%q) = %v, want %v", k, got, want)
		}
	}

	fi, err := s.Stat(ctx, "a/e.txt")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Key != "a/e.txt" || !fi.IsTerminal || fi.Size != 3 || fi.Modified.Before(before) || fi.Modified.After(time.Now()) {
		t.Fatalf("Stat(file) = %+v", fi)
	}
	fi, err = s.Stat(ctx, "a/b")
	if err != nil || fi.IsTerminal || fi.Key != "a/b" {
		t.Fatalf("Stat(dir) = %+v, %v", fi, err)
	}
	if _, err := s.Stat(ctx, "a/zzz"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat(missing) err = %v", err)
	}

	for _, tc := range []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"a", false, []string{"a/b", "a/e.txt"}},
		{"a", true, []string{"a/b", "a/b/c.txt", "a/b/d.txt", "a/e.txt"}},
		{"a/b", false, []string{"a/b/c.txt", "a/b/d.txt"}},
		{"", false, []string{"a", "ab", "f.txt"}},
		{"", true, []string{"a", "a/b", "a/b/c.txt", "a/b/d.txt", "a/e.txt", "ab", "ab/x", "f.txt"}},
		{"f.txt", false, []string{}},
	} {
		got, err := s.List(ctx, tc.dir, tc.recursive)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %v) = %q, %v; want %q", tc.dir, tc.recursive, got, err, tc.want)
		}
	}
	if _, err := s.List(ctx, "nope", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List(missing) err = %v", err)
	}

	// Delete a file, a directory, and something missing.
	if err := s.Delete(ctx, "a/e.txt"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "a/e.txt") {
		t.Fatal("a/e.txt exists after Delete")
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/b/c.txt", "a/b/d.txt", "a/b", "a"} {
		if s.Exists(ctx, k) {
			t.Errorf("%s exists after deleting a/b", k)
		}
	}
	if !s.Exists(ctx, "ab/x") {
		t.Fatal("deleting a/… removed ab/x")
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	if err := s.Store(ctx, "", []byte("x")); err == nil {
		t.Fatal("Store of the root key succeeded")
	}
}

func TestStorageSealedAtRest(t *testing.T) {
	cli := etcdtest.Start(t, hostStorage)
	ctx := testCtx(t)
	kr := newKeyring(t)
	s := newStorage(t, cli, Options{Keyring: kr})

	secret := []byte("-----BEGIN EC PRIVATE KEY-----\nnot really a key\n-----END EC PRIVATE KEY-----\n")
	key := "certificates/ca/proxy.lab.internal/proxy.lab.internal.key"
	if err := s.Store(ctx, key, secret); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, testPrefix+"data/"+key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v, %d kvs", err, len(resp.Kvs))
	}
	raw := resp.Kvs[0].Value
	if bytes.Contains(raw, secret) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("value is stored in the clear")
	}

	// Bound to its key: moved elsewhere it does not open.
	if _, err := cli.Put(ctx, testPrefix+"data/moved", string(raw)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "moved"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a moved sealed value = %v, want an authentication error", err)
	}
	// Without the keyring it cannot be read; with another keyring neither.
	plain := newStorage(t, cli, Options{})
	if _, err := plain.Load(ctx, key); err == nil {
		t.Fatal("storage without keyring loaded a sealed value")
	}
	other := newStorage(t, cli, Options{Keyring: newKeyring(t)})
	if _, err := other.Load(ctx, key); err == nil {
		t.Fatal("storage with another keyring loaded a sealed value")
	}
	// An unsealed value is refused by a sealing storage.
	if err := plain.Store(ctx, "planted", []byte("evil")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "planted"); err == nil {
		t.Fatal("sealing storage accepted an unsealed value")
	}
	if got, err := s.Load(ctx, key); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Load = %q, %v", got, err)
	}
}
