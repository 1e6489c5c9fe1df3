package kms

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/security/secrets"
)

// etcdHost is this package's etcd test member's address.
const etcdHost = "127.0.131.2"

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"testkey-1", true}, {"a", true}, {"Key_2.prod", true}, {strings.Repeat("k", MaxNameLen), true},
		{"", false}, {"-lead", false}, {".hidden", false}, {"a/b", false}, {"alias/x", false}, {"key 1", false},
		{strings.Repeat("k", MaxNameLen+1), false}, {"clé", false},
	} {
		if got := ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestSealDataKeyBinding(t *testing.T) {
	m1, m2 := bytes.Repeat([]byte{1}, MaterialSize), bytes.Repeat([]byte{2}, MaterialSize)
	plain := bytes.Repeat([]byte{9}, secrets.DataKeySize)
	sealed, err := SealDataKey(m1, "a", "ctx", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("the sealed data key holds the plain one")
	}
	if got, err := OpenDataKey(m1, "a", "ctx", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		what           string
		material       []byte
		name, ctx      string
		sealed         []byte
		wantAuthFailed bool
	}{
		{"other material", m2, "a", "ctx", sealed, true},
		{"other name", m1, "b", "ctx", sealed, true},
		{"other context", m1, "a", "", sealed, true},
		{"name and context shifted", m1, "actx", "", sealed, true},
		{"tampered", m1, "a", "ctx", tampered, true},
		{"truncated", m1, "a", "ctx", sealed[:10], true},
		{"short material", m1[:16], "a", "ctx", sealed, false},
	} {
		_, err := OpenDataKey(tc.material, tc.name, tc.ctx, tc.sealed)
		if err == nil || errors.Is(err, ErrAuth) != tc.wantAuthFailed {
			t.Errorf("%s: err %v", tc.what, err)
		}
	}
}

func TestStore(t *testing.T) {
	cli := etcdtest.Start(t, etcdHost)
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := New(cli, ring)
	for _, name := range []string{"testkey-1", "testkey-2"} {
		if k, err := s.Create(ctx, name, "admin"); err != nil || !k.Enabled || k.Name != name {
			t.Fatalf("create %s: %+v %v", name, k, err)
		}
	}
	if _, err := s.Create(ctx, "testkey-1", "admin"); !errors.Is(err, ErrExists) {
		t.Fatalf("created twice: %v", err)
	}
	if _, err := s.Create(ctx, "bad/name", "admin"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	keys, err := s.List(ctx)
	if err != nil || len(keys) != 2 || keys[0].Name != "testkey-1" || keys[1].Name != "testkey-2" {
		t.Fatalf("list: %+v %v", keys, err)
	}

	// The material is sealed in etcd: its raw value holds neither the material nor JSON.
	raw, err := cli.Get(ctx, keyspace.KMSKeys+"testkey-1")
	if err != nil || len(raw.Kvs) != 1 || !secrets.IsSealed(raw.Kvs[0].Value) || bytes.Contains(raw.Kvs[0].Value, []byte("material")) {
		t.Fatalf("stored value not sealed: %v", err)
	}

	plain, sealed, err := s.NewDataKey(ctx, "testkey-1", "")
	if err != nil {
		t.Fatal(err)
	}
	plain2, sealed2, err := s.NewDataKey(ctx, "testkey-2", "ctx")
	if err != nil {
		t.Fatal(err)
	}
	open := func(name, encCtx string, sealed []byte) ([]byte, error) {
		return s.OpenDataKey(ctx, name, encCtx, sealed)
	}
	if got, err := open("testkey-1", "", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open under testkey-1: %v", err)
	}
	if _, err := open("testkey-2", "", sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("testkey-1's data key opened under testkey-2: %v", err)
	}
	if _, err := open("nope", "", sealed); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, _, err := s.NewDataKey(ctx, "nope", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("new under an unknown key: %v", err)
	}

	// Disabling testkey-1 separates its data keys only.
	if k, err := s.SetEnabled(ctx, "testkey-1", false); err != nil || k.Enabled || k.Changed.IsZero() {
		t.Fatalf("disable: %+v %v", k, err)
	}
	if _, err := open("testkey-1", "", sealed); !errors.Is(err, ErrDisabled) {
		t.Fatalf("a disabled key opened: %v", err)
	}
	if _, _, err := s.NewDataKey(ctx, "testkey-1", ""); !errors.Is(err, ErrDisabled) {
		t.Fatalf("a disabled key made a data key: %v", err)
	}
	if got, err := open("testkey-2", "ctx", sealed2); err != nil || !bytes.Equal(got, plain2) {
		t.Fatalf("testkey-2 while testkey-1 is disabled: %v", err)
	}

	// A keyring rotation re-seals the material; every data key still opens.
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	if n, err := secrets.Reencrypt(ctx, cli, ring, keyspace.Secrets); err != nil || n != 2 {
		t.Fatalf("re-seal: %d %v", n, err)
	}
	if _, err := s.SetEnabled(ctx, "testkey-1", true); err != nil {
		t.Fatal(err)
	}
	if got, err := open("testkey-1", "", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("after rotation and enable: %v", err)
	}

	// Delete: only a disabled key; then its data keys are gone for good.
	if err := s.Delete(ctx, "testkey-1"); !errors.Is(err, ErrEnabled) {
		t.Fatalf("deleted an enabled key: %v", err)
	}
	if _, err := s.SetEnabled(ctx, "testkey-1", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "testkey-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := open("testkey-1", "", sealed); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted key opened: %v", err)
	}
	// A key made again under the name has other material: the old data keys stay closed.
	if _, err := s.Create(ctx, "testkey-1", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := open("testkey-1", "", sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("a re-created key opened the old data key: %v", err)
	}
}
