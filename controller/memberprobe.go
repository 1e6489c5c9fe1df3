package controller

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hanode/hanode/adminapi"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Budgets of one etcd member's status probe: the probes run in parallel, so an unreachable
// machine costs `hanode status` this long, not a dial timeout. A healthy member answers in
// milliseconds; one that did not answer its previous probe gets the short budget, the way
// clients ask first the endpoint that answered last.
const (
	memberProbeTimeout = 500 * time.Millisecond
	silentProbeTimeout = 150 * time.Millisecond
)

// memberProbes probes the etcd members for status and remembers which did not answer.
type memberProbes struct {
	mu     sync.Mutex
	silent map[uint64]bool // members that did not answer their last probe
}

func newMemberProbes() *memberProbes { return &memberProbes{silent: map[uint64]bool{}} }

// budget is how long member id's next probe may take.
func (p *memberProbes) budget(id uint64) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.silent[id] {
		return silentProbeTimeout
	}
	return memberProbeTimeout
}

// probe asks every member that has a client URL for its status, in parallel, and returns the
// controllers' status in the members' order once every probe has ended.
func (p *memberProbes) probe(ctx context.Context, cli *clientv3.Client, members []*etcdserverpb.Member) []adminapi.ControllerStatus {
	out := make([]adminapi.ControllerStatus, len(members))
	listed := map[uint64]bool{}
	var wg sync.WaitGroup
	for i, m := range members {
		listed[m.ID] = true
		out[i] = adminapi.ControllerStatus{Name: m.Name, ID: strconv.FormatUint(m.ID, 16), PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner}
		if len(m.ClientURLs) == 0 {
			out[i].Error = "not started"
			continue
		}
		wg.Add(1)
		go func(cs *adminapi.ControllerStatus, id uint64, ep string) {
			defer wg.Done()
			budget := p.budget(id)
			sctx, cancel := context.WithTimeout(ctx, budget)
			defer cancel()
			s, err := cli.Status(sctx, ep)
			p.mu.Lock()
			if err != nil {
				p.silent[id] = true
			} else {
				delete(p.silent, id)
			}
			p.mu.Unlock()
			if err != nil {
				if sctx.Err() != nil && ctx.Err() == nil {
					err = fmt.Errorf("no answer from %s within %s", ep, budget)
				}
				cs.Error = err.Error()
				return
			}
			cs.Healthy = true
			cs.RaftLeader = s.Leader == id
		}(&out[i], m.ID, m.ClientURLs[0])
	}
	wg.Wait()
	p.mu.Lock()
	for id := range p.silent {
		if !listed[id] {
			delete(p.silent, id) // a removed member: the map stays as small as the cluster
		}
	}
	p.mu.Unlock()
	return out
}
