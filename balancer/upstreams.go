package balancer

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
)

// watchCoordinators keeps the upstream list equal to the coordinators registered in etcd: ID
// the machine name (stable, so sessions survive a re-address), URL the registered address.
// While etcd is unreachable the last list stays.
func (px *Role) watchCoordinators(ctx context.Context, cli *clientv3.Client) {
	suffix := "/" + config.RoleCoordinator
	for ctx.Err() == nil {
		resp, err := cli.Get(ctx, cluster.NodesPrefix, clientv3.WithPrefix())
		if err != nil {
			px.log.Warn("proxy: cannot list the coordinators", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		regs := map[string]cluster.Registration{}
		for _, kv := range resp.Kvs {
			if strings.HasSuffix(string(kv.Key), suffix) {
				var r cluster.Registration
				if json.Unmarshal(kv.Value, &r) == nil {
					regs[string(kv.Key)] = r
				}
			}
		}
		px.applyCoordinators(regs)
		wch := cli.Watch(clientv3.WithRequireLeader(ctx), cluster.NodesPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				px.log.Warn("proxy: coordinator watch ended; listing again", "err", err)
				break
			}
			changed := false
			for _, ev := range wr.Events {
				key := string(ev.Kv.Key)
				if !strings.HasSuffix(key, suffix) {
					continue
				}
				if ev.Type == clientv3.EventTypeDelete {
					delete(regs, key)
					changed = true
					continue
				}
				var r cluster.Registration
				if json.Unmarshal(ev.Kv.Value, &r) == nil && regs[key] != r {
					regs[key] = r
					changed = true
				}
			}
			if changed {
				px.applyCoordinators(regs)
			}
		}
		sleepCtx(ctx, time.Second)
	}
}

func (px *Role) applyCoordinators(regs map[string]cluster.Registration) {
	var entries []string
	for _, r := range regs {
		entries = append(entries, r.Machine+"="+r.Address)
	}
	slices.Sort(entries)
	var ups []Upstream
	for _, e := range entries {
		parsed, err := config.ParseProxyUpstreams([]string{e})
		if err != nil {
			px.log.Warn("proxy: ignoring a coordinator registration", "entry", e, "err", err)
			continue
		}
		ups = append(ups, Upstream{ID: parsed[0].ID, URL: parsed[0].URL})
	}
	if err := px.engine.SetUpstreams(ups); err != nil {
		px.log.Warn("proxy: cannot set the upstreams", "err", err)
	}
}
