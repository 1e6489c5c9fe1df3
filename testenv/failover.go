package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/security/pki"
)

// FailoverResult is the outcome of MeasureFailover.
type FailoverResult struct {
	Runs   []time.Duration
	Median time.Duration
	P99    time.Duration
}

// Percentile returns the nearest-rank percentile q (0..1) of ds.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// AdminClient is a failover admin client for the given controller URLs (all when nil).
func (l *Lab) AdminClient(controllers []string) (*adminapi.Client, error) {
	return l.adminClient(controllers, 0)
}

// adminClient is AdminClient going over the controllers rounds times when each fails (0: the
// default).
func (l *Lab) adminClient(controllers []string, rounds int) (*adminapi.Client, error) {
	b, err := pki.LoadBundle(l.ClientPKI)
	if err != nil {
		return nil, err
	}
	if controllers == nil {
		controllers = l.Endpoints.Controllers
	}
	return adminapi.NewWithOptions(adminapi.Options{Endpoints: controllers, TLS: b.ClientConfig(""), Rounds: rounds})
}

// EtcdClient is an etcd client for the lab's etcd with the lab's client certificate.
func (l *Lab) EtcdClient(endpoints []string) (*clientv3.Client, error) {
	b, err := pki.LoadBundle(l.ClientPKI)
	if err != nil {
		return nil, err
	}
	if endpoints == nil {
		endpoints = l.Endpoints.Etcd
	}
	return clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: b.ClientConfig(""), DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
}

// WaitHealthy polls until every controller is healthy and an active master is elected.
func (l *Lab) WaitHealthy(ctx context.Context, timeout time.Duration) (*adminapi.Status, error) {
	ac, err := l.AdminClient(nil)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		st, err := ac.Status(ctx)
		if err == nil {
			healthy := st.Leader != nil && len(st.Controllers) == len(l.Machines)
			for _, c := range st.Controllers {
				healthy = healthy && c.Healthy && !c.Learner
			}
			if healthy {
				return st, nil
			}
			err = fmt.Errorf("cluster not healthy yet: %v", st.Problems)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("lab not healthy after %s: %w", timeout, last)
}

// MeasureFailover stops the active master runs times with sig ("KILL" for a crash, "TERM" for
// a graceful stop, which resigns) and measures how long until a surviving controller names a
// new one. Before each kill it moves etcd's Raft leadership to
// the master's machine, so that each run loses both at once, the worst case: etcd must elect a
// Raft leader before anything, and it extends leases when it does. The killed controller is
// restarted and the cluster healed before the next run.
func (l *Lab) MeasureFailover(ctx context.Context, drv Driver, runs int, sig string, out io.Writer) (*FailoverResult, error) {
	if len(l.Machines) < 3 {
		return nil, errors.New("failover needs a lab of at least 3 machines")
	}
	res := &FailoverResult{}
	for run := 1; run <= runs; run++ {
		st, err := l.WaitHealthy(ctx, 60*time.Second)
		if err != nil {
			return nil, err
		}
		master := st.Leader.Name
		if err := l.moveRaftLeader(ctx, st, master); err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		var survivors []string
		for _, m := range l.Machines {
			if m.Name != master {
				survivors = append(survivors, httpsURL(m.Address, rolePort("controller")))
			}
		}
		// One round per poll: the client's own backoff between rounds would delay the moment a
		// new master is seen, which is what this measures.
		ac, err := l.adminClient(survivors, 1)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if err := l.Signal(drv, master+"/controller", sig); err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		var newMaster *adminapi.LeaderInfo
		for newMaster == nil {
			if time.Since(start) > 60*time.Second {
				return nil, fmt.Errorf("run %d: no new active master 60s after killing %s", run, master)
			}
			lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			li, err := ac.Leader(lctx)
			cancel()
			if err == nil && li.Name != master && li.Epoch > st.Leader.Epoch {
				newMaster = li
				break
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		res.Runs = append(res.Runs, took)
		if out != nil {
			fmt.Fprintf(out, "run %2d: SIG%s to %s (active master and Raft leader); %s took over after %s\n", run, sig, master, newMaster.Name, took.Round(time.Millisecond))
		}
		if err := l.Restart(ctx, drv, master+"/controller", 60*time.Second); err != nil {
			return nil, fmt.Errorf("run %d: restart %s: %w", run, master, err)
		}
	}
	res.Median, res.P99 = Percentile(res.Runs, 0.5), Percentile(res.Runs, 0.99)
	if out != nil {
		fmt.Fprintf(out, "failover over %d runs: median %s, p99 %s, min %s, max %s\n", len(res.Runs),
			res.Median.Round(time.Millisecond), res.P99.Round(time.Millisecond),
			Percentile(res.Runs, 0).Round(time.Millisecond), Percentile(res.Runs, 1).Round(time.Millisecond))
	}
	return res, nil
}

// moveRaftLeader makes the etcd member on machine name the Raft leader.
func (l *Lab) moveRaftLeader(ctx context.Context, st *adminapi.Status, name string) error {
	var target uint64
	var leaderURL string
	for _, c := range st.Controllers {
		if c.Name == name {
			id, err := strconv.ParseUint(c.ID, 16, 64)
			if err != nil {
				return fmt.Errorf("member id %q: %w", c.ID, err)
			}
			target = id
		}
		if c.RaftLeader && len(c.ClientURLs) > 0 {
			leaderURL = c.ClientURLs[0]
			if c.Name == name {
				return nil
			}
		}
	}
	if target == 0 || leaderURL == "" {
		return fmt.Errorf("cannot find the Raft leader or member %s in the status", name)
	}
	cli, err := l.EtcdClient([]string{leaderURL})
	if err != nil {
		return err
	}
	defer cli.Close()
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.MoveLeader(mctx, target); err != nil {
		return fmt.Errorf("move Raft leadership to %s: %w", name, err)
	}
	// Wait until the member itself reports leadership.
	for {
		s, err := cli.Status(mctx, leaderURL)
		if err == nil && s.Leader == target {
			return nil
		}
		if mctx.Err() != nil {
			return fmt.Errorf("raft leadership did not move to %s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
