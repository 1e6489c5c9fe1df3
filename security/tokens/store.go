package tokens

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hanode/hanode/internal/keyspace"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultPrefix is the etcd prefix under which NewStore keeps records, one
// key per token id.
const DefaultPrefix = keyspace.Tokens

// Record is a join token as stored in etcd: the secret only as a hash.
type Record struct {
	ID          string    `json:"id"`
	SecretHash  string    `json:"secret_hash"` // hex sha256 of the secret (HashSecret)
	Roles       []string  `json:"roles"`       // roles a machine joining with it may get; empty = any
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires,omitzero"` // zero = never
	MaxUses     int       `json:"max_uses"`         // 0 = unlimited
	Uses        int       `json:"uses"`
	Revoked     bool      `json:"revoked"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// Redeem and Revoke errors. Redeem checks the secret before anything else, so
// only a holder of the secret learns whether a token is revoked, expired or
// used up.
var (
	ErrUnknown        = errors.New("unknown join token")
	ErrRevoked        = errors.New("join token revoked")
	ErrExpired        = errors.New("join token expired")
	ErrUsedUp         = errors.New("join token has no uses left")
	ErrBadSecret      = errors.New("join token secret does not match")
	ErrRoleNotAllowed = errors.New("role not allowed by join token")
	ErrExists         = errors.New("join token id already exists")
)

// Store keeps Records in etcd.
type Store struct {
	cli    *clientv3.Client
	prefix string
}

// NewStore returns a Store under DefaultPrefix.
func NewStore(cli *clientv3.Client) *Store {
	return &Store{cli: cli, prefix: DefaultPrefix}
}

func (s *Store) key(id string) string { return s.prefix + id }

func (rec Record) validate() error {
	if !ValidID(rec.ID) {
		return fmt.Errorf("invalid id %q (want %d of [a-z0-9])", rec.ID, idLen)
	}
	if len(rec.SecretHash) != hashLen || !isLowerHex(rec.SecretHash) {
		return errors.New("secret_hash must be a lower-case hex sha256 (use HashSecret)")
	}
	if rec.MaxUses < 0 || rec.Uses < 0 {
		return fmt.Errorf("negative max_uses %d or uses %d", rec.MaxUses, rec.Uses)
	}
	return nil
}

// Create stores rec, refusing an id that already exists (ErrExists). A zero
// Created is set to the current time.
func (s *Store) Create(ctx context.Context, rec Record) error {
	if err := rec.validate(); err != nil {
		return fmt.Errorf("tokens: create: %w", err)
	}
	if rec.Created.IsZero() {
		rec.Created = time.Now().UTC()
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("tokens: create %s: %w", rec.ID, err)
	}
	key := s.key(rec.ID)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		return fmt.Errorf("tokens: create %s: %w", rec.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("tokens: create %s: %w", rec.ID, ErrExists)
	}
	return nil
}

func decode(key, val []byte) (Record, error) {
	var rec Record
	if err := json.Unmarshal(val, &rec); err != nil {
		return Record{}, fmt.Errorf("tokens: decode record %s: %w", key, err)
	}
	return rec, nil
}

// List returns every record, oldest first (ties by id).
func (s *Store) List(ctx context.Context) ([]Record, error) {
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("tokens: list %s: %w", s.prefix, err)
	}
	recs := make([]Record, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rec, err := decode(kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b Record) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return recs, nil
}

// update applies fn to the current record of id and writes the result with a
// compare-and-swap on the key's mod revision, re-reading and re-applying on
// conflict. fn's checks and the write are thus one atomic step. fn returning
// an error aborts without writing.
func (s *Store) update(ctx context.Context, id string, fn func(*Record) error) (Record, error) {
	if !ValidID(id) {
		return Record{}, ErrUnknown // not a token id, so no such token
	}
	key := s.key(id)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return Record{}, err
	}
	kvs := resp.Kvs
	for {
		if len(kvs) == 0 {
			return Record{}, ErrUnknown
		}
		rec, err := decode(kvs[0].Key, kvs[0].Value)
		if err != nil {
			return Record{}, err
		}
		if err := fn(&rec); err != nil {
			return Record{}, err
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return Record{}, err
		}
		// Else returns the fresh value so a conflict costs one round trip.
		tr, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
			Then(clientv3.OpPut(key, string(val))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return Record{}, err
		}
		if tr.Succeeded {
			return rec, nil
		}
		kvs = tr.Responses[0].GetResponseRange().Kvs
	}
}

// Revoke marks token id revoked (ErrUnknown if absent). Revoking a revoked
// token succeeds.
func (s *Store) Revoke(ctx context.Context, id string) error {
	_, err := s.update(ctx, id, func(rec *Record) error {
		rec.Revoked = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("tokens: revoke %q: %w", id, err)
	}
	return nil
}

// Redeem spends one use of token id for a machine asking for roles: it checks
// the secret (constant time), then revocation, expiry against now, remaining
// uses and that every requested role is allowed, and increments Uses. The
// checks and the increment are one compare-and-swap, so concurrent redeems of
// a 1-use token let exactly one through. It returns the updated record.
func (s *Store) Redeem(ctx context.Context, id, secret string, roles []string, now time.Time) (Record, error) {
	return s.RedeemIf(ctx, id, secret, roles, now, nil)
}

// RedeemIf is Redeem that also runs check, if not nil, once the token passed its checks and
// before its use is counted: an error from check refuses the redemption (returned wrapped) and
// leaves the token unused, and only a caller with a valid token learns it.
func (s *Store) RedeemIf(ctx context.Context, id, secret string, roles []string, now time.Time, check func() error) (Record, error) {
	got := HashSecret(secret)
	rec, err := s.update(ctx, id, func(rec *Record) error {
		if subtle.ConstantTimeCompare([]byte(got), []byte(rec.SecretHash)) != 1 {
			return ErrBadSecret
		}
		if rec.Revoked {
			return ErrRevoked
		}
		if !rec.Expires.IsZero() && !now.Before(rec.Expires) {
			return fmt.Errorf("%w at %s", ErrExpired, rec.Expires.UTC().Format(time.RFC3339))
		}
		if rec.MaxUses > 0 && rec.Uses >= rec.MaxUses {
			return fmt.Errorf("%w (%d of %d used)", ErrUsedUp, rec.Uses, rec.MaxUses)
		}
		if len(rec.Roles) > 0 {
			for _, r := range roles {
				if !slices.Contains(rec.Roles, r) {
					return fmt.Errorf("%w: %q (allowed: %v)", ErrRoleNotAllowed, r, rec.Roles)
				}
			}
		}
		if check != nil {
			if err := check(); err != nil {
				return err
			}
		}
		rec.Uses++
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("tokens: redeem %q: %w", id, err)
	}
	return rec, nil
}
