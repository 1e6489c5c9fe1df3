package secrets

import (
	"bytes"
	"errors"
	"testing"
)

func TestDataKeys(t *testing.T) {
	k, err := NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	plain, sealed, err := k.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != DataKeySize || bytes.Contains(sealed, plain) {
		t.Fatalf("data key of %d bytes, or sealed form holds it", len(plain))
	}
	got, err := k.OpenDataKey(sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	// A value sealed for another use does not open as a data key.
	other, _ := k.Seal(plain, []byte("/hanode/secrets/x"))
	if _, err := k.OpenDataKey(other); !errors.Is(err, ErrAuth) {
		t.Fatalf("a secret opened as a data key: %v", err)
	}
	if same, err := k.ResealDataKey(sealed); err != nil || !bytes.Equal(same, sealed) {
		t.Fatalf("re-seal under the same primary changed it: %v", err)
	}
	old := k.PrimaryID()
	if _, err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	re, err := k.ResealDataKey(sealed)
	if err != nil || bytes.Equal(re, sealed) {
		t.Fatalf("re-seal after rotation: %v", err)
	}
	if _, id, _, _ := split(re); id != k.PrimaryID() || id == old {
		t.Fatalf("re-sealed with %s, want the new primary %s", id, k.PrimaryID())
	}
	if got, err := k.OpenDataKey(re); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open re-sealed: %v", err)
	}
}
