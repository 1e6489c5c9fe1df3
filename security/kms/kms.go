// Package kms is hanode's built-in key management service, behind SSE-KMS: named keys the
// operator creates, disables, enables and deletes (`hanode kms ...`), each with its own random
// 256-bit material. An SSE-KMS object's data key is sealed under its key's material
// (AES-256-GCM, bound to the key's name and the request's encryption context), so:
//
//   - a key's objects open only while that key exists and is enabled, whatever happens to the
//     other keys (disabling or deleting a key separates its objects from all others);
//   - the material is stored in etcd under keyspace.KMSKeys, sealed with the cluster keyring
//     (bound to its etcd key), a prefix only controllers may read (security/etcdauth): the
//     material never leaves the controllers, which make and open data keys for coordinators;
//   - a cluster keyring rotation (`hanode secrets rotate`) re-seals the material with the new
//     keyring key (it is under keyspace.Secrets), never the objects' data keys, which the
//     material (unchanged) seals.
package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/security/secrets"
)

// Errors (wrapped) of the store and of opening data keys.
var (
	ErrNotFound    = errors.New("no such KMS key")
	ErrDisabled    = errors.New("the KMS key is disabled")
	ErrExists      = errors.New("a KMS key of that name exists")
	ErrInvalidName = errors.New("invalid KMS key name")
	ErrEnabled     = errors.New("the KMS key is enabled: disable it before deleting it")
	// ErrAuth: a sealed data key did not open under its key (tampered, or bound to another key
	// or encryption context).
	ErrAuth = errors.New("the data key does not open under this KMS key and encryption context")
)

// MaxNameLen bounds a key name.
const MaxNameLen = keyspace.MaxKMSKeyName

// ValidName reports whether name can name a KMS key: 1 to MaxNameLen characters of
// [A-Za-z0-9._-], starting with a letter or digit.
func ValidName(name string) bool { return keyspace.ValidKMSKeyName(name) }

// Key is what the store tells about a key (never its material).
type Key struct {
	Name      string    `json:"name"`
	Enabled   bool      `json:"enabled"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by,omitempty"`
	// Changed is when the key was last enabled or disabled (zero: never).
	Changed time.Time `json:"changed,omitzero"`
}

// record is the sealed value of a key in etcd.
type record struct {
	Key
	Material []byte `json:"material"`
}

// MaterialSize is the size of a key's material (AES-256).
const MaterialSize = 32

// Store keeps the KMS keys in etcd, sealed with the cluster keyring. Only a controller (etcd
// root, and the keyring's holder) can use one.
type Store struct {
	cli  *clientv3.Client
	ring *secrets.Keyring
	now  func() time.Time
}

// New returns the store of the keys in cli's etcd, sealed with ring.
func New(cli *clientv3.Client, ring *secrets.Keyring) *Store {
	return &Store{cli: cli, ring: ring, now: time.Now}
}

func etcdKey(name string) string { return keyspace.KMSKeys + name }

// Create makes a key of fresh random material, enabled.
func (s *Store) Create(ctx context.Context, name, by string) (Key, error) {
	if !ValidName(name) {
		return Key{}, fmt.Errorf("kms: create %q: %w (want 1-%d of [A-Za-z0-9._-], starting with a letter or digit)", name, ErrInvalidName, MaxNameLen)
	}
	rec := record{Key: Key{Name: name, Enabled: true, Created: s.now().UTC(), CreatedBy: by}, Material: make([]byte, MaterialSize)}
	if _, err := io.ReadFull(rand.Reader, rec.Material); err != nil {
		return Key{}, fmt.Errorf("kms: create %s: %w", name, err)
	}
	val, err := s.seal(name, &rec)
	if err != nil {
		return Key{}, err
	}
	k := etcdKey(name)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(val))).Commit()
	if err != nil {
		return Key{}, fmt.Errorf("kms: create %s: %w", name, err)
	}
	if !resp.Succeeded {
		return Key{}, fmt.Errorf("kms: create %s: %w", name, ErrExists)
	}
	return rec.Key, nil
}

func (s *Store) seal(name string, rec *record) ([]byte, error) {
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("kms: key %s: %w", name, err)
	}
	sealed, err := s.ring.Seal(plain, []byte(etcdKey(name)))
	if err != nil {
		return nil, fmt.Errorf("kms: seal key %s: %w", name, err)
	}
	return sealed, nil
}

func (s *Store) open(etcdK string, val []byte) (*record, error) {
	plain, err := s.ring.Open(val, []byte(etcdK))
	if err != nil {
		return nil, fmt.Errorf("kms: open %s: %w", etcdK, err)
	}
	var rec record
	if err := json.Unmarshal(plain, &rec); err != nil {
		return nil, fmt.Errorf("kms: key %s: malformed: %w", etcdK, err)
	}
	if len(rec.Material) != MaterialSize {
		return nil, fmt.Errorf("kms: key %s: material of %d bytes, want %d", etcdK, len(rec.Material), MaterialSize)
	}
	return &rec, nil
}

// get reads key name and its mod revision.
func (s *Store) get(ctx context.Context, name string) (*record, int64, error) {
	if !ValidName(name) {
		return nil, 0, fmt.Errorf("kms: key %q: %w", name, ErrNotFound)
	}
	resp, err := s.cli.Get(ctx, etcdKey(name))
	if err != nil {
		return nil, 0, fmt.Errorf("kms: read key %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("kms: key %s: %w", name, ErrNotFound)
	}
	rec, err := s.open(etcdKey(name), resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, err
	}
	return rec, resp.Kvs[0].ModRevision, nil
}

// Get returns what the store tells about key name.
func (s *Store) Get(ctx context.Context, name string) (Key, error) {
	rec, _, err := s.get(ctx, name)
	if err != nil {
		return Key{}, err
	}
	return rec.Key, nil
}

// List returns every key, sorted by name.
func (s *Store) List(ctx context.Context) ([]Key, error) {
	resp, err := s.cli.Get(ctx, keyspace.KMSKeys, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("kms: list keys: %w", err)
	}
	out := make([]Key, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rec, err := s.open(string(kv.Key), kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, rec.Key)
	}
	return out, nil
}

// SetEnabled enables or disables key name (a compare-and-swap: a concurrent change is read
// again, never overwritten). Disabling takes effect at once for new data keys and for the
// controllers' opens; coordinators that cached an opened data key keep it for at most their
// cache's bound (coordinator.KMSKeyTTL).
func (s *Store) SetEnabled(ctx context.Context, name string, enabled bool) (Key, error) {
	for range 8 {
		rec, rev, err := s.get(ctx, name)
		if err != nil {
			return Key{}, err
		}
		if rec.Enabled == enabled {
			return rec.Key, nil
		}
		rec.Enabled, rec.Changed = enabled, s.now().UTC()
		val, err := s.seal(name, rec)
		if err != nil {
			return Key{}, err
		}
		k := etcdKey(name)
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(clientv3.OpPut(k, string(val))).Commit()
		if err != nil {
			return Key{}, fmt.Errorf("kms: key %s: %w", name, err)
		}
		if resp.Succeeded {
			return rec.Key, nil
		}
	}
	return Key{}, fmt.Errorf("kms: key %s: changed by others too often; retry", name)
}

// Delete removes key name for good: every object sealed under it becomes unreadable, and no
// copy of its material is left. Only a disabled key may be deleted (ErrEnabled), so that the
// objects' loss was first seen as a disable, which can be undone.
func (s *Store) Delete(ctx context.Context, name string) error {
	rec, rev, err := s.get(ctx, name)
	if err != nil {
		return err
	}
	if rec.Enabled {
		return fmt.Errorf("kms: delete %s: %w", name, ErrEnabled)
	}
	k := etcdKey(name)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return fmt.Errorf("kms: delete %s: %w", name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("kms: delete %s: changed meanwhile; retry", name)
	}
	return nil
}

// usable returns key name's material when it exists and is enabled.
func (s *Store) usable(ctx context.Context, name string) ([]byte, error) {
	rec, _, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	if !rec.Enabled {
		return nil, fmt.Errorf("kms: key %s: %w", name, ErrDisabled)
	}
	return rec.Material, nil
}

// NewDataKey returns a fresh object data key and the same key sealed under key name's
// material, bound to name and encCtx (the request's encryption context, "" for none).
func (s *Store) NewDataKey(ctx context.Context, name, encCtx string) (plain, sealed []byte, err error) {
	material, err := s.usable(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	plain = make([]byte, secrets.DataKeySize)
	if _, err := io.ReadFull(rand.Reader, plain); err != nil {
		return nil, nil, fmt.Errorf("kms: new data key: %w", err)
	}
	sealed, err = SealDataKey(material, name, encCtx, plain)
	if err != nil {
		return nil, nil, err
	}
	return plain, sealed, nil
}

// OpenDataKey opens a data key NewDataKey sealed under key name with encCtx, if the key
// exists and is enabled.
func (s *Store) OpenDataKey(ctx context.Context, name, encCtx string, sealed []byte) ([]byte, error) {
	material, err := s.usable(ctx, name)
	if err != nil {
		return nil, err
	}
	return OpenDataKey(material, name, encCtx, sealed)
}

// dataKeyAAD binds a sealed data key to its KMS key's name and its encryption context: the
// same material would not open it for another name (a renamed or re-created record) or
// context. Both are length-prefixed, so no two pairs give the same AAD.
func dataKeyAAD(name, encCtx string) []byte {
	aad := []byte("hanode sse-kms data key")
	aad = fmt.Appendf(aad, "\x00%d:%s\x00%d:%s", len(name), name, len(encCtx), encCtx)
	return aad
}

const nonceSize = 12

// SealDataKey seals plain under material (AES-256-GCM, random nonce), bound to name and encCtx.
// The form is nonce | ciphertext+tag.
func SealDataKey(material []byte, name, encCtx string, plain []byte) ([]byte, error) {
	aead, err := gcm(material)
	if err != nil {
		return nil, fmt.Errorf("kms: seal a data key under %s: %w", name, err)
	}
	out := make([]byte, nonceSize, nonceSize+len(plain)+aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, out); err != nil {
		return nil, fmt.Errorf("kms: seal a data key under %s: %w", name, err)
	}
	return aead.Seal(out, out[:nonceSize], plain, dataKeyAAD(name, encCtx)), nil
}

// OpenDataKey opens what SealDataKey sealed with the same material, name and encCtx.
func OpenDataKey(material []byte, name, encCtx string, sealed []byte) ([]byte, error) {
	aead, err := gcm(material)
	if err != nil {
		return nil, fmt.Errorf("kms: open a data key under %s: %w", name, err)
	}
	if len(sealed) < nonceSize+aead.Overhead() {
		return nil, fmt.Errorf("kms: open a data key under %s: %d bytes: %w", name, len(sealed), ErrAuth)
	}
	plain, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], dataKeyAAD(name, encCtx))
	if err != nil {
		return nil, fmt.Errorf("kms: open a data key under %s: %w", name, ErrAuth)
	}
	if len(plain) != secrets.DataKeySize {
		return nil, fmt.Errorf("kms: open a data key under %s: %d bytes, want %d", name, len(plain), secrets.DataKeySize)
	}
	return plain, nil
}

func gcm(material []byte) (cipher.AEAD, error) {
	if len(material) != MaterialSize {
		return nil, fmt.Errorf("key material of %d bytes, want %d", len(material), MaterialSize)
	}
	block, err := aes.NewCipher(material)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
