package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// evictWatch is what a cache of etcd records needs from a watch of their prefix: started runs
// once the watch is established (from the revision current then: the cache may remember from
// now on), changed with the keys of each batch of changes (evict them), stopped once the watch
// has broken (forget everything: changes may be missed until it is established again).
type evictWatch struct {
	started func()
	changed func(keys []string)
	stopped func()
}

// followPrefix keeps a watch of prefix open for h until ctx ends; a broken watch is logged as
// what's and started again a second later.
func followPrefix(ctx context.Context, cli *clientv3.Client, log *slog.Logger, what, prefix string, h evictWatch) {
	for ctx.Err() == nil {
		if err := watchPrefix(ctx, cli, prefix, h); err != nil && ctx.Err() == nil {
			log.Warn(what+" watch broke; starting again", "prefix", prefix, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// watchPrefix watches prefix from its current revision, calling h, until the watch breaks.
func watchPrefix(ctx context.Context, cli *clientv3.Client, prefix string, h evictWatch) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := cli.Get(gctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return fmt.Errorf("read the revision of %s: %w", prefix, err)
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	ch := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	h.started()
	defer h.stopped()
	for resp := range ch {
		if err := resp.Err(); err != nil {
			return err
		}
		keys := make([]string, len(resp.Events))
		for i, ev := range resp.Events {
			keys[i] = string(ev.Kv.Key)
		}
		h.changed(keys)
	}
	return errors.New("the watch channel closed")
}
