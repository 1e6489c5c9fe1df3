package coordinator

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
)

// configCache caches buckets' configurations (meta.BucketConfig: versioning, object lock,
// lifecycle) for what reads of objects answer from them — the x-amz-expiration header — so
// that a GET or HEAD costs no extra etcd read. A watch of meta.ConfigPrefix evicts a bucket's
// entry the moment its configuration changes (a deleted bucket's configuration goes with it);
// when the watch breaks every entry is forgotten, and while it is not established nothing is
// remembered (every request reads etcd). Entries also expire after configTTL, and the cache
// holds at most maxConfigs buckets (past that it starts again empty).
type configCache struct {
	store *meta.Store
	cli   *clientv3.Client
	log   *slog.Logger

	mu      sync.Mutex
	entries map[string]configEntry
	watched bool
	gen     uint64 // bumped by every change and every (re)start of the watch
}

type configEntry struct {
	cfg     *meta.BucketConfig
	expires time.Time
}

const (
	configTTL  = 5 * time.Minute
	maxConfigs = 10000
)

func newConfigCache(cli *clientv3.Client, store *meta.Store, log *slog.Logger) *configCache {
	return &configCache{store: store, cli: cli, log: log, entries: map[string]configEntry{}}
}

// get returns bucket's configuration; callers must not change it.
func (cc *configCache) get(ctx context.Context, bucket string) (*meta.BucketConfig, error) {
	now := time.Now()
	cc.mu.Lock()
	if e, ok := cc.entries[bucket]; ok && now.Before(e.expires) {
		cc.mu.Unlock()
		return e.cfg, nil
	}
	gen, watched := cc.gen, cc.watched
	cc.mu.Unlock()
	cfg, err := cc.store.GetBucketConfig(ctx, bucket)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if watched && cc.gen == gen {
		if len(cc.entries) >= maxConfigs {
			clear(cc.entries)
		}
		cc.entries[bucket] = configEntry{cfg: cfg, expires: now.Add(configTTL)}
	}
	return cfg, nil
}

// forget drops bucket's entry: this coordinator changed its configuration, and its next
// request must not wait for the watch to say so.
func (cc *configCache) forget(bucket string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	delete(cc.entries, bucket)
	cc.gen++
}

func (cc *configCache) run(ctx context.Context) {
	followPrefix(ctx, cc.cli, cc.log, "bucket configuration", meta.ConfigPrefix, evictWatch{
		started: func() { cc.reset(true) },
		stopped: func() { cc.reset(false) },
		changed: func(keys []string) {
			cc.mu.Lock()
			defer cc.mu.Unlock()
			for _, k := range keys {
				delete(cc.entries, strings.TrimPrefix(k, meta.ConfigPrefix))
			}
			cc.gen++
		},
	})
}

// reset forgets every entry as the watch starts (watched) or breaks.
func (cc *configCache) reset(watched bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	clear(cc.entries)
	cc.gen++
	cc.watched = watched
}
