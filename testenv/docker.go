package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/pki"
)

// The docker driver: machine i is the container hanode-lab-<id>-m<i> (hostname m<i>) made from
// the hanode .deb, with a fixed address on the private network hanode-lab-<id>. It runs the
// systemd unit's command: as user hanode, `hanode agent --config /etc/hanode/hanode.yaml`, data
// in /var/lib/hanode, umask 0027. The agent starts each of the machine's roles as its child
// (`hanode run --role R`) and restarts it when it dies, so the lab is supervised (Lab.Supervised):
// a role's current pid is the one the agent's pid file, /var/lib/hanode/agent/ROLE.pid, names,
// read with docker exec; pids are the container's. The lab's own clients run on the host and
// reach the containers' addresses over the docker bridge.

// DockerState is the docker driver's part of lab.json.
type DockerState struct {
	ID      string `json:"id"`      // the lab's short id in every name
	Network string `json:"network"` // docker network name
	Subnet  string `json:"subnet"`
	Image   string `json:"image"`   // hanode-lab:<deb sha256 prefix>
	Package string `json:"package"` // the .deb it was built from
}

const (
	dockerConfigFile = "/etc/hanode/hanode.yaml"
	dockerDataDir    = "/var/lib/hanode"
	dockerLogDir     = "/var/log/hanode"
	dockerBinary     = "/usr/bin/hanode"
	dockerLabel      = "org.hanode.lab"
)

type dockerDriver struct{}

func (dockerDriver) Name() string { return "docker" }

func containerName(l *Lab, m *Machine) string {
	return "hanode-lab-" + l.Docker.ID + "-" + m.Name
}

// container is the machine's container: its id once made, else its name.
func container(l *Lab, m *Machine) string {
	if m.Container != "" {
		return m.Container
	}
	return containerName(l, m)
}

// Prepare checks docker, builds (or reuses) the lab's image from the .deb and makes the lab's
// network on a free private /24; the machines get its addresses .1 to .N (the gateway is .254).
func (dockerDriver) Prepare(ctx context.Context, l *Lab, spec *Spec, out io.Writer) error {
	if _, err := docker(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("the docker driver needs a running Docker Engine: %w", err)
	}
	if spec.Machines > 250 {
		return fmt.Errorf("--machines %d: the docker driver runs at most 250", spec.Machines)
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	deb := spec.Package
	if deb == "" {
		var err error
		if deb, err = defaultPackage(); err != nil {
			return err
		}
	}
	deb, err := filepath.Abs(deb)
	if err != nil {
		return err
	}
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	l.Docker = &DockerState{ID: hex.EncodeToString(id), Package: deb}
	l.Docker.Network = "hanode-lab-" + l.Docker.ID
	image, err := LabImage(ctx, deb, out)
	if err != nil {
		return err
	}
	l.Docker.Image = image
	// A free /24 in 172.30.0.0/16, from a random start: docker refuses overlapping pools.
	n, _ := rand.Int(rand.Reader, big.NewInt(256))
	start := int(n.Int64())
	var lastErr error
	for k := 0; k < 256; k++ {
		x := (start + k) % 256
		subnet := fmt.Sprintf("172.30.%d.0/24", x)
		_, err := docker(ctx, "network", "create", "--driver", "bridge", "--subnet", subnet,
			"--gateway", fmt.Sprintf("172.30.%d.254", x), "--label", dockerLabel+"="+l.Docker.ID, l.Docker.Network)
		if err == nil {
			l.Docker.Subnet = subnet
			spec.AddressPrefix = fmt.Sprintf("172.30.%d", x)
			return nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "overlap") {
			break
		}
	}
	return fmt.Errorf("create the lab network: %w", lastErr)
}

// defaultPackage is the newest dist/hanode_*_ARCH.deb (what `make packages` writes).
func defaultPackage() (string, error) {
	matches, _ := filepath.Glob(filepath.Join("dist", "hanode_*_"+runtime.GOARCH+".deb"))
	var best string
	var bestT time.Time
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.ModTime().After(bestT) {
			best, bestT = m, fi.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no hanode package for the docker lab: build one with `make packages` (dist/hanode_<version>_%s.deb) or pass --package FILE.deb", runtime.GOARCH)
	}
	return best, nil
}

// Layout gives each machine its agent, the unit's command, and a supervised process per other
// role (the agent's children), data in /var/lib/hanode inside the container. Every log is in
// DIR/m<i>/logs on the host, bind-mounted at /var/log/hanode: the agent's own output in
// agent.log, and its roles' in ROLE.log, which the agent writes to /var/lib/hanode/logs, a
// symbolic link to /var/log/hanode. It then starts each machine's container and writes its
// /etc/hanode/hanode.yaml. The lab's client certificate is machine 1's, copied out after init.
func (dockerDriver) Layout(ctx context.Context, l *Lab, spec Spec, out io.Writer) error {
	for i := range l.Machines {
		m := &l.Machines[i]
		hostDir := filepath.Join(l.Dir, m.Name)
		logDir := filepath.Join(hostDir, "logs")
		m.DataDir = dockerDataDir
		m.Processes = []Process{{
			Roles: []string{config.RoleAgent},
			Args:  append([]string{"agent", "--config", dockerConfigFile}, l.ExtraArgs...),
			Log:   filepath.Join(logDir, config.RoleAgent+".log"),
			URL:   httpsURL(m.Address, rolePort(config.RoleAgent)),
		}}
		for _, r := range m.Roles {
			if r != config.RoleAgent {
				m.Processes = append(m.Processes, Process{Roles: []string{r}, Supervised: true,
					Log: filepath.Join(logDir, r+".log"), URL: httpsURL(m.Address, rolePort(r))})
			}
		}
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return err
		}
		// The container's hanode user (a system uid) writes the logs; anyone may delete them.
		if err := os.Chmod(logDir, 0o777); err != nil {
			return err
		}
	}
	// ClientPKI and CACert stay DIR/m1/pki (plan's layout): machine 1's pki is copied there.
	for i := range l.Machines {
		m := &l.Machines[i]
		cid, err := docker(ctx, "run", "-d", "--init", "--name", containerName(l, m), "--hostname", m.Name,
			"--network", l.Docker.Network, "--ip", m.Address, "--label", dockerLabel+"="+l.Docker.ID,
			"-v", filepath.Join(l.Dir, m.Name, "logs")+":"+dockerLogDir,
			l.Docker.Image, "sleep", "infinity")
		if err != nil {
			return fmt.Errorf("start machine %s: %w", m.Name, err)
		}
		m.Container = cid
		if err := l.Save(); err != nil {
			return err
		}
		if err := writeMachineConfig(ctx, l, m); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	if out != nil {
		fmt.Fprintf(out, "lab: %d containers on network %s (%s), image %s; each runs `hanode agent` as the unit does\n", len(l.Machines), l.Docker.Network, l.Docker.Subnet, l.Docker.Image)
	}
	return nil
}

// machineConfig is /etc/hanode/hanode.yaml of machine m. The first machine bootstraps etcd
// alone (the default initial cluster); the others have joined (`hanode join`, run by the
// bootstrap) and find the cluster in /var/lib/hanode/cluster.json.
func machineConfig(l *Lab, m *Machine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by hanode lab (docker driver)\n")
	fmt.Fprintf(&b, "name: %s\naddress: %s\ndata-dir: %s\ncluster-name: %s\nrole: [%s]\n",
		m.Name, m.Address, dockerDataDir, l.ClusterName, strings.Join(m.Roles, ", "))
	return b.String()
}

func writeMachineConfig(ctx context.Context, l *Lab, m *Machine) error {
	cmd := exec.CommandContext(ctx, "docker", "exec", "-i", "-u", "root", container(l, m), "sh", "-c",
		"cat > "+dockerConfigFile+".tmp && chown root:hanode "+dockerConfigFile+".tmp && chmod 0640 "+dockerConfigFile+".tmp && mv "+dockerConfigFile+".tmp "+dockerConfigFile+
			" && chown hanode:hanode "+dockerLogDir+
			// The agent writes its roles' logs to DATA_DIR/logs: there they reach the host.
			" && ln -sfn "+dockerLogDir+" "+dockerDataDir+"/logs && chown -h hanode:hanode "+dockerDataDir+"/logs")
	cmd.Stdin = strings.NewReader(machineConfig(l, m))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("write %s: %w: %s", dockerConfigFile, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// Start runs the machine's agent in its container as the unit does; a supervised role is
// started by the agent.
func (dockerDriver) Start(ctx context.Context, l *Lab, m *Machine, p *Process) error {
	if p.Supervised {
		return nil
	}
	// The log (bind-mounted from the host) is readable there; the data keeps the unit's umask.
	log := dockerLogDir + "/" + filepath.Base(p.Log)
	script := "touch " + log + " && chmod 0644 " + log + " && umask 0027 && cd " + dockerDataDir + " && exec " + dockerBinary + ` "$@" >>` + log + " 2>&1"
	args := append([]string{"exec", "-d", "-u", "hanode", container(l, m), "sh", "-c", script, "hanode"}, p.Args...)
	if _, err := docker(ctx, args...); err != nil {
		return err
	}
	p.PID = 0
	for i := 0; i < 20 && p.PID == 0; i++ {
		if pid, _ := dockerProc(l, m, p); pid == 0 {
			time.Sleep(100 * time.Millisecond)
		} else {
			p.PID = pid
		}
	}
	return nil
}

// procScript prints "PID STATE" of a hanode process in the container and exits 0, or exits 1
// when there is none. $1 is how to find it: "agent" (the agent the lab started, by its command
// line), "role" with $2 a role (the pid the agent's pid file names, if it still runs the
// process the agent started: same start time), or "pid" with $2 a pid.
const procScript = `case "$1" in
agent) pid=$(pgrep -o -f '^` + dockerBinary + ` agent( |$)') ;;
role) f=` + dockerDataDir + `/agent/$2.pid; pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$f" 2>/dev/null); ticks=$(sed -n 's/.*"start_ticks":\([0-9]*\).*/\1/p' "$f" 2>/dev/null) ;;
pid) pid=$2 ;;
esac
[ -n "$pid" ] || exit 1
[ "$(cat /proc/$pid/comm 2>/dev/null)" = hanode ] || exit 1
stat=$(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null) || exit 1
set -- $stat
[ -z "$ticks" ] || [ "$ticks" = "${20}" ] || exit 1
echo "$pid $1"`

// dockerProc is the container pid and the state letter (R, S, T for stopped, Z...) of p's
// process: the agent's, a supervised role's current one, or, for a process the lab pinned to a
// pid (Process.PID of an unsupervised non-agent copy), that pid's. 0 when none runs.
func dockerProc(l *Lab, m *Machine, p *Process) (int, byte) {
	if l.Docker == nil || m.Container == "" {
		return 0, 0
	}
	how := []string{"pid", strconv.Itoa(p.PID)}
	switch {
	case p.Supervised:
		how = []string{"role", p.Roles[0]}
	case p.Roles[0] == config.RoleAgent:
		how = []string{"agent"}
	case p.PID <= 0:
		return 0, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := docker(ctx, append([]string{"exec", "-u", "root", m.Container, "sh", "-c", procScript, "proc"}, how...)...)
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(out)
	if len(f) != 2 || len(f[1]) != 1 {
		return 0, 0
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, 0
	}
	return pid, f[1][0]
}

// Run runs a one-shot hanode command in the container as user hanode; env (the join token)
// reaches docker exec through the environment (`-e NAME` without a value), so it is in no
// command line. After `init`, machine 1's pki is copied to the host for the lab's own calls.
func (dockerDriver) Run(ctx context.Context, l *Lab, m *Machine, args, env []string) ([]byte, error) {
	dargs := []string{"exec", "-u", "hanode", "-w", dockerDataDir}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		dargs = append(dargs, "-e", k)
	}
	dargs = append(dargs, container(l, m), dockerBinary)
	dargs = append(dargs, args...)
	cmd := exec.CommandContext(ctx, "docker", dargs...)
	cmd.Env = append(labEnv(), env...)
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return outb, err
	}
	if len(args) > 0 && args[0] == "init" && m == &l.Machines[0] {
		if err := copyPKI(ctx, l, m); err != nil {
			return outb, err
		}
	}
	return outb, nil
}

// copyPKI copies machine m's /var/lib/hanode/pki to l.ClientPKI on the host.
func copyPKI(ctx context.Context, l *Lab, m *Machine) error {
	if err := os.RemoveAll(l.ClientPKI); err != nil {
		return err
	}
	if err := os.MkdirAll(l.ClientPKI, 0o700); err != nil {
		return err
	}
	// Only the certificate the lab presents and the CA it trusts: the CA key and the keyring
	// stay in the container.
	for _, f := range []string{pki.CACertFile, pki.NodePairFile} {
		if _, err := docker(ctx, "cp", container(l, m)+":"+dockerDataDir+"/"+pki.DirName+"/"+f, filepath.Join(l.ClientPKI, f)); err != nil {
			return fmt.Errorf("copy %s's certificate for the lab: %w", m.Name, err)
		}
	}
	return nil
}

// Signal sends sig to p's process in the machine's container: the agent, or a supervised
// role's current process (the one Alive found, even if the agent replaces it meanwhile).
func (d dockerDriver) Signal(l *Lab, m *Machine, p *Process, sig string) error {
	if _, ok := signals[sig]; !ok {
		return fmt.Errorf("unknown signal %q", sig)
	}
	if !d.Alive(l, m, p) {
		return fmt.Errorf("%s/%s is not running", m.Name, strings.Join(p.Roles, ","))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := docker(ctx, "exec", "-u", "root", container(l, m), "kill", "-s", sig, strconv.Itoa(p.PID)); err != nil {
		return fmt.Errorf("signal %s to %s/%s (pid %d in its container): %w", sig, m.Name, strings.Join(p.Roles, ","), p.PID, err)
	}
	return nil
}

// Alive reports whether p's process runs in the container (a stopped one counts) and records
// its pid in p.
func (dockerDriver) Alive(l *Lab, m *Machine, p *Process) bool {
	pid, st := dockerProc(l, m, p)
	if pid == 0 || st == 'Z' || st == 'X' {
		return false
	}
	p.PID = pid
	return true
}

// ProcState is the state letter of p's process in the container (T when paused), 0 if none.
func (dockerDriver) ProcState(l *Lab, m *Machine, p *Process) byte {
	_, st := dockerProc(l, m, p)
	return st
}

// Partition disconnects the machine's container from the lab network: no other machine, and
// not the host, reaches it, and it reaches nothing.
func (dockerDriver) Partition(l *Lab, m *Machine) error {
	if l.Docker == nil {
		return errors.New("not a docker lab")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := docker(ctx, "network", "disconnect", l.Docker.Network, container(l, m))
	return err
}

// Heal reconnects the machine's container with its address; a connected machine is left alone.
func (dockerDriver) Heal(l *Lab, m *Machine) error {
	if l.Docker == nil {
		return errors.New("not a docker lab")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nets, err := docker(ctx, "inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", container(l, m))
	if err != nil {
		return err
	}
	if slices.Contains(strings.Fields(nets), l.Docker.Network) {
		return nil
	}
	_, err = docker(ctx, "network", "connect", "--ip", m.Address, l.Docker.Network, container(l, m))
	return err
}

// Teardown removes the lab's containers, its network and its image; the cached base image
// stays. Containers are found by the lab's label too, so a half-made lab is removed as well.
func (dockerDriver) Teardown(l *Lab) error {
	if l.Docker == nil || l.Docker.ID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	ids, _ := docker(ctx, "ps", "-aq", "--filter", "label="+dockerLabel+"="+l.Docker.ID)
	cs := strings.Fields(ids)
	for i := range l.Machines {
		if c := l.Machines[i].Container; c != "" && !slices.ContainsFunc(cs, func(x string) bool { return strings.HasPrefix(c, x) }) {
			cs = append(cs, c)
		}
	}
	if len(cs) > 0 {
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, cs...)...); err != nil && !strings.Contains(err.Error(), "No such container") {
			errs = append(errs, err)
		}
	}
	if l.Docker.Network != "" {
		if _, err := docker(ctx, "network", "rm", l.Docker.Network); err != nil && !strings.Contains(err.Error(), "not found") {
			errs = append(errs, err)
		}
	}
	if l.Docker.Image != "" {
		// Another lab may use the same image (the same .deb): then it stays.
		if _, err := docker(ctx, "rmi", l.Docker.Image); err != nil && !strings.Contains(err.Error(), "No such image") && !strings.Contains(err.Error(), "being used") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
