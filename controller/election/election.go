// Package election elects the active master among the controllers and fences its writes.
//
// It is go.etcd.io/etcd/client/v3/concurrency's election plus three things:
//   - Fencing: the leader key's create revision is the leader's epoch, and every leader-only write
//     goes through Term, which guards it with a transaction comparing that revision. A deposed
//     leader (paused, partitioned, slow) cannot write, whatever it believes.
//   - Prompt step-down: the leader watches its own key and session and cancels its Term's context
//     the moment either is gone.
//   - Fast failover: standbys probe the leader's health endpoint and revoke the lease of a leader
//     that stopped answering, instead of waiting for the lease to expire. etcd extends every lease
//     by an election timeout whenever its Raft leader changes, so when the active master dies
//     together with the Raft leader, lease expiry alone would take TTL + election timeout after
//     the new Raft leader is up. Revocation needs only the new Raft leader. It is safe: revoking a
//     live leader's lease merely fences it, and it steps down.
package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultPrefix is the etcd key prefix of the active-master election.
const DefaultPrefix = keyspace.Election

// ErrFenced is returned for a leader-only write by a leader that is no longer the leader.
var ErrFenced = errors.New("fenced: this controller is no longer the active master")

// ErrNoLeader is returned when no controller holds the leadership.
var ErrNoLeader = errors.New("no active master elected")

// Candidate is what a controller publishes about itself in the election.
type Candidate struct {
	Name    string    `json:"name"`
	Address string    `json:"address"` // admin API base URL, probed at /healthz
	Since   time.Time `json:"since,omitzero"`
}

// Leader is the current active master as seen in etcd.
type Leader struct {
	Candidate
	Epoch int64 `json:"epoch"` // create revision of the leader key
	Lease int64 `json:"lease"`
	Key   string
}

// Config configures an Elector.
type Config struct {
	Client *clientv3.Client
	Prefix string // default DefaultPrefix
	Self   Candidate
	TTL    time.Duration // session TTL; etcd may raise it to its minimum
	// Probe is how often a standby checks the leader's /healthz; 0 disables probing.
	Probe time.Duration
	// ProbeFailures consecutive failed probes make a standby revoke the leader's lease (default 3).
	ProbeFailures int
	// HTTP is the (TLS) client used for probes.
	HTTP   *http.Client
	Logger *slog.Logger
	// Registerer receives the election metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Elector campaigns for leadership on behalf of one controller.
type Elector struct {
	cfg     Config
	leading atomic.Bool
	m       metrics
}

type metrics struct {
	leading     prometheus.Gauge
	elected     prometheus.Counter
	fenced      prometheus.Counter
	revocations prometheus.Counter
}

// New validates cfg and returns an Elector.
func New(cfg Config) (*Elector, error) {
	if cfg.Client == nil {
		return nil, errors.New("election: no etcd client")
	}
	if cfg.Self.Name == "" || cfg.Self.Address == "" {
		return nil, fmt.Errorf("election: candidate needs a name and an address, got %+v", cfg.Self)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.TTL < time.Second {
		cfg.TTL = time.Second
	}
	if cfg.ProbeFailures <= 0 {
		cfg.ProbeFailures = 3
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Elector{cfg: cfg, m: metrics{
		leading:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "hanode_election_leading", Help: "1 while this controller is the active master."}),
		elected:     prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_election_won_total", Help: "Times this controller became the active master."}),
		fenced:      prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_election_fenced_writes_total", Help: "Leader-only writes rejected because leadership was lost."}),
		revocations: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_election_revocations_total", Help: "Leases of unresponsive masters this controller revoked."}),
	}}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{e.m.leading, e.m.elected, e.m.fenced, e.m.revocations} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("election: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// IsLeader reports whether this controller currently holds a Term.
func (e *Elector) IsLeader() bool { return e.leading.Load() }

// Run campaigns until ctx is done. Each time it wins it calls lead with a Term whose Context is
// cancelled when leadership is lost; lead must return then. When ctx ends while leading, Run
// resigns so that a standby takes over at once rather than after the lease TTL.
func (e *Elector) Run(ctx context.Context, lead func(*Term)) error {
	for ctx.Err() == nil {
		err := e.runSession(ctx, lead)
		if ctx.Err() != nil {
			return nil
		}
		e.cfg.Logger.Warn("election session ended; campaigning again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func (e *Elector) runSession(ctx context.Context, lead func(*Term)) error {
	ttl := int(math.Ceil(e.cfg.TTL.Seconds()))
	sess, err := concurrency.NewSession(e.cfg.Client, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	defer sess.Close() // revokes the lease: standbys see the key vanish at once
	sctx, stopKeeping := context.WithCancel(ctx)
	defer stopKeeping()
	lost := keepLease(sctx, e.cfg.Client, sess, e.cfg.TTL, e.cfg.Logger)
	el := concurrency.NewElection(sess, e.cfg.Prefix)

	campaignCtx, stopCampaign := context.WithCancel(ctx)
	go func() { // a campaign on a lost lease would "win" with a key that no longer exists
		select {
		case <-lost:
			stopCampaign()
		case <-campaignCtx.Done():
		}
	}()
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		e.probeLeader(campaignCtx, sess.Lease())
	}()
	self := e.cfg.Self
	val, _ := json.Marshal(self)
	err = el.Campaign(campaignCtx, string(val))
	stopCampaign()
	<-probeDone
	if err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	self.Since = time.Now().UTC()
	val, _ = json.Marshal(self)
	if err := el.Proclaim(ctx, string(val)); err != nil {
		return fmt.Errorf("proclaim: %w", err)
	}
	term := &Term{Epoch: el.Rev(), Key: el.Key(), Since: self.Since, cli: e.cfg.Client, fenced: e.m.fenced}
	termCtx, cancel := context.WithCancel(ctx)
	term.ctx = termCtx
	go func() { // step down the moment the session or the key is gone
		defer cancel()
		wch := e.cfg.Client.Watch(clientv3.WithRequireLeader(termCtx), el.Key(), clientv3.WithRev(el.Rev()))
		for {
			select {
			case <-termCtx.Done():
				return
			case <-lost:
				e.cfg.Logger.Warn("lost the etcd lease; stepping down", "epoch", term.Epoch)
				return
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil {
					e.cfg.Logger.Warn("lost the watch on the leader key; stepping down", "epoch", term.Epoch)
					return
				}
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypeDelete {
						e.cfg.Logger.Warn("leader key deleted (lease revoked or expired); stepping down", "epoch", term.Epoch)
						return
					}
				}
			}
		}
	}()
	e.leading.Store(true)
	e.m.leading.Set(1)
	e.m.elected.Inc()
	e.cfg.Logger.Info("elected active master", "epoch", term.Epoch)
	lead(term)
	cancel()
	e.leading.Store(false)
	e.m.leading.Set(0)
	if ctx.Err() != nil { // graceful stop: hand over now
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		defer rcancel()
		if err := el.Resign(rctx); err != nil {
			e.cfg.Logger.Warn("resign failed; the lease will expire instead", "err", err)
		} else {
			e.cfg.Logger.Info("resigned as active master", "epoch", term.Epoch)
		}
	}
	return errors.New("leadership ended")
}

// probeLeader runs while this controller campaigns: it revokes the lease of a leader whose
// health endpoint fails ProbeFailures times in a row. own is this controller's lease, never revoked.
func (e *Elector) probeLeader(ctx context.Context, own clientv3.LeaseID) {
	if e.cfg.Probe <= 0 {
		return
	}
	var (
		known    *Leader
		failures int
	)
	tick := time.NewTicker(e.cfg.Probe)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		lctx, cancel := context.WithTimeout(ctx, e.cfg.Probe*2)
		l, err := CurrentLeader(lctx, e.cfg.Client, e.cfg.Prefix)
		cancel()
		switch {
		case err == nil:
			if known == nil || l.Epoch != known.Epoch {
				known, failures = l, 0
			}
		case errors.Is(err, ErrNoLeader):
			known, failures = nil, 0
		}
		// On other errors (etcd between Raft leaders) keep probing the leader we knew: its
		// failures count while the cluster elects, and the revoke goes out as soon as it can.
		if known == nil || clientv3.LeaseID(known.Lease) == own {
			continue
		}
		if e.healthy(ctx, known.Address) {
			failures = 0
			continue
		}
		failures++
		if failures < e.cfg.ProbeFailures {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = e.cfg.Client.Revoke(rctx, clientv3.LeaseID(known.Lease))
		cancel()
		if err != nil && ctx.Err() == nil && e.leaseGone(ctx, clientv3.LeaseID(known.Lease)) {
			err = nil // the revoke applied though its answer was lost (a timeout, a leader change)
		}
		if err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("revoking the unresponsive master's lease failed", "master", known.Name, "epoch", known.Epoch, "err", err)
			continue
		}
		if err == nil {
			e.m.revocations.Inc()
			e.cfg.Logger.Warn("revoked the lease of an unresponsive active master", "master", known.Name, "epoch", known.Epoch, "failed_probes", failures)
		}
		known, failures = nil, 0
	}
}

// leaseGone reports whether etcd says lease no longer exists.
func (e *Elector) leaseGone(ctx context.Context, lease clientv3.LeaseID) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := e.cfg.Client.TimeToLive(ctx, lease)
	return err == nil && resp.TTL == -1
}

func (e *Elector) healthy(ctx context.Context, base string) bool {
	// A dead master refuses the connection at once, so a generous timeout costs kill -9
	// failover nothing; a short one made a master that was merely busy (a loaded machine, a
	// partition just healed) look dead and lose its lease.
	timeout := max(4*e.cfg.Probe, time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := e.cfg.HTTP.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// CurrentLeader reads the active master from etcd (a linearizable read).
func CurrentLeader(ctx context.Context, cli *clientv3.Client, prefix string) (*Leader, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	resp, err := cli.Get(ctx, prefix, clientv3.WithFirstCreate()...)
	if err != nil {
		return nil, fmt.Errorf("read leader key under %s: %w", prefix, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNoLeader
	}
	kv := resp.Kvs[0]
	l := &Leader{Epoch: kv.CreateRevision, Lease: kv.Lease, Key: string(kv.Key)}
	if err := json.Unmarshal(kv.Value, &l.Candidate); err != nil {
		return nil, fmt.Errorf("decode leader key %s: %w", kv.Key, err)
	}
	return l, nil
}

// Term is one leadership term. All leader-only writes go through it.
type Term struct {
	Epoch  int64
	Key    string
	Since  time.Time
	ctx    context.Context
	cli    *clientv3.Client
	fenced prometheus.Counter
}

// Context is cancelled when the term ends.
func (t *Term) Context() context.Context { return t.ctx }

// Guard is the comparison every leader-only transaction carries.
func (t *Term) Guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(t.Key), "=", t.Epoch)
}

// Txn runs then if this term still holds the leadership and every cmp holds, else els.
// It returns whether cmps held, or ErrFenced if the term is over.
func (t *Term) Txn(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) (bool, error) {
	inner := clientv3.OpTxn(cmps, then, els)
	resp, err := t.cli.Txn(ctx).If(t.Guard()).Then(inner).Commit()
	if err != nil {
		return false, fmt.Errorf("leader transaction (epoch %d): %w", t.Epoch, err)
	}
	if !resp.Succeeded {
		if t.fenced != nil {
			t.fenced.Inc()
		}
		return false, fmt.Errorf("epoch %d: %w", t.Epoch, ErrFenced)
	}
	return resp.Responses[0].GetResponseTxn().Succeeded, nil
}

// Put writes key=val if this term still holds the leadership.
func (t *Term) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) error {
	_, err := t.Txn(ctx, nil, []clientv3.Op{clientv3.OpPut(key, val, opts...)}, nil)
	return err
}
