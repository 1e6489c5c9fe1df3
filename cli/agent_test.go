package cli

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// parse parses args as Main does and returns the Env a command would get.
func parse(t *testing.T, args ...string) *Env {
	t.Helper()
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("hanode"), kong.Writers(io.Discard, io.Discard), kong.Exit(func(int) { t.Fatal("exit") }))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(normalizeArgs(parser.Model, args))
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Stdout: io.Discard, Stderr: io.Discard, cli: &cli, kctx: kctx}
}

// A role process gets the agent's configuration, without its roles and join secrets.
func TestChildArgs(t *testing.T) {
	e := parse(t, "agent", "-name", "m7", "--address", "10.0.0.7", "--data-dir=/srv/hanode", "-role", "controller,agent,datanode",
		"--replicas", "3", "--proxy-access-log", "--server", "https://10.0.0.1:8900", "--token", "K10x::a.b", "--leader-ttl=5s",
		"--etcd-endpoints", "https://10.0.0.1:2379,https://10.0.0.2:2379")
	args := e.childArgs()
	if args[0] != "run" {
		t.Fatalf("child command %v: want run first", args)
	}
	for _, refused := range []string{"--role", "--token", "--server", "K10x::a.b", "agent"} {
		if slices.Contains(args, refused) {
			t.Errorf("child args %v contain %q", args, refused)
		}
	}
	// Parsed back with --role, they are the same machine's configuration.
	code, out, errOut := run(t, append(append(slices.Clone(args[1:]), "--role", "datanode"), "config", "show")...)
	if code != 0 {
		t.Fatalf("child args %v do not parse: %s", args, errOut)
	}
	for _, want := range []string{"name:", "m7", "10.0.0.7", "/srv/hanode", "[datanode]", "replicas:", "3", "5s", "https://10.0.0.2:2379", "proxy-access-log:"} {
		if !strings.Contains(out, want) {
			t.Errorf("config of a child lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "proxy-access-log:          false") {
		t.Errorf("a boolean flag was lost:\n%s", out)
	}

	// The configuration file is passed on.
	e = parse(t, "--config", "/etc/hanode/hanode.yaml", "agent")
	if got := e.childArgs(); !slices.Equal(got, []string{"run", "--config", "/etc/hanode/hanode.yaml"}) {
		t.Errorf("child args with a config file: %v", got)
	}
}

// hanode node roles M -ROLE: a -ROLE is a change, not a flag.
func TestNodeRolesArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"node", "roles", "m4", "+datanode", "-proxy"}, []string{"node", "roles", "m4", "--", "+datanode", "-proxy"}},
		{[]string{"-role", "all", "node", "roles", "m4", "-proxy"}, []string{"--role", "all", "node", "roles", "m4", "--", "-proxy"}},
		{[]string{"node", "list", "-role", "proxy"}, []string{"node", "list", "--role", "proxy"}},
		{[]string{"-proxy-access-log", "node", "list"}, []string{"--proxy-access-log", "node", "list"}},
	} {
		var cli CLI
		parser, err := kong.New(&cli)
		if err != nil {
			t.Fatal(err)
		}
		if got := normalizeArgs(parser.Model, tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("normalizeArgs(%v) = %v, want %v", tc.args, got, tc.want)
		}
	}
	e := parse(t, "node", "roles", "m4", "+datanode", "-proxy", "--no-wait")
	got := e.cli.Node.Roles
	if got.Machine != "m4" || !slices.Equal(got.Changes, []string{"--", "+datanode", "-proxy", "--no-wait"}) {
		t.Fatalf("parsed node roles: %+v", got)
	}
	// Malformed changes are refused before any call.
	if code, _, errOut := run(t, "node", "roles", "m4", "datanode"); code != 2 || !strings.Contains(errOut, "+ROLE") {
		t.Fatalf("node roles m4 datanode: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run(t, "rollout", "restart"); code != 2 || !strings.Contains(errOut, "--role") {
		t.Fatalf("rollout restart without --role: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run(t, "node", "stop", "m4"); code != 2 || !strings.Contains(errOut, "MACHINE/ROLE") {
		t.Fatalf("node stop m4: exit %d, %s", code, errOut)
	}
}

// On a controller's machine the role processes get the machine's own etcd member unless the
// configuration names endpoints; elsewhere, and with endpoints named, nothing is added.
func TestWithMachineEtcd(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-name", "m7", "--address", "10.0.0.7", "--data-dir", t.TempDir(), "-role", "controller,agent,datanode", "agent"},
			[]string{"run", "--etcd-endpoints", "https://10.0.0.7:2379"}},
		{[]string{"-name", "m7", "--address", "10.0.0.7", "--data-dir", t.TempDir(), "-role", "agent,datanode", "agent"}, []string{"run"}},
		{[]string{"-name", "m7", "--address", "10.0.0.7", "--data-dir", t.TempDir(), "-role", "controller,agent", "--etcd-endpoints", "https://10.0.0.1:2379", "agent"},
			[]string{"run", "--etcd-endpoints", "https://10.0.0.1:2379"}},
	} {
		e := parse(t, tc.args...)
		cfg, origins, err := e.Config()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, a := range withMachineEtcd(e.childArgs(), cfg, origins) {
			if i == 0 || a == "--etcd-endpoints" || strings.HasPrefix(a, "https://") {
				got = append(got, a)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: child args %v, want %v", tc.args, got, tc.want)
		}
	}
}
