package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/controller/election"
	"github.com/hanode/hanode/controller/gc"
	"github.com/hanode/hanode/controller/repair"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/etcdembed"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/meta"
)

// Role is the controller role: an embedded etcd member, a candidate for active master
// (whose term runs the cluster's loops), and the admin API.
type Role struct {
	m      *service.Machine
	log    *slog.Logger
	failed chan<- error

	srv     *service.Server
	member  *etcdembed.Member
	cli     *clientv3.Client
	elector *election.Elector
	reg     *service.Registration
	sec     *security
	// datanodes is the controller's client of the chunk API (garbage collection).
	datanodes *datanode.Client
	// gcMetrics count the collection loops of every term this controller leads.
	gcMetrics *gc.Metrics
	// repairMetrics count the repair of every term this controller leads.
	repairMetrics *repair.Metrics
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	// probes remembers which etcd members did not answer hanode status's last probe.
	probes *memberProbes
	// tracker remembers the role processes this controller saw, for GET /v1/machines.
	tracker *roleTracker
}

// NewRole returns the controller role of machine m; a failure of its etcd member while it runs is
// sent to failed.
func NewRole(m *service.Machine, log *slog.Logger, failed chan<- error) *Role {
	return &Role{m: m, log: log, failed: failed, probes: newMemberProbes()}
}

func (c *Role) Name() string { return config.RoleController }
func (c *Role) Endpoint() string {
	return c.m.Config.URL(c.m.Config.Address, c.m.Config.AdminPort)
}
func (c *Role) Ready() error { return c.srv.Ready() }

func (c *Role) Start(ctx context.Context) error {
	cfg := c.m.Config
	// Bind every port before etcd touches the data dir: a port in use must change nothing on disk.
	c.srv = service.NewServer(config.RoleController, cfg.Listen(cfg.AdminPort), c.m.ServerTLS, c.log, prometheus.DefaultGatherer)
	if err := c.srv.Listen(); err != nil {
		return err
	}
	for _, p := range []int{cfg.EtcdClientPort, cfg.EtcdPeerPort} {
		ln, err := net.Listen("tcp", cfg.Listen(p))
		if err != nil {
			c.srv.Close()
			return fmt.Errorf("controller: etcd port %s: %w", cfg.Listen(p), err)
		}
		ln.Close()
	}
	var peers []etcdembed.Peer
	for _, p := range cfg.Peers() {
		peers = append(peers, etcdembed.Peer{Name: p.Name, PeerURL: p.PeerURL})
	}
	member, err := etcdembed.Start(ctx, etcdembed.Config{
		Name:                    cfg.Name,
		Dir:                     cfg.RoleDir(config.RoleController),
		ClientURL:               cfg.URL(cfg.Address, cfg.EtcdClientPort),
		PeerURL:                 cfg.URL(cfg.Address, cfg.EtcdPeerPort),
		ListenClientURL:         cfg.URL(cfg.BindAddress, cfg.EtcdClientPort),
		ListenPeerURL:           cfg.URL(cfg.BindAddress, cfg.EtcdPeerPort),
		InitialCluster:          peers,
		Join:                    cfg.Join,
		Rejoin:                  cfg.Rejoin,
		ClusterToken:            cfg.ClusterName,
		TLS:                     etcdembed.TLSFiles{CAFile: c.m.Bundle.CAFile(), CertFile: c.m.Bundle.CertFile(), KeyFile: c.m.Bundle.KeyFile()},
		HeartbeatInterval:       cfg.HeartbeatInterval,
		ElectionTimeout:         cfg.ElectionTimeout,
		QuotaBackendBytes:       cfg.EtcdQuotaBytes,
		AutoCompactionRetention: cfg.EtcdCompactionKeep,
		Logger:                  c.log,
	})
	if err != nil {
		c.srv.Close()
		return err // etcdembed names the controller already
	}
	c.member = member
	cli, err := c.m.EtcdClient([]string{cfg.URL(cfg.Address, cfg.EtcdClientPort)})
	if err != nil {
		member.Close()
		c.srv.Close()
		return err
	}
	c.cli = cli
	if c.sec, err = newSecurity(c.m, cli, c.log); err != nil {
		cli.Close()
		member.Close()
		c.srv.Close()
		return err
	}
	c.elector, err = election.New(election.Config{
		Client:     cli,
		Self:       election.Candidate{Name: cfg.Name, Address: c.Endpoint()},
		TTL:        cfg.LeaderTTL,
		Probe:      cfg.LeaderProbe,
		HTTP:       &http.Client{Transport: &http.Transport{TLSClientConfig: c.m.Bundle.ClientConfig("")}},
		Logger:     c.log,
		Registerer: c.srv.Registry,
	})
	if err != nil {
		cli.Close()
		member.Close()
		c.srv.Close()
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(4)
	go func() {
		defer c.wg.Done()
		c.sec.publishCA(runCtx, cli, c.log)
	}()
	c.m.FollowRevocations(runCtx, cli, c.log)
	go func() {
		defer c.wg.Done()
		c.sec.syncKeyring(runCtx, cli, cfg.Name, c.log)
	}()
	go func() {
		defer c.wg.Done()
		_ = c.elector.Run(runCtx, c.lead)
	}()
	go func() {
		defer c.wg.Done()
		select {
		case err, ok := <-member.Err():
			if ok && err != nil {
				c.failed <- fmt.Errorf("controller: etcd member: %w", err)
			}
		case <-runCtx.Done():
		}
	}()
	c.reg = service.Register(runCtx, cli, cluster.Registration{
		Machine: cfg.Name, Role: config.RoleController, Address: c.Endpoint(), PID: os.Getpid(), Version: c.m.Version, Started: time.Now().UTC(),
	}, cfg.LeaderTTL, c.log, nil)
	c.srv.AddCheck("etcd member", member.Ready)
	c.srv.AddCheck("etcd registration", c.reg.Err)
	c.datanodes = datanode.NewClient(c.m.Bundle.ClientConfig(""))
	c.gcMetrics = gc.NewMetrics(c.srv.Registry)
	c.repairMetrics = repair.NewMetrics(c.srv.Registry)
	if err := c.sec.audit.Register(c.srv.Registry); err != nil {
		c.log.Warn("audit metrics not registered", "err", err)
	}
	c.adminRoutes()
	c.s3Routes()
	c.uiRoutes(runCtx)
	c.srv.Serve()
	return nil
}

// lead is the active master's work for one term: its heartbeat record, and the S3 loops
// (garbage collection, multipart expiry). Every write it makes is fenced by the term.
func (c *Role) lead(term *election.Term) {
	ctx := term.Context()
	go c.leadS3(term)
	go c.leadRepair(term)
	go c.leadEtcdAuth(term)
	go c.sec.audit.RunTrim(ctx, time.Minute) // the audit trail's retention
	rec := cluster.MasterRecord{Name: c.m.Config.Name, Epoch: term.Epoch, Since: term.Since}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		rec.Heartbeat = time.Now().UTC()
		val, _ := json.Marshal(rec)
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := term.Put(wctx, cluster.MasterKey, string(val))
		cancel()
		switch {
		case errors.Is(err, election.ErrFenced):
			c.log.Warn("fenced: a newer master exists; this term's writes are refused", "epoch", term.Epoch)
			return
		case err != nil && ctx.Err() == nil:
			c.log.Warn("master heartbeat write failed", "epoch", term.Epoch, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Role) Stop(ctx context.Context) {
	c.srv.MarkDraining()
	c.cancel() // resigns leadership and deregisters while etcd is still up
	waited := make(chan struct{})
	go func() { c.wg.Wait(); <-c.reg.Done(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	c.srv.Drain(ctx)
	c.cli.Close()
	c.member.Close()
}

func (c *Role) handleLeader(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	l, err := election.CurrentLeader(ctx, c.cli, "")
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, adminapi.LeaderInfo{Name: l.Name, Address: l.Address, Epoch: l.Epoch, Since: l.Since})
}

func (c *Role) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	st := adminapi.Status{Cluster: c.m.Config.ClusterName, AnsweredBy: c.m.Config.Name}
	if l, err := election.CurrentLeader(ctx, c.cli, ""); err == nil {
		st.Leader = &adminapi.LeaderInfo{Name: l.Name, Address: l.Address, Epoch: l.Epoch, Since: l.Since}
	} else {
		st.Problems = append(st.Problems, err.Error())
	}
	ml, err := c.cli.MemberList(ctx)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("list etcd members: %w", err))
		return
	}
	st.Controllers = c.probes.probe(ctx, c.cli, ml.Members)
	for _, cs := range st.Controllers {
		if !cs.Healthy {
			st.Problems = append(st.Problems, fmt.Sprintf("controller %s unhealthy: %s", cs.Name, cs.Error))
		}
	}
	regs, err := cluster.Nodes(ctx, c.cli)
	if err != nil {
		st.Problems = append(st.Problems, err.Error())
	}
	st.Machines = cluster.Machines(regs)
	st.Replication = c.replication(ctx, regs, &st)
	service.WriteJSON(w, http.StatusOK, st)
}

// replication summarises the data path for status: live datanodes against the replication
// factor, damaged replicas awaiting repair, queued deletions and writes in flight.
func (c *Role) replication(ctx context.Context, regs []cluster.Registration, st *adminapi.Status) *adminapi.Replication {
	rep := &adminapi.Replication{Replicas: c.m.Config.Replicas}
	for _, r := range regs {
		if r.Role == config.RoleDatanode {
			rep.DatanodesLive++
		}
	}
	count := func(prefix string) int64 {
		resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return -1
		}
		return resp.Count
	}
	rep.Draining = int(count(cluster.DrainPrefix))
	rep.BadReplicas = count(meta.BadPrefix)
	rep.GarbageRecords = count(meta.GCPrefix)
	rep.Writes = count(meta.IntentPrefix)
	if rs, err := repair.ReadStatus(ctx, c.cli); err == nil && rs != nil {
		rep.Repair = rs.Summary()
	}
	for _, r := range regs {
		if r.Role != config.RoleDatanode || r.Scrub == nil {
			continue
		}
		rep.ScrubCorrupt += r.Scrub.Corrupt
		if f := r.Scrub.LastPassFinished; rep.ScrubOldestPass == nil || f.Before(*rep.ScrubOldestPass) {
			rep.ScrubOldestPass = &f
		}
	}
	if rep.DatanodesLive-rep.Draining < rep.Replicas {
		st.Problems = append(st.Problems, fmt.Sprintf("%d writable datanodes, fewer than the replication factor %d: writes get 503", rep.DatanodesLive-rep.Draining, rep.Replicas))
	}
	return rep
}

// leadRepair runs the active master's repair for the term.
func (c *Role) leadRepair(term *election.Term) {
	cfg := c.m.Config
	r := &repair.Repairer{
		Etcd: c.cli, Datanodes: c.datanodes, Log: c.log.With("loop", "repair"),
		Grace: cfg.RepairGrace, GCGrace: cfg.GCGrace, Rate: int64(cfg.RepairRate), Replicas: cfg.Replicas,
		Name: cfg.Name, Epoch: term.Epoch, Interval: c.repairInterval(), Metrics: c.repairMetrics,
		// Unreferenced chunk files: each run lists every datanode, so at most hourly (12 x
		// gc-grace when that is shorter, at least 10 s).
		WriteTimeout: cfg.WriteTimeout, UnreferencedEvery: min(max(12*cfg.GCGrace, 10*time.Second), time.Hour),
		AutoRebalance: cfg.RebalanceAuto,
	}
	r.Run(term.Context(), term.Guard())
}

// repairInterval is the least time between sweeps: a quarter of repair-grace, 1 to 30 s.
func (c *Role) repairInterval() time.Duration {
	return min(max(c.m.Config.RepairGrace/4, time.Second), 30*time.Second)
}

// handleRepair serves GET /v1/repair: the status the active master last published.
func (c *Role) handleRepair(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	st, err := repair.ReadStatus(ctx, c.cli)
	switch {
	case err != nil:
		service.WriteError(w, http.StatusServiceUnavailable, err)
	case st == nil:
		service.WriteError(w, http.StatusServiceUnavailable, errors.New("no repair status yet: the active master has not finished its first sweep"))
	default:
		service.WriteJSON(w, http.StatusOK, st)
	}
}

// handleScrub serves GET /v1/scrub: each live datanode's scrub progress, from its registration.
func (c *Role) handleScrub(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	regs, err := cluster.Nodes(ctx, c.cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	out := adminapi.Scrub{Interval: c.m.Config.ScrubInterval.String(), Rate: int64(c.m.Config.ScrubRate), Datanodes: []adminapi.ScrubDatanode{}}
	for _, reg := range regs {
		if reg.Role == config.RoleDatanode {
			d := adminapi.ScrubDatanode{Machine: reg.Machine}
			if reg.Scrub != nil {
				d.ScrubReport = *reg.Scrub
			}
			out.Datanodes = append(out.Datanodes, d)
		}
	}
	service.WriteJSON(w, http.StatusOK, out)
}

// handleRebalancePlan serves GET /v1/rebalance/plan?threshold=10: the moves that would even
// out the machines, and whether they are feasible; nothing moves.
func (c *Role) handleRebalancePlan(w http.ResponseWriter, r *http.Request) {
	p, err := c.rebalancePlan(r)
	if err != nil {
		service.WriteError(w, http.StatusBadRequest, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, p)
}

// handleRebalanceApply serves POST /v1/rebalance?threshold=10: it plans as GET
// /v1/rebalance/plan does and, when the plan is feasible and moves anything, stores it for the
// active master to carry out.
func (c *Role) handleRebalanceApply(w http.ResponseWriter, r *http.Request) {
	p, err := c.rebalancePlan(r)
	if err != nil {
		service.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if !p.Feasible {
		service.WriteJSON(w, http.StatusConflict, p)
		return
	}
	if len(p.Moves) > 0 {
		if err := repair.StorePlan(r.Context(), c.cli, &p); err != nil {
			service.WriteError(w, http.StatusServiceUnavailable, err)
			return
		}
	}
	service.WriteJSON(w, http.StatusOK, p)
}

// handleRebalanceCancel serves DELETE /v1/rebalance: the master stops moving (what moved stays).
func (c *Role) handleRebalanceCancel(w http.ResponseWriter, r *http.Request) {
	if err := repair.StorePlan(r.Context(), c.cli, nil); err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"cancelled": true})
}

func (c *Role) rebalancePlan(r *http.Request) (adminapi.RebalancePlan, error) {
	threshold := 10.0
	if v := r.URL.Query().Get("threshold"); v != "" {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil || t <= 0 || t >= 100 {
			return adminapi.RebalancePlan{}, fmt.Errorf("threshold %q: want percentage points between 0 and 100", v)
		}
		threshold = t
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	st, err := repair.ReadStatus(ctx, c.cli)
	if err != nil {
		return adminapi.RebalancePlan{}, err
	}
	regs, err := cluster.Nodes(ctx, c.cli)
	if err != nil {
		return adminapi.RebalancePlan{}, err
	}
	resp, err := c.cli.Get(ctx, DrainPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return adminapi.RebalancePlan{}, err
	}
	draining := map[string]bool{}
	for _, kv := range resp.Kvs {
		draining[string(kv.Key[len(DrainPrefix):])] = true
	}
	return repair.PlanRebalance(st, regs, draining, c.m.Config.Replicas, threshold), nil
}

func (c *Role) handleNodes(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	regs, err := cluster.Nodes(ctx, c.cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"machines": cluster.Machines(regs)})
}
