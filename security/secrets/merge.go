package secrets

import (
	"bytes"
	"fmt"
	"maps"
)

// Merge adds other's keys to k, so that a key generated on one controller reaches the others.
// A key id already in k must hold the same key (ids never change meaning). It returns the ids
// it added.
func (k *Keyring) Merge(other *Keyring) ([]string, error) {
	other.mu.RLock()
	keys := maps.Clone(other.keys)
	other.mu.RUnlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string][]byte{}
	}
	for id, key := range keys {
		if have, ok := k.keys[id]; ok && !bytes.Equal(have, key) {
			return nil, fmt.Errorf("secrets: merge: key %s differs from the one this keyring holds", id)
		}
	}
	var added []string
	for id, key := range keys {
		if _, ok := k.keys[id]; !ok {
			k.keys[id] = bytes.Clone(key)
			added = append(added, id)
		}
	}
	return added, nil
}

// SetPrimary makes the key id the one Seal uses; k must hold it.
func (k *Keyring) SetPrimary(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[id]; !ok {
		return fmt.Errorf("secrets: set primary: %w: %s", ErrUnknownKey, id)
	}
	k.primary = id
	return nil
}

// Clone returns an independent copy of k.
func (k *Keyring) Clone() *Keyring {
	k.mu.RLock()
	defer k.mu.RUnlock()
	c := &Keyring{keys: make(map[string][]byte, len(k.keys)), primary: k.primary}
	for id, key := range k.keys {
		c.keys[id] = bytes.Clone(key)
	}
	return c
}
