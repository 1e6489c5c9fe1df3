// Package s3users keeps the S3 access keys: a public index entry per key (who, when, what for)
// and the secret key sealed with the cluster keyring under /hanode/secrets/, so that keyring
// rotation re-seals it with everything else. Only controllers hold the keyring; coordinators
// ask a controller for a secret (over mutual TLS) and cache it.
package s3users

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/secrets"
)

// SecretPrefix holds the sealed secret keys.
const SecretPrefix = keyspace.S3Secrets

// ErrUnknown is returned for an access key that does not exist.
var ErrUnknown = errors.New("unknown access key")

// ErrExists is returned when creating an access key that exists.
var ErrExists = errors.New("access key exists")

// User is an access key's public record.
type User struct {
	AccessKey   string    `json:"access_key"`
	Description string    `json:"description,omitempty"`
	CreatedBy   string    `json:"created_by,omitempty"`
	Created     time.Time `json:"created"`
	Root        bool      `json:"root,omitempty"`
}

var accessKeyRE = regexp.MustCompile(`^[A-Za-z0-9._-]{3,128}$`)

// ValidAccessKey reports whether s can be an access key.
func ValidAccessKey(s string) bool { return accessKeyRE.MatchString(s) }

// Store manages access keys; keyring is needed for secrets (controllers only).
type Store struct {
	cli     *clientv3.Client
	keyring *secrets.Keyring
}

// New returns a Store.
func New(cli *clientv3.Client, keyring *secrets.Keyring) *Store {
	return &Store{cli: cli, keyring: keyring}
}

// NewKeyPair returns a fresh access key (20 characters, as AWS) and secret key (40), from
// crypto/rand's unbiased base32 text.
func NewKeyPair() (string, string) {
	return "HN" + rand.Text()[:18], (rand.Text() + rand.Text())[:40]
}

// Create adds an access key. Empty accessKey or secret are generated. It returns the record and
// the secret, which is shown once.
func (s *Store) Create(ctx context.Context, u User, secret string) (User, string, error) {
	if u.AccessKey == "" {
		u.AccessKey, _ = NewKeyPair()
	}
	if secret == "" {
		_, secret = NewKeyPair()
	}
	if !ValidAccessKey(u.AccessKey) {
		return User{}, "", fmt.Errorf("access key %q: 3-128 of A-Z a-z 0-9 . _ -", u.AccessKey)
	}
	if len(secret) < 8 {
		return User{}, "", errors.New("secret key: at least 8 characters")
	}
	if u.Created.IsZero() {
		u.Created = time.Now().UTC()
	}
	sealed, err := s.keyring.Seal([]byte(secret), []byte(SecretPrefix+u.AccessKey))
	if err != nil {
		return User{}, "", fmt.Errorf("seal secret of %s: %w", u.AccessKey, err)
	}
	val, _ := json.Marshal(u)
	ik := meta.UserPrefix + u.AccessKey
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(ik), "=", 0)).
		Then(clientv3.OpPut(ik, string(val)), clientv3.OpPut(SecretPrefix+u.AccessKey, string(sealed))).Commit()
	if err != nil {
		return User{}, "", fmt.Errorf("create access key %s: %w", u.AccessKey, err)
	}
	if !resp.Succeeded {
		return User{}, "", fmt.Errorf("create access key %s: %w", u.AccessKey, ErrExists)
	}
	return u, secret, nil
}

// Ensure makes the access key exist with this secret (the root key from configuration).
func (s *Store) Ensure(ctx context.Context, u User, secret string) error {
	cur, err := s.Secret(ctx, u.AccessKey)
	if err == nil && cur == secret {
		return nil
	}
	if err == nil {
		if err := s.Remove(ctx, u.AccessKey); err != nil {
			return err
		}
	} else if !errors.Is(err, ErrUnknown) {
		return err
	}
	_, _, err = s.Create(ctx, u, secret)
	if errors.Is(err, ErrExists) { // another controller won the race with the same config
		return nil
	}
	return err
}

// List returns every access key's record.
func (s *Store) List(ctx context.Context) ([]User, error) {
	resp, err := s.cli.Get(ctx, meta.UserPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list access keys: %w", err)
	}
	out := make([]User, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var u User
		if json.Unmarshal(kv.Value, &u) == nil {
			out = append(out, u)
		}
	}
	return out, nil
}

// Remove deletes an access key; coordinators drop it from their caches through their watch.
func (s *Store) Remove(ctx context.Context, accessKey string) error {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpDelete(meta.UserPrefix+accessKey), clientv3.OpDelete(SecretPrefix+accessKey)).Commit()
	if err != nil {
		return fmt.Errorf("remove access key %s: %w", accessKey, err)
	}
	if resp.Responses[0].GetResponseDeleteRange().Deleted == 0 {
		return fmt.Errorf("access key %s: %w", accessKey, ErrUnknown)
	}
	return nil
}

// Secret returns an access key's secret.
func (s *Store) Secret(ctx context.Context, accessKey string) (string, error) {
	if !ValidAccessKey(accessKey) {
		return "", fmt.Errorf("access key %q: %w", accessKey, ErrUnknown)
	}
	val, found, err := secrets.Get(ctx, s.cli, s.keyring, SecretPrefix+accessKey)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("access key %s: %w", accessKey, ErrUnknown)
	}
	return string(val), nil
}
