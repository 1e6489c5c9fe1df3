package coordinator

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/s3access"
)

// authzCache caches, per bucket, everything that decides who may use it (owner, grants,
// policy; s3access.Bucket), so that authorizing a request costs no etcd read. Two watches —
// the bucket records and keyspace.S3Access — evict a bucket's entry the moment any of it
// changes, so a revoked grant stops working at once. When a watch breaks, every entry is
// forgotten and the watch starts again from the current revision; while a watch is not
// established nothing is remembered (every request reads etcd). Entries also expire after
// authzTTL, and the cache holds at most maxAuthz buckets (past that it starts again empty).
type authzCache struct {
	store *s3access.Store
	cli   *clientv3.Client
	log   *slog.Logger

	mu      sync.Mutex
	entries map[string]authzEntry
	ready   map[string]bool // per watched prefix: established
	gen     uint64          // bumped by every change and every (re)start of a watch
}

type authzEntry struct {
	b       s3access.Bucket
	expires time.Time
}

const (
	authzTTL = 5 * time.Minute
	maxAuthz = 10000
)

var authzPrefixes = []string{meta.BucketPrefix, keyspace.S3Access}

func newAuthzCache(cli *clientv3.Client, log *slog.Logger) *authzCache {
	return &authzCache{store: s3access.New(cli), cli: cli, log: log, entries: map[string]authzEntry{}, ready: map[string]bool{}}
}

// cached reports whether name's entry is cached.
func (a *authzCache) cached(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[name]
	return ok && time.Now().Before(e.expires)
}

// bucket returns what decides access to name.
func (a *authzCache) bucket(ctx context.Context, name string) (s3access.Bucket, error) {
	now := time.Now()
	a.mu.Lock()
	if e, ok := a.entries[name]; ok && now.Before(e.expires) {
		a.mu.Unlock()
		return e.b, nil
	}
	gen, watched := a.gen, len(a.ready) == len(authzPrefixes)
	a.mu.Unlock()
	b, _, err := a.store.Load(ctx, name)
	if err != nil {
		return s3access.Bucket{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if watched && a.gen == gen {
		if len(a.entries) >= maxAuthz {
			clear(a.entries)
		}
		a.entries[name] = authzEntry{b: b, expires: now.Add(authzTTL)}
	}
	return b, nil
}

func (a *authzCache) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range authzPrefixes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			followPrefix(ctx, a.cli, a.log, "bucket access", p, evictWatch{
				started: func() { a.reset(p, true) },
				stopped: func() { a.reset(p, false) },
				changed: func(keys []string) {
					a.mu.Lock()
					defer a.mu.Unlock()
					for _, k := range keys {
						if p == meta.BucketPrefix {
							delete(a.entries, strings.TrimPrefix(k, p))
						} else {
							delete(a.entries, s3access.BucketOfKey(k))
						}
					}
					a.gen++
				},
			})
		}()
	}
	wg.Wait()
}

// reset forgets every entry as prefix's watch starts (ready) or breaks.
func (a *authzCache) reset(prefix string, ready bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.entries)
	a.gen++
	if ready {
		a.ready[prefix] = true
	} else {
		delete(a.ready, prefix)
	}
}

// forget drops name's entry: this coordinator changed what decides access to it, and its
// next request must not wait for the watch to say so.
func (a *authzCache) forget(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.entries, name)
	a.gen++
}
