package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processDriver runs each lab process as a child of the hanode binary in its own session, so
// it outlives `hanode lab up`.
type processDriver struct{}

func (processDriver) Name() string { return "process" }

func (processDriver) Start(ctx context.Context, l *Lab, m *Machine, p *Process) error {
	if p.Supervised {
		return nil // the machine's agent starts it
	}
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o755); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(l.Binary, p.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = m.DataDir
	cmd.Env = labEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", l.Binary, err)
	}
	p.PID = cmd.Process.Pid
	started, logPath := time.Now(), p.Log
	// Reap the child if it dies while this process still runs (tests), and note how it ended at
	// the end of its log, so that a process killed before it wrote anything still leaves a
	// trace; once `lab up` exits the children are reparented and reaped by init.
	go func() {
		_ = cmd.Wait()
		noteExit(logPath, cmd.Process.Pid, cmd.ProcessState, time.Since(started))
	}()
	return nil
}

// noteExit appends one line saying how a lab process ended to its log.
func noteExit(logPath string, pid int, st *os.ProcessState, ran time.Duration) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return // the lab's directory is gone (torn down)
	}
	defer f.Close()
	how := "unknown"
	if st != nil {
		how = st.String()
	}
	fmt.Fprintf(f, "hanode lab: process %d ended (%s) after %s\n", pid, how, ran.Round(time.Millisecond))
}

// labEnv is this process's environment without HANODE_* variables: a sourced lab env file
// must not reconfigure the lab's own processes.
func labEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HANODE_") {
			env = append(env, kv)
		}
	}
	return env
}

func (processDriver) Run(ctx context.Context, l *Lab, m *Machine, args, env []string) ([]byte, error) {
	if err := os.MkdirAll(m.DataDir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, l.Binary, args...)
	cmd.Dir = m.DataDir
	cmd.Env = append(labEnv(), env...)
	return cmd.CombinedOutput()
}

var signals = map[string]syscall.Signal{"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT}

func (d processDriver) Signal(l *Lab, m *Machine, p *Process, sig string) error {
	s, ok := signals[sig]
	if !ok {
		return fmt.Errorf("unknown signal %q", sig)
	}
	if !d.Alive(l, m, p) {
		return fmt.Errorf("%s/%s is not running", m.Name, strings.Join(p.Roles, ","))
	}
	if p.Supervised {
		// Signal the process Alive checked, even if the agent has replaced it meanwhile.
		return d.Signal(l, m, &Process{Roles: p.Roles, PID: p.PID}, sig)
	}
	if err := syscall.Kill(p.PID, s); err != nil {
		return fmt.Errorf("signal %s to %s/%s (pid %d): %w", sig, m.Name, strings.Join(p.Roles, ","), p.PID, err)
	}
	return nil
}

// Alive checks the PID still runs and is still this lab's process (PIDs are reused), by
// reading its state and command line from /proc.
func (processDriver) Alive(l *Lab, m *Machine, p *Process) bool {
	if p.Supervised {
		p.PID = supervisedPID(m, p)
	}
	if p.PID <= 0 {
		return false
	}
	switch processState(p.PID) {
	case 0, 'Z', 'X':
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte("\x00"+m.DataDir+"\x00"))
}

// supervisedPID is the pid the machine's agent recorded for p's role, or 0.
func supervisedPID(m *Machine, p *Process) int {
	data, err := os.ReadFile(filepath.Join(m.DataDir, "agent", p.Roles[0]+".pid"))
	if err != nil {
		return 0
	}
	var pf struct {
		PID int `json:"pid"`
	}
	if json.Unmarshal(data, &pf) != nil {
		return 0
	}
	return pf.PID
}
