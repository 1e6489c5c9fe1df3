package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hanode.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "name: fromfile\nadmin-port: 7000\ns3-port: 7001\nagent-port: 7002\nrole: [controller, datanode]\n")
	flags := &Config{Name: "fromflag", S3Port: 9999}
	c, o, err := Load(Sources{
		File:     file,
		Env:      envOf(map[string]string{"HANODE_ADMIN_PORT": "7100", "HANODE_S3_PORT": "7101"}),
		Flags:    flags,
		FlagsSet: []string{"name", "s3-port", "config"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key    string
		got    any
		want   any
		origin string
	}{
		{"name", c.Name, "fromflag", "flag --name"},
		{"s3-port", c.S3Port, 9999, "flag --s3-port"},
		{"admin-port", c.AdminPort, 7100, "env HANODE_ADMIN_PORT"},
		{"agent-port", c.AgentPort, 7002, "file " + file},
		{"datanode-port", c.DatanodePort, 8911, "default"},
		{"role", strings.Join(c.Role, ","), "controller,datanode", "file " + file},
		{"heartbeat-interval", c.HeartbeatInterval, 100 * time.Millisecond, "default"},
		{"multipart-expiry", c.MultipartExpiry, 7 * 24 * time.Hour, "default"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.key, tt.got, tt.want)
		}
		if o[tt.key].String() != tt.origin {
			t.Errorf("%s origin = %q, want %q", tt.key, o[tt.key], tt.origin)
		}
	}
}

func TestDerived(t *testing.T) {
	c, _, err := Load(Sources{Env: envOf(map[string]string{"HANODE_NAME": "m1", "HANODE_ADDRESS": "127.0.10.1"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.InitialCluster, ","); got != "m1=https://127.0.10.1:2380" {
		t.Errorf("initial-cluster = %q", got)
	}
	if got := strings.Join(c.EtcdEndpoints, ","); got != "https://127.0.10.1:2379" {
		t.Errorf("etcd-endpoints = %q", got)
	}
	if c.BindAddress != "127.0.10.1" || c.CACert != filepath.Join("hanode-data", "pki", "ca.crt") {
		t.Errorf("bind %q ca %q", c.BindAddress, c.CACert)
	}
	// A datanode-only machine reaches etcd through the controllers named in initial-cluster.
	c, _, err = Load(Sources{Env: envOf(map[string]string{"HANODE_NAME": "m4", "HANODE_ROLE": "datanode",
		"HANODE_INITIAL_CLUSTER": "m1=https://127.0.10.1:2380,m2=https://127.0.10.2:2380"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.EtcdEndpoints, ","); got != "https://127.0.10.1:2379,https://127.0.10.2:2379" {
		t.Errorf("etcd-endpoints = %q", got)
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		wantKey    string // substring the one-line error must contain
	}{
		{"unknown key", "nmae: x\n", nil, `unknown key "nmae"`},
		{"bad yaml", "name: [\n", nil, "not valid YAML"},
		{"not a mapping", "- a\n- b\n", nil, "expected a mapping"},
		{"duplicate key", "name: a\nname: b\n", nil, `"name" given twice`},
		{"bad role", "role: web\n", nil, "for role"},
		{"bad port", "admin-port: 70000\n", nil, "admin-port"},
		{"port text", "admin-port: abc\n", nil, "admin-port: allowed: a whole number"},
		{"same port twice", "admin-port: 9000\n", nil, "not already used by"},
		{"bad duration env", "", map[string]string{"HANODE_LEADER_TTL": "soon"}, "HANODE_LEADER_TTL"},
		{"election too short", "heartbeat-interval: 100ms\nelection-timeout: 200ms\n", nil, "election-timeout"},
		{"bad initial cluster", "initial-cluster: [m1]\n", nil, "initial-cluster"},
		{"http peer", "name: m1\ninitial-cluster: m1=http://127.0.0.1:2380\n", nil, "https://host:port"},
		{"controller not listed", "name: m9\ninitial-cluster: m1=https://127.0.0.1:2380\n", nil, `includes this controller "m9"`},
		{"bad log format", "log-format: xml\n", nil, "text or json"},
		{"multipart expiry too short", "multipart-expiry: 10s\n", nil, "multipart-expiry: allowed: a duration of at least 1m"},
		{"bad multipart expiry env", "", map[string]string{"HANODE_MULTIPART_EXPIRY": "a week"}, "HANODE_MULTIPART_EXPIRY"},
		{"nested value", "name: {a: b}\n", nil, "single value"},
		{"bad name", "name: Has_Upper\n", nil, "for name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Sources{Env: envOf(tt.env)}
			if tt.file != "" {
				src.File = writeFile(t, tt.file)
			}
			_, _, err := Load(src)
			if err == nil {
				t.Fatalf("Load accepted bad input")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantKey) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line containing %q", msg, tt.wantKey)
			}
		})
	}
	var ke *KeyError
	_, _, err := Load(Sources{Env: envOf(map[string]string{"HANODE_LOG_LEVEL": "loud"})})
	if !errors.As(err, &ke) || ke.Key != "log-level" {
		t.Fatalf("want a KeyError for log-level, got %v", err)
	}
}

func TestEvenControllerCountWarns(t *testing.T) {
	c, _, err := Load(Sources{Env: envOf(map[string]string{"HANODE_NAME": "m1",
		"HANODE_INITIAL_CLUSTER": "m1=https://127.0.10.1:2380,m2=https://127.0.10.2:2380"})})
	if err != nil {
		t.Fatal(err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "loss of 0") {
		t.Fatalf("warnings = %q", w)
	}
}

func TestShow(t *testing.T) {
	c, o, err := Load(Sources{Env: envOf(map[string]string{"HANODE_NAME": "m1", "HANODE_SERVER": "https://10.0.0.1:8900",
		"HANODE_TOKEN": "K10aaaa::abcdef.supersecretvalue1"})})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Show(&b, c, o); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"name:", "m1", "# env HANODE_NAME", "admin-port:", "8900", "# default"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "supersecretvalue1") || !strings.Contains(out, "(set, redacted)") {
		t.Errorf("show must redact the token:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n != len(Keys()) {
		t.Errorf("show printed %d lines for %d keys", n, len(Keys()))
	}
}

func TestEmptyFile(t *testing.T) {
	if _, _, err := Load(Sources{File: writeFile(t, "# only a comment\n")}); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseYAML: a config file is outside input; parsing must never panic, and whatever it
// accepts must round-trip through Validate without panicking.
func FuzzParseYAML(f *testing.F) {
	for _, s := range []string{
		"", "name: m1\n", "role: [controller, datanode]\n", "role: controller,proxy\n",
		"admin-port: 8900\nleader-ttl: 3s\n", "initial-cluster:\n  - m1=https://127.0.0.1:2380\n",
		"- a\n", "name: {a: b}\n", "rejoin: yes\n", "&a x: *a\n", "name: !!binary aGk=\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if _, err := parseYAML(c, data); err != nil {
			return
		}
		c.Derive()
		_ = c.Check()
	})
}
