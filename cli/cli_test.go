package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("nmae: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{"version", []string{"version"}, 0, "hanode dev", ""},
		{"help", []string{"--help"}, 0, "Usage: hanode", ""},
		{"unknown flag", []string{"--no-such-flag"}, 2, "", "unknown flag"},
		{"bad role single dash", []string{"-role", "web", "config", "show"}, 2, "", `invalid value "web" for role`},
		{"bad port", []string{"--admin-port=abc", "config", "show"}, 2, "", "admin-port"},
		{"unknown config key", []string{"--config", bad, "config", "show"}, 2, "", `unknown key "nmae"`},
		{"missing config file", []string{"--config", "/nonexistent/hanode.yaml", "config", "show"}, 2, "", "no such file"},
		{"single dash with equals", []string{"-role=datanode,coordinator", "config", "show"}, 0, "[datanode, coordinator]", ""},
		{"double dash", []string{"--role", "controller", "config", "show"}, 0, "[controller]", ""},
		{"lab without a lab", []string{"lab", "status", "--dir", t.TempDir()}, 2, "", "no lab in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout %q lacks %q", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderrIn) {
				t.Errorf("stderr %q lacks %q", stderr, tt.stderrIn)
			}
			if tt.code == 2 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && !strings.Contains(stderr, "Usage") {
				t.Errorf("error is not one line: %q", stderr)
			}
		})
	}
}

func TestNormalizeArgs(t *testing.T) {
	var c CLI
	p, err := kong.New(&c)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want []string }{
		{[]string{"-role", "controller"}, []string{"--role", "controller"}},
		{[]string{"-data-dir=/x", "-h"}, []string{"--data-dir=/x", "-h"}},
		{[]string{"lab", "up", "-machines", "3"}, []string{"lab", "up", "--machines", "3"}},
		{[]string{"-unknown", "x"}, []string{"-unknown", "x"}},
		{[]string{"--", "-role"}, []string{"--", "-role"}},
	}
	for _, tt := range tests {
		got := normalizeArgs(p.Model, tt.in)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("normalizeArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestConfigShowOrigins(t *testing.T) {
	t.Setenv("HANODE_S3_PORT", "9100")
	code, out, stderr := run(t, "-admin-port", "9200", "config", "show")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"env HANODE_S3_PORT", "flag --admin-port"} {
		if !strings.Contains(out, want) {
			t.Errorf("config show lacks %q:\n%s", want, out)
		}
	}
}
