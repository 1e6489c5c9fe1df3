package access

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hanode/hanode/internal/keyspace"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// CredentialPrefix is where bearer credentials are kept in etcd, by id, secrets hashed.
const CredentialPrefix = keyspace.Credentials

// Credential is a stored bearer credential.
type Credential struct {
	ID          string    `json:"id"`
	SecretHash  string    `json:"secret_hash"`
	Level       string    `json:"level"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// Errors of credential checks. They are not told apart to the caller (all 401), only in logs.
var (
	ErrUnknownCredential = errors.New("unknown credential")
	ErrBadCredential     = errors.New("wrong credential secret")
)

var credRE = regexp.MustCompile(`^hnc_([a-z0-9]{8})\.([a-z0-9]{32})$`)

// ParseCredential splits "hnc_<id>.<secret>"; errors never echo the secret.
func ParseCredential(s string) (id, secret string, err error) {
	m := credRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", "", errors.New("malformed credential: want hnc_<8 chars>.<32 chars>")
	}
	return m[1], m[2], nil
}

const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b), nil
}

// Credentials is the etcd store of bearer credentials; it implements Verifier.
type Credentials struct{ cli *clientv3.Client }

// NewCredentials returns the store.
func NewCredentials(cli *clientv3.Client) *Credentials { return &Credentials{cli: cli} }

// Create makes a credential at level and returns it with its one-time-visible secret string.
func (c *Credentials) Create(ctx context.Context, level, description, createdBy string) (Credential, string, error) {
	if !ValidLevel(level) {
		return Credential{}, "", fmt.Errorf("level %q: allowed: %s", level, strings.Join(Levels, ", "))
	}
	id, err := randomString(8)
	if err != nil {
		return Credential{}, "", err
	}
	secret, err := randomString(32)
	if err != nil {
		return Credential{}, "", err
	}
	cred := Credential{ID: id, SecretHash: HashSecret(secret), Level: level, Description: description, Created: time.Now().UTC(), CreatedBy: createdBy}
	val, _ := json.Marshal(cred)
	key := CredentialPrefix + id
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return Credential{}, "", fmt.Errorf("store credential %s: %w", id, err)
	}
	if !resp.Succeeded {
		return Credential{}, "", fmt.Errorf("credential id %s already exists; try again", id)
	}
	return cred, "hnc_" + id + "." + secret, nil
}

// Verify implements Verifier.
func (c *Credentials) Verify(ctx context.Context, id, secret string) (string, error) {
	resp, err := c.cli.Get(ctx, CredentialPrefix+id)
	if err != nil {
		return "", fmt.Errorf("look up credential %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return "", ErrUnknownCredential
	}
	var cred Credential
	if err := json.Unmarshal(resp.Kvs[0].Value, &cred); err != nil {
		return "", fmt.Errorf("decode credential %s: %w", id, err)
	}
	if !SecretMatches(secret, cred.SecretHash) {
		return "", ErrBadCredential
	}
	return cred.Level, nil
}

// List returns every credential (hashes included, never secrets), oldest first.
func (c *Credentials) List(ctx context.Context) ([]Credential, error) {
	resp, err := c.cli.Get(ctx, CredentialPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	out := make([]Credential, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var cred Credential
		if err := json.Unmarshal(kv.Value, &cred); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, cred)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Revoke deletes a credential.
func (c *Credentials) Revoke(ctx context.Context, id string) error {
	resp, err := c.cli.Delete(ctx, CredentialPrefix+id)
	if err != nil {
		return fmt.Errorf("revoke credential %s: %w", id, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("credential %s: %w", id, ErrUnknownCredential)
	}
	return nil
}
