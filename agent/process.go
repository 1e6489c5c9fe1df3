package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one running role process: one this agent started (and waits for), or one an earlier
// agent process started and this one adopted (watched through a pidfd, so that a reused pid is
// never mistaken for it).
type proc struct {
	pid     int
	started time.Time
	adopted bool
	pidfd   int // adopted only: signals go through it
	done    chan struct{}
	status  string // how it ended; set before done is closed
}

// pidFile is what the agent records about a role process it started, in DIR/<role>.pid, so
// that a restarted agent can find (adopt) it instead of starting a second one.
type pidFile struct {
	PID     int       `json:"pid"`
	Ticks   uint64    `json:"start_ticks"` // /proc/<pid>/stat starttime: tells a reused pid apart
	Started time.Time `json:"started"`
}

// startProc starts bin with args, its output appended to logPath, in a session of its own so
// that it outlives this agent (a restarted agent adopts it) and a terminal's signals do not
// reach it directly.
func startProc(bin string, args, env []string, dir, logPath string) (*proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return nil, fmt.Errorf("log dir of %s: %w", logPath, err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", logPath, err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", bin, strings.Join(args, " "), err)
	}
	p := &proc{pid: cmd.Process.Pid, started: time.Now(), pidfd: -1, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		switch {
		case cmd.ProcessState != nil:
			p.status = cmd.ProcessState.String()
		case err != nil:
			p.status = err.Error()
		}
		close(p.done)
	}()
	return p, nil
}

// signal sends sig to the process (through its pidfd when adopted).
func (p *proc) signal(sig syscall.Signal) error {
	if p.adopted {
		return unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	}
	return syscall.Kill(p.pid, sig)
}

// terminate asks the process to stop (SIGTERM) and kills it when it has not exited after
// grace. It returns once the process has exited (or 5 s after the SIGKILL, which never
// happens short of an unkillable process).
func (p *proc) terminate(grace time.Duration) {
	_ = p.signal(syscall.SIGCONT) // a paused process cannot act on SIGTERM
	_ = p.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	_ = p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// writePIDFile records p for role in dir.
func writePIDFile(dir, role string, p *proc) error {
	ticks, err := startTicks(p.pid)
	if err != nil {
		return err
	}
	data, _ := json.Marshal(pidFile{PID: p.pid, Ticks: ticks, Started: p.started.UTC()})
	return writeFileAtomic(filepath.Join(dir, role+".pid"), data)
}

func removePIDFile(dir, role string) { _ = os.Remove(filepath.Join(dir, role+".pid")) }

// adopt returns the process an earlier agent started for role, if it still runs: its pid file
// names it, and its start time matches (the pid was not reused). Else it removes a stale pid
// file and returns nil.
func adopt(dir, role string) (*proc, error) {
	path := filepath.Join(dir, role+".pid")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var pf pidFile
	if err := json.Unmarshal(data, &pf); err != nil || pf.PID <= 0 {
		_ = os.Remove(path)
		return nil, nil
	}
	fd, err := unix.PidfdOpen(pf.PID, 0)
	if err != nil { // gone
		_ = os.Remove(path)
		return nil, nil
	}
	// The pidfd now pins the process: check it is the one recorded, and not a zombie.
	ticks, err := startTicks(pf.PID)
	if err != nil || ticks != pf.Ticks || exited(pf.PID) {
		unix.Close(fd)
		_ = os.Remove(path)
		return nil, nil
	}
	p := &proc{pid: pf.PID, started: pf.Started, adopted: true, pidfd: fd, done: make(chan struct{})}
	go func() {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == nil && n > 0 {
				break
			}
			if err != nil && !errors.Is(err, unix.EINTR) {
				break
			}
		}
		p.status = "exit status unknown (adopted process)"
		close(p.done)
		unix.Close(fd)
	}()
	return p, nil
}

// procStat returns the fields of /proc/<pid>/stat after the command name.
func procStat(pid int) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strings.Fields(string(data[i+1:])), nil
}

// startTicks is the process's start time in clock ticks after boot (field 22 of stat).
func startTicks(pid int) (uint64, error) {
	f, err := procStat(pid)
	if err != nil || len(f) < 20 {
		return 0, fmt.Errorf("start time of pid %d: %v", pid, err)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// exited reports whether pid is gone or a zombie.
func exited(pid int) bool {
	f, err := procStat(pid)
	return err != nil || len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

// tailLines returns the last n lines of the file at path (reading at most its last 16 KiB).
func tailLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 16<<10 {
		_, _ = f.Seek(-16<<10, io.SeekEnd)
	}
	data, _ := io.ReadAll(io.LimitReader(f, 16<<10))
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
