package secrets

import (
	"errors"
	"slices"
	"testing"
)

func TestMergeAndSetPrimary(t *testing.T) {
	a, err := NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	b := a.Clone()
	newID, err := b.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	sealedNew, err := b.Seal([]byte("v"), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(sealedNew, []byte("k")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("before merge: %v, want ErrUnknownKey", err)
	}
	added, err := a.Merge(b)
	if err != nil || !slices.Equal(added, []string{newID}) {
		t.Fatalf("merge added %v, %v", added, err)
	}
	if got, err := a.Open(sealedNew, []byte("k")); err != nil || string(got) != "v" {
		t.Fatalf("after merge: %q, %v", got, err)
	}
	if a.PrimaryID() == newID {
		t.Fatal("merge changed the primary")
	}
	if err := a.SetPrimary(newID); err != nil || a.PrimaryID() != newID {
		t.Fatalf("set primary: %v", err)
	}
	if err := a.SetPrimary("ffffffff"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("set an unknown primary: %v", err)
	}
	// A key id that means a different key elsewhere is refused.
	c, _ := NewKeyring()
	c.keys[a.PrimaryID()] = make([]byte, keySize)
	if _, err := a.Merge(c); err == nil {
		t.Fatal("merged a conflicting key")
	}
}
