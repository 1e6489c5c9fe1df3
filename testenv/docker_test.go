package testenv

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dockerPackage builds the hanode .deb for this machine's architecture with the packaging
// program (what `make packages` runs), or takes $HANODE_LAB_PACKAGE. It skips the test, saying
// why, when docker or the packaging is unavailable.
func dockerPackage(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode: the docker lab builds images and starts containers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("SKIP: the docker driver needs a running Docker Engine; `docker info` failed: %v: %s", err, bytes.TrimSpace(out))
	}
	if deb := os.Getenv("HANODE_LAB_PACKAGE"); deb != "" {
		return deb
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "packaging", "cmd", "mkpkg")); err != nil {
		t.Skipf("SKIP: no packaging program (packaging/cmd/mkpkg, `make packages`) to build the .deb the docker lab installs: %v", err)
	}
	if out, err := exec.Command("make", "-C", root, "-n", "packages").CombinedOutput(); err != nil {
		t.Skipf("SKIP: `make packages` is unavailable: %v: %s", err, bytes.TrimSpace(out))
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "hanode")
	start := time.Now()
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build a static hanode: %v\n%s", err, out)
	}
	deb, _ := packageBinary(t, bin, "0.0.0~labtest")
	t.Logf("built %s in %s", filepath.Base(deb), time.Since(start).Round(100*time.Millisecond))
	return deb
}

// labBinary is the hanode binary a .deb from dockerPackage was made of (or, for a package given
// in $HANODE_LAB_PACKAGE, the binary the lab tests built).
func labBinary(deb string) string {
	if b := filepath.Join(filepath.Dir(filepath.Dir(deb)), "hanode"); fileExists(b) {
		return b
	}
	return binary
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// packageBinary packages bin as version with the packaging program and returns the .deb and
// .rpm for this machine's architecture.
func packageBinary(t *testing.T, bin, version string) (deb, rpm string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(bin), version) // beside bin: labBinary finds bin again
	mk := exec.Command("go", "run", "./packaging/cmd/mkpkg", "--out", dir, "--version", version, "--bin", runtime.GOARCH+"="+bin)
	mk.Dir = root
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("build the packages: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "hanode_*_"+runtime.GOARCH+".deb"))
	rpms, _ := filepath.Glob(filepath.Join(dir, "hanode-*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("the packaging program wrote %v %v, want one .deb and one .rpm for %s", debs, rpms, runtime.GOARCH)
	}
	return debs[0], rpms[0]
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestDockerLab brings up three containers installed from the .deb, checks the cluster from
// inside machine 2 with `hanode status`, partitions the active master's machine, checks that the
// two others elect a new one and that `hanode leader`, `status`, `cp` (both ways) and `ls` from
// the env file succeed without waiting on the cut-off machine, heals, and checks that the old
// master rejoins as a follower.
func TestDockerLab(t *testing.T) {
	deb := dockerPackage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // the first run debootstraps
	defer cancel()
	var out io.Writer = testWriter{t}
	drv, err := NewDriver("docker")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l, err := Up(ctx, Spec{Machines: 3, Dir: filepath.Join(t.TempDir(), "lab"), Driver: "docker", Package: deb, ReadyTimeout: 2 * time.Minute}, out)
	if l != nil {
		t.Cleanup(func() {
			if err := l.Down(drv, false); err != nil {
				t.Errorf("lab down: %v", err)
			}
			if l.Docker != nil {
				if left, _ := docker(context.Background(), "ps", "-aq", "--filter", "label="+dockerLabel+"="+l.Docker.ID); left != "" {
					t.Errorf("containers left behind: %s", left)
				}
				if _, err := docker(context.Background(), "network", "inspect", l.Docker.Network); err == nil {
					t.Errorf("network %s left behind", l.Docker.Network)
				}
			}
		})
	}
	if err != nil {
		if l != nil {
			for _, m := range l.Machines {
				for _, p := range m.Processes {
					t.Logf("%s log:\n%s", m.Name, tail(p.Log, 30))
				}
			}
		}
		t.Fatalf("lab up --driver docker: %v", err)
	}
	t.Logf("lab up --driver docker: %s", time.Since(start).Round(100*time.Millisecond))
	for _, m := range l.Machines {
		if m.Container == "" || !strings.HasPrefix(m.Address, "172.30.") {
			t.Fatalf("machine %s: container %q address %q", m.Name, m.Container, m.Address)
		}
	}

	// `hanode status` inside machine 2, as the service user, from its config file alone.
	m2 := l.Machine("m2")
	var status string
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := docker(ctx, "exec", "-u", "hanode", m2.Container, "hanode", "status", "--config", dockerConfigFile)
		status = st
		if err == nil && strings.Count(st, "healthy") == 3 && strings.Count(st, " leader ") == 1 && strings.Contains(st, "active master: m") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hanode status in m2: want three healthy controllers and one Raft leader; got (err %v):\n%s", err, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("hanode status in m2:\n%s", status)

	st, err := l.WaitHealthy(ctx, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Each machine runs the unit's command, `hanode agent`, as user hanode, and its roles are
	// the agent's children.
	for _, m := range l.Machines {
		ps, err := docker(ctx, "exec", m.Container, "ps", "-o", "user=,ppid=,pid=,args=", "-C", "hanode")
		if err != nil {
			t.Fatalf("ps in %s: %v", m.Name, err)
		}
		agentPID := m.Processes[0].PID
		if m.Processes[0].Roles[0] != "agent" || !strings.Contains(ps, " "+dockerBinary+" agent --config "+dockerConfigFile) {
			t.Fatalf("%s does not run `hanode agent --config %s`:\n%s", m.Name, dockerConfigFile, ps)
		}
		for _, r := range []string{"controller", "datanode", "coordinator", "proxy"} {
			if !slices.ContainsFunc(strings.Split(ps, "\n"), func(line string) bool {
				f := strings.Fields(line)
				return len(f) > 3 && f[0] == "hanode" && f[1] == strconv.Itoa(agentPID) && strings.Contains(line, " run ") && strings.HasSuffix(line, "--role "+r)
			}) {
				t.Errorf("%s: no %s process run by user hanode as a child of the agent (pid %d):\n%s", m.Name, r, agentPID, ps)
			}
		}
	}
	// kill -9 of a role in a container: its agent starts it again, which the lab shows.
	killDatanode(ctx, t, l, drv, "m2")

	// The host's hanode, with only what `source DIR/env` sets, as a user of the lab runs it.
	hostBin := labBinary(deb)
	src, dst := filepath.Join(t.TempDir(), "obj"), filepath.Join(t.TempDir(), "got")
	if err := os.WriteFile(src, labData(1<<20, 5), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"mb", "s3://dlab"}, {"cp", "-q", src, "s3://dlab/before"}} {
		if out, _, err := envCmd(l, hostBin, args...); err != nil {
			t.Fatalf("hanode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	old := st.Leader
	t.Logf("active master %s (epoch %d); partitioning its machine", old.Name, old.Epoch)
	if err := l.Partition(drv, old.Name); err != nil {
		t.Fatal(err)
	}
	partitioned := time.Now()
	var others []string
	for _, m := range l.Machines {
		if m.Name != old.Name {
			others = append(others, httpsURL(m.Address, rolePort("controller")))
		}
	}
	ac, err := l.AdminClient(others)
	if err != nil {
		t.Fatal(err)
	}
	var newName string
	for newName == "" {
		if time.Since(partitioned) > 60*time.Second {
			t.Fatalf("no new active master 60s after partitioning %s", old.Name)
		}
		lctx, lcancel := context.WithTimeout(ctx, 3*time.Second)
		li, err := ac.Leader(lctx)
		lcancel()
		if err == nil && li.Name != old.Name && li.Epoch > old.Epoch {
			newName = li.Name
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s took over %s after the partition", newName, time.Since(partitioned).Round(time.Millisecond))
	// The commands a user runs from the env file answer from the other machines: the admin
	// client races past the silent controller, the S3 client past the cut-off machine's proxy
	// and coordinator (HANODE_S3_ENDPOINTS names every machine's), and status probes the lost
	// etcd member briefly. The 5 s bound is no performance figure (docs/benchmarks.md has
	// those): it holds on a loaded 2-core machine, and a command that waits out a client's
	// connection or request timeout on the cut-off machine (10 s and more before the clients
	// raced) exceeds it. An upload is only required to succeed: right after a partition the
	// data path itself can still wait on m1 (a chunk placed on its datanode waits out the
	// datanode client's deadlines before it goes elsewhere, and the survivors' registrations
	// churn while the new master is elected: docs/benchmarks.md), which no client can race past.
	for _, c := range []struct {
		args    []string
		bounded bool
	}{
		{[]string{"leader"}, true},
		{[]string{"status"}, true},
		{[]string{"cp", "-q", src, "s3://dlab/during"}, false},
		{[]string{"cp", "-q", "s3://dlab/before", dst}, true},
		{[]string{"ls", "s3://dlab"}, true},
	} {
		cmd := strings.Join(c.args, " ")
		out, took, err := envCmd(l, hostBin, c.args...)
		if err != nil {
			t.Errorf("hanode %s with %s partitioned: %v after %s\n%s", cmd, old.Name, err, took, out)
			continue
		}
		t.Logf("hanode %s with %s partitioned: %s", cmd, old.Name, took.Round(time.Millisecond))
		if c.bounded && took > 5*time.Second {
			t.Errorf("hanode %s with %s partitioned took %s: it waited on the cut-off machine", cmd, old.Name, took)
		}
	}
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, labData(1<<20, 5)) {
		t.Errorf("the object copied back with %s partitioned differs (%v)", old.Name, err)
	}
	// The isolated machine cannot reach its etcd quorum: it answers no leader.
	if o, err := docker(ctx, "exec", "-u", "hanode", l.Machine(old.Name).Container, "timeout", "10", "hanode", "leader", "--config", dockerConfigFile); err == nil && strings.HasPrefix(o, old.Name+" ") {
		t.Errorf("partitioned %s still names itself active master: %s", old.Name, o)
	}

	if err := l.Heal(drv, ""); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	st, err = l.WaitHealthy(ctx, 90*time.Second)
	if err != nil {
		t.Fatalf("after heal: %v", err)
	}
	if st.Leader.Name == old.Name {
		t.Errorf("after heal the active master is the partitioned %s again (epoch %d)", old.Name, st.Leader.Epoch)
	}
	// The old master is a follower: its election gauge is 0.
	hc, err := l.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	leading, ok := 1.0, false
	for time.Since(healed) < 30*time.Second {
		leading, ok = metric(hc, httpsURL(l.Machine(old.Name).Address, rolePort("controller")), "hanode_election_leading")
		if ok && leading == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !ok || leading != 0 {
		t.Errorf("%s after heal: hanode_election_leading = %v (read: %v), want 0", old.Name, leading, ok)
	}
	t.Logf("healed: %s rejoined as a follower in %s; active master %s", old.Name, time.Since(healed).Round(time.Millisecond), st.Leader.Name)

	// Upgrade machine 3 to a newer build with dpkg -i, restart its hanode as the unit's
	// try-restart would, and check it rejoins with its data.
	m3 := l.Machine("m3")
	newDeb, _ := packageBinary(t, labBinary(deb), "0.0.1~labtest")
	if _, err := docker(ctx, "cp", newDeb, m3.Container+":/tmp/upgrade.deb"); err != nil {
		t.Fatal(err)
	}
	if o, err := docker(ctx, "exec", m3.Container, "dpkg", "-i", "/tmp/upgrade.deb"); err != nil {
		t.Fatalf("dpkg -i the newer build on m3: %v\n%s", err, o)
	}
	if v, err := docker(ctx, "exec", m3.Container, "dpkg-query", "-W", "-f=${Version}", "hanode"); err != nil || v != "0.0.1~labtest" {
		t.Fatalf("m3's hanode package after the upgrade: %q (%v)", v, err)
	}
	if err := l.Restart(ctx, drv, "m3", 90*time.Second); err != nil {
		t.Fatalf("restart m3 after the upgrade: %v", err)
	}
	if _, err := l.WaitHealthy(ctx, 90*time.Second); err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
	ctlLog := l.processesOf("controller", m3)[0].Log
	if log := tail(ctlLog, 400); !strings.Contains(log, "restarting etcd member from existing data") {
		t.Errorf("m3 did not restart from its existing data after the upgrade:\n%s", tail(ctlLog, 20))
	}

	// Removal keeps the data; purge deletes it and the user. (On m2, not the upgraded m3:
	// in a container whose image already held the package, overlayfs shows the image's copy of
	// an upgraded-then-removed file again; that is the container's storage, not dpkg.)
	m2 = l.Machine("m2")
	if err := l.Stop(drv, "m2", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if o, err := docker(ctx, "exec", m2.Container, "dpkg", "-r", "hanode"); err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, o)
	}
	if _, err := docker(ctx, "exec", m2.Container, "test", "-d", "/var/lib/hanode/controller"); err != nil {
		t.Error("dpkg -r removed /var/lib/hanode; removal must keep the data")
	}
	if _, err := docker(ctx, "exec", m2.Container, "test", "-e", "/usr/bin/hanode"); err == nil {
		t.Error("dpkg -r left /usr/bin/hanode")
	}
	if o, err := docker(ctx, "exec", m2.Container, "dpkg", "-P", "hanode"); err != nil {
		t.Fatalf("dpkg -P: %v\n%s", err, o)
	}
	if _, err := docker(ctx, "exec", m2.Container, "test", "-e", "/var/lib/hanode"); err == nil {
		t.Error("dpkg -P left /var/lib/hanode")
	}
	if _, err := docker(ctx, "exec", m2.Container, "id", "hanode"); err == nil {
		t.Error("dpkg -P left the hanode user")
	}
}

// killDatanode kills machine's datanode with SIGKILL inside its container and checks that its
// agent replaces it: `lab status` shows a new pid, running and ready, within 30 s. It also pauses
// and resumes the new process through the lab and checks that the status shows it paused.
func killDatanode(ctx context.Context, t *testing.T, l *Lab, drv Driver, machine string) {
	t.Helper()
	target := machine + "/datanode"
	m := l.Machine(machine)
	p := l.processesOf("datanode", m)[0]
	if !drv.Alive(l, m, p) {
		t.Fatalf("%s is not running before the kill", target)
	}
	old := p.PID
	hc, err := l.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Signal(drv, target, "KILL"); err != nil {
		t.Fatalf("lab kill %s: %v", target, err)
	}
	killed := time.Now()
	for {
		if drv.Alive(l, m, p) && p.PID != old {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			err := l.Ready(rctx, hc, p)
			cancel()
			if err == nil {
				break
			}
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("%s: 30 s after kill -9 of pid %d the agent has not replaced it (pid now %d)\nagent log:\n%s", target, old, p.PID, tail(m.Processes[0].Log, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kill -9 %s (pid %d in its container): the agent's replacement (pid %d) ready after %s", target, old, p.PID, time.Since(killed).Round(10*time.Millisecond))
	statusLine := func() string {
		var b bytes.Buffer
		if err := l.PrintStatus(ctx, drv, &b); err != nil {
			t.Fatalf("lab status: %v", err)
		}
		for _, line := range strings.Split(b.String(), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == machine && f[2] == "datanode" {
				return line
			}
		}
		t.Fatalf("lab status shows no %s:\n%s", target, b.String())
		return ""
	}
	if f := strings.Fields(statusLine()); len(f) < 6 || f[3] != strconv.Itoa(p.PID) || f[4] != "running" || f[5] != "yes" {
		t.Errorf("lab status after the agent replaced %s: %q, want pid %d running and ready", target, strings.Join(f, " "), p.PID)
	}
	if err := l.Signal(drv, target, "STOP"); err != nil {
		t.Fatalf("lab pause %s: %v", target, err)
	}
	if f := strings.Fields(statusLine()); len(f) < 5 || f[3] != strconv.Itoa(p.PID) || f[4] != "paused" {
		t.Errorf("lab status of paused %s: %q, want pid %d paused", target, strings.Join(f, " "), p.PID)
	}
	if err := l.Signal(drv, target, "CONT"); err != nil {
		t.Fatalf("lab resume %s: %v", target, err)
	}
	if err := l.WaitReady(ctx, drv, []*Process{p}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestRPMScriptlets installs the .rpm with its scriptlets into a Debian root (the docker lab's
// debootstrap tree, copied) with `rpm --root`, and checks what the scriptlets did.
func TestRPMScriptlets(t *testing.T) {
	deb := dockerPackage(t)
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("SKIP: rpm is not installed (apt-get install rpm)")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: rpm --root runs the scriptlets in a chroot, which needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := EnsureBaseImage(ctx, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(cache, rootfsDirName)
	if _, err := os.Stat(filepath.Join(cache, rootfsDoneName)); err != nil {
		t.Skipf("SKIP: no cached Debian root in %s (the base image was imported from elsewhere)", cache)
	}
	_, rpmFile := packageBinary(t, labBinary(deb), "0.0.0~labtest")
	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", src, root).CombinedOutput(); err != nil {
		t.Fatalf("copy the Debian root: %v\n%s", err, out)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "rpm", append([]string{"--root", root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("--initdb")
	run("-i", "--nodeps", rpmFile)
	for _, p := range []string{"usr/bin/hanode", "etc/hanode/hanode.yaml", "var/lib/hanode"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("after rpm -i: %v", err)
		}
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if !bytes.Contains(passwd, []byte("\nhanode:")) {
		t.Error("the pre/post-install scriptlets did not create the hanode user")
	}
	run("-e", "hanode")
	if _, err := os.Stat(filepath.Join(root, "var/lib/hanode")); err != nil {
		t.Errorf("rpm -e removed the data dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/hanode")); err == nil {
		t.Error("rpm -e left /usr/bin/hanode")
	}
}

func TestDebianMirrorParsing(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.sources")
	os.WriteFile(src, []byte("Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.invalid/security\nSuites: bookworm-security\n"), 0o644)
	if got := mirrorFromDeb822(src); got != "http://mirror.invalid/debian" {
		t.Errorf("deb822: %q", got)
	}
	list := filepath.Join(dir, "sources.list")
	os.WriteFile(list, []byte("# c\ndeb-src http://x.invalid/debian bookworm main\ndeb [signed-by=/k.gpg] http://y.invalid/debian bookworm main\n"), 0o644)
	if got := mirrorFromList(list); got != "http://y.invalid/debian" {
		t.Errorf("list: %q", got)
	}
}
