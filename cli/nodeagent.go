package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/agent/state"
	"github.com/hanode/hanode/config"
)

// Machines and roles through the agents: node start|stop|restart MACHINE/ROLE, node roles
// MACHINE +ROLE -ROLE, rollout restart --role ROLE. Each changes the machine's desired state
// through the admin API and, unless --no-wait, waits until the machine's agent reports it done.

type nodeRoleCmd struct {
	Target  string        `arg:"" placeholder:"MACHINE/ROLE" help:"The machine and role, e.g. m2/datanode."`
	Wait    bool          `default:"true" negatable:"" help:"Wait until the agent reports it done (--no-wait returns at once)."`
	Timeout time.Duration `default:"2m" help:"How long to wait."`
}

func (c nodeRoleCmd) Run(e *Env) error {
	action := e.kctx.Selected().Name
	machine, role, ok := strings.Cut(c.Target, "/")
	if !ok || machine == "" || role == "" {
		return usagef("%q: want MACHINE/ROLE, e.g. m2/datanode", c.Target)
	}
	cl, err := e.admin()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout+30*time.Second)
	defer cancel()
	var m state.Machine
	path := "/v1/nodes/" + url.PathEscape(machine) + "/roles/" + url.PathEscape(role) + "/" + action
	if _, err := cl.Do(ctx, http.MethodPost, path, nil, &m); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s: %s requested (desired state version %d)\n", c.Target, action, m.Desired.Version)
	if !c.Wait {
		return nil
	}
	want := *m.Desired.Role(role)
	start := time.Now()
	a, err := waitAgent(ctx, cl, machine, c.Timeout, func(a *state.Actual) bool { return roleDone(a, role, want) })
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s: %s after %s\n", c.Target, describeRole(a.Role(role)), time.Since(start).Round(10*time.Millisecond))
	return nil
}

// roleDone reports whether the agent's report shows role as want says: stopped, or running
// and ready after the requested restart.
func roleDone(a *state.Actual, role string, want state.Want) bool {
	rs := a.Role(role)
	if !want.Run {
		return rs == nil || (rs.PID == 0 && rs.State == state.StateStopped)
	}
	return rs != nil && rs.Run && rs.Ready && rs.RestartGen >= want.Restart
}

func describeRole(rs *state.RoleState) string {
	if rs == nil || rs.PID == 0 {
		return "stopped"
	}
	return fmt.Sprintf("running (pid %d) and ready", rs.PID)
}

// waitAgent polls machine's reported state until done holds for a report of the current
// desired version, or timeout passes (the error then shows the last report).
func waitAgent(ctx context.Context, cl *adminapi.Client, machine string, timeout time.Duration, done func(*state.Actual) bool) (*state.Actual, error) {
	deadline := time.Now().Add(timeout)
	last := "no report from its agent"
	for {
		var m state.Machine
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.Do(rctx, http.MethodGet, "/v1/nodes/"+url.PathEscape(machine)+"/roles", nil, &m)
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case m.Actual == nil:
			last = "its agent is not running"
		case m.Actual.Version < m.Desired.Version:
			last = fmt.Sprintf("its agent applies version %d of the desired state, not %d yet", m.Actual.Version, m.Desired.Version)
		case done(m.Actual):
			return m.Actual, nil
		default:
			var parts []string
			for _, r := range m.Actual.Roles {
				parts = append(parts, r.Role+" "+roleSummary(r))
			}
			last = strings.Join(parts, "; ")
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("machine %s not done after %s: %s", machine, timeout, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func roleSummary(r state.RoleState) string {
	s := r.State
	if r.PID != 0 {
		s += fmt.Sprintf(" pid %d", r.PID)
	}
	if r.NotReady != "" {
		s += " (" + r.NotReady + ")"
	}
	if r.State == state.StateBackoff && !r.NextStart.IsZero() {
		s += fmt.Sprintf(" (next start in %s)", time.Until(r.NextStart).Round(100*time.Millisecond))
	}
	return s
}

type nodeRolesCmd struct {
	Machine string        `arg:"" help:"The machine."`
	Changes []string      `arg:"" passthrough:"" placeholder:"+ROLE|-ROLE" help:"Roles to add (+datanode) and to remove (-proxy)."`
	Wait    bool          `default:"true" negatable:"" help:"Wait until the agent reports them running (added) and stopped (removed)."`
	Timeout time.Duration `default:"2m" help:"How long to wait."`
}

func (c nodeRolesCmd) Run(e *Env) error {
	var req adminapi.RolesChange
	for _, ch := range c.Changes {
		switch {
		case ch == "--":
		case ch == "--no-wait": // flags after the changes reach here unparsed
			c.Wait = false
		case strings.HasPrefix(ch, "--timeout="):
			d, err := time.ParseDuration(strings.TrimPrefix(ch, "--timeout="))
			if err != nil {
				return usagef("%s: %v", ch, err)
			}
			c.Timeout = d
		case strings.HasPrefix(ch, "+") && len(ch) > 1:
			req.Add = append(req.Add, ch[1:])
		case strings.HasPrefix(ch, "-") && len(ch) > 1:
			req.Remove = append(req.Remove, ch[1:])
		default:
			return usagef("%q: want +ROLE to add a role or -ROLE to remove one", ch)
		}
	}
	if len(req.Add)+len(req.Remove) == 0 {
		return usagef("name roles to add (+datanode) or remove (-proxy)")
	}
	cl, err := e.admin()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout+30*time.Second)
	defer cancel()
	var m state.Machine
	if _, err := cl.Do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(c.Machine)+"/roles", req, &m); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s: roles now %s (desired state version %d)\n", c.Machine, strings.Join(m.Desired.Names(), ", "), m.Desired.Version)
	if !c.Wait {
		return nil
	}
	start := time.Now()
	_, err = waitAgent(ctx, cl, c.Machine, c.Timeout, func(a *state.Actual) bool {
		for _, r := range req.Add {
			if !roleDone(a, r, *m.Desired.Role(r)) {
				return false
			}
		}
		for _, r := range req.Remove {
			if !roleDone(a, r, state.Want{Role: r}) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s: done after %s\n", c.Machine, time.Since(start).Round(10*time.Millisecond))
	return nil
}

type rolloutCmd struct {
	Restart rolloutRestartCmd `cmd:"" help:"Restart a role on every machine, one machine at a time, each ready (datanodes: every chunk back on R machines) before the next."`
}

// rolloutRestartCmd takes its role from the global --role flag (hanode rollout restart --role
// datanode), which must be given on the command line.
type rolloutRestartCmd struct {
	Role    string        `kong:"-"`
	Timeout time.Duration `default:"3m" help:"How long each machine may take to be ready again."`
}

func (c rolloutRestartCmd) Run(e *Env) error {
	var role []string
	for _, p := range e.kctx.Path {
		if p.Flag != nil && p.Flag.Name == "role" {
			role = e.cli.Config.Role
		}
	}
	if len(role) != 1 {
		return usagef("name the role to restart with --role, e.g. --role datanode (one role)")
	}
	c.Role = role[0]
	cl, err := e.admin()
	if err != nil {
		return err
	}
	ctx, cancel := interruptible()
	defer cancel()
	var list adminapi.Agents
	if _, err := cl.Do(ctx, http.MethodGet, "/v1/agents", nil, &list); err != nil {
		return err
	}
	var machines []string
	for _, m := range list.Machines {
		if w := m.Desired.Role(c.Role); w != nil && w.Run {
			machines = append(machines, m.Machine)
		}
	}
	if len(machines) == 0 {
		return fmt.Errorf("no machine's agent runs a %s", c.Role)
	}
	fmt.Fprintf(e.Stdout, "restarting %s on %s, one machine at a time\n", c.Role, strings.Join(machines, ", "))
	begin := time.Now()
	for _, machine := range machines {
		start := time.Now()
		var m state.Machine
		path := "/v1/nodes/" + url.PathEscape(machine) + "/roles/" + url.PathEscape(c.Role) + "/restart"
		if _, err := cl.Do(ctx, http.MethodPost, path, nil, &m); err != nil {
			return fmt.Errorf("%s: %w", machine, err)
		}
		want := *m.Desired.Role(c.Role)
		a, err := waitAgent(ctx, cl, machine, c.Timeout, func(a *state.Actual) bool { return roleDone(a, c.Role, want) })
		if err != nil {
			return fmt.Errorf("rollout stopped at %s (the machines after it were not restarted): %w", machine, err)
		}
		fmt.Fprintf(e.Stdout, "  %s/%s: restarted, %s, in %s\n", machine, c.Role, describeRole(a.Role(c.Role)), time.Since(start).Round(10*time.Millisecond))
		if c.Role == config.RoleDatanode {
			// The next datanode goes only once every chunk is back on R machines.
			ready := time.Now()
			msg, err := waitReplicated(ctx, cl, ready, c.Timeout)
			if err != nil {
				return fmt.Errorf("rollout stopped after %s (the machines after it were not restarted): %w", machine, err)
			}
			fmt.Fprintf(e.Stdout, "  %s after %s\n", msg, time.Since(ready).Round(100*time.Millisecond))
		}
	}
	fmt.Fprintf(e.Stdout, "rollout of %s done on %d machines in %s\n", c.Role, len(machines), time.Since(begin).Round(100*time.Millisecond))
	return nil
}

// admin is the admin API client of the configuration.
func (e *Env) admin() (*adminapi.Client, error) {
	cfg, origins, err := e.Config()
	if err != nil {
		return nil, err
	}
	cl, _, err := adminClient(cfg, origins)
	return cl, err
}

// printAgents writes every supervised role: desired, state, pid, restarts, readiness and the
// last exit.
func printAgents(w io.Writer, machines []state.Machine) error {
	if len(machines) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tROLE\tDESIRED\tSTATE\tPID\tRESTARTS\tREADY\tLAST EXIT")
	for _, m := range machines {
		if m.Actual == nil {
			fmt.Fprintf(tw, "%s\t%s\t\tAGENT DOWN\t\t\t\t\n", m.Machine, strings.Join(m.Desired.Names(), ","))
			continue
		}
		for _, r := range m.Actual.Roles {
			desired := "stopped"
			if r.Run {
				desired = "running"
			}
			st := r.State
			if r.Failures > 1 {
				st = fmt.Sprintf("CRASH LOOP (%d exits in a row)", r.Failures)
			}
			if r.State == state.StateBackoff && !r.NextStart.IsZero() {
				st += fmt.Sprintf(", next start in %s", time.Until(r.NextStart).Round(100*time.Millisecond))
			}
			pid, ready := "-", "no"
			if r.PID != 0 {
				pid = fmt.Sprint(r.PID)
			}
			if r.Ready {
				ready = "yes"
			}
			last := "-"
			if x := r.LastExit; x != nil {
				last = fmt.Sprintf("%s, %s (%s ago)", x.Reason, x.Status, time.Since(x.At).Round(time.Second))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Machine, r.Role, desired, st, pid, r.Restarts, ready, last)
		}
	}
	return tw.Flush()
}

// agentsSection prints the agents' view after status or node list; a controller without
// the agents' API (an older version) prints nothing.
func agentsSection(e *Env, w io.Writer) {
	var list adminapi.Agents
	err := adminCall(e, http.MethodGet, "/v1/agents", nil, &list)
	var he *adminapi.APIError
	if errors.As(err, &he) && he.Status == http.StatusNotFound {
		return
	}
	if err != nil {
		fmt.Fprintf(w, "\nagents: %v\n", err)
		return
	}
	if len(list.Machines) > 0 {
		fmt.Fprintln(w, "\nroles supervised by the machines' agents:")
		_ = printAgents(w, list.Machines)
	}
}

// waitReplicated polls the active master's repair status until a sweep that started after
// since finds no chunk below its replica count (none at risk, none waiting for a machine
// that is down), or timeout passes.
func waitReplicated(ctx context.Context, cl *adminapi.Client, since time.Time, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	last := "no repair status yet"
	for {
		var st adminapi.Repair
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.Do(rctx, http.MethodGet, "/v1/repair", nil, &st)
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case st.Sweep == nil || !st.Sweep.Started.After(since):
			last = "waiting for a sweep of every chunk that started after the restart"
		default:
			sum := st.Summary()
			if sum.AtRiskChunks == 0 && sum.Waiting == 0 {
				return fmt.Sprintf("no chunk below its replica count (sweep of %d chunks)", st.Sweep.Chunks), nil
			}
			last = fmt.Sprintf("%d chunks below their replica count, %d waiting for a machine that is down", sum.AtRiskChunks, sum.Waiting)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("replication not whole after %s: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
