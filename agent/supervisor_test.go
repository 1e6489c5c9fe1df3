package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/agent/state"
)

// The supervisor runs real processes here: /bin/sh scripts standing for roles, so that a test
// controls how a role behaves (serves until SIGTERM, exits at once, logs a line).

// serve is a role that becomes ready, records its SIGTERM in DIR/order and exits.
const serve = `trap 'rm -f ready.$ROLE; echo $ROLE >> order; exit 0' TERM
echo "$ROLE serving"; touch ready.$ROLE
while :; do sleep 0.05; done`

// crash is a role that cannot start.
const crash = `echo "$ROLE: listen on 127.0.45.9:8911: bind: address already in use" >&2; exit 3`

type harness struct {
	dir     string
	scripts map[string]string
	sup     *Supervisor
}

func newHarness(t *testing.T, b Backoff, scripts map[string]string) *harness {
	t.Helper()
	h := &harness{dir: t.TempDir(), scripts: scripts}
	h.sup = h.supervisor(t, b)
	return h
}

// supervisor is a supervisor of the harness's roles; several share the state dir, as agent
// processes of one machine do.
func (h *harness) supervisor(t *testing.T, b Backoff) *Supervisor {
	s := NewSupervisor(SupervisorOptions{
		Machine: "m1", Binary: "/bin/sh",
		Args:    func(role string) []string { return []string{"-c", "ROLE=" + role + "\n" + h.scripts[role]} },
		Env:     os.Environ(),
		WorkDir: h.dir, StateDir: filepath.Join(h.dir, "agent"), LogDir: filepath.Join(h.dir, "logs"),
		StopTimeout: 3 * time.Second, Backoff: b,
		Ready: func(_ context.Context, role string) error {
			if _, err := os.Stat(filepath.Join(h.dir, "ready."+role)); err != nil {
				return errors.New("no ready file")
			}
			return nil
		},
		ReadyEvery: 20 * time.Millisecond,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	t.Cleanup(func() { s.Shutdown(nil) })
	return s
}

func desired(version int64, wants ...state.Want) *state.Desired {
	return &state.Desired{Machine: "m1", Version: version, Roles: wants}
}

func run(role string) state.Want { return state.Want{Role: role, Run: true} }

// waitRole polls role's state until ok holds, or fails the test after timeout.
func waitRole(t *testing.T, s *Supervisor, role string, timeout time.Duration, what string, ok func(state.RoleState) bool) state.RoleState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a := s.Snapshot()
		if rs := a.Role(role); rs != nil && ok(*rs) {
			return *rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; state %+v", what, timeout, a.Role(role))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool { return pid > 0 && !exited(pid) }

func TestSupervisorStartStopRestart(t *testing.T) {
	h := newHarness(t, DefaultBackoff, map[string]string{"datanode": serve})
	s := h.sup
	s.Apply(desired(1, run("datanode")), "config")
	first := waitRole(t, s, "datanode", 5*time.Second, "started and ready", func(r state.RoleState) bool { return r.Ready && r.PID != 0 })

	s.Apply(desired(2, state.Want{Role: "datanode", Run: true, Restart: 1}), "etcd")
	second := waitRole(t, s, "datanode", 5*time.Second, "restarted", func(r state.RoleState) bool {
		return r.Ready && r.PID != 0 && r.PID != first.PID && r.RestartGen == 1
	})
	if alive(first.PID) {
		t.Fatalf("the process before the restart (pid %d) still runs", first.PID)
	}
	if second.LastExit == nil || second.LastExit.Reason != "restarted" || second.LastExit.Status != "exit status 0" || second.Restarts != 1 || second.Failures != 0 {
		t.Fatalf("after a restart: %+v (last exit %+v)", second, second.LastExit)
	}

	s.Apply(desired(3, state.Want{Role: "datanode", Run: false, Restart: 1}), "etcd")
	stopped := waitRole(t, s, "datanode", 5*time.Second, "stopped", func(r state.RoleState) bool { return r.State == state.StateStopped && r.PID == 0 })
	if alive(second.PID) || stopped.LastExit.Reason != "stopped" || stopped.Run {
		t.Fatalf("after a stop: alive %v, %+v", alive(second.PID), stopped)
	}
	// It stays stopped.
	time.Sleep(300 * time.Millisecond)
	if a := s.Snapshot(); a.Role("datanode").PID != 0 {
		t.Fatalf("a stopped role was started again: %+v", a.Role("datanode"))
	}

	s.Apply(desired(4, state.Want{Role: "datanode", Run: true, Restart: 1}), "etcd")
	waitRole(t, s, "datanode", 5*time.Second, "started again", func(r state.RoleState) bool { return r.Ready && r.PID != 0 && r.Restarts == 2 })

	// A role the desired state no longer names is stopped and leaves the report.
	s.Apply(desired(5), "etcd")
	deadline := time.Now().Add(5 * time.Second)
	for a := s.Snapshot(); a.Role("datanode") != nil; a = s.Snapshot() {
		if time.Now().After(deadline) {
			t.Fatalf("a removed role still reported: %+v", a.Role("datanode"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSupervisorRestartsAKilledRoleAtOnce(t *testing.T) {
	h := newHarness(t, DefaultBackoff, map[string]string{"coordinator": serve})
	s := h.sup
	s.Apply(desired(1, run("coordinator")), "config")
	first := waitRole(t, s, "coordinator", 5*time.Second, "ready", func(r state.RoleState) bool { return r.Ready && r.PID != 0 })
	killed := time.Now()
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	next := waitRole(t, s, "coordinator", time.Second, "a new process within 1 s", func(r state.RoleState) bool { return r.PID != 0 && r.PID != first.PID })
	t.Logf("new process %d started %s after the kill -9", next.PID, time.Since(killed).Round(time.Millisecond))
	if next.LastExit == nil || next.LastExit.Reason != "crashed" || next.LastExit.Status != "signal: killed" || next.Failures != 1 {
		t.Fatalf("after kill -9: %+v (last exit %+v)", next, next.LastExit)
	}
}

func TestSupervisorBacksOffARoleThatExitsAtOnce(t *testing.T) {
	b := Backoff{Initial: 200 * time.Millisecond, Max: 800 * time.Millisecond, Reset: time.Hour}
	h := newHarness(t, b, map[string]string{"datanode": crash})
	s := h.sup
	s.Apply(desired(1, run("datanode")), "config")
	time.Sleep(2500 * time.Millisecond)
	a := s.Snapshot()
	rs := *a.Role("datanode")
	// Starts at 0, 0, 0.2, 0.6, 1.4 and 2.2 s: six, where a busy loop would make hundreds.
	if starts := rs.Restarts + 1; starts < 4 || starts > 8 {
		t.Fatalf("%d starts in 2.5 s, want 4 to 8 (backoff 0, 200ms, 400ms, 800ms, 800ms): %+v", starts, rs)
	}
	if rs.Failures < 4 || rs.Failures != rs.Restarts+1 && rs.Failures != rs.Restarts {
		t.Fatalf("failures %d after %d restarts", rs.Failures, rs.Restarts)
	}
	e := rs.LastExit
	if e == nil || e.Reason != "crashed" || e.Status != "exit status 3" || !slices.ContainsFunc(e.Tail, func(l string) bool { return strings.Contains(l, "address already in use") }) {
		t.Fatalf("last exit %+v", e)
	}
	if rs.State != state.StateBackoff && rs.State != state.StateStopped {
		t.Fatalf("state %q, want backoff", rs.State)
	}
	// A restart request does not wait out the backoff.
	b2 := Backoff{Initial: time.Hour, Max: time.Hour, Reset: time.Hour}
	h2 := newHarness(t, b2, map[string]string{"proxy": crash})
	h2.sup.Apply(desired(1, run("proxy")), "config")
	waitRole(t, h2.sup, "proxy", 5*time.Second, "backing off for an hour", func(r state.RoleState) bool { return r.State == state.StateBackoff })
	h2.sup.Apply(desired(2, state.Want{Role: "proxy", Run: true, Restart: 1}), "etcd")
	waitRole(t, h2.sup, "proxy", 2*time.Second, "started at once on request", func(r state.RoleState) bool { return r.RestartGen == 1 && r.Failures == 3 })

	// Stopping it ends the loop and clears the failures.
	s.Apply(desired(2, state.Want{Role: "datanode"}), "etcd")
	waitRole(t, s, "datanode", 3*time.Second, "stopped", func(r state.RoleState) bool { return r.State == state.StateStopped && r.Failures == 0 })
}

func TestSupervisorAdoptsTheProcessesOfAnAgentThatDied(t *testing.T) {
	h := newHarness(t, DefaultBackoff, map[string]string{"controller": serve, "datanode": serve})
	a := h.sup
	d := desired(1, run("controller"), run("datanode"))
	a.Apply(d, "config")
	c1 := waitRole(t, a, "controller", 5*time.Second, "controller ready", func(r state.RoleState) bool { return r.Ready })
	d1 := waitRole(t, a, "datanode", 5*time.Second, "datanode ready", func(r state.RoleState) bool { return r.Ready })
	a.Detach() // as if the agent were killed: its processes keep running

	b := h.supervisor(t, DefaultBackoff)
	b.Apply(d, "cache")
	for _, want := range []state.RoleState{c1, d1} {
		got := waitRole(t, b, want.Role, 5*time.Second, "adopted", func(r state.RoleState) bool { return r.Ready })
		if got.PID != want.PID || !got.Adopted || got.Restarts != 0 {
			t.Fatalf("%s: the new agent runs pid %d (adopted %v, restarts %d); the old one ran %d: a second process", want.Role, got.PID, got.Adopted, got.Restarts, want.PID)
		}
	}
	// An adopted process that dies is seen at once (its pidfd) and replaced.
	if err := syscall.Kill(d1.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	next := waitRole(t, b, "datanode", time.Second, "replaced within 1 s", func(r state.RoleState) bool { return r.PID != 0 && r.PID != d1.PID })
	if next.Adopted || next.LastExit == nil || !strings.Contains(next.LastExit.Status, "adopted") {
		t.Fatalf("after the adopted process died: %+v (last exit %+v)", next, next.LastExit)
	}
	// A pid file whose process is gone (or was reused) adopts nothing.
	b.Shutdown(nil)
	if p, err := adopt(filepath.Join(h.dir, "agent"), "datanode"); p != nil || err != nil {
		t.Fatalf("adopt after shutdown: %+v, %v", p, err)
	}
	if alive(c1.PID) {
		t.Fatalf("controller %d survived the shutdown", c1.PID)
	}
}

func TestSupervisorShutdownOrder(t *testing.T) {
	roles := []string{"controller", "datanode", "coordinator", "proxy"}
	scripts := map[string]string{}
	var wants []state.Want
	for _, r := range roles {
		scripts[r] = serve
		wants = append(wants, run(r))
	}
	h := newHarness(t, DefaultBackoff, scripts)
	s := h.sup
	s.Apply(desired(1, wants...), "config")
	for _, r := range roles {
		waitRole(t, s, r, 5*time.Second, r+" ready", func(rs state.RoleState) bool { return rs.Ready })
	}
	order := filepath.Join(h.dir, "order")
	s.Shutdown(func() {
		f, err := os.OpenFile(order, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		_, _ = f.WriteString("before controller\n")
	})
	data, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(strings.ReplaceAll(string(data), "before controller", "before-controller"))
	want := []string{"proxy", "coordinator", "datanode", "before-controller", "controller"}
	if !slices.Equal(got, want) {
		t.Fatalf("stop order %v, want %v", got, want)
	}
}
