package etcdembed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hanode/hanode/internal/fsutil"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

const (
	markerFile    = "hanode-member.json"
	clientTimeout = 5 * time.Second
	// With strict reconfig checks etcd refuses membership changes until all
	// voters have been connected for 5s (etcdserver.HealthInterval), which is
	// routinely the case right after a cluster (re)start, so retry that long
	// and a bit.
	reconfigTimeout = 60 * time.Second
	reconfigRetry   = 500 * time.Millisecond
)

// retryReconfig runs a membership change, retrying while etcd reports a
// transient condition (cluster not healthy long enough, leader election).
func (m *Member) retryReconfig(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, reconfigTimeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, clientTimeout)
		err := fn(cctx)
		ccancel()
		// A call that ran out of its own time (not the caller's) is retried: fn is idempotent.
		timedOut := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		if err == nil || !(transientReconfigErr(err) || timedOut) {
			return err
		}
		m.log.Info("membership change not possible yet, retrying", "op", what, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(reconfigRetry):
		}
	}
}

func transientReconfigErr(err error) bool {
	for _, t := range []error{
		rpctypes.ErrUnhealthy,
		rpctypes.ErrMemberNotEnoughStarted,
		// MaxLearners is 1: a concurrent join waits for the other learner's promotion.
		rpctypes.ErrTooManyLearners,
		rpctypes.ErrNoLeader,
		rpctypes.ErrLeaderChanged,
		rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost,
	} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func typesID(id uint64) types.ID { return types.ID(id) }

// marker ties a data dir to one cluster and member name so that a dir is
// never started under another identity.
type marker struct {
	ClusterToken string    `json:"cluster_token"`
	Name         string    `json:"name"`
	Created      time.Time `json:"created"`
}

func readMarker(dir string) (*marker, error) {
	p := filepath.Join(dir, markerFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read member marker %s: %w", p, err)
	}
	var mk marker
	if err := json.Unmarshal(b, &mk); err != nil {
		return nil, fmt.Errorf("parse member marker %s: %w", p, err)
	}
	return &mk, nil
}

func writeMarker(dir string, mk marker) error {
	p := filepath.Join(dir, markerFile)
	b, err := json.MarshalIndent(mk, "", "  ")
	if err != nil {
		return fmt.Errorf("encode member marker %s: %w", p, err)
	}
	if err := fsutil.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("member marker: %w", err)
	}
	return nil
}

func (m *Member) httpClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: m.tls.Clone(), DisableKeepAlives: true},
		Timeout:   probeTimeout,
	}
}

// reachable reports whether an etcd peer listener answers over mTLS.
func reachable(ctx context.Context, hc *http.Client, peerURL string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(peerURL, "/")+"/version", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return true
}

// peerMember is the JSON shape of etcd's peer GET /members answer.
type peerMember struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	IsLearner  bool     `json:"isLearner"`
}

func fetchPeerMembers(ctx context.Context, hc *http.Client, peerURL string) ([]peerMember, error) {
	u := strings.TrimRight(peerURL, "/") + "/members"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %s", u, resp.Status)
	}
	var ms []peerMember
	if err := json.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, fmt.Errorf("GET %s: decode: %w", u, err)
	}
	return ms, nil
}

// askOtherPeers fetches /members from every other InitialCluster peer in
// parallel; unreachable peers are simply absent from the result.
func (m *Member) askOtherPeers(ctx context.Context) map[string][]peerMember {
	hc := m.httpClient()
	defer hc.CloseIdleConnections()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string][]peerMember{}
	)
	for _, p := range m.cfg.InitialCluster {
		if p.Name == m.cfg.Name || normURL(p.PeerURL) == normURL(m.cfg.PeerURL) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			ms, err := fetchPeerMembers(cctx, hc, p.PeerURL)
			if err != nil {
				m.log.Debug("peer did not answer /members", "peer", p.Name, "url", p.PeerURL, "err", err)
				return
			}
			mu.Lock()
			out[p.Name] = ms
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (m *Member) isSelf(name string, peerURLs []string) bool {
	if name != "" && name == m.cfg.Name {
		return true
	}
	for _, u := range peerURLs {
		if normURL(u) == normURL(m.cfg.PeerURL) {
			return true
		}
	}
	return false
}

func (m *Member) lostDataErr() error {
	return fmt.Errorf("controller %s: data dir %s is empty but member %s is already part of a running cluster; its data was lost. To recover, start it once with --rejoin (see docs/operations.md#lost-controller-data)",
		m.cfg.Name, m.cfg.Dir, m.cfg.Name)
}

// checkLostData refuses to bootstrap an empty dir for a member that the
// running cluster already knows as started: bootstrapping it "new" would
// either fail deep inside etcd or, worse, split the cluster.
func (m *Member) checkLostData(ctx context.Context) error {
	for peer, ms := range m.askOtherPeers(ctx) {
		for _, pm := range ms {
			if m.isSelf(pm.Name, pm.PeerURLs) && len(pm.ClientURLs) > 0 {
				m.log.Error("member data lost", "reported_by", peer)
				return m.lostDataErr()
			}
		}
	}
	return nil
}

// rejoinEndpoints returns client URLs of the running cluster: Join if set,
// else those the other InitialCluster peers advertise.
func (m *Member) rejoinEndpoints(ctx context.Context) ([]string, error) {
	if len(m.cfg.Join) > 0 {
		return m.cfg.Join, nil
	}
	seen := map[string]bool{}
	var eps []string
	for _, ms := range m.askOtherPeers(ctx) {
		for _, pm := range ms {
			if m.isSelf(pm.Name, pm.PeerURLs) {
				continue
			}
			for _, u := range pm.ClientURLs {
				if !seen[u] {
					seen[u] = true
					eps = append(eps, u)
				}
			}
		}
	}
	if len(eps) == 0 {
		var others []Peer
		for _, p := range m.cfg.InitialCluster {
			if p.Name != m.cfg.Name {
				others = append(others, p)
			}
		}
		return nil, fmt.Errorf("controller %s: rejoin: no running peer answered (tried %s)", m.cfg.Name, formatPeers(others))
	}
	sort.Strings(eps)
	return eps, nil
}

func (m *Member) newClient(ctx context.Context, endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         m.tls.Clone(),
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		Logger:      m.zl,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client to %s: %w", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// listMembers connects to a running cluster through endpoints and lists its members; the
// caller closes the client.
func (m *Member) listMembers(ctx context.Context, endpoints []string, op string) (*clientv3.Client, *clientv3.MemberListResponse, error) {
	cli, err := m.newClient(ctx, endpoints)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	list, err := cli.MemberList(cctx)
	if err != nil {
		cli.Close()
		return nil, nil, fmt.Errorf("controller %s: %s: list members via %s: %w", m.cfg.Name, op, strings.Join(endpoints, ","), err)
	}
	return cli, list, nil
}

// removeStale removes this member's old entry (a started member with the
// same name or peer URL). An unstarted entry with our peer URL is left for
// join to reuse: it is what an interrupted earlier join attempt leaves behind.
func (m *Member) removeStale(ctx context.Context, endpoints []string) error {
	cli, list, err := m.listMembers(ctx, endpoints, "rejoin")
	if err != nil {
		return err
	}
	defer cli.Close()
	for _, pm := range list.Members {
		if pm.Name == "" || !m.isSelf(pm.Name, pm.PeerURLs) {
			continue
		}
		err := m.retryReconfig(ctx, "remove stale member", func(ctx context.Context) error {
			_, err := cli.MemberRemove(ctx, pm.ID)
			return err
		})
		if err != nil {
			return fmt.Errorf("controller %s: rejoin: remove stale member %x (%s %v): %w", m.cfg.Name, pm.ID, pm.Name, pm.PeerURLs, err)
		}
		m.log.Warn("removed stale member entry for rejoin", "id", fmt.Sprintf("%x", pm.ID), "name", pm.Name, "peer_urls", pm.PeerURLs)
	}
	return nil
}

// join registers this member as a learner in the running cluster (or reuses
// an unstarted entry with our peer URL) and points ec at it.
func (m *Member) join(ctx context.Context, endpoints []string, ec *embed.Config) error {
	cli, list, err := m.listMembers(ctx, endpoints, "join")
	if err != nil {
		return err
	}
	defer cli.Close()

	var (
		id      uint64
		learner bool
		members []*etcdserverpb.Member
	)
	for _, pm := range list.Members {
		if !m.isSelf(pm.Name, pm.PeerURLs) {
			continue
		}
		if pm.Name != "" {
			if pm.Name == m.cfg.Name && len(pm.ClientURLs) > 0 {
				return m.lostDataErr()
			}
			return fmt.Errorf("controller %s: join: cluster already has started member %q with peer URLs %v; member names and peer URLs must be unique (use --rejoin if this is that member and its data was lost)",
				m.cfg.Name, pm.Name, pm.PeerURLs)
		}
		id, learner, members = pm.ID, pm.IsLearner, list.Members
		m.log.Info("reusing unstarted member entry", "id", fmt.Sprintf("%x", id), "learner", learner)
	}
	if members == nil {
		err := m.retryReconfig(ctx, "add learner", func(ctx context.Context) error {
			// An earlier attempt may have been applied although its answer never came (etcd
			// answers an add it later rejects at apply, for instance a second concurrent
			// learner, with silence): look for our entry before adding again.
			if l, err := cli.MemberList(ctx); err == nil {
				for _, pm := range l.Members {
					if pm.Name == "" && m.isSelf(pm.Name, pm.PeerURLs) {
						id, members = pm.ID, l.Members
						return nil
					}
				}
			}
			add, err := cli.MemberAddAsLearner(ctx, []string{m.cfg.PeerURL})
			if err != nil {
				return err
			}
			id, members = add.Member.ID, add.Members
			return nil
		})
		if err != nil {
			return fmt.Errorf("controller %s: join: add learner %s via %s: %w", m.cfg.Name, m.cfg.PeerURL, strings.Join(endpoints, ","), err)
		}
		learner = true
		m.log.Info("added as learner", "id", fmt.Sprintf("%x", id))
	}

	// etcd requires the initial cluster to list every current member (it
	// compares member counts with the running cluster), keyed by unique
	// names; our own entry must carry our name.
	var parts []string
	for _, pm := range members {
		name := pm.Name
		switch {
		case pm.ID == id:
			name = m.cfg.Name
		case name == "":
			name = fmt.Sprintf("unstarted-%x", pm.ID)
		}
		for _, u := range pm.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	ec.ClusterState = embed.ClusterStateFlagExisting
	ec.InitialCluster = strings.Join(parts, ",")
	m.joinedAsLearner = learner
	m.log.Info("joining running etcd cluster", "initial_cluster", ec.InitialCluster, "learner", learner)
	return nil
}
