package testenv

// Multi-process tests: real hanode processes, each lab on its own loopback range so that no
// test collides with another or with a developer's lab on 127.0.10.x.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hanode-testenv-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hanode")
	build := exec.Command("go", "build", "-o", binary, "github.com/hanode/hanode")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hanode:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startLab brings up a lab of n machines on prefix.1..n and takes it down after the test,
// keeping the logs of a failed test.
func startLab(t *testing.T, prefix string, n int, extra ...string) (*Lab, Driver) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	l, err := Up(ctx, Spec{Machines: n, Dir: dir, Binary: binary, AddressPrefix: prefix, ExtraArgs: extra, ReadyTimeout: 60 * time.Second}, nil)
	drv, _ := NewDriver("process")
	if l != nil {
		t.Cleanup(func() {
			if t.Failed() {
				dumpLogs(t, l)
			}
			_ = l.Down(drv, true)
		})
	}
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return l, drv
}

func dumpLogs(t *testing.T, l *Lab) {
	for _, m := range l.Machines {
		for _, p := range m.Processes {
			if strings.Contains(p.Log, "controller") {
				t.Logf("--- %s:\n%s", p.Log, tail(p.Log, 30))
			}
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func healthy(t *testing.T, l *Lab) *adminapi.Status {
	t.Helper()
	st, err := l.WaitHealthy(context.Background(), 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func controllerURLsExcept(l *Lab, name string) []string {
	var out []string
	for _, m := range l.Machines {
		if m.Name != name {
			out = append(out, httpsURL(m.Address, rolePort("controller")))
		}
	}
	return out
}

// newLeaderOtherThan polls the other controllers until they name a master other than old.
func newLeaderOtherThan(t *testing.T, l *Lab, old *adminapi.LeaderInfo) *adminapi.LeaderInfo {
	t.Helper()
	ac, err := l.AdminClient(controllerURLsExcept(l, old.Name))
	if err != nil {
		t.Fatal(err)
	}
	var got *adminapi.LeaderInfo
	waitFor(t, "a new active master", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		li, err := ac.Leader(ctx)
		if err == nil && li.Name != old.Name && li.Epoch > old.Epoch {
			got = li
			return true
		}
		return false
	})
	return got
}

func TestLabKillLeader(t *testing.T) {
	l, drv := startLab(t, "127.0.21", 3)
	st := healthy(t, l)
	old := st.Leader
	if err := l.Signal(drv, old.Name+"/controller", "KILL"); err != nil {
		t.Fatal(err)
	}
	nl := newLeaderOtherThan(t, l, old)
	// The killed controller comes back as a follower: leadership does not flap back to it.
	if err := l.Restart(context.Background(), drv, old.Name+"/controller", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	st = healthy(t, l)
	if st.Leader.Name != nl.Name || st.Leader.Epoch != nl.Epoch {
		t.Fatalf("leader after the old one returned: %+v, want %+v", st.Leader, nl)
	}
	// `hanode leader` through the env file names the same master.
	out, err := exec.Command("bash", "-c", fmt.Sprintf("source %s && %s leader --json", filepath.Join(l.Dir, EnvFile), binary)).CombinedOutput()
	if err != nil {
		t.Fatalf("hanode leader: %v\n%s", err, out)
	}
	var li adminapi.LeaderInfo
	if err := json.Unmarshal(out, &li); err != nil || li.Name != nl.Name {
		t.Fatalf("hanode leader printed %s (%v), want %s", out, err, nl.Name)
	}

	// Machine 1 frozen (every process stopped): it comes first in every list of the env file
	// (controllers, S3 entry points), yet the commands run from it answer from the others.
	src := filepath.Join(t.TempDir(), "obj")
	if err := os.WriteFile(src, labData(256<<10, 9), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"mb", "s3://frozen"}, {"cp", "-q", src, "s3://frozen/before"}} {
		if out, _, err := envCmd(l, binary, args...); err != nil {
			t.Fatalf("hanode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := l.Signal(drv, "m1", "STOP"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Signal(drv, "m1", "CONT") })
	for _, args := range [][]string{
		{"leader"}, {"status"}, {"cp", "-q", src, "s3://frozen/during"}, {"cp", "-q", "s3://frozen/before", filepath.Join(t.TempDir(), "got")}, {"ls", "s3://frozen"},
	} {
		out, took, err := envCmd(l, binary, args...)
		if err != nil {
			t.Fatalf("hanode %s with m1 frozen: %v after %s\n%s", strings.Join(args, " "), err, took, out)
		}
		t.Logf("hanode %s with m1 frozen: %s", strings.Join(args, " "), took.Round(time.Millisecond))
	}
}

// envCmd runs the hanode binary bin with args and only what `source DIR/env` sets, as a user of
// the lab would, and returns its output and how long it took.
func envCmd(l *Lab, bin string, args ...string) (string, time.Duration, error) {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	start := time.Now()
	out, err := exec.Command("bash", "-c", fmt.Sprintf("source %s && exec %s %s", filepath.Join(l.Dir, EnvFile), bin, strings.Join(quoted, " "))).CombinedOutput()
	return string(out), time.Since(start), err
}

// A paused master loses its lease; once resumed it must step down, and nothing it writes under
// its old epoch may land after the new master's first write.
func TestLabPausedLeaderIsFenced(t *testing.T) {
	l, drv := startLab(t, "127.0.22", 3)
	st := healthy(t, l)
	old := st.Leader
	cli, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	records := make(chan cluster.MasterRecord, 1024)
	wch := cli.Watch(wctx, cluster.MasterKey)
	go func() {
		for wr := range wch {
			for _, ev := range wr.Events {
				var r cluster.MasterRecord
				if ev.Type == clientv3.EventTypePut && json.Unmarshal(ev.Kv.Value, &r) == nil {
					records <- r
				}
			}
		}
	}()
	if err := l.Signal(drv, old.Name, "STOP"); err != nil {
		t.Fatal(err)
	}
	nl := newLeaderOtherThan(t, l, old)
	if err := l.Signal(drv, old.Name, "CONT"); err != nil {
		t.Fatal(err)
	}
	// The resumed controller reports that it no longer leads.
	hc, err := l.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	oldURL := httpsURL(l.Machine(old.Name).Address, rolePort("controller"))
	waitFor(t, "the resumed master to step down", 30*time.Second, func() bool {
		v, ok := metric(hc, oldURL, "hanode_election_leading")
		return ok && v == 0
	})
	healthy(t, l)
	wcancel()
	seenNew := false
	for done := false; !done; {
		select {
		case r := <-records:
			if r.Epoch == nl.Epoch {
				seenNew = true
			}
			if seenNew && r.Epoch < nl.Epoch {
				t.Fatalf("a write of old epoch %d (%s) landed after the new master's epoch %d", r.Epoch, r.Name, nl.Epoch)
			}
		default:
			done = true
		}
	}
	if !seenNew {
		t.Fatalf("the new master (epoch %d) never wrote its record", nl.Epoch)
	}
}

// metric reads one unlabelled metric from a role's /metrics.
func metric(hc *http.Client, base, name string) (float64, bool) {
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v float64
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			if _, err := fmt.Sscan(f[1], &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

func TestLabFullRestartKeepsData(t *testing.T) {
	l, drv := startLab(t, "127.0.23", 3)
	healthy(t, l)
	cli, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Put(ctx, "/hanode/test/kept", "before-restart"); err != nil {
		t.Fatal(err)
	}
	// Stop every controller, then start them all: a cold restart from the data dirs. Each log is
	// read from where it ended before the restart (a loaded etcd can log hundreds of lines).
	logFrom := map[string]int64{}
	for _, m := range l.Machines {
		_, sel, _ := l.Select(m.Name + "/controller")
		if fi, err := os.Stat(sel[0].Log); err == nil {
			logFrom[sel[0].Log] = fi.Size()
		}
	}
	for _, m := range l.Machines {
		if err := l.Stop(drv, m.Name+"/controller", 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var ps []*Process
	for mi := range l.Machines {
		m := &l.Machines[mi]
		_, sel, _ := l.Select(m.Name + "/controller")
		if err := drv.Start(ctx, l, m, sel[0]); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, sel...)
	}
	if err := l.WaitReady(ctx, drv, ps, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	healthy(t, l)
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, "/hanode/test/kept")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "before-restart" {
		t.Fatalf("after a full restart: %v %v", resp, err)
	}
	for _, p := range ps {
		b, err := os.ReadFile(p.Log)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b[min(logFrom[p.Log], int64(len(b))):]), "restarting etcd member from existing data") {
			t.Errorf("%s: controller did not restart from its existing data", p.Log)
		}
	}
}

// addController brings a new controller machine in as an operator would: a one-use token
// created on the cluster, `hanode join`, then the controller process, which joins etcd as a
// learner. The machine is recorded in the lab so that Down stops it.
func addController(t *testing.T, l *Lab, drv Driver, name, addr string) (*Machine, *Process) {
	t.Helper()
	ctx := context.Background()
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if _, err := ac.Do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"ttl": "10m", "uses": 1, "roles": []string{"controller"}}, &tok); err != nil {
		t.Fatal(err)
	}
	m := Machine{Name: name, Address: addr, DataDir: filepath.Join(l.Dir, name), Roles: []string{"controller"}}
	m.Processes = []Process{{Roles: []string{"controller"}, Args: l.processArgs(m, "controller"),
		Log: filepath.Join(m.DataDir, "logs", "controller.log"), URL: httpsURL(addr, rolePort("controller"))}}
	l.Machines = append(l.Machines, m)
	mp := &l.Machines[len(l.Machines)-1]
	args := append(l.machineArgs(mp, "join"), "--server", l.Endpoints.Controllers[0])
	if out, err := drv.Run(ctx, l, mp, args, []string{"HANODE_TOKEN=" + tok.Token}); err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	if err := drv.Start(ctx, l, mp, &mp.Processes[0]); err != nil {
		t.Fatal(err)
	}
	return mp, &mp.Processes[0]
}

func TestLabFourthControllerJoinsAsLearner(t *testing.T) {
	l, drv := startLab(t, "127.0.24", 3)
	healthy(t, l)
	_, p := addController(t, l, drv, "m4", "127.0.24.4")
	if err := l.WaitReady(context.Background(), drv, []*Process{p}, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	cli, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	waitFor(t, "m4 to be a voting member", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ml, err := cli.MemberList(ctx)
		if err != nil {
			return false
		}
		for _, m := range ml.Members {
			if m.Name == "m4" {
				return !m.IsLearner && len(m.ClientURLs) > 0
			}
		}
		return false
	})
	log := tail(p.Log, 400)
	for _, want := range []string{"added as learner", "promoted from learner to voting member"} {
		if !strings.Contains(log, want) {
			t.Errorf("m4's log lacks %q", want)
		}
	}
}

func TestLabLostControllerDataAndRejoin(t *testing.T) {
	l, drv := startLab(t, "127.0.25", 3)
	healthy(t, l)
	ms, ps, err := l.Select("m3/controller")
	if err != nil {
		t.Fatal(err)
	}
	m, p := ms[0], ps[0]
	if err := l.Signal(drv, "m3/controller", "KILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m3's controller to die", 10*time.Second, func() bool { return !drv.Alive(l, m, p) })
	if err := os.RemoveAll(filepath.Join(m.DataDir, "controller")); err != nil {
		t.Fatal(err)
	}
	// Started as before, it refuses with a clear error instead of corrupting the cluster.
	if err := drv.Start(context.Background(), l, m, p); err != nil {
		t.Fatal(err)
	}
	refused := func() bool {
		log := tail(p.Log, 2000)
		return !drv.Alive(l, m, p) && strings.Contains(log, "--rejoin") && strings.Contains(log, "data was lost")
	}
	deadline := time.Now().Add(30 * time.Second)
	for !refused() {
		if time.Now().After(deadline) {
			t.Fatalf("m3's controller did not exit explaining the recovery (alive=%v):\n%s", drv.Alive(l, m, p), tail(p.Log, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The documented recovery: start it once with --rejoin.
	orig := p.Args
	p.Args = append(append([]string{}, orig...), "--rejoin")
	if err := drv.Start(context.Background(), l, m, p); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitReady(context.Background(), drv, []*Process{p}, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	healthy(t, l)
	// After recovery it restarts normally, without the flag.
	p.Args = orig
	if err := l.Restart(context.Background(), drv, "m3/controller", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	healthy(t, l)
}

// TestLabNodeRemove forgets a machine for good: refused while it runs, then its controller
// leaves etcd and the remaining two keep an active master.
func TestLabNodeRemove(t *testing.T) {
	l, drv := startLab(t, "127.0.32", 3)
	healthy(t, l)
	hanodeCmd := func(args string) (string, error) {
		out, err := exec.Command("bash", "-c", fmt.Sprintf("source %s && %s %s", filepath.Join(l.Dir, EnvFile), binary, args)).CombinedOutput()
		return string(out), err
	}
	if out, err := hanodeCmd("node remove m3"); err == nil || !strings.Contains(out, "still runs") {
		t.Fatalf("removing a running machine: %v %q", err, out)
	}
	if err := l.Stop(drv, "m3", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	// A clean stop deregisters at once; the removal is refused until then anyway.
	var out string
	waitFor(t, "node remove m3 to succeed", 30*time.Second, func() bool {
		var err error
		out, err = hanodeCmd("node remove m3")
		return err == nil
	})
	if !strings.Contains(out, "its controller left the etcd cluster") {
		t.Fatalf("node remove m3: %q", out)
	}
	cli, err := l.EtcdClient(l.Endpoints.Etcd[:2])
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ml, err := cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 2 {
		t.Fatalf("members after removal: %v %v", ml, err)
	}
	for _, m := range ml.Members {
		if m.Name == "m3" {
			t.Fatal("m3 is still an etcd member")
		}
	}
	ac, err := l.AdminClient(l.Endpoints.Controllers[:2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Leader(ctx); err != nil {
		t.Fatalf("no active master after removing m3: %v", err)
	}
}
