// Package agent is the agent role: one per machine, on the internal port 8901.
//
// Run as `hanode agent` (the systemd unit's command) it supervises the machine's roles: each
// role runs as a child process of the same binary with the machine's configuration. Which
// roles run, and whether each should be running, is the machine's desired state in etcd
// (package agent/state), changed through the controllers' admin API and cached on disk so that
// the roles keep running while the controllers are unreachable. A role that exits is started
// again, with backoff when it keeps exiting; the agent reports each role's pid, restarts, last
// exit and readiness back to etcd. On SIGTERM it stops its roles in order (proxy and
// coordinator first, controller last).
//
// Run inside `hanode run` beside other roles (the single-machine appliance) it only registers
// the machine's agent and answers GET /v1/agent.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/agent/state"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/access"
)

// Role is the agent role of one machine.
type Role struct {
	m      *service.Machine
	log    *slog.Logger
	srv    *service.Server
	member *service.Member
	// Supervising only:
	sup     *Supervisor
	changes chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	hc      *http.Client
	opts    SuperviseOptions
}

// NewRole returns the agent role of machine m that only registers itself.
func NewRole(m *service.Machine, log *slog.Logger) *Role { return &Role{m: m, log: log} }

// SuperviseOptions say how the agent runs the machine's roles.
type SuperviseOptions struct {
	// Binary and Args: role r runs as Binary Args(r)...
	Binary string
	Args   func(role string) []string
	Env    []string
	// Roles are the roles to run until the desired state is known (from the cache or etcd): the
	// machine's configured roles. They seed the desired state in etcd when it has none.
	Roles   []string
	Backoff Backoff
}

// NewSupervisingRole returns the agent role of machine m that runs the machine's roles.
func NewSupervisingRole(m *service.Machine, log *slog.Logger, o SuperviseOptions) *Role {
	r := &Role{m: m, log: log, opts: o, changes: make(chan struct{}, 1), done: make(chan struct{})}
	c := m.Config
	r.hc = &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: m.Bundle.ClientConfig(""), MaxIdleConnsPerHost: 2}}
	wd, _ := os.Getwd()
	r.sup = NewSupervisor(SupervisorOptions{
		Machine: c.Name, Binary: o.Binary, Args: o.Args, Env: o.Env,
		WorkDir: wd, StateDir: r.stateDir(), LogDir: filepath.Join(c.DataDir, "logs"),
		StopTimeout: c.ShutdownTimeout + 5*time.Second, Backoff: o.Backoff,
		Ready: r.roleReady, Log: log,
		OnChange: func() {
			select {
			case r.changes <- struct{}{}:
			default:
			}
		},
	})
	return r
}

// Name is the role's name.
func (r *Role) Name() string { return config.RoleAgent }

// Endpoint is the agent API's base URL.
func (r *Role) Endpoint() string {
	c := r.m.Config
	return c.URL(c.Address, c.RolePort(config.RoleAgent))
}

// stateDir holds the agent's pid files and cached desired state.
func (r *Role) stateDir() string { return r.m.Config.RoleDir(config.RoleAgent) }

// Supervisor is the supervisor of the machine's roles (nil when the agent only registers).
func (r *Role) Supervisor() *Supervisor { return r.sup }

// Start binds the agent's port, registers it and serves its API. A supervising agent starts
// the roles of its cached desired state (else of its configuration) at once, then follows the
// desired state in etcd.
func (r *Role) Start(ctx context.Context) error {
	c := r.m.Config
	r.srv = service.NewServer(config.RoleAgent, c.Listen(c.RolePort(config.RoleAgent)), r.m.InternalTLS, r.log, nil)
	if err := r.srv.Listen(); err != nil {
		return err
	}
	if r.sup != nil {
		if err := os.MkdirAll(r.stateDir(), 0o750); err != nil {
			r.srv.Close()
			return fmt.Errorf("agent state dir: %w", err)
		}
		d, err := r.loadCache()
		if err != nil {
			r.log.Warn("ignoring the cached desired state", "err", err)
		}
		source := "cache"
		if d == nil {
			source = "config"
			d = &state.Desired{Machine: c.Name, By: "config"}
			for _, role := range r.opts.Roles {
				if role != config.RoleAgent {
					d.Roles = append(d.Roles, state.Want{Role: role, Run: true})
				}
			}
		}
		r.sup.Apply(d, source)
		r.srv.Registry.MustRegister(&collector{sup: r.sup})
	}
	member, mctx, err := r.m.Join(ctx, config.RoleAgent, r.Endpoint(), r.log, nil)
	if err != nil {
		r.srv.Close()
		if r.sup != nil {
			r.sup.Shutdown(nil)
		}
		return err
	}
	r.member = member
	r.srv.AddCheck("etcd registration", member.Registered)
	r.srv.Mux.Handle("GET /v1/agent", access.RequireRoles(http.HandlerFunc(r.handleAgent), config.RoleController))
	r.srv.Serve()
	if r.sup != nil {
		wctx, cancel := context.WithCancel(mctx)
		r.cancel = cancel
		go func() {
			defer close(r.done)
			done := make(chan struct{})
			go func() { r.report(wctx, member.Etcd); close(done) }()
			go syncEndpoints(wctx, member.Etcd)
			r.watchDesired(wctx, member.Etcd)
			<-done
		}()
	}
	return nil
}

// roleReady asks role's /readyz on this machine.
func (r *Role) roleReady(ctx context.Context, role string) error {
	c := r.m.Config
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(c.Address, c.RolePort(role))+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil
	}
	var body struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 16<<10)).Decode(&body)
	return fmt.Errorf("not ready: %s", body.Reason)
}

func (r *Role) handleAgent(w http.ResponseWriter, _ *http.Request) {
	c := r.m.Config
	out := map[string]any{"machine": c.Name, "roles": c.Roles(), "pid": os.Getpid(), "version": r.m.Version}
	if r.sup != nil {
		d, _ := r.sup.Desired()
		a := r.sup.Snapshot()
		a.AgentPID = os.Getpid()
		out["desired"], out["actual"] = d, a
	}
	service.WriteJSON(w, http.StatusOK, out)
}

// Ready is nil while the agent serves and is registered.
func (r *Role) Ready() error { return r.srv.Ready() }

// Stop stops the machine's roles in order (a supervising agent), then drains the agent's API
// and deregisters it.
func (r *Role) Stop(ctx context.Context) {
	if r.sup == nil {
		r.srv.Drain(ctx)
		r.member.Leave(ctx)
		return
	}
	r.srv.MarkDraining()
	// The agent leaves etcd before the machine's controller stops, while etcd still answers.
	r.sup.Shutdown(func() {
		r.cancel()
		<-r.done
		r.member.Leave(ctx)
	})
	r.srv.Drain(ctx)
}

// collector exports the supervised roles' state as metrics.
type collector struct{ sup *Supervisor }

var (
	descUp       = prometheus.NewDesc("hanode_agent_role_up", "1 while the role's process runs.", []string{"role"}, nil)
	descReady    = prometheus.NewDesc("hanode_agent_role_ready", "1 while the role's process is ready.", []string{"role"}, nil)
	descWanted   = prometheus.NewDesc("hanode_agent_role_desired_running", "1 when the desired state says the role should run.", []string{"role"}, nil)
	descRestarts = prometheus.NewDesc("hanode_agent_role_restarts_total", "Starts of the role's process after its first, by this agent.", []string{"role"}, nil)
	descFailures = prometheus.NewDesc("hanode_agent_role_failures", "Exits of the role's process in a row nobody asked for; above 1 it is in a crash loop (backoff).", []string{"role"}, nil)
	descVersion  = prometheus.NewDesc("hanode_agent_desired_version", "Version of the desired state the agent applies.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	a := c.sup.Snapshot()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(descVersion, prometheus.GaugeValue, float64(a.Version))
	for _, r := range a.Roles {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, b(r.PID != 0), r.Role)
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, b(r.Ready), r.Role)
		ch <- prometheus.MustNewConstMetric(descWanted, prometheus.GaugeValue, b(r.Run), r.Role)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(r.Restarts), r.Role)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(r.Failures), r.Role)
	}
}

// syncEndpoints keeps the agent's etcd client pointed at every etcd member: on a controller
// machine it starts with the local member alone, and must still see its desired state (say, to
// start the local controller again) while that member is stopped.
func syncEndpoints(ctx context.Context, cli *clientv3.Client) {
	for d := 2 * time.Second; ctx.Err() == nil; d = 30 * time.Second {
		sleep(ctx, d)
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_ = cli.Sync(sctx) // on failure the endpoints stay as they were
		cancel()
	}
}
