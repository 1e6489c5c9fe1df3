package coordinator

import (
	"context"
	"errors"
	"fmt"
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
			for ctx.Err() == nil {
				if err := a.follow(ctx, p); err != nil && ctx.Err() == nil {
					a.log.Warn("bucket access watch broke; starting again", "prefix", p, "err", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	wg.Wait()
}

// follow forgets every entry, watches prefix from the current revision and evicts the bucket
// of every change, until the watch breaks.
func (a *authzCache) follow(ctx context.Context, prefix string) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := a.cli.Get(gctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return fmt.Errorf("read the revision of %s: %w", prefix, err)
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	ch := a.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	a.mu.Lock()
	clear(a.entries)
	a.gen++
	a.ready[prefix] = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.ready, prefix)
		clear(a.entries)
		a.gen++
		a.mu.Unlock()
	}()
	for resp := range ch {
		if err := resp.Err(); err != nil {
			return err
		}
		a.mu.Lock()
		for _, ev := range resp.Events {
			k := string(ev.Kv.Key)
			if prefix == meta.BucketPrefix {
				delete(a.entries, strings.TrimPrefix(k, prefix))
			} else {
				delete(a.entries, s3access.BucketOfKey(k))
			}
		}
		a.gen++
		a.mu.Unlock()
	}
	return errors.New("the watch channel closed")
}

// forget drops name's entry: this coordinator changed what decides access to it, and its
// next request must not wait for the watch to say so.
func (a *authzCache) forget(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.entries, name)
	a.gen++
}
