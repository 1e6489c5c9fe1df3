package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/ratelimit"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3/sigv4"
	"github.com/hanode/hanode/security/s3users"
)

// keyCache caches access keys' secrets so that a signed request costs no round trip to a
// controller. A watch on the public index of keys (meta.UserPrefix, one record per key, written
// and deleted in the same transaction as its sealed secret) evicts an entry the moment its key
// is created, removed or replaced, so revocation is immediate; after a watch failure it resumes
// from the last revision it saw, so no change is missed and nothing is reloaded (only when etcd
// has compacted that revision away is everything forgotten).
//
// A key that is not in the index is unknown without asking a controller: the index is read in
// etcd (one read, no TLS connection, no keyring), and the answer is remembered for unknownTTL in
// a bounded negative cache. So a flood of requests with bad keys costs no controller call at
// all, and one etcd read per distinct key and unknownTTL; concurrent misses of the same key
// share one lookup, at most maxLookups lookups run at once, and one client address may start
// at most missRate a second (beyond missBurst; then SlowDown).
type keyCache struct {
	cli     *clientv3.Client
	watcher clientv3.Watcher
	lookup0 sigv4.Lookup
	log     *slog.Logger
	slots   chan struct{} // bounds the lookups running at once
	limit   *ratelimit.PerSource

	mu      sync.Mutex
	known   map[string]keyEntry  // secrets
	unknown map[string]time.Time // keys not in the index, until when
	roots   map[string]bool      // whether a key's index record says root (isRoot)
	flights map[string]*flight   // lookups under way
	rev     int64                // the watch has delivered every change up to rev; 0: not started
	gen     uint64               // bumped by every change the watch delivers
}

type keyEntry struct {
	secret  string
	expires time.Time
}

// flight is one lookup that concurrent requests for the same key wait for.
type flight struct {
	done   chan struct{}
	secret string
	err    error
}

const (
	keyTTL        = 10 * time.Minute
	unknownTTL    = 5 * time.Second
	maxKeys       = 100000
	maxUnknown    = 10000
	maxLookups    = 16
	lookupTimeout = 10 * time.Second
)

func newKeyCache(cli *clientv3.Client, lookup sigv4.Lookup, log *slog.Logger) *keyCache {
	return &keyCache{cli: cli, watcher: cli, lookup0: lookup, log: log, slots: make(chan struct{}, maxLookups),
		known: map[string]keyEntry{}, unknown: map[string]time.Time{}, roots: map[string]bool{}, flights: map[string]*flight{}}
}

func (k *keyCache) lookup(ctx context.Context, accessKey string) (string, error) {
	if !s3users.ValidAccessKey(accessKey) {
		return "", fmt.Errorf("access key %q: %w", accessKey, sigv4.ErrUnknownAccessKey)
	}
	now := time.Now()
	k.mu.Lock()
	if e, ok := k.known[accessKey]; ok && now.Before(e.expires) {
		k.mu.Unlock()
		return e.secret, nil
	}
	if until, ok := k.unknown[accessKey]; ok && now.Before(until) {
		k.mu.Unlock()
		return "", fmt.Errorf("access key %s: %w", accessKey, sigv4.ErrUnknownAccessKey)
	}
	f, waiting := k.flights[accessKey]
	if !waiting && !missAllowed(k.limit, ctx) {
		k.mu.Unlock()
		return "", errSlowDown()
	}
	if !waiting {
		f = &flight{done: make(chan struct{})}
		k.flights[accessKey] = f
		// The lookup is the flight's, not this request's: another request may wait for it.
		go k.fly(context.WithoutCancel(ctx), accessKey, f)
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.secret, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// fly looks accessKey up: in etcd's index first, at a controller only if it is there. It
// remembers the answer unless the watch saw a change meanwhile (the answer may predate it) or
// has not started yet (a change could be missed).
func (k *keyCache) fly(ctx context.Context, accessKey string, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	defer func() {
		k.mu.Lock()
		delete(k.flights, accessKey)
		k.mu.Unlock()
		close(f.done)
	}()
	select {
	case k.slots <- struct{}{}:
		defer func() { <-k.slots }()
	case <-ctx.Done():
		f.err = fmt.Errorf("look up access key %s: %w", accessKey, ctx.Err())
		return
	}
	k.mu.Lock()
	gen, watched := k.gen, k.rev > 0
	k.mu.Unlock()
	resp, err := k.cli.Get(ctx, meta.UserPrefix+accessKey, clientv3.WithCountOnly())
	if err != nil {
		f.err = fmt.Errorf("look up access key %s in etcd: %w", accessKey, err)
		return // etcd unreachable: not cached, the next request tries again
	}
	if resp.Count == 0 {
		f.err = fmt.Errorf("access key %s: %w", accessKey, sigv4.ErrUnknownAccessKey)
	} else {
		f.secret, f.err = k.lookup0(ctx, accessKey)
		if f.err != nil && !errors.Is(f.err, sigv4.ErrUnknownAccessKey) {
			return // controllers unreachable: not cached
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !watched || k.gen != gen {
		return
	}
	now := time.Now()
	if f.err != nil {
		if len(k.unknown) >= maxUnknown {
			shrink(k.unknown, now)
		}
		k.unknown[accessKey] = now.Add(unknownTTL)
		return
	}
	if len(k.known) >= maxKeys {
		clear(k.known) // more keys than the bound: start again rather than grow
	}
	k.known[accessKey] = keyEntry{secret: f.secret, expires: now.Add(keyTTL)}
}

// isRoot reports whether accessKey is a root user (its index record says so), remembered
// until the watch sees the record change.
func (k *keyCache) isRoot(ctx context.Context, accessKey string) (bool, error) {
	k.mu.Lock()
	root, ok := k.roots[accessKey]
	gen, watched := k.gen, k.rev > 0
	k.mu.Unlock()
	if ok {
		return root, nil
	}
	resp, err := k.cli.Get(ctx, meta.UserPrefix+accessKey)
	if err != nil {
		return false, fmt.Errorf("read access key %s: %w", accessKey, err)
	}
	if len(resp.Kvs) == 1 {
		var u s3users.User
		if err := json.Unmarshal(resp.Kvs[0].Value, &u); err != nil {
			return false, fmt.Errorf("access key %s: %w: %v", accessKey, meta.ErrCorrupt, err)
		}
		root = u.Root
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if watched && k.gen == gen {
		if len(k.roots) >= maxKeys {
			clear(k.roots)
		}
		k.roots[accessKey] = root
	}
	return root, nil
}

// shrink drops the expired entries of a full negative cache and, if it is still full, a tenth
// of it (Go's map order: arbitrary ones).
func shrink(m map[string]time.Time, now time.Time) {
	for key, until := range m {
		if !now.Before(until) {
			delete(m, key)
		}
	}
	for key := range m {
		if len(m) < maxUnknown*9/10 {
			break
		}
		delete(m, key)
	}
}

// run follows the index of keys until ctx ends, evicting what changes.
func (k *keyCache) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := k.follow(ctx); err != nil && ctx.Err() == nil {
			k.log.Warn("access key watch broke; resuming", "from_revision", k.revision()+1, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (k *keyCache) revision() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rev
}

// follow watches the index from the revision after the last one seen (from now, forgetting
// every entry, the first time or when that revision was compacted) until the watch breaks.
func (k *keyCache) follow(ctx context.Context) error {
	rev := k.revision()
	if rev == 0 {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := k.cli.Get(gctx, meta.UserPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err != nil {
			return fmt.Errorf("read the revision of the access keys: %w", err)
		}
		rev = resp.Header.Revision
		k.mu.Lock()
		clear(k.known)
		clear(k.unknown)
		clear(k.roots)
		k.gen++
		k.rev = rev
		k.mu.Unlock()
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range k.watcher.Watch(wctx, meta.UserPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify()) {
		if resp.CompactRevision != 0 {
			k.mu.Lock()
			k.rev = 0 // the changes since rev are gone: start again from now
			k.mu.Unlock()
			return fmt.Errorf("revision %d was compacted (now %d)", rev+1, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return err
		}
		k.mu.Lock()
		for _, ev := range resp.Events {
			key := strings.TrimPrefix(string(ev.Kv.Key), meta.UserPrefix)
			delete(k.known, key)
			delete(k.unknown, key)
			delete(k.roots, key)
			k.rev = ev.Kv.ModRevision
		}
		if len(resp.Events) > 0 {
			k.gen++
		}
		if resp.IsProgressNotify() {
			k.rev = max(k.rev, resp.Header.Revision)
		}
		rev = k.rev
		k.mu.Unlock()
	}
	return errors.New("the watch channel closed")
}
