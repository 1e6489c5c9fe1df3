package coordinator

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/placement"
)

// nodes is the coordinator's live view of datanodes and drain marks, kept current by an etcd
// watch so that placing a chunk never costs an etcd read. A datanode is live while its
// lease-backed registration exists: it disappears 3 s (leader-ttl) after the datanode stops
// renewing.
type nodes struct {
	cli *clientv3.Client
	log *slog.Logger

	mu       sync.RWMutex
	data     map[string]placement.Node // by machine
	draining map[string]bool
	synced   bool
}

func newNodes(cli *clientv3.Client, log *slog.Logger) *nodes {
	return &nodes{cli: cli, log: log, data: map[string]placement.Node{}, draining: map[string]bool{}}
}

// run loads and then watches registrations and drain marks until ctx ends, reloading after
// any watch failure (compaction, lost connection).
func (n *nodes) run(ctx context.Context) {
	for ctx.Err() == nil {
		rev, err := n.load(ctx)
		if err != nil {
			n.log.Warn("loading datanodes", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		// Two narrow watches, not one on /hanode/: object writes must not stream to every
		// coordinator.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		regs := n.cli.Watch(wctx, cluster.NodesPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		drains := n.cli.Watch(wctx, cluster.DrainPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for ok := true; ok; {
			var resp clientv3.WatchResponse
			select {
			case resp, ok = <-regs:
			case resp, ok = <-drains:
			}
			if !ok || resp.Err() != nil {
				break
			}
			n.mu.Lock()
			for _, ev := range resp.Events {
				n.apply(string(ev.Kv.Key), ev.Kv.Value, ev.Type == clientv3.EventTypeDelete)
			}
			n.mu.Unlock()
		}
		cancel()
	}
}

func (n *nodes) load(ctx context.Context) (int64, error) {
	resp, err := n.cli.Txn(ctx).Then(
		clientv3.OpGet(cluster.NodesPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(cluster.DrainPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.data, n.draining = map[string]placement.Node{}, map[string]bool{}
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			n.apply(string(kv.Key), kv.Value, false)
		}
	}
	n.synced = true
	return resp.Header.Revision, nil
}

// apply folds one key change in; the caller holds mu.
func (n *nodes) apply(key string, val []byte, deleted bool) {
	switch {
	case strings.HasPrefix(key, cluster.DrainPrefix):
		m := key[len(cluster.DrainPrefix):]
		if deleted {
			delete(n.draining, m)
		} else {
			n.draining[m] = true
		}
	case strings.HasPrefix(key, cluster.NodesPrefix) && strings.HasSuffix(key, "/"+config.RoleDatanode):
		m := strings.TrimSuffix(key[len(cluster.NodesPrefix):], "/"+config.RoleDatanode)
		if deleted {
			delete(n.data, m)
			return
		}
		var reg cluster.Registration
		if json.Unmarshal(val, &reg) != nil {
			return
		}
		n.data[m] = placement.Node{Machine: reg.Machine, Address: reg.Address, Zone: reg.Zone, Free: reg.Free}
	}
}

// writable returns the live datanodes that may take new chunks (not draining).
func (n *nodes) writable() []placement.Node {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]placement.Node, 0, len(n.data))
	for m, nd := range n.data {
		if !n.draining[m] {
			out = append(out, nd)
		}
	}
	return out
}

// addr returns a live datanode's chunk API URL.
func (n *nodes) addr(machine string) (string, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	nd, ok := n.data[machine]
	return nd.Address, ok
}

// count returns how many datanodes are live and writable, and whether the view is loaded.
func (n *nodes) count() (int, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	c := 0
	for m := range n.data {
		if !n.draining[m] {
			c++
		}
	}
	return c, n.synced
}
