package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3/sigv4"
)

// keyCache caches access keys' secrets so that a signed request costs no round trip to a
// controller. A watch on the public index of keys evicts an entry the moment its key is
// removed or replaced, so revocation is immediate; unknown keys are remembered briefly so a
// flood of bad keys cannot turn into a flood of controller calls.
type keyCache struct {
	cli     *clientv3.Client
	lookup0 sigv4.Lookup
	log     *slog.Logger

	mu      sync.Mutex
	entries map[string]keyEntry
}

type keyEntry struct {
	secret  string
	err     error
	expires time.Time
}

const (
	keyTTL     = 10 * time.Minute
	unknownTTL = 2 * time.Second
	maxKeys    = 100000
)

func newKeyCache(cli *clientv3.Client, lookup sigv4.Lookup, log *slog.Logger) *keyCache {
	return &keyCache{cli: cli, lookup0: lookup, log: log, entries: map[string]keyEntry{}}
}

func (k *keyCache) lookup(ctx context.Context, accessKey string) (string, error) {
	now := time.Now()
	k.mu.Lock()
	e, ok := k.entries[accessKey]
	k.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.secret, e.err
	}
	secret, err := k.lookup0(ctx, accessKey)
	switch {
	case err == nil:
		e = keyEntry{secret: secret, expires: now.Add(keyTTL)}
	case errors.Is(err, sigv4.ErrUnknownAccessKey):
		e = keyEntry{err: err, expires: now.Add(unknownTTL)}
	default:
		return "", err // controllers unreachable: not cached, the next request tries again
	}
	k.mu.Lock()
	if len(k.entries) >= maxKeys {
		clear(k.entries)
	}
	k.entries[accessKey] = e
	k.mu.Unlock()
	return e.secret, e.err
}

// run evicts changed keys until ctx ends.
func (k *keyCache) run(ctx context.Context) {
	for ctx.Err() == nil {
		wch := k.cli.Watch(clientv3.WithRequireLeader(ctx), meta.UserPrefix, clientv3.WithPrefix())
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			k.mu.Lock()
			for _, ev := range resp.Events {
				delete(k.entries, strings.TrimPrefix(string(ev.Kv.Key), meta.UserPrefix))
			}
			k.mu.Unlock()
		}
		// The watch broke: forget everything rather than miss a revocation.
		k.mu.Lock()
		clear(k.entries)
		k.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
