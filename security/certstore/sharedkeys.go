package certstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hanode/hanode/security/secrets"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Suggested SharedKeys parameters for the proxies.
const (
	// TLS session ticket keys: crypto/tls wants 32-byte keys; rotating twice
	// a day and keeping three lets a ticket resume for a day or more.
	TicketKeySize   = 32
	TicketKeyRotate = 12 * time.Hour
	TicketKeyKeep   = 3
	// Pin-signing HMAC keys: a pin signed just before a rotation stays
	// verifiable for one more period.
	PinKeySize   = 32
	PinKeyRotate = 30 * 24 * time.Hour
	PinKeyKeep   = 2
)

// Run's retry backoff after etcd errors.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// errDeleted makes Run start over at once: the set was deleted and must be
// recreated (or adopted from whichever proxy recreates it first).
var errDeleted = errors.New("key set deleted")

// keySet is the document at a SharedKeys' etcd key, sealed with the keyring
// (aad = the etcd key, as secrets.Put does, so secrets.Reencrypt can
// re-seal it).
type keySet struct {
	Rotated time.Time `json:"rotated"` // when Keys[0] was made
	Keys    [][]byte  `json:"keys"`    // newest first
}

// SharedKeys is a list of random secret keys that every proxy of the cluster
// shares through etcd and that rotates on a schedule: the first proxy to
// find the list missing creates it, the first to find it due rotates it
// (compare-and-swap, so concurrent proxies agree and rotate once), and every
// proxy watches it.
type SharedKeys struct {
	cli     *clientv3.Client
	key     string
	keyring *secrets.Keyring
	size    int
	rotate  time.Duration
	keep    int

	mu       sync.Mutex
	log      *slog.Logger
	onChange func(keys [][]byte)
	last     [][]byte // what onChange was last given
}

// NewSharedKeys describes the key set stored (sealed with keyring) at etcd
// key: keys of size random bytes, a new one every rotate, the newest keep
// kept. Run maintains it.
func NewSharedKeys(cli *clientv3.Client, key string, keyring *secrets.Keyring, size int, rotate time.Duration, keep int) *SharedKeys {
	return &SharedKeys{cli: cli, key: key, keyring: keyring, size: size, rotate: rotate, keep: keep, log: slog.Default()}
}

// WithLogger sets the logger Run reports retried errors to and returns k.
func (k *SharedKeys) WithLogger(l *slog.Logger) *SharedKeys {
	k.mu.Lock()
	k.log = l
	k.mu.Unlock()
	return k
}

// OnChange sets the function Run calls with the current keys (newest first)
// when it first reads them and whenever they change. Calls are sequential
// and get their own copy. Set it before Run.
func (k *SharedKeys) OnChange(fn func(keys [][]byte)) {
	k.mu.Lock()
	k.onChange = fn
	k.mu.Unlock()
}

func (k *SharedKeys) check() error {
	switch {
	case k.cli == nil:
		return errors.New("nil etcd client")
	case k.key == "":
		return errors.New("empty etcd key")
	case k.keyring == nil:
		return errors.New("no keyring: shared keys are never stored unsealed")
	case k.size < 16:
		return fmt.Errorf("key size %d is below 16 bytes", k.size)
	case k.rotate <= 0:
		return fmt.Errorf("rotation period %v is not positive", k.rotate)
	case k.keep < 1:
		return fmt.Errorf("keep %d is below 1", k.keep)
	}
	return nil
}

// Current returns the keys, newest first, creating the set if it is absent.
func (k *SharedKeys) Current(ctx context.Context) ([][]byte, error) {
	if err := k.check(); err != nil {
		return nil, fmt.Errorf("certstore: shared keys %s: %w", k.key, err)
	}
	set, _, _, err := k.ensure(ctx)
	if err != nil {
		return nil, err
	}
	return cloneKeys(set.Keys), nil
}

// Run keeps the set alive until ctx is done: it creates it if absent,
// rotates it when due and calls OnChange as it changes. etcd errors are
// logged and retried; it returns ctx's error, or a configuration error.
func (k *SharedKeys) Run(ctx context.Context) error {
	if err := k.check(); err != nil {
		return fmt.Errorf("certstore: shared keys %s: %w", k.key, err)
	}
	backoff := minBackoff
	for {
		err := k.runOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errDeleted) {
			backoff = minBackoff
			continue
		}
		k.mu.Lock()
		log := k.log
		k.mu.Unlock()
		log.Warn("certstore: shared keys: retrying", "key", k.key, "in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (k *SharedKeys) runOnce(ctx context.Context) error {
	set, modRev, rev, err := k.ensure(ctx)
	if err != nil {
		return err
	}
	k.deliver(set.Keys)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// From rev+1: nothing committed after our read is missed.
	wch := k.cli.Watch(wctx, k.key, clientv3.WithRev(rev+1))
	timer := time.NewTimer(k.untilDue(set, time.Now()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch %s: %w", k.key, err)
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return errDeleted
				}
				s, err := k.open(ev.Kv.Value)
				if err != nil {
					return err
				}
				set, modRev = s, ev.Kv.ModRevision
			}
			k.deliver(set.Keys)
		case <-timer.C:
			s, mr, _, err := k.rotateIfDue(ctx, time.Now(), set, modRev)
			if err != nil {
				return err
			}
			// The watch delivers it too; deliver dedupes.
			set, modRev = s, mr
			k.deliver(set.Keys)
		}
		timer.Reset(k.untilDue(set, time.Now()))
	}
}

// untilDue is the time left before set should rotate, within [0, rotate]
// so that a peer's clock far ahead cannot postpone rotation indefinitely.
func (k *SharedKeys) untilDue(set keySet, now time.Time) time.Duration {
	return min(max(set.Rotated.Add(k.rotate).Sub(now), 0), k.rotate)
}

func (k *SharedKeys) newKey() ([]byte, error) {
	b := make([]byte, k.size)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("certstore: shared keys %s: generate key: %w", k.key, err)
	}
	return b, nil
}

func (k *SharedKeys) seal(set keySet) (string, error) {
	doc, err := json.Marshal(set)
	if err != nil {
		return "", err
	}
	sealed, err := k.keyring.Seal(doc, []byte(k.key))
	if err != nil {
		return "", fmt.Errorf("certstore: shared keys %s: %w", k.key, err)
	}
	return string(sealed), nil
}

func (k *SharedKeys) open(raw []byte) (keySet, error) {
	doc, err := k.keyring.Open(raw, []byte(k.key))
	if err != nil {
		return keySet{}, fmt.Errorf("certstore: shared keys %s: %w", k.key, err)
	}
	var set keySet
	if err := json.Unmarshal(doc, &set); err != nil {
		return keySet{}, fmt.Errorf("certstore: shared keys %s: decode: %w", k.key, err)
	}
	if len(set.Keys) == 0 {
		return keySet{}, fmt.Errorf("certstore: shared keys %s: stored set is empty", k.key)
	}
	return set, nil
}

// ensure reads the set, creating it if absent. It returns the set, its mod
// revision and the revision the read was made at. A value it cannot open is
// an error and is never overwritten: peers with a newer keyring may use it.
func (k *SharedKeys) ensure(ctx context.Context) (keySet, int64, int64, error) {
	resp, err := k.cli.Get(ctx, k.key)
	if err != nil {
		return keySet{}, 0, 0, fmt.Errorf("certstore: shared keys %s: read: %w", k.key, err)
	}
	if len(resp.Kvs) > 0 {
		set, err := k.open(resp.Kvs[0].Value)
		return set, resp.Kvs[0].ModRevision, resp.Header.Revision, err
	}
	first, err := k.newKey()
	if err != nil {
		return keySet{}, 0, 0, err
	}
	set := keySet{Rotated: time.Now(), Keys: [][]byte{first}}
	val, err := k.seal(set)
	if err != nil {
		return keySet{}, 0, 0, err
	}
	// Create only if still absent, so concurrent proxies end up with the
	// same set: the losers read the winner's.
	tresp, err := k.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k.key), "=", 0)).
		Then(clientv3.OpPut(k.key, val)).
		Else(clientv3.OpGet(k.key)).
		Commit()
	if err != nil {
		return keySet{}, 0, 0, fmt.Errorf("certstore: shared keys %s: create: %w", k.key, err)
	}
	if tresp.Succeeded {
		return set, tresp.Header.Revision, tresp.Header.Revision, nil
	}
	kvs := tresp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return keySet{}, 0, 0, fmt.Errorf("certstore: shared keys %s: created and deleted concurrently", k.key)
	}
	set, err = k.open(kvs[0].Value)
	return set, kvs[0].ModRevision, tresp.Header.Revision, err
}

// rotateIfDue adds a new key in front of set (stored at modRev) if set is
// due at now, as a compare-and-swap on modRev; when another proxy changed
// the set first it decides again on what that proxy wrote, so a period sees
// one rotation however many proxies try. rotated reports whether this call
// wrote.
func (k *SharedKeys) rotateIfDue(ctx context.Context, now time.Time, set keySet, modRev int64) (_ keySet, _ int64, rotated bool, _ error) {
	for {
		if now.Before(set.Rotated.Add(k.rotate)) {
			return set, modRev, false, nil
		}
		fresh, err := k.newKey()
		if err != nil {
			return set, modRev, false, err
		}
		next := keySet{Rotated: now, Keys: append([][]byte{fresh}, set.Keys...)}
		next.Keys = next.Keys[:min(len(next.Keys), k.keep)]
		val, err := k.seal(next)
		if err != nil {
			return set, modRev, false, err
		}
		resp, err := k.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(k.key), "=", modRev)).
			Then(clientv3.OpPut(k.key, val)).
			Else(clientv3.OpGet(k.key)).
			Commit()
		if err != nil {
			return set, modRev, false, fmt.Errorf("certstore: shared keys %s: rotate: %w", k.key, err)
		}
		if resp.Succeeded {
			return next, resp.Header.Revision, true, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return set, modRev, false, fmt.Errorf("certstore: shared keys %s: deleted during rotation", k.key)
		}
		if set, err = k.open(kvs[0].Value); err != nil {
			return set, modRev, false, err
		}
		modRev = kvs[0].ModRevision
	}
}

// deliver calls onChange with keys unless they are what it last got (a
// re-seal by secrets.Reencrypt, or our own write seen again by the watch).
func (k *SharedKeys) deliver(keys [][]byte) {
	k.mu.Lock()
	fn := k.onChange
	same := slices.EqualFunc(k.last, keys, bytes.Equal)
	if !same {
		k.last = cloneKeys(keys)
	}
	k.mu.Unlock()
	if fn != nil && !same {
		fn(cloneKeys(keys))
	}
}

func cloneKeys(keys [][]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i, key := range keys {
		out[i] = slices.Clone(key)
	}
	return out
}

// SessionTicketKeys converts keys (32 bytes each, as made with TicketKeySize)
// for tls.Config.SetSessionTicketKeys, which encrypts with the first and
// decrypts with all. Keys of another size are skipped.
func SessionTicketKeys(keys [][]byte) [][32]byte {
	out := make([][32]byte, 0, len(keys))
	for _, key := range keys {
		if len(key) == 32 {
			out = append(out, [32]byte(key))
		}
	}
	return out
}
