// Package testenv is the lab: a cluster of several "machines" on one host, started from the
// hanode binary, that tests and operators can break on purpose (kill, pause, restart).
//
// A Driver decides what a machine is. The process driver makes machine i a set of processes
// bound to the loopback address 127.0.10.i (all of 127.0.0.0/8 reaches lo on Linux), so every
// machine uses the default ports; its processes keep running after `hanode lab up` returns.
// The lab's state lives in DIR/lab.json, so every later command (status, kill, down) finds it.
package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/pki"
)

// Files in the lab directory.
const (
	StateFile = "lab.json"
	EnvFile   = "env"
)

// Spec is what to bring up.
type Spec struct {
	Machines      int
	Dir           string
	Driver        string   // "process" (default) or "docker"
	Package       string   // docker driver: the hanode .deb to install (default: the newest dist/hanode_*_ARCH.deb)
	Binary        string   // the hanode binary; default: this executable
	AddressPrefix string   // first three octets, default "127.0.10"
	ClusterName   string   // default "lab"
	ExtraArgs     []string // appended to every process's command line
	ReadyTimeout  time.Duration
	// Supervised (process driver): each machine runs one agent (`hanode agent`), which starts
	// the machine's roles as its children and restarts them; otherwise the lab starts every role
	// process itself and nothing restarts a dead one. The docker driver is always supervised:
	// its machines run the agent as the systemd unit does.
	Supervised bool
}

// Lab is a running lab, as saved in DIR/lab.json.
type Lab struct {
	Driver      string       `json:"driver"`
	Dir         string       `json:"dir"`
	Binary      string       `json:"binary"`
	ClusterName string       `json:"cluster_name"`
	CACert      string       `json:"ca_cert"`
	ClientPKI   string       `json:"client_pki"` // a client certificate for the lab's own calls
	Endpoints   Endpoints    `json:"endpoints"`
	Machines    []Machine    `json:"machines"`
	ExtraArgs   []string     `json:"extra_args,omitempty"`
	Supervised  bool         `json:"supervised,omitempty"` // see Spec.Supervised
	Docker      *DockerState `json:"docker,omitempty"`     // docker driver: network, image
	// credential is the admin credential written to DIR/env (mode 0600), never to lab.json.
	credential string
	// s3Key is the lab's S3 user (access key, secret), likewise only in DIR/env.
	s3Key   [2]string
	Created time.Time `json:"created"`
}

// Endpoints are the lab's service addresses.
type Endpoints struct {
	Controllers []string `json:"controllers"` // admin API
	Etcd        []string `json:"etcd"`
	S3          []string `json:"s3"`                // the coordinators
	Proxy       string   `json:"proxy,omitempty"`   // machine 1's proxy (Proxies[0])
	Proxies     []string `json:"proxies,omitempty"` // every machine's proxy
}

// S3Entries are every S3 entry point, in the order clients should prefer them: the proxies,
// then the coordinators.
func (e Endpoints) S3Entries() []string {
	out := slices.Clone(e.Proxies)
	if len(out) == 0 && e.Proxy != "" {
		out = append(out, e.Proxy) // a lab.json written before the proxies list
	}
	return append(out, e.S3...)
}

// Machine is one machine of the lab.
type Machine struct {
	Name      string    `json:"name"`
	Address   string    `json:"address"`
	DataDir   string    `json:"data_dir"`
	Roles     []string  `json:"roles"` // every role of the machine, as in its certificate
	Processes []Process `json:"processes"`
	Container string    `json:"container,omitempty"` // docker driver: the machine's container id
}

// Process is one hanode process on a machine.
type Process struct {
	Roles []string `json:"roles"`
	PID   int      `json:"pid"`
	Args  []string `json:"args"`
	Log   string   `json:"log"`
	URL   string   `json:"url"` // base URL of its health endpoints
	// Supervised: the machine's agent starts and restarts the process; PID is the one its pid
	// file names (DATA_DIR/agent/ROLE.pid) when last looked at.
	Supervised bool `json:"supervised,omitempty"`
}

// Driver runs the lab's machines.
type Driver interface {
	Name() string
	// Start starts p on m and records its PID (or container id) in p.
	Start(ctx context.Context, l *Lab, m *Machine, p *Process) error
	// Signal delivers a signal to p: "KILL", "TERM", "STOP" or "CONT".
	Signal(l *Lab, m *Machine, p *Process, sig string) error
	// Alive reports whether p is still running (a paused process is alive).
	Alive(l *Lab, m *Machine, p *Process) bool
	// Run runs a one-shot hanode command on m (init, join) with extra environment variables and
	// returns its combined output.
	Run(ctx context.Context, l *Lab, m *Machine, args, env []string) ([]byte, error)
}

// NewDriver returns the named driver.
func NewDriver(name string) (Driver, error) {
	switch name {
	case "", "process":
		return processDriver{}, nil
	case "docker":
		return dockerDriver{}, nil
	default:
		return nil, fmt.Errorf("unknown lab driver %q (available: process, docker)", name)
	}
}

// Optional interfaces for drivers whose machines are more than processes (the docker driver);
// the process driver implements none of them.

// preparer is a driver that makes the machines before the bootstrap: Prepare runs before the
// plan and may set spec's addresses (and create a network); Layout runs after it and may
// change each machine's data dir and processes (the docker driver runs one process per machine,
// as the systemd unit does) and create the machines. Up saves the lab when either fails, so
// that `lab down` removes what was made.
type preparer interface {
	Prepare(ctx context.Context, l *Lab, spec *Spec, out io.Writer) error
	Layout(ctx context.Context, l *Lab, spec Spec, out io.Writer) error
}

// teardowner is a driver that made more than processes (containers, networks, images).
type teardowner interface {
	Teardown(l *Lab) error
}

// partitioner is a driver that can cut a machine off the network and reconnect it.
type partitioner interface {
	Partition(l *Lab, m *Machine) error
	Heal(l *Lab, m *Machine) error
}

// Teardown removes what the driver made besides processes (the docker driver's containers,
// network and per-lab image); Down calls it. It does nothing for the process driver.
func (l *Lab) Teardown(drv Driver) error {
	if t, ok := drv.(teardowner); ok {
		return t.Teardown(l)
	}
	return nil
}

// Partition cuts machine name off the lab's network: it can reach no other machine and no
// other machine (nor the host) can reach it.
func (l *Lab) Partition(drv Driver, name string) error {
	p, ok := drv.(partitioner)
	if !ok {
		return fmt.Errorf("the %s driver cannot partition a machine (use --driver docker)", drv.Name())
	}
	m := l.Machine(name)
	if m == nil {
		return fmt.Errorf("no machine %q in the lab", name)
	}
	return p.Partition(l, m)
}

// Heal reconnects machine name (every machine when name is empty) with its address.
func (l *Lab) Heal(drv Driver, name string) error {
	p, ok := drv.(partitioner)
	if !ok {
		return fmt.Errorf("the %s driver cannot partition or heal (use --driver docker)", drv.Name())
	}
	var errs []error
	for i := range l.Machines {
		if name == "" || l.Machines[i].Name == name {
			if err := p.Heal(l, &l.Machines[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if name != "" && l.Machine(name) == nil {
		return fmt.Errorf("no machine %q in the lab", name)
	}
	return errors.Join(errs...)
}

// roleOrder is the order processes start in; they stop in reverse.
var roleOrder = config.AllRoles

func rolePort(role string) int { return config.Default().RolePort(role) }

func httpsURL(host string, port int) string {
	return "https://" + net.JoinHostPort(host, fmt.Sprint(port))
}

// Up bootstraps the machines the way an operator would (init, token, join; see bootstrap) and
// waits until every process is ready. It writes DIR/lab.json as soon as processes run, so a
// failed Up can still be inspected and taken down.
func Up(ctx context.Context, spec Spec, out io.Writer) (*Lab, error) {
	start := time.Now()
	if spec.Machines < 1 || spec.Machines > 250 {
		return nil, fmt.Errorf("--machines %d: allowed: 1 to 250", spec.Machines)
	}
	if spec.Dir == "" {
		return nil, errors.New("--dir: a directory for the lab's state is required")
	}
	if spec.AddressPrefix == "" {
		spec.AddressPrefix = "127.0.10"
	}
	if spec.ClusterName == "" {
		spec.ClusterName = "lab"
	}
	if spec.ReadyTimeout == 0 {
		spec.ReadyTimeout = 90 * time.Second
	}
	drv, err := NewDriver(spec.Driver)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab dir %s: %w", spec.Dir, err)
	}
	if old, err := Load(dir); err == nil {
		for _, m := range old.Machines {
			for _, p := range m.Processes {
				if drv.Alive(old, &m, &p) {
					return nil, fmt.Errorf("a lab is already running in %s (pid %d); run `hanode lab down --dir %s` first", dir, p.PID, spec.Dir)
				}
			}
		}
		if oldDrv, err := NewDriver(old.Driver); err == nil { // a stopped docker lab's containers
			_ = old.Teardown(oldDrv)
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove the stopped lab in %s: %w", dir, err)
		}
	}
	bin := spec.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the hanode binary: %w", err)
		}
	}
	l := &Lab{Driver: drv.Name(), Dir: dir, Binary: bin, ClusterName: spec.ClusterName, ExtraArgs: spec.ExtraArgs, Created: time.Now().UTC(),
		Supervised: spec.Supervised && drv.Name() == "process" || drv.Name() == "docker"}
	// The docker driver makes its network before the plan and its containers after.
	pr, _ := drv.(preparer)
	if pr != nil {
		if err := pr.Prepare(ctx, l, &spec, out); err != nil {
			_ = l.Save()
			return l, err
		}
	}
	if err := l.plan(spec); err != nil {
		return nil, err
	}
	if pr != nil {
		if err := pr.Layout(ctx, l, spec, out); err != nil {
			_ = l.Save()
			return l, err
		}
	}
	if err := l.bootstrap(ctx, drv, spec.ReadyTimeout); err != nil {
		_ = l.Save()
		return l, err
	}
	if out != nil {
		fmt.Fprintf(out, "lab up: %d machines ready in %s (driver %s); state in %s\n", len(l.Machines), time.Since(start).Round(100*time.Millisecond), drv.Name(), filepath.Join(dir, StateFile))
		fmt.Fprintf(out, "use it with: source %s; hanode status\n", filepath.Join(dir, EnvFile))
	}
	return l, nil
}

// plan lays out the machines and their processes: every machine runs a controller, an agent,
// a datanode, a coordinator and a proxy, so that no one machine's loss takes the S3 entry
// points with it.
func (l *Lab) plan(spec Spec) error {
	var etcd []string
	for i := 1; i <= spec.Machines; i++ {
		addr := fmt.Sprintf("%s.%d", spec.AddressPrefix, i)
		if net.ParseIP(addr) == nil {
			return fmt.Errorf("address prefix %q: %s is not an IP address", spec.AddressPrefix, addr)
		}
		etcd = append(etcd, httpsURL(addr, config.Default().EtcdClientPort))
	}
	for i := 1; i <= spec.Machines; i++ {
		m := Machine{Name: fmt.Sprintf("m%d", i), Address: fmt.Sprintf("%s.%d", spec.AddressPrefix, i)}
		m.DataDir = filepath.Join(l.Dir, m.Name)
		roles := []string{config.RoleController, config.RoleAgent, config.RoleDatanode, config.RoleCoordinator, config.RoleProxy}
		m.Roles = roles
		if l.Supervised {
			// One agent, with the machine's configuration, runs every other role.
			extra := []string{"--etcd-endpoints", strings.Join(etcd, ",")}
			if i == 1 {
				extra = append(extra, "--initial-cluster", m.Name+"="+httpsURL(m.Address, config.Default().EtcdPeerPort))
			}
			m.Processes = append(m.Processes, Process{
				Roles: []string{config.RoleAgent},
				Args:  append([]string{"agent"}, l.processArgs(m, strings.Join(roles, ","), extra...)...),
				Log:   filepath.Join(m.DataDir, "logs", config.RoleAgent+".log"),
				URL:   httpsURL(m.Address, rolePort(config.RoleAgent)),
			})
		}
		for _, r := range roles {
			if l.Supervised {
				if r != config.RoleAgent {
					m.Processes = append(m.Processes, Process{Roles: []string{r}, Supervised: true,
						Log: filepath.Join(m.DataDir, "logs", r+".log"), URL: httpsURL(m.Address, rolePort(r))})
				}
				continue
			}
			// Machine 1 bootstraps etcd alone; the other controllers join it as learners
			// through the endpoints their join recorded. Other roles reach every controller.
			extra := []string{"--etcd-endpoints", strings.Join(etcd, ",")}
			if r == config.RoleController {
				extra = nil
				if i == 1 {
					extra = []string{"--initial-cluster", m.Name + "=" + httpsURL(m.Address, config.Default().EtcdPeerPort)}
				}
			}
			m.Processes = append(m.Processes, Process{
				Roles: []string{r},
				Args:  l.processArgs(m, r, extra...),
				Log:   filepath.Join(m.DataDir, "logs", r+".log"),
				URL:   httpsURL(m.Address, rolePort(r)),
			})
		}
		l.Machines = append(l.Machines, m)
		l.Endpoints.Controllers = append(l.Endpoints.Controllers, httpsURL(m.Address, rolePort(config.RoleController)))
		l.Endpoints.Etcd = append(l.Endpoints.Etcd, httpsURL(m.Address, config.Default().EtcdClientPort))
		l.Endpoints.S3 = append(l.Endpoints.S3, httpsURL(m.Address, rolePort(config.RoleCoordinator)))
		l.Endpoints.Proxies = append(l.Endpoints.Proxies, httpsURL(m.Address, rolePort(config.RoleProxy)))
	}
	l.Endpoints.Proxy = l.Endpoints.Proxies[0]
	// The lab acts with machine 1's certificate: a controller's, which the admin API takes as admin.
	l.ClientPKI = filepath.Join(l.Machines[0].DataDir, pki.DirName)
	l.CACert = filepath.Join(l.ClientPKI, pki.CACertFile)
	return nil
}

// processArgs is the command line of role r on machine m.
func (l *Lab) processArgs(m Machine, r string, extra ...string) []string {
	args := []string{"--role", r, "--name", m.Name, "--address", m.Address, "--data-dir", m.DataDir,
		"--cluster-name", l.ClusterName}
	args = append(args, extra...)
	return append(args, l.ExtraArgs...)
}

// Load reads DIR/lab.json.
func Load(dir string) (*Lab, error) {
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("no lab in %s: %w", dir, err)
	}
	var l Lab
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, StateFile), err)
	}
	// The secrets live in DIR/env only.
	if env, err := os.ReadFile(filepath.Join(dir, EnvFile)); err == nil {
		for _, line := range strings.Split(string(env), "\n") {
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
			switch k {
			case "HANODE_CREDENTIAL":
				l.credential = v
			case "AWS_ACCESS_KEY_ID":
				l.s3Key[0] = v
			case "AWS_SECRET_ACCESS_KEY":
				l.s3Key[1] = v
			}
		}
	}
	return &l, nil
}

// S3Credentials returns the lab's S3 access key and secret key.
func (l *Lab) S3Credentials() (string, string) { return l.s3Key[0], l.s3Key[1] }

// Save writes DIR/lab.json and DIR/env atomically.
func (l *Lab) Save() error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(l.Dir, StateFile), append(data, '\n')); err != nil {
		return err
	}
	if l.credential == "" {
		if _, err := os.Stat(filepath.Join(l.Dir, EnvFile)); err == nil {
			return nil // keep the env file that holds the credential
		}
	}
	return writeAtomic(filepath.Join(l.Dir, EnvFile), []byte(l.envFile()))
}

// envFile is sourced by shells: hanode reads HANODE_*, S3 tools the AWS conventions. The HA
// client (hanode cp, ls, mb, bench) gets every S3 entry point in HANODE_S3_ENDPOINTS; plain S3
// tools take one, AWS_ENDPOINT_URL.
func (l *Lab) envFile() string {
	s3 := l.Endpoints.Proxy
	if s3 == "" && len(l.Endpoints.S3) > 0 {
		s3 = l.Endpoints.S3[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# hanode lab in %s; source this file to use it.\n", l.Dir)
	fmt.Fprintf(&b, "export HANODE_CONTROLLERS=%s\n", strings.Join(l.Endpoints.Controllers, ","))
	fmt.Fprintf(&b, "export HANODE_ETCD_ENDPOINTS=%s\n", strings.Join(l.Endpoints.Etcd, ","))
	fmt.Fprintf(&b, "export HANODE_CA_CERT=%s\n", l.CACert)
	if l.credential != "" {
		fmt.Fprintf(&b, "export HANODE_CREDENTIAL=%s\n", l.credential)
	}
	fmt.Fprintf(&b, "export HANODE_LAB_DIR=%s\n", l.Dir)
	fmt.Fprintf(&b, "export HANODE_S3_ENDPOINTS=%s\n", strings.Join(l.Endpoints.S3Entries(), ","))
	fmt.Fprintf(&b, "export AWS_ENDPOINT_URL=%s\n", s3)
	if l.s3Key[0] != "" {
		fmt.Fprintf(&b, "export AWS_ACCESS_KEY_ID=%s\n", l.s3Key[0])
		fmt.Fprintf(&b, "export AWS_SECRET_ACCESS_KEY=%s\n", l.s3Key[1])
	}
	fmt.Fprintf(&b, "export AWS_CA_BUNDLE=%s\n", l.CACert)
	fmt.Fprintf(&b, "export AWS_REGION=us-east-1\n")
	return b.String()
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Select returns the processes named by target: "m2" (every process of m2) or "m2/controller".
func (l *Lab) Select(target string) ([]*Machine, []*Process, error) {
	name, role, _ := strings.Cut(target, "/")
	var ms []*Machine
	var ps []*Process
	for mi := range l.Machines {
		m := &l.Machines[mi]
		if m.Name != name {
			continue
		}
		for pi := range m.Processes {
			p := &m.Processes[pi]
			if role == "" || slices.Contains(p.Roles, role) {
				ms, ps = append(ms, m), append(ps, p)
			}
		}
		if len(ps) == 0 {
			return nil, nil, fmt.Errorf("machine %s runs no %s process", name, role)
		}
		return ms, ps, nil
	}
	var names []string
	for _, m := range l.Machines {
		names = append(names, m.Name)
	}
	return nil, nil, fmt.Errorf("no machine %q in the lab (machines: %s)", name, strings.Join(names, ", "))
}

// Machine returns the machine named name.
func (l *Lab) Machine(name string) *Machine {
	for i := range l.Machines {
		if l.Machines[i].Name == name {
			return &l.Machines[i]
		}
	}
	return nil
}
