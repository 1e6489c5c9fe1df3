package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/pki"
)

// HTTPClient is a client that trusts the lab's CA and presents the lab's client certificate.
func (l *Lab) HTTPClient() (*http.Client, error) {
	b, err := pki.LoadBundle(l.ClientPKI)
	if err != nil {
		return nil, fmt.Errorf("lab client certificate: %w", err)
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: b.ClientConfig("")}}, nil
}

// Ready asks a process's /readyz; nil means ready, else the reason.
func (l *Lab) Ready(ctx context.Context, hc *http.Client, p *Process) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var body struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	return fmt.Errorf("not ready: %s", body.Reason)
}

// WaitReady polls the named processes (all when targets is nil) until each is ready, a
// process dies, or timeout passes; the error names each process that is not ready, why, and
// where its log is.
func (l *Lab) WaitReady(ctx context.Context, drv Driver, targets []*Process, timeout time.Duration) error {
	hc, err := l.HTTPClient()
	if err != nil {
		return err
	}
	type proc struct {
		m *Machine
		p *Process
	}
	var ps []proc
	for mi := range l.Machines {
		for pi := range l.Machines[mi].Processes {
			p := &l.Machines[mi].Processes[pi]
			if targets == nil || containsProc(targets, p) {
				ps = append(ps, proc{&l.Machines[mi], p})
			}
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		var problems []string
		for _, x := range ps {
			// A supervised process may be dead for a moment: its agent starts it again.
			if !drv.Alive(l, x.m, x.p) && !x.p.Supervised {
				return fmt.Errorf("%s/%s exited; see %s:\n%s", x.m.Name, strings.Join(x.p.Roles, ","), x.p.Log, tail(x.p.Log, 5))
			}
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			err := l.Ready(rctx, hc, x.p)
			cancel()
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s/%s: %v (log %s)", x.m.Name, strings.Join(x.p.Roles, ","), err, x.p.Log))
			}
		}
		if len(problems) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s:\n  %s", timeout, strings.Join(problems, "\n  "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func containsProc(ps []*Process, p *Process) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// Signal sends sig ("KILL", "TERM", "STOP", "CONT") to the processes of target
// (MACHINE or MACHINE/ROLE).
func (l *Lab) Signal(drv Driver, target, sig string) error {
	ms, ps, err := l.Select(target)
	if err != nil {
		return err
	}
	var errs []error
	for i := range ps {
		if err := drv.Signal(l, ms[i], ps[i], sig); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stop ends the processes of target: SIGTERM, then SIGKILL for any still alive after grace.
// Stopped processes are resumed first so that they can act on SIGTERM.
func (l *Lab) Stop(drv Driver, target string, grace time.Duration) error {
	ms, ps, err := l.Select(target)
	if err != nil {
		return err
	}
	l.stop(drv, ms, ps, grace)
	return nil
}

func (l *Lab) stop(drv Driver, ms []*Machine, ps []*Process, grace time.Duration) {
	// An agent stops its machine's roles itself (in order) and would restart the ones stopped
	// under it: agents go first, with time for their roles to drain.
	var ams, oms []*Machine
	var aps, ops []*Process
	for i, p := range ps {
		if l.Supervised && !p.Supervised && p.Roles[0] == config.RoleAgent {
			ams, aps = append(ams, ms[i]), append(aps, p)
		} else {
			oms, ops = append(oms, ms[i]), append(ops, p)
		}
	}
	if len(aps) > 0 {
		l.stopNow(drv, ams, aps, max(grace, 90*time.Second))
	}
	l.stopNow(drv, oms, ops, grace)
}

// stopNow sends SIGTERM to ps, then SIGKILL to those still alive after grace. A supervised
// process is followed by its pid at the time of the SIGTERM, not its agent's replacement.
func (l *Lab) stopNow(drv Driver, ms []*Machine, ps []*Process, grace time.Duration) {
	ps = slices.Clone(ps)
	for i, p := range ps {
		if p.Supervised {
			if !drv.Alive(l, ms[i], p) {
				ps[i] = &Process{Roles: p.Roles}
				continue
			}
			ps[i] = &Process{Roles: p.Roles, PID: p.PID, Args: p.Args}
		}
	}
	for i := range ps {
		if drv.Alive(l, ms[i], ps[i]) {
			_ = drv.Signal(l, ms[i], ps[i], "CONT")
			_ = drv.Signal(l, ms[i], ps[i], "TERM")
		}
	}
	deadline := time.Now().Add(grace)
	for i := range ps {
		for drv.Alive(l, ms[i], ps[i]) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if drv.Alive(l, ms[i], ps[i]) {
			_ = drv.Signal(l, ms[i], ps[i], "KILL")
		}
	}
}

// Restart stops the processes of target (if running) and starts them again with the same
// command line and data, then waits until they are ready.
func (l *Lab) Restart(ctx context.Context, drv Driver, target string, timeout time.Duration) error {
	ms, ps, err := l.Select(target)
	if err != nil {
		return err
	}
	l.stop(drv, ms, ps, 15*time.Second)
	for i := range ps {
		if err := drv.Start(ctx, l, ms[i], ps[i]); err != nil {
			return err
		}
	}
	if err := l.Save(); err != nil {
		return err
	}
	return l.WaitReady(ctx, drv, ps, timeout)
}

// Down stops every process, proxies first and controllers last, removes what the driver made
// (the docker driver's containers, network and image), and removes the lab's directory unless
// keep is set.
func (l *Lab) Down(drv Driver, keep bool) error {
	if l.Supervised {
		var ms []*Machine
		var ps []*Process
		for mi := range l.Machines {
			ms, ps = append(ms, &l.Machines[mi]), append(ps, l.processesOf(config.RoleAgent, &l.Machines[mi])...)
		}
		l.stop(drv, ms, ps, 90*time.Second)
	}
	for i := len(roleOrder) - 1; i >= 0; i-- {
		var ms []*Machine
		var ps []*Process
		for mi := range l.Machines {
			for pi := range l.Machines[mi].Processes {
				if l.Machines[mi].Processes[pi].Roles[0] == roleOrder[i] {
					ms, ps = append(ms, &l.Machines[mi]), append(ps, &l.Machines[mi].Processes[pi])
				}
			}
		}
		l.stop(drv, ms, ps, 15*time.Second)
	}
	if err := l.Teardown(drv); err != nil {
		return err
	}
	if keep {
		return nil
	}
	if err := os.RemoveAll(l.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", l.Dir, err)
	}
	return nil
}

// PrintStatus writes each process's state: running, paused or dead, and ready or why not. A
// supervised process's PID is its role's current one, as its agent's pid file names it.
func (l *Lab) PrintStatus(ctx context.Context, drv Driver, w io.Writer) error {
	hc, err := l.HTTPClient()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tADDRESS\tROLE\tPID\tSTATE\tREADY")
	for mi := range l.Machines {
		m := &l.Machines[mi]
		for pi := range m.Processes {
			p := &m.Processes[pi]
			state, ready := "dead", "-"
			if drv.Alive(l, m, p) {
				state = "running"
				st := byte(0)
				if ps, ok := drv.(procStater); ok {
					st = ps.ProcState(l, m, p)
				} else {
					st = processState(p.PID)
				}
				if st == 'T' {
					state = "paused"
				}
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				if err := l.Ready(rctx, hc, p); err != nil {
					ready = "no: " + err.Error()
				} else {
					ready = "yes"
				}
				cancel()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Address, strings.Join(p.Roles, ","), p.PID, state, ready)
		}
	}
	return tw.Flush()
}

// procStater is a driver whose processes' state is not in this host's /proc under their
// PID (the docker driver's pids are their containers').
type procStater interface {
	ProcState(l *Lab, m *Machine, p *Process) byte
}

// processState is the one-letter state of a PID from /proc (R, S, T for stopped, Z...).
func processState(pid int) byte {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}
