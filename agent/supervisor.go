package agent

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hanode/hanode/agent/state"
	"github.com/hanode/hanode/config"
)

// SupervisorOptions say how to run a machine's role processes.
type SupervisorOptions struct {
	Machine string
	// Binary and Args: role r runs as Binary Args(r)... (the same binary, with the machine's
	// configuration and --role r).
	Binary string
	Args   func(role string) []string
	Env    []string
	// WorkDir is the processes' working directory; StateDir holds the pid files; LogDir the
	// processes' output, LogDir/<role>.log.
	WorkDir, StateDir, LogDir string
	// StopTimeout is how long a role may take to stop after SIGTERM before it is killed.
	StopTimeout time.Duration
	Backoff     Backoff
	// Ready asks the role's /readyz; nil means ready.
	Ready func(ctx context.Context, role string) error
	// ReadyEvery is how often each running role's readiness is checked.
	ReadyEvery time.Duration
	Log        *slog.Logger
	// OnChange is called (without locks held) after any role's state changed.
	OnChange func()
}

// Supervisor keeps a machine's role processes as the desired state says: it starts the roles
// to run, restarts those that exit (with backoff), stops and restarts them on request, and
// stops them in order when it shuts down.
type Supervisor struct {
	o       SupervisorOptions
	mu      sync.Mutex
	desired *state.Desired
	source  string
	kids    map[string]*child
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// child is one role's process and its history.
type child struct {
	role        string
	kick        chan struct{} // the desired state changed
	proc        *proc
	st          state.RoleState
	startedOnce bool
	appliedGen  int64
}

// NewSupervisor returns a supervisor that runs nothing until Apply.
func NewSupervisor(o SupervisorOptions) *Supervisor {
	if o.ReadyEvery == 0 {
		o.ReadyEvery = 250 * time.Millisecond
	}
	if o.Backoff == (Backoff{}) {
		o.Backoff = DefaultBackoff
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{o: o, kids: map[string]*child{}, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.readyLoop()
	return s
}

// Apply makes d the desired state (from source: etcd, cache or config). Roles new to it get a
// process; the others act on any change of their want.
func (s *Supervisor) Apply(d *state.Desired, source string) {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	s.desired, s.source = d.Clone(), source
	var kicks []chan struct{}
	for _, w := range d.Roles {
		if w.Role == config.RoleAgent || !slices.Contains(config.AllRoles, w.Role) {
			continue // the agent does not run itself; unknown roles come from a newer version
		}
		if _, ok := s.kids[w.Role]; !ok {
			c := &child{role: w.Role, kick: make(chan struct{}, 1), appliedGen: w.Restart}
			c.st = state.RoleState{Role: w.Role, State: state.StateStopped, RestartGen: w.Restart}
			s.kids[w.Role] = c
			s.wg.Add(1)
			go s.loop(c)
		}
	}
	for _, c := range s.kids {
		kicks = append(kicks, c.kick)
	}
	s.mu.Unlock()
	for _, k := range kicks {
		select {
		case k <- struct{}{}:
		default:
		}
	}
	s.changed()
}

// Desired returns the desired state applied last (nil before the first Apply) and its source.
func (s *Supervisor) Desired() (*state.Desired, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desired == nil {
		return nil, ""
	}
	return s.desired.Clone(), s.source
}

// want is what role should do now; a role the desired state does not name is stopped.
func (s *Supervisor) want(role string) state.Want {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desired != nil {
		if w := s.desired.Role(role); w != nil {
			return *w
		}
	}
	return state.Want{Role: role}
}

// Snapshot is the machine's actual state: every role the desired state names, and any other
// that still has a process.
func (s *Supervisor) Snapshot() state.Actual {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := state.Actual{Machine: s.o.Machine, Source: s.source, Reported: time.Now().UTC()}
	if s.desired != nil {
		a.Version = s.desired.Version
	}
	for _, r := range config.AllRoles {
		c, ok := s.kids[r]
		if !ok {
			continue
		}
		named := s.desired != nil && s.desired.Role(r) != nil
		if !named && c.proc == nil {
			continue
		}
		st := c.st
		st.Run = named && s.desired.Role(r).Run
		if st.LastExit != nil {
			e := *st.LastExit
			st.LastExit = &e
		}
		a.Roles = append(a.Roles, st)
	}
	return a
}

// AllReady reports whether every role that should run is running and ready.
func (s *Supervisor) AllReady() bool {
	a := s.Snapshot()
	for _, r := range a.Roles {
		if r.Run && !r.Ready {
			return false
		}
	}
	return a.Version > 0
}

func (s *Supervisor) changed() {
	if s.o.OnChange != nil {
		s.o.OnChange()
	}
}

func (s *Supervisor) update(c *child, f func(*state.RoleState)) {
	s.mu.Lock()
	f(&c.st)
	s.mu.Unlock()
	s.changed()
}

// loop runs one role: it adopts the process an earlier agent left, then starts, watches,
// stops and restarts it as the desired state says, until the supervisor shuts down (which
// leaves the process to Shutdown).
func (s *Supervisor) loop(c *child) {
	defer s.wg.Done()
	log := s.o.Log.With("process", c.role)
	if p, err := adopt(s.o.StateDir, c.role); err != nil {
		log.Warn("cannot read the pid file of an earlier process", "err", err)
	} else if p != nil {
		log.Info("adopted the role process an earlier agent started", "pid", p.pid, "started", p.started)
		s.mu.Lock()
		c.proc, c.startedOnce = p, true
		c.st.PID, c.st.Started, c.st.State, c.st.Adopted = p.pid, p.started.UTC(), state.StateStarting, true
		s.mu.Unlock()
		s.changed()
	}
	for s.ctx.Err() == nil {
		w := s.want(c.role)
		if c.proc == nil {
			if !w.Run {
				s.update(c, func(st *state.RoleState) {
					st.State, st.NextStart, st.Failures, st.RestartGen = state.StateStopped, time.Time{}, 0, w.Restart
				})
				c.appliedGen = w.Restart
				if !s.wait(c, 0) {
					return
				}
				continue
			}
			s.mu.Lock()
			if w.Restart > c.appliedGen {
				// A restart asked for while the role waits out its backoff starts it now.
				c.st.NextStart = time.Time{}
			}
			next := c.st.NextStart
			s.mu.Unlock()
			if d := time.Until(next); d > 0 {
				s.update(c, func(st *state.RoleState) { st.State = state.StateBackoff })
				if !s.wait(c, d) {
					return
				}
				continue
			}
			s.start(c, w, log)
			continue
		}
		switch {
		case !w.Run:
			s.stop(c, "stopped", log)
			continue
		case w.Restart > c.appliedGen:
			s.stop(c, "restarted", log)
			continue
		}
		select {
		case <-c.proc.done:
			s.exited(c, "crashed", log)
		case <-c.kick:
		case <-s.ctx.Done():
			return
		}
	}
}

// wait blocks until the desired state changes, d passes (d > 0) or the supervisor shuts down
// (false).
func (s *Supervisor) wait(c *child, d time.Duration) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-c.kick:
		return true
	case <-timer:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Supervisor) start(c *child, w state.Want, log *slog.Logger) {
	c.appliedGen = w.Restart
	p, err := startProc(s.o.Binary, s.o.Args(c.role), s.o.Env, s.o.WorkDir, s.logPath(c.role))
	if err != nil {
		log.Error("cannot start the role", "err", err)
		s.update(c, func(st *state.RoleState) {
			st.Failures++
			st.StartFailure = err.Error()
			st.NextStart = time.Now().Add(max(s.o.Backoff.Delay(st.Failures), s.o.Backoff.Initial)).UTC()
			st.State = state.StateBackoff
		})
		return
	}
	if err := writePIDFile(s.o.StateDir, c.role, p); err != nil {
		log.Warn("cannot record the role's pid; a restarted agent will not adopt it", "err", err)
	}
	s.mu.Lock()
	c.proc = p
	if c.startedOnce {
		c.st.Restarts++
	}
	c.startedOnce = true
	c.st.PID, c.st.Started, c.st.State, c.st.Adopted = p.pid, p.started.UTC(), state.StateStarting, false
	c.st.Ready, c.st.NotReady, c.st.ReadySince, c.st.NextStart, c.st.StartFailure = false, "starting", time.Time{}, time.Time{}, ""
	c.st.RestartGen = w.Restart
	s.mu.Unlock()
	log.Info("role process started", "pid", p.pid)
	s.changed()
}

// stop terminates the role's process on request; it starts again at once if it should run.
func (s *Supervisor) stop(c *child, reason string, log *slog.Logger) {
	s.update(c, func(st *state.RoleState) { st.State, st.Ready = state.StateStopping, false })
	log.Info("stopping the role process", "pid", c.proc.pid, "reason", reason)
	c.proc.terminate(s.o.StopTimeout)
	s.exited(c, reason, log)
}

// exited records how the process ended. A crash counts as a failure: the next start waits as
// the backoff says and the process's last lines are logged.
func (s *Supervisor) exited(c *child, reason string, log *slog.Logger) {
	p := c.proc
	removePIDFile(s.o.StateDir, c.role)
	now := time.Now()
	e := &state.Exit{At: now.UTC(), Status: p.status, Reason: reason}
	if reason == "crashed" {
		e.Tail = tailLines(s.logPath(c.role), 10)
	}
	s.mu.Lock()
	c.proc = nil
	c.st.PID, c.st.Ready, c.st.NotReady, c.st.ReadySince, c.st.LastExit = 0, false, "", time.Time{}, e
	var delay time.Duration
	failures := c.st.Failures
	if reason == "crashed" {
		if now.Sub(p.started) >= s.o.Backoff.Reset {
			c.st.Failures = 0
		}
		c.st.Failures++
		failures = c.st.Failures
		delay = s.o.Backoff.Delay(c.st.Failures)
		c.st.NextStart = now.Add(delay).UTC()
	}
	c.st.State = state.StateStopped
	s.mu.Unlock()
	if reason == "crashed" {
		attrs := []any{"pid", p.pid, "status", p.status, "failures_in_a_row", failures, "restart_in", delay.String(),
			"log", s.logPath(c.role), "last_lines", strings.Join(e.Tail, "\n")}
		if failures > 1 {
			log.Error("role process exited again: crash loop, backing off", attrs...)
		} else {
			log.Error("role process exited; restarting it", attrs...)
		}
	} else {
		log.Info("role process ended", "pid", p.pid, "status", p.status, "reason", reason)
	}
	s.changed()
}

func (s *Supervisor) logPath(role string) string {
	return s.o.LogDir + "/" + role + ".log"
}

// readyLoop checks every running role's readiness.
func (s *Supervisor) readyLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.ReadyEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		var running []*child
		for _, c := range s.kids {
			if c.proc != nil && c.st.State != state.StateStopping {
				running = append(running, c)
			}
		}
		s.mu.Unlock()
		for _, c := range running {
			ctx, cancel := context.WithTimeout(s.ctx, time.Second)
			err := s.o.Ready(ctx, c.role)
			cancel()
			changed := false
			s.mu.Lock()
			if c.proc != nil && c.st.State != state.StateStopping {
				ready := err == nil
				changed = ready != c.st.Ready
				c.st.Ready = ready
				c.st.NotReady = ""
				if ready {
					c.st.State = state.StateRunning
					if c.st.ReadySince.IsZero() {
						c.st.ReadySince = time.Now().UTC()
					}
				} else {
					c.st.State = state.StateStarting
					c.st.NotReady = err.Error()
					c.st.ReadySince = time.Time{}
				}
				if c.st.Failures > 0 && time.Since(c.proc.started) >= s.o.Backoff.Reset {
					c.st.Failures, changed = 0, true
				}
			}
			s.mu.Unlock()
			if changed {
				s.changed()
			}
		}
	}
}

// stopOrder is the order roles stop in: the proxy and coordinator drain first, the controller
// (etcd) last.
var stopOrder = []string{config.RoleProxy, config.RoleCoordinator, config.RoleDatanode, config.RoleController}

// Shutdown stops supervising and stops every role process in stopOrder, each within
// StopTimeout (then killed). beforeController, if set, runs before the controller stops (while
// the machine's etcd member still answers).
func (s *Supervisor) Shutdown(beforeController func()) {
	s.cancel()
	s.wg.Wait()
	defer func() {
		if beforeController != nil { // no controller ran
			beforeController()
		}
	}()
	for _, r := range stopOrder {
		if r == config.RoleController && beforeController != nil {
			beforeController()
			beforeController = nil
		}
		s.mu.Lock()
		c := s.kids[r]
		s.mu.Unlock()
		if c == nil || c.proc == nil {
			continue
		}
		log := s.o.Log.With("process", r)
		s.stop(c, "agent stopped", log)
	}
}

// Detach stops supervising and leaves the role processes running (tests: an agent that dies).
func (s *Supervisor) Detach() {
	s.cancel()
	s.wg.Wait()
}
