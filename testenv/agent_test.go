package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/agent/state"
	"github.com/hanode/hanode/security/pki"
)

// TestLabAgent runs a supervised lab (one agent per machine starts the roles) and checks the
// agents: a killed role serves again within 1 s, a role that cannot start backs off and says
// why, stop/start/restart/roles/rollout through the admin API and the CLI, a killed and
// restarted agent adopts its roles instead of starting seconds, and roles keep running (and are
// restarted from the cached desired state) while every controller is frozen.
func TestLabAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process lab")
	}
	dir := t.TempDir()
	// A short repair-grace makes the active master sweep every 2 s: a datanode rollout waits for
	// a sweep after each restart.
	l, err := Up(context.Background(), Spec{Machines: 3, Dir: dir, Binary: binary, AddressPrefix: "127.0.46",
		ReadyTimeout: 60 * time.Second, Supervised: true, ExtraArgs: []string{"--repair-grace=8s"}}, nil)
	drv, _ := NewDriver("process")
	if l != nil {
		t.Cleanup(func() {
			if t.Failed() {
				for _, m := range l.Machines {
					t.Logf("--- %s agent:\n%s", m.Name, tail(filepath.Join(m.DataDir, "logs", "agent.log"), 15))
				}
			}
			_ = l.Down(drv, true)
		})
	}
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := l.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	m2 := l.Machine("m2")
	proc := func(m *Machine, role string) *Process { return l.processesOf(role, m)[0] }
	pidOf := func(m *Machine, role string) int {
		p := proc(m, role)
		if !drv.Alive(l, m, p) {
			return 0
		}
		return p.PID
	}

	t.Run("kill -9 of each role: a new one serves within 1 s", func(t *testing.T) {
		for _, role := range []string{"proxy", "coordinator", "datanode", "controller"} {
			old := pidOf(m2, role)
			if old == 0 {
				t.Fatalf("m2/%s is not running", role)
			}
			killed := time.Now()
			if err := l.Signal(drv, "m2/"+role, "KILL"); err != nil {
				t.Fatal(err)
			}
			var took time.Duration
			waitFor(t, "m2/"+role+" serving again", 30*time.Second, func() bool {
				pid := pidOf(m2, role)
				if pid == 0 || pid == old {
					return false
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				if l.Ready(ctx, hc, proc(m2, role)) != nil {
					return false
				}
				took = time.Since(killed)
				return true
			})
			t.Logf("m2/%s: kill -9 → a new process ready in %s", role, took.Round(time.Millisecond))
			// The controller restarts its etcd member too (measured: 0.4 s), so it gets more room.
			if limit := map[bool]time.Duration{true: 3 * time.Second, false: time.Second}[role == "controller"]; took > limit {
				t.Errorf("m2/%s served again after %s, want within %s", role, took.Round(time.Millisecond), limit)
			}
			// The agent reports on its own schedule: the new process may serve before the
			// report of its restart reaches etcd.
			var rs state.RoleState
			waitFor(t, "m2's agent reporting the restart of its "+role, 5*time.Second, func() bool {
				rs = agentRole(t, ac, "m2", role)
				return rs.Restarts >= 1
			})
			if rs.LastExit == nil || rs.LastExit.Reason != "crashed" || rs.LastExit.Status != "signal: killed" || rs.Restarts != 1 {
				t.Fatalf("m2/%s reported as %+v (last exit %+v)", role, rs, rs.LastExit)
			}
		}
	})

	t.Run("a role that cannot start backs off and says why", func(t *testing.T) {
		do(t, ac, "POST", "/v1/nodes/m3/roles/datanode/stop")
		m3 := l.Machine("m3")
		waitFor(t, "m3/datanode stopped", 20*time.Second, func() bool { return pidOf(m3, "datanode") == 0 })
		// Another program holds the datanode's port: the datanode exits at once.
		ln, err := net.Listen("tcp", net.JoinHostPort(m3.Address, "8911"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		do(t, ac, "POST", "/v1/nodes/m3/roles/datanode/start")
		time.Sleep(4500 * time.Millisecond)
		rs := agentRole(t, ac, "m3", "datanode")
		// Starts at 0, 0, 1 and 3 s (backoff none, 1 s, 2 s, then 4 s): a handful, not a busy loop.
		if rs.Restarts < 2 || rs.Restarts > 5 || rs.Failures < 3 {
			t.Fatalf("after 4.5 s of a datanode that cannot start: %d restarts, %d failures in a row; want 2-5 and >= 3: %+v", rs.Restarts, rs.Failures, rs)
		}
		if rs.LastExit == nil || rs.LastExit.Reason != "crashed" || !strings.Contains(strings.Join(rs.LastExit.Tail, "\n"), "address already in use") {
			t.Fatalf("last exit %+v", rs.LastExit)
		}
		metrics := get(t, hc, proc(m3, "agent").URL+"/metrics")
		if !regexpLine(metrics, `hanode_agent_role_failures{role="datanode"} `+strconv.Itoa(rs.Failures)) &&
			!regexpLine(metrics, `hanode_agent_role_failures{role="datanode"} `+strconv.Itoa(rs.Failures+1)) {
			t.Fatalf("metrics do not show the crash loop (%d failures):\n%s", rs.Failures, grepLines(metrics, "hanode_agent_role"))
		}
		out := runCLI(t, l, "status")
		if !strings.Contains(out, "CRASH LOOP") {
			t.Fatalf("hanode status does not show the crash loop:\n%s", out)
		}
		ln.Close()
		waitFor(t, "m3/datanode serving once its port is free", 20*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return pidOf(m3, "datanode") != 0 && l.Ready(ctx, hc, proc(m3, "datanode")) == nil
		})
	})

	t.Run("the admin API refuses what an agent cannot do, and readonly callers", func(t *testing.T) {
		ctx := context.Background()
		for _, tc := range []struct {
			path   string
			body   any
			status int
		}{
			{"/v1/nodes/m3/roles", adminapi.RolesChange{Add: []string{"controller"}}, http.StatusConflict},
			{"/v1/nodes/m3/roles", adminapi.RolesChange{Remove: []string{"controller"}}, http.StatusConflict},
			{"/v1/nodes/m3/roles", adminapi.RolesChange{Add: []string{"web"}}, http.StatusBadRequest},
			{"/v1/nodes/m3/roles", adminapi.RolesChange{}, http.StatusBadRequest},
			{"/v1/nodes/m3/roles/agent/restart", nil, http.StatusBadRequest},
			{"/v1/nodes/m3/roles/datanode/explode", nil, http.StatusNotFound},
			{"/v1/nodes/m9/roles/datanode/stop", nil, http.StatusNotFound},
		} {
			_, err := ac.Do(ctx, http.MethodPost, tc.path, tc.body, nil)
			var ae *adminapi.APIError
			if !errors.As(err, &ae) || ae.Status != tc.status {
				t.Errorf("POST %s %+v: %v, want status %d", tc.path, tc.body, err, tc.status)
			}
		}
		var cred struct {
			Credential string `json:"credential"`
		}
		if _, err := ac.Do(ctx, http.MethodPost, "/v1/credentials", map[string]any{"level": "readonly"}, &cred); err != nil {
			t.Fatal(err)
		}
		tlsCfg, err := pki.ClientTLSForCA(l.CACert)
		if err != nil {
			t.Fatal(err)
		}
		ro, err := adminapi.New(l.Endpoints.Controllers, tlsCfg, cred.Credential)
		if err != nil {
			t.Fatal(err)
		}
		var list adminapi.Agents
		if _, err := ro.Do(ctx, http.MethodGet, "/v1/agents", nil, &list); err != nil || len(list.Machines) != 3 {
			t.Fatalf("readonly GET /v1/agents: %d machines, %v", len(list.Machines), err)
		}
		_, err = ro.Do(ctx, http.MethodPost, "/v1/nodes/m3/roles/proxy/stop", nil, nil)
		var ae *adminapi.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
			t.Fatalf("readonly stop: %v, want 403", err)
		}
		if d := desiredOf(t, ac, "m3"); !d.Role("proxy").Run {
			t.Fatal("a refused stop changed the desired state")
		}
	})

	t.Run("stop, start, restart, roles and rollout through the CLI", func(t *testing.T) {
		m3 := l.Machine("m3")
		out := runCLI(t, l, "node", "stop", "m3/proxy")
		if !strings.Contains(out, "m3/proxy: stopped") || pidOf(m3, "proxy") != 0 {
			t.Fatalf("node stop: pid %d\n%s", pidOf(m3, "proxy"), out)
		}
		time.Sleep(time.Second)
		if pid := pidOf(m3, "proxy"); pid != 0 {
			t.Fatalf("a stopped proxy was started again (pid %d)", pid)
		}
		runCLI(t, l, "node", "start", "m3/proxy")
		if pidOf(m3, "proxy") == 0 {
			t.Fatal("node start returned but no proxy runs")
		}
		old := pidOf(m3, "coordinator")
		runCLI(t, l, "node", "restart", "m3/coordinator")
		if pid := pidOf(m3, "coordinator"); pid == 0 || pid == old {
			t.Fatalf("node restart: coordinator pid %d, was %d", pid, old)
		}
		runCLI(t, l, "node", "stop", "m3/controller")
		if pidOf(m3, "controller") != 0 {
			t.Fatal("node stop m3/controller returned but it runs")
		}
		runCLI(t, l, "node", "start", "m3/controller")
		healthy(t, l)
		runCLI(t, l, "node", "roles", "m3", "-proxy")
		if d := desiredOf(t, ac, "m3"); d.Role("proxy") != nil || pidOf(m3, "proxy") != 0 {
			t.Fatalf("after -proxy: desired %+v, proxy pid %d", d.Roles, pidOf(m3, "proxy"))
		}
		runCLI(t, l, "node", "roles", "m3", "+proxy")
		if pidOf(m3, "proxy") == 0 {
			t.Fatal("+proxy returned but no proxy runs")
		}
		before := map[string]int{}
		for _, m := range l.Machines {
			before[m.Name] = pidOf(&m, "coordinator")
		}
		out = runCLI(t, l, "rollout", "restart", "--role", "coordinator")
		for _, m := range l.Machines {
			if pid := pidOf(&m, "coordinator"); pid == 0 || pid == before[m.Name] {
				t.Fatalf("rollout: %s's coordinator pid %d, was %d\n%s", m.Name, pid, before[m.Name], out)
			}
		}
		t.Logf("rollout:\n%s", out)
		out = runCLI(t, l, "audit")
		for _, want := range []string{"POST /v1/nodes/m3/roles/proxy/stop", "POST /v1/nodes/m3/roles", "POST /v1/nodes/m1/roles/coordinator/restart"} {
			if !strings.Contains(out, want) {
				t.Fatalf("the audit trail lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("agent kill -9 and restart: the roles are adopted, none doubled", func(t *testing.T) {
		before := map[string]int{}
		for _, r := range []string{"controller", "datanode", "coordinator", "proxy"} {
			before[r] = pidOf(m2, r)
		}
		if err := l.Signal(drv, "m2/agent", "KILL"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "m2's agent gone", 5*time.Second, func() bool { return !drv.Alive(l, m2, proc(m2, "agent")) })
		if err := l.Restart(context.Background(), drv, "m2/agent", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		for r, pid := range before {
			if got := pidOf(m2, r); got != pid {
				t.Errorf("m2/%s: pid %d after the agent's restart, was %d", r, got, pid)
			}
			if n := roleProcesses(m2.DataDir, r); n != 1 {
				t.Errorf("m2 runs %d %s processes", n, r)
			}
			if rs := agentRole(t, ac, "m2", r); !rs.Adopted || rs.PID != pid {
				t.Errorf("m2/%s reported %+v, want adopted pid %d", r, rs, pid)
			}
		}
	})

	t.Run("controllers frozen: the roles keep running and a killed one is restarted", func(t *testing.T) {
		for _, m := range l.Machines {
			if err := l.Signal(drv, m.Name+"/controller", "STOP"); err != nil {
				t.Fatal(err)
			}
		}
		resumed := false
		resume := func() {
			if !resumed {
				for _, m := range l.Machines {
					_ = l.Signal(drv, m.Name+"/controller", "CONT")
				}
				resumed = true
			}
		}
		defer resume()
		before := map[string]int{}
		for _, r := range []string{"datanode", "proxy"} {
			before[r] = pidOf(m2, r)
		}
		old := pidOf(m2, "coordinator")
		if err := l.Signal(drv, "m2/coordinator", "KILL"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a new m2/coordinator while the controllers are frozen", time.Second, func() bool {
			pid := pidOf(m2, "coordinator")
			return pid != 0 && pid != old
		})
		// The agent restarted with no controller to ask runs its roles from its cache.
		if err := l.Signal(drv, "m2/agent", "KILL"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "m2's agent gone", 5*time.Second, func() bool { return !drv.Alive(l, m2, proc(m2, "agent")) })
		if err := drv.Start(context.Background(), l, m2, proc(m2, "agent")); err != nil {
			t.Fatal(err)
		}
		var report struct {
			Actual state.Actual `json:"actual"`
		}
		waitFor(t, "m2's agent answering", 10*time.Second, func() bool {
			body, err := getErr(hc, proc(m2, "agent").URL+"/v1/agent")
			return err == nil && json.Unmarshal(body, &report) == nil && len(report.Actual.Roles) == 4
		})
		if report.Actual.Source != "cache" {
			t.Fatalf("the restarted agent runs the desired state from %q, want cache", report.Actual.Source)
		}
		time.Sleep(2 * time.Second)
		for r, pid := range before {
			if got := pidOf(m2, r); got != pid {
				t.Errorf("m2/%s: pid %d while the controllers are frozen, was %d", r, got, pid)
			}
		}
		resume()
		// Back: changes reach the agent again.
		healthy(t, l)
		runCLI(t, l, "node", "restart", "m2/proxy")
		if pid := pidOf(m2, "proxy"); pid == 0 || pid == before["proxy"] {
			t.Fatalf("after the controllers returned, node restart m2/proxy: pid %d, was %d", pid, before["proxy"])
		}
	})

	t.Run("node roles m4 +datanode on a machine that joined with only an agent: it stores chunks", func(t *testing.T) {
		ctx := context.Background()
		var tok struct {
			Token string `json:"token"`
		}
		if _, err := ac.Do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"uses": 1, "ttl": "10m"}, &tok); err != nil {
			t.Fatal(err)
		}
		m := Machine{Name: "m4", Address: "127.0.46.4", DataDir: filepath.Join(l.Dir, "m4"), Roles: []string{"agent"}}
		if out, err := drv.Run(ctx, l, &m, append(l.machineArgs(&m, "join"), "--server", l.Endpoints.Controllers[0]), []string{"HANODE_TOKEN=" + tok.Token}); err != nil {
			t.Fatalf("m4: hanode join: %v\n%s", err, out)
		}
		m.Processes = []Process{
			{Roles: []string{"agent"}, Args: append([]string{"agent"}, l.processArgs(m, "agent", "--etcd-endpoints", strings.Join(l.Endpoints.Etcd, ","))...),
				Log: filepath.Join(m.DataDir, "logs", "agent.log"), URL: httpsURL(m.Address, rolePort("agent"))},
			{Roles: []string{"datanode"}, Supervised: true, Log: filepath.Join(m.DataDir, "logs", "datanode.log"), URL: httpsURL(m.Address, rolePort("datanode"))},
		}
		l.Machines = append(l.Machines, m)
		m4 := &l.Machines[len(l.Machines)-1]
		if err := drv.Start(ctx, l, m4, &m4.Processes[0]); err != nil {
			t.Fatal(err)
		}
		if err := l.Save(); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitReady(ctx, drv, []*Process{&m4.Processes[0]}, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "m4's agent to record its (empty) desired state", 10*time.Second, func() bool {
			var got state.Machine
			_, err := ac.Do(ctx, http.MethodGet, "/v1/nodes/m4/roles", nil, &got)
			return err == nil && got.Desired != nil && len(got.Desired.Roles) == 0
		})
		out := runCLI(t, l, "node", "roles", "m4", "+datanode")
		if pidOf(m4, "datanode") == 0 {
			t.Fatalf("node roles m4 +datanode returned but no datanode runs on m4:\n%s", out)
		}
		mc := labS3(t, l, l.Endpoints.S3[0])
		if err := mc.MakeBucket(ctx, "agent-m4", minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		onM4 := 0
		for i := range 16 {
			key := fmt.Sprintf("o%d", i)
			data := labData(64<<10, uint64(i))
			if _, err := mc.PutObject(ctx, "agent-m4", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			var loc adminapi.Locate
			if _, err := ac.Do(ctx, http.MethodGet, "/v1/locate/agent-m4/"+key, nil, &loc); err != nil {
				t.Fatal(err)
			}
			if _, ok := loc.Machines["m4"]; ok {
				onM4++
			}
		}
		t.Logf("m4's new datanode holds a replica of %d of 16 objects", onM4)
		if onM4 == 0 {
			t.Fatal("the datanode added online on m4 took no chunk")
		}
		// A datanode rollout goes machine by machine, each time waiting until a repair sweep
		// finds every chunk on R machines again.
		out = runCLI(t, l, "rollout", "restart", "--role", "datanode", "--timeout", "60s")
		if n := strings.Count(out, "no chunk below its replica count"); n != 4 {
			t.Fatalf("datanode rollout on 4 machines waited for whole replication %d times:\n%s", n, out)
		}
		t.Logf("datanode rollout:\n%s", out)
		for i := range 16 {
			obj, err := mc.GetObject(ctx, "agent-m4", fmt.Sprintf("o%d", i), minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(obj)
			if err != nil || !bytes.Equal(got, labData(64<<10, uint64(i))) {
				t.Fatalf("o%d after the rollout: %d bytes, %v", i, len(got), err)
			}
		}
		// Removed for good (its replicas lost there, for repair to re-create), the machine's agent
		// records go with it.
		if err := l.Stop(drv, "m4", 15*time.Second); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "m4's registrations to go", 10*time.Second, func() bool {
			var nodes struct {
				Machines []struct{ Name string } `json:"machines"`
			}
			_, err := ac.Do(ctx, http.MethodGet, "/v1/nodes", nil, &nodes)
			return err == nil && !slices.ContainsFunc(nodes.Machines, func(m struct{ Name string }) bool { return m.Name == "m4" })
		})
		runCLI(t, l, "node", "remove", "m4", "--force") // it holds replicas: repair re-creates them elsewhere
		_, err := ac.Do(ctx, http.MethodGet, "/v1/nodes/m4/roles", nil, nil)
		var ae *adminapi.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			t.Fatalf("m4's agent state after node remove: %v, want 404", err)
		}
	})

	t.Run("lab down stops the agents, which stop their roles", func(t *testing.T) {
		if err := l.Down(drv, true); err != nil {
			t.Fatal(err)
		}
		for _, m := range l.Machines {
			for _, r := range []string{"agent", "controller", "datanode", "coordinator", "proxy"} {
				if n := roleProcesses(m.DataDir, r); n != 0 {
					t.Errorf("%s: %d %s processes after lab down", m.Name, n, r)
				}
			}
			if m.Name == "m4" {
				continue // it runs a datanode alone
			}
			log, _ := os.ReadFile(filepath.Join(m.DataDir, "logs", "agent.log"))
			var order []string
			for _, line := range strings.Split(string(log), "\n") {
				if strings.Contains(line, "reason=\"agent stopped\"") && strings.Contains(line, "stopping the role process") {
					for _, r := range []string{"controller", "datanode", "coordinator", "proxy"} {
						if strings.Contains(line, "process="+r+" ") {
							order = append(order, r)
						}
					}
				}
			}
			if want := []string{"proxy", "coordinator", "datanode", "controller"}; !slices.Equal(order, want) {
				t.Errorf("%s's agent stopped its roles in the order %v, want %v", m.Name, order, want)
			}
		}
	})
}

func do(t *testing.T, ac *adminapi.Client, method, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ac.Do(ctx, method, path, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func agentRole(t *testing.T, ac *adminapi.Client, machine, role string) state.RoleState {
	t.Helper()
	var m state.Machine
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rs *state.RoleState
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ac.Do(ctx, http.MethodGet, "/v1/nodes/"+machine+"/roles", nil, &m); err != nil {
			t.Fatal(err)
		}
		if m.Actual != nil {
			if rs = m.Actual.Role(role); rs != nil {
				return *rs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's agent reports no %s: %+v", machine, role, m.Actual)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func desiredOf(t *testing.T, ac *adminapi.Client, machine string) *state.Desired {
	t.Helper()
	var m state.Machine
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ac.Do(ctx, http.MethodGet, "/v1/nodes/"+machine+"/roles", nil, &m); err != nil {
		t.Fatal(err)
	}
	return m.Desired
}

// runCLI runs the hanode binary with the lab's env file, as an operator who sourced it.
func runCLI(t *testing.T, l *Lab, args ...string) string {
	t.Helper()
	env := labEnv()
	data, err := os.ReadFile(filepath.Join(l.Dir, EnvFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(l.Binary, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("hanode %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// roleProcesses counts the live processes of role on the machine whose data dir is dataDir.
func roleProcesses(dataDir, role string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte("\x00"+dataDir+"\x00")) {
			continue
		}
		if s := processState(pid); s == 'Z' || s == 'X' || s == 0 {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		for i, a := range args {
			isAgent := a == "agent" && role == "agent"
			if isAgent || (a == "--role" && i+1 < len(args) && args[i+1] == role && !slices.Contains(args, "agent")) {
				n++
				break
			}
		}
	}
	return n
}

func getErr(hc *http.Client, url string) ([]byte, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, err
}

func get(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	body, err := getErr(hc, url)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func regexpLine(text, line string) bool {
	return slices.Contains(strings.Split(text, "\n"), line)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
