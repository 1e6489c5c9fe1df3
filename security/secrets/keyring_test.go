package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func mustKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSeal(t testing.TB, k *Keyring, pt, aad string) []byte {
	t.Helper()
	s, err := k.Seal([]byte(pt), []byte(aad))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewKeyring(t *testing.T) {
	k := mustKeyring(t)
	id := k.PrimaryID()
	if len(id) != 8 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("primary id %q, want 8 hex chars", id)
	}
	if ids := k.IDs(); !slices.Equal(ids, []string{id}) {
		t.Fatalf("IDs() = %v, want [%s]", ids, id)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKeyring(t)
	for _, pt := range []string{"", "x", "hello secret", strings.Repeat("z", 1<<16)} {
		s := mustSeal(t, k, pt, "/hanode/secrets/a")
		if !IsSealed(s) {
			t.Fatalf("IsSealed(Seal(%d bytes)) = false", len(pt))
		}
		if len(pt) > 4 && bytes.Contains(s, []byte(pt)) {
			t.Fatal("sealed value contains the plaintext")
		}
		got, err := k.Open(s, []byte("/hanode/secrets/a"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(got) != pt {
			t.Fatalf("Open = %q..., want %q...", got[:min(len(got), 16)], pt[:min(len(pt), 16)])
		}
	}
	// Fresh nonce each time.
	if bytes.Equal(mustSeal(t, k, "same", "a"), mustSeal(t, k, "same", "a")) {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

func TestOpenFailures(t *testing.T) {
	k := mustKeyring(t)
	s := mustSeal(t, k, "top secret", "/k/1")

	if _, err := k.Open(s, []byte("/k/2")); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong aad: err = %v, want ErrAuth", err)
	}
	if _, err := k.Open(s, nil); !errors.Is(err, ErrAuth) {
		t.Errorf("missing aad: err = %v, want ErrAuth", err)
	}
	// Flip one bit at each position: header, nonce, ciphertext and tag.
	for i := range s {
		bad := slices.Clone(s)
		bad[i] ^= 0x01
		_, err := k.Open(bad, []byte("/k/1"))
		if err == nil {
			t.Fatalf("tampered byte %d: Open succeeded", i)
		}
		if i >= len(magic)+1+len(k.PrimaryID()) && !errors.Is(err, ErrAuth) {
			t.Errorf("tampered byte %d: err = %v, want ErrAuth", i, err)
		}
	}
	if _, err := k.Open(s[:len(s)-1], []byte("/k/1")); !errors.Is(err, ErrAuth) {
		t.Errorf("truncated: err = %v, want ErrAuth", err)
	}
	if _, err := k.Open([]byte("plain value"), nil); !errors.Is(err, ErrNotSealed) {
		t.Errorf("plaintext: err = %v, want ErrNotSealed", err)
	}
	if IsSealed([]byte("plain value")) {
		t.Error("IsSealed(plaintext) = true")
	}

	other := mustKeyring(t)
	_, err := other.Open(s, []byte("/k/1"))
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("other keyring: err = %v, want ErrUnknownKey", err)
	}
	if err != nil && strings.Contains(err.Error(), "top secret") {
		t.Errorf("error leaks plaintext: %v", err)
	}

	var empty Keyring
	if _, err := empty.Seal([]byte("x"), nil); err == nil {
		t.Error("Seal with an empty keyring succeeded")
	}
}

func TestRotate(t *testing.T) {
	k := mustKeyring(t)
	oldID := k.PrimaryID()
	old := mustSeal(t, k, "old", "a")
	newID, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if newID == oldID || k.PrimaryID() != newID {
		t.Fatalf("Rotate: new %q, old %q, primary %q", newID, oldID, k.PrimaryID())
	}
	if ids := k.IDs(); len(ids) != 2 || !slices.Contains(ids, oldID) || !slices.Contains(ids, newID) {
		t.Fatalf("IDs() = %v", ids)
	}
	if got, err := k.Open(old, []byte("a")); err != nil || string(got) != "old" {
		t.Fatalf("open pre-rotation value: %q, %v", got, err)
	}
	fresh := mustSeal(t, k, "new", "a")
	if _, id, _, _ := split(fresh); id != newID {
		t.Fatalf("new value sealed with %q, want %q", id, newID)
	}
	if _, id, _, _ := split(old); id != oldID {
		t.Fatalf("old value sealed with %q, want %q", id, oldID)
	}
}

func TestConcurrentUse(t *testing.T) {
	k := mustKeyring(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if i == 0 {
					if _, err := k.Rotate(); err != nil {
						t.Error(err)
						return
					}
				}
				s, err := k.Seal([]byte("v"), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := k.Open(s, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestSaveLoad(t *testing.T) {
	k := mustKeyring(t)
	if _, err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	s := mustSeal(t, k, "persisted", "a")
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	// Save over an existing file, and leave no temp files behind.
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(ents))
	}
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.PrimaryID() != k.PrimaryID() || !slices.Equal(l.IDs(), k.IDs()) {
		t.Fatalf("loaded %s %v, want %s %v", l.PrimaryID(), l.IDs(), k.PrimaryID(), k.IDs())
	}
	if got, err := l.Open(s, []byte("a")); err != nil || string(got) != "persisted" {
		t.Fatalf("open with loaded keyring: %q, %v", got, err)
	}
}

func TestLoadRefusesLoosePermissions(t *testing.T) {
	k := mustKeyring(t)
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), "group or others") {
			t.Errorf("mode %04o: err = %v, want a permissions error", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	key := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" // 32 zero bytes
	for name, doc := range map[string]string{
		"not json":        `{`,
		"no keys":         `{"primary":"a","keys":{}}`,
		"primary missing": `{"primary":"b","keys":{"a":"` + key + `"}}`,
		"short key":       `{"primary":"a","keys":{"a":"AAAA"}}`,
		"bad base64":      `{"primary":"a","keys":{"a":"!!secretmaterial!!"}}`,
		"bad id":          `{"primary":"a b","keys":{"a b":"` + key + `"}}`,
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil {
			t.Errorf("%s: Load succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "secretmaterial") {
			t.Errorf("%s: error should name the file and not echo key material: %v", name, err)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	k := mustKeyring(t)
	s := mustSeal(t, k, "over the wire", "a")
	body, err := json.Marshal(struct {
		Keyring *Keyring `json:"keyring"`
	}{k})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Keyring *Keyring `json:"keyring"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if pt, err := got.Keyring.Open(s, []byte("a")); err != nil || string(pt) != "over the wire" {
		t.Fatalf("open with unmarshalled keyring: %q, %v", pt, err)
	}
	// A bad document leaves an existing keyring untouched.
	if err := k.UnmarshalJSON([]byte(`{"primary":"x","keys":{}}`)); err == nil {
		t.Fatal("UnmarshalJSON accepted a keyring without keys")
	}
	if _, err := k.Open(s, []byte("a")); err != nil {
		t.Fatalf("keyring changed by failed UnmarshalJSON: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	k, err := NewKeyring()
	if err != nil {
		f.Fatal(err)
	}
	valid := mustSeal(f, k, "fuzz", "aad")
	f.Add(valid, []byte("aad"))
	f.Add(valid[:len(valid)-1], []byte("aad"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte(magic), []byte{})
	f.Add([]byte(magic+"\x00"), []byte{})
	f.Add([]byte(magic+"\xff"+k.PrimaryID()), []byte{})
	f.Add(append([]byte(magic+"\x08"+k.PrimaryID()), make([]byte, nonceSize+tagSize)...), []byte("aad"))
	f.Add(append([]byte(magic+"\x09"+k.PrimaryID()), make([]byte, nonceSize+tagSize)...), []byte("aad"))
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		pt, err := k.Open(sealed, aad)
		if err == nil {
			// Only a genuine seal opens; re-sealing what opened must open too.
			again, err := k.Open(mustSeal(t, k, string(pt), string(aad)), aad)
			if err != nil || !bytes.Equal(again, pt) {
				t.Fatalf("re-seal of opened value: %v", err)
			}
		}
		if err != nil && IsSealed(sealed) && errors.Is(err, ErrNotSealed) {
			t.Fatalf("IsSealed true but Open says not sealed: %v", err)
		}
	})
}
