// Package cli is hanode's command line (github.com/alecthomas/kong): the role runner that is
// the default command, the operations commands, and the lab.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/hanode/hanode/config"
)

// CLI is the whole command line. Every configuration key is also a global flag.
type CLI struct {
	ConfigFile    string `name:"config" placeholder:"FILE" help:"YAML configuration file (default /etc/hanode/hanode.yaml when it exists)."`
	config.Config `embed:""`

	Run        runCmd        `cmd:"" default:"withargs" help:"Run the configured roles (the default: every role, a single-machine appliance)."`
	Init       initCmd       `cmd:"" help:"Create the cluster CA and this machine's certificate in the data dir."`
	Agent      agentCmd      `cmd:"" help:"Supervise this machine's roles as child processes, as their desired state says (the systemd unit's command)."`
	Status     statusCmd     `cmd:"" help:"Show machines, roles, health, the active master and the controllers."`
	Leader     leaderCmd     `cmd:"" help:"Show the active master."`
	Join       joinCmd       `cmd:"" help:"Join a cluster: fetch and pin its CA, get this machine's certificate (--server, --token)."`
	Token      tokenCmd      `cmd:"" help:"Join tokens: create, list, revoke."`
	Credential credentialCmd `cmd:"" help:"Admin API bearer credentials: create, list, revoke."`
	CA         caCmd         `cmd:"" name:"ca" help:"The cluster CA: rotate."`
	Secrets    secretsCmd    `cmd:"" help:"Secrets at rest: rotate the keyring."`
	KMS        kmsCmd        `cmd:"" name:"kms" help:"The built-in KMS behind SSE-KMS: create, list, disable, enable, delete keys."`
	Audit      auditCmd      `cmd:"" help:"Show the audit trail of admin actions."`
	Node       nodeCmd       `cmd:"" help:"Machines: list, drain."`
	Repair     repairCmd     `cmd:"" help:"Show re-replication: chunks and bytes at risk by priority, rate, ETA."`
	Scrub      scrubCmd      `cmd:"" help:"Background verification of every chunk: status."`
	Rebalance  rebalanceCmd  `cmd:"" help:"Even out the bytes each machine holds: plan, apply, status, cancel."`
	Rollout    rolloutCmd    `cmd:"" help:"Restart a role on every machine, one at a time, through the agents."`
	Lab        labCmd        `cmd:"" help:"A lab cluster of several machines on this host."`
	S3         s3Cmds        `embed:"" group:"Object store"`
	S3Admin    s3AdminCmds   `embed:"" group:"Object store"`
	ConfigCmd  configCmd     `cmd:"" name:"config" help:"Inspect the configuration."`
	Version    versionCmd    `cmd:"" help:"Print the version and commit."`
}

// exitCode carries kong's requested exit (after --help) out of the parser.
type exitCode int

// Main runs hanode with args (without the program name) and returns the exit status:
// 0 success, 1 a failure while running, 2 bad flags, configuration or arguments.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("hanode"),
		kong.Description("One binary for a highly available, replicated object store with a built-in TLS load balancer.\n\nRun roles with -role ROLES (controller, datanode, coordinator, proxy, agent, all); with no arguments hanode runs every role as a single-machine appliance with data in ./hanode-data."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(exitCode(c)) }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "hanode: internal error: %v\n", err)
		return 1
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	kctx, err := parser.Parse(normalizeArgs(parser.Model, args))
	if err != nil {
		fmt.Fprintf(stderr, "hanode: %v\n", oneLine(err))
		return 2
	}
	env := &Env{Stdout: stdout, Stderr: stderr, cli: &cli, kctx: kctx, appliance: len(args) == 0}
	if err := kctx.Run(env); err != nil {
		fmt.Fprintf(stderr, "hanode: %v\n", oneLine(err))
		var ue usageError
		var ke *config.KeyError
		if errors.As(err, &ue) || errors.As(err, &ke) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError marks errors in what the user typed or configured (exit status 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Env is what every command's Run receives.
type Env struct {
	Stdout, Stderr io.Writer
	cli            *CLI
	kctx           *kong.Context
	// appliance: hanode ran with no arguments, the single-machine appliance.
	appliance bool
}

// Config loads the effective configuration: the file, HANODE_* variables and the flags given.
func (e *Env) Config() (*config.Config, config.Origins, error) {
	file := e.cli.ConfigFile
	explicit := file != ""
	if !explicit {
		if v, ok := os.LookupEnv("HANODE_CONFIG"); ok && v != "" {
			file, explicit = v, true
		}
	}
	if !explicit {
		if _, err := os.Stat(config.DefaultFile); err == nil {
			file = config.DefaultFile
		}
	}
	var set []string
	for _, p := range e.kctx.Path {
		if p.Flag != nil {
			set = append(set, p.Flag.Name)
		}
	}
	c, o, err := config.Load(config.Sources{File: file, Env: os.LookupEnv, Flags: &e.cli.Config, FlagsSet: set})
	if err != nil {
		var ke *config.KeyError
		if errors.As(err, &ke) {
			return nil, nil, err
		}
		return nil, nil, usageError{err}
	}
	return c, o, nil
}

// normalizeArgs accepts the single-dash long form operators type (-role controller,
// -data-dir=/x) by rewriting it to kong's --role. Single letters stay short flags, and
// nothing after "--" is touched.
func normalizeArgs(app *kong.Application, args []string) []string {
	long := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			long[f.Name] = true
			for _, a := range f.Aliases {
				long[a] = true
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(app.Node)
	out := make([]string, 0, len(args))
	node, roles := false, false
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		// hanode node roles MACHINE +ROLE -ROLE: a -ROLE is a change, not a flag.
		node = node || a == "node"
		roles = roles || (node && a == "roles")
		if roles && len(a) > 1 && (a[0] == '-' || a[0] == '+') && slices.Contains(config.AllRoles, a[1:]) {
			return append(append(out, "--"), args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && long[name] {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

// oneLine keeps an error to a single line of output.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
