package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/hanode/hanode/agent/state"
)

// cacheFile is where the agent keeps the last desired state it got from etcd, in its state dir:
// after a restart it runs the roles from it while the controllers are unreachable.
const cacheFile = "desired.json"

func (r *Role) loadCache() (*state.Desired, error) {
	data, err := os.ReadFile(r.cachePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the cached desired state: %w", err)
	}
	d, err := state.DecodeDesired(data)
	if err != nil {
		return nil, fmt.Errorf("decode the cached desired state %s: %w", r.cachePath(), err)
	}
	if d.Machine != r.m.Config.Name {
		return nil, fmt.Errorf("the cached desired state %s is machine %s's, not %s's", r.cachePath(), d.Machine, r.m.Config.Name)
	}
	return d, nil
}

func (r *Role) saveCache(d *state.Desired) {
	data, _ := json.MarshalIndent(d, "", "  ")
	if err := writeFileAtomic(r.cachePath(), data); err != nil {
		r.log.Warn("cannot cache the desired state", "err", err)
	}
}

func (r *Role) cachePath() string { return r.stateDir() + "/" + cacheFile }

// apply hands d, read from etcd, to the supervisor and caches it.
func (r *Role) apply(d *state.Desired) {
	if old, _ := r.sup.Desired(); old == nil || old.Version != d.Version {
		r.log.Info("desired state", "version", d.Version, "roles", fmt.Sprint(d.Roles), "by", d.By)
	}
	r.sup.Apply(d, "etcd")
	r.saveCache(d)
}

// watchDesired follows the machine's desired state in etcd: it reads it (creating it from the
// roles run now when absent), then applies every change. While etcd is unreachable the last
// state stays in force.
func (r *Role) watchDesired(ctx context.Context, cli *clientv3.Client) {
	key := state.DesiredKey(r.m.Config.Name)
	lastErr := ""
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := cli.Get(rctx, key)
		if err == nil && len(resp.Kvs) == 0 {
			cur, _ := r.sup.Desired()
			var d *state.Desired
			if d, err = state.Seed(rctx, cli, r.m.Config.Name, cur.Names()); err == nil {
				r.log.Info("recorded this machine's roles as its desired state", "roles", fmt.Sprint(d.Names()))
				resp, err = cli.Get(rctx, key)
			}
		}
		cancel()
		var d *state.Desired
		if err == nil && len(resp.Kvs) == 1 {
			d, err = state.DecodeDesired(resp.Kvs[0].Value)
		}
		if err != nil || d == nil {
			if err == nil {
				err = errors.New("record vanished")
			}
			if err.Error() != lastErr {
				r.log.Warn("cannot read the desired state from etcd; keeping the last one", "err", err)
				lastErr = err.Error()
			}
			sleep(ctx, 2*time.Second)
			continue
		}
		lastErr = ""
		r.apply(d)
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					r.log.Warn("the desired state was deleted from etcd; keeping the last one")
					continue
				}
				d, err := state.DecodeDesired(ev.Kv.Value)
				if err != nil {
					r.log.Warn("ignoring a malformed desired state", "err", err)
					continue
				}
				r.apply(d)
			}
		}
		wcancel()
		sleep(ctx, 500*time.Millisecond)
	}
}

// report keeps the machine's actual state in etcd on a lease of the agent's: written when it
// changes (at most every 100 ms) and every 5 s; gone when the agent stops or dies.
func (r *Role) report(ctx context.Context, cli *clientv3.Client) {
	key := state.ActualKey(r.m.Config.Name)
	ttl := max(int64(r.m.Config.LeaderTTL.Seconds()), 2)
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		lease, err := cli.Grant(gctx, ttl)
		cancel()
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		sess, err := concurrency.NewSession(cli, concurrency.WithLease(lease.ID), concurrency.WithContext(ctx))
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		tick := time.NewTicker(5 * time.Second)
		for lost := false; !lost; {
			a := r.sup.Snapshot()
			a.AgentPID = os.Getpid()
			val, _ := json.Marshal(a)
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := cli.Put(pctx, key, string(val), clientv3.WithLease(sess.Lease()))
			cancel()
			if err != nil && ctx.Err() == nil {
				r.log.Debug("cannot report the actual state", "err", err)
			}
			select {
			case <-ctx.Done():
				lost = true
			case <-sess.Done():
				lost = true
			case <-r.changes:
				sleep(ctx, 100*time.Millisecond)
			case <-tick.C:
			}
		}
		tick.Stop()
		if ctx.Err() != nil {
			// A clean stop: revoke the lease so the report goes at once.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = cli.Revoke(rctx, sess.Lease())
			cancel()
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
