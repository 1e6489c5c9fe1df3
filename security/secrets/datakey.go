package secrets

import (
	"crypto/rand"
	"fmt"
)

// dataKeyAAD binds a sealed object data key to that use: a value sealed for anything else
// (a secret under its etcd key) does not open as a data key, nor the reverse.
var dataKeyAAD = []byte("hanode sse-s3 data key")

// DataKeySize is the size of an object data key (AES-256).
const DataKeySize = 32

// NewDataKey returns a fresh random object data key and the same key sealed with the primary
// key: the sealed form goes into the object's record, the plain one encrypts its data and is
// forgotten.
func (k *Keyring) NewDataKey() (plain, sealed []byte, err error) {
	plain = make([]byte, DataKeySize)
	if _, err := rand.Read(plain); err != nil {
		return nil, nil, fmt.Errorf("secrets: new data key: %w", err)
	}
	sealed, err = k.Seal(plain, dataKeyAAD)
	if err != nil {
		return nil, nil, fmt.Errorf("secrets: new data key: %w", err)
	}
	return plain, sealed, nil
}

// OpenDataKey opens a data key sealed by NewDataKey (or ResealDataKey) with any key of the ring.
func (k *Keyring) OpenDataKey(sealed []byte) ([]byte, error) {
	plain, err := k.Open(sealed, dataKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("secrets: open data key: %w", err)
	}
	if len(plain) != DataKeySize {
		return nil, fmt.Errorf("secrets: open data key: %d bytes, want %d", len(plain), DataKeySize)
	}
	return plain, nil
}

// ResealDataKey returns sealed re-sealed with the primary key, or sealed itself when the
// primary key already sealed it.
func (k *Keyring) ResealDataKey(sealed []byte) ([]byte, error) {
	if _, id, _, ok := split(sealed); ok && id == k.PrimaryID() {
		return sealed, nil
	}
	plain, err := k.OpenDataKey(sealed)
	if err != nil {
		return nil, err
	}
	out, err := k.Seal(plain, dataKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("secrets: re-seal data key: %w", err)
	}
	return out, nil
}
