// Package secrets encrypts values at rest (in etcd) with AES-256-GCM under a
// keyring of data-encryption keys: one primary key seals, older keys stay to
// open what they sealed until Reencrypt has rewritten it.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/hanode/hanode/internal/fsutil"
)

// Sealed value layout: magic | 1-byte id length | id | nonce | ciphertext+tag.
const (
	magic     = "hns1"
	keySize   = 32 // AES-256
	nonceSize = 12 // GCM standard nonce
	tagSize   = 16
	maxIDLen  = 64
)

// Errors returned (wrapped) by Open, so callers can tell a value that was
// never sealed or was sealed by a key this keyring lacks from a forgery.
var (
	ErrNotSealed  = errors.New("value is not sealed")
	ErrUnknownKey = errors.New("unknown key id")
	ErrAuth       = errors.New("authentication failed (wrong key, wrong aad or tampered data)")
)

// Keyring holds the cluster's data-encryption keys: one primary (used to
// seal) and older ones (to open what they sealed). It is safe for concurrent
// use. The zero Keyring is empty: it can be filled by UnmarshalJSON.
type Keyring struct {
	mu      sync.RWMutex
	keys    map[string][]byte // id -> 32-byte key
	primary string
}

// NewKeyring returns a keyring with one fresh random key as primary.
func NewKeyring() (*Keyring, error) {
	k := &Keyring{keys: map[string][]byte{}}
	if _, err := k.Rotate(); err != nil {
		return nil, err
	}
	return k, nil
}

// Rotate adds a fresh random key and makes it primary. Existing keys are kept
// so values they sealed still open.
func (k *Keyring) Rotate() (newID string, err error) {
	key := make([]byte, keySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return "", fmt.Errorf("secrets: generate key: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string][]byte{}
	}
	for {
		var b [4]byte
		if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
			return "", fmt.Errorf("secrets: generate key id: %w", err)
		}
		id := hex.EncodeToString(b[:])
		if _, taken := k.keys[id]; taken {
			continue // 32-bit ids can collide; never overwrite a key
		}
		k.keys[id] = key
		k.primary = id
		return id, nil
	}
}

// PrimaryID returns the id of the key Seal uses ("" for an empty keyring).
func (k *Keyring) PrimaryID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.primary
}

// IDs returns the ids of all keys, sorted.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Sorted(maps.Keys(k.keys))
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// fullAAD binds the header (and so the key id) as well as the caller's aad.
// The header is length-prefixed, so header||aad is unambiguous.
func fullAAD(header, aad []byte) []byte {
	return append(slices.Clip(header), aad...)
}

// Seal encrypts plaintext with the primary key under a random nonce. aad is
// authenticated but not stored: Open must be given the same aad, which binds
// the ciphertext to its context (for example its etcd key name) so it cannot
// be moved elsewhere.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	k.mu.RLock()
	id, key := k.primary, k.keys[k.primary]
	k.mu.RUnlock()
	if id == "" || key == nil {
		return nil, errors.New("secrets: seal: keyring has no primary key")
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: seal with key %s: %w", id, err)
	}
	out := make([]byte, 0, len(magic)+1+len(id)+nonceSize+len(plaintext)+tagSize)
	out = append(out, magic...)
	out = append(out, byte(len(id)))
	out = append(out, id...)
	header := out
	nonce := out[len(out) : len(out)+nonceSize]
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("secrets: seal: nonce: %w", err)
	}
	out = out[:len(out)+nonceSize]
	return aead.Seal(out, nonce, plaintext, fullAAD(header, aad)), nil
}

// IsSealed reports whether b starts like a value produced by Seal. It does not
// authenticate anything.
func IsSealed(b []byte) bool {
	_, _, _, ok := split(b)
	return ok
}

// split parses the sealed layout without trusting any length in it.
func split(b []byte) (header []byte, id string, body []byte, ok bool) {
	if !bytes.HasPrefix(b, []byte(magic)) || len(b) < len(magic)+1 {
		return nil, "", nil, false
	}
	n := int(b[len(magic)])
	hl := len(magic) + 1 + n
	if n == 0 || n > maxIDLen || len(b) < hl+nonceSize+tagSize {
		return nil, "", nil, false
	}
	return b[:hl], string(b[len(magic)+1 : hl]), b[hl:], true
}

// Open authenticates and decrypts a value produced by Seal with the same aad,
// using whichever key of the keyring sealed it. Errors wrap ErrNotSealed,
// ErrUnknownKey or ErrAuth.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	header, id, body, ok := split(sealed)
	if !ok {
		return nil, fmt.Errorf("secrets: open: %w", ErrNotSealed)
	}
	k.mu.RLock()
	key := k.keys[id]
	k.mu.RUnlock()
	if key == nil {
		return nil, fmt.Errorf("secrets: open: key id %q: %w", id, ErrUnknownKey)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: open with key %s: %w", id, err)
	}
	pt, err := aead.Open(nil, body[:nonceSize], body[nonceSize:], fullAAD(header, aad))
	if err != nil {
		return nil, fmt.Errorf("secrets: open with key %s: %w", id, ErrAuth)
	}
	return pt, nil
}

// keyringJSON is the on-disk and on-wire form. Keys are standard base64.
type keyringJSON struct {
	Primary string            `json:"primary"`
	Keys    map[string]string `json:"keys"`
}

// MarshalJSON encodes the keyring, key material included: handle the output
// as a secret.
func (k *Keyring) MarshalJSON() ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.primary == "" {
		return nil, errors.New("secrets: marshal: keyring has no primary key")
	}
	j := keyringJSON{Primary: k.primary, Keys: make(map[string]string, len(k.keys))}
	for id, key := range k.keys {
		j.Keys[id] = base64.StdEncoding.EncodeToString(key)
	}
	return json.Marshal(j)
}

// UnmarshalJSON replaces the keyring's contents after validating all of it,
// so a bad document leaves the keyring unchanged.
func (k *Keyring) UnmarshalJSON(data []byte) error {
	keys, primary, err := decodeKeyring(data)
	if err != nil {
		return fmt.Errorf("secrets: decode keyring: %w", err)
	}
	k.mu.Lock()
	k.keys, k.primary = keys, primary
	k.mu.Unlock()
	return nil
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// decodeKeyring validates the whole document; its errors name key ids but
// never key material.
func decodeKeyring(data []byte) (map[string][]byte, string, error) {
	var j keyringJSON
	if err := json.Unmarshal(data, &j); err != nil {
		// json errors quote at most a character of input, never a whole key.
		return nil, "", err
	}
	if len(j.Keys) == 0 {
		return nil, "", errors.New("no keys")
	}
	keys := make(map[string][]byte, len(j.Keys))
	for id, s := range j.Keys {
		if !validID(id) {
			return nil, "", fmt.Errorf("invalid key id %q (want 1-%d of [A-Za-z0-9_-])", id, maxIDLen)
		}
		key, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, "", fmt.Errorf("key %s is not valid base64", id)
		}
		if len(key) != keySize {
			return nil, "", fmt.Errorf("key %s is %d bytes, want %d", id, len(key), keySize)
		}
		keys[id] = key
	}
	if _, ok := keys[j.Primary]; !ok {
		return nil, "", fmt.Errorf("primary key id %q is not among the keys", j.Primary)
	}
	return keys, j.Primary, nil
}

// Load reads a keyring file written by Save. It refuses a file that group or
// others can access: the file holds every data-encryption key.
func Load(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: load keyring: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: load keyring %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secrets: load keyring %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets: load keyring %s: mode %04o is accessible by group or others, want 0600 (chmod 600 %s)", path, perm, path)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("secrets: load keyring %s: %w", path, err)
	}
	keys, primary, err := decodeKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("secrets: load keyring %s: %w", path, err)
	}
	return &Keyring{keys: keys, primary: primary}, nil
}

// Save writes the keyring to path with mode 0600, atomically (temp file in the
// same directory, fsync, rename, fsync directory) so a crash never leaves a
// torn keyring, which would make every sealed value unreadable.
func (k *Keyring) Save(path string) error {
	data, err := k.MarshalJSON()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("secrets: save keyring: %w", err)
	}
	return nil
}
