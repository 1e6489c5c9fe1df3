package packaging

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/config"
)

func TestPackageVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"4cac97a", "0.0.0~git4cac97a"},
		{"4cac97a-dirty", "0.0.0~git4cac97a+dirty"},
		{"v1.2.0", "1.2.0"},
		{"1.2.0", "1.2.0"},
		{"v1.2.0-rc.1", "1.2.0~rc.1"},
		{"v1.2.0-rc-1", "1.2.0~rc.1"},
		{"v1.2.0-5-g4cac97a", "1.2.0+git5.4cac97a"},
		{"v1.2.0-rc.1-5-g4cac97a-dirty", "1.2.0~rc.1+git5.4cac97a.dirty"},
		{"v1.2.0_beta", "1.2.0.beta"},
	} {
		got, err := PackageVersion(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("PackageVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if strings.Contains(got, "-") {
			t.Errorf("PackageVersion(%q) = %q contains '-', which rpm forbids", tc.in, got)
		}
	}
	for _, bad := range []string{"", "release-2", "vnext"} {
		if v, err := PackageVersion(bad); err == nil {
			t.Errorf("PackageVersion(%q) = %q, want an error", bad, v)
		}
	}
	// dpkg itself must order them as intended.
	if _, err := exec.LookPath("dpkg"); err == nil {
		order := []string{"0.0.0~git4cac97a", "1.2.0~rc.1", "1.2.0~rc.1+git5.4cac97a", "1.2.0", "1.2.0+git5.4cac97a"}
		for i := 1; i < len(order); i++ {
			if err := exec.Command("dpkg", "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
				t.Errorf("dpkg: %s is not lower than %s", order[i-1], order[i])
			}
		}
	}
}

// commentedKeyRE matches a key line of the default configuration, set ("data-dir: ...") or
// commented out ("#name: m1"); prose comments have a space after '#'.
var commentedKeyRE = regexp.MustCompile(`^#?([a-z][a-z0-9-]*):(?: |$)`)

func TestDefaultConfig(t *testing.T) {
	data, err := Asset("files/hanode.yaml")
	if err != nil {
		t.Fatal(err)
	}
	load := func(name string, data []byte) *config.Config {
		t.Helper()
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, _, err := config.Load(config.Sources{File: path})
		if err != nil {
			t.Fatalf("config.Load(%s): %v\n%s", name, err, data)
		}
		return c
	}
	c := load("hanode.yaml", data)
	if c.DataDir != DataDir || c.LogFormat != "json" || !slices.Equal(c.Role, []string{"all"}) {
		t.Errorf("default config: data-dir %q, log-format %q, role %v; want %s, json, [all]", c.DataDir, c.LogFormat, c.Role, DataDir)
	}
	// Every key the file mentions, even commented out, must be a real key, and uncommenting
	// them must still give a valid configuration: machine 2 of docs/install.md.
	keys := config.Keys()
	var machine2 []string
	for _, line := range strings.Split(string(data), "\n") {
		m := commentedKeyRE.FindStringSubmatch(line)
		if m == nil {
			machine2 = append(machine2, line)
			continue
		}
		if !slices.Contains(keys, m[1]) {
			t.Errorf("hanode.yaml mentions %q, which is not a key of config.Config", m[1])
		}
		switch m[1] {
		case "name", "address", "server", "token":
			line = strings.TrimPrefix(line, "#")
		}
		machine2 = append(machine2, line)
	}
	c = load("machine2.yaml", []byte(strings.Join(machine2, "\n")))
	if c.Server == "" || c.Token == "" || c.Address == "127.0.0.1" {
		t.Errorf("uncommented server, token, address: got server %q, token set %v, address %q", c.Server, c.Token != "", c.Address)
	}
}

func TestScripts(t *testing.T) {
	for format, list := range scripts {
		for _, body := range list {
			s, err := Script(body)
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			if !bytes.HasPrefix(s, []byte("#!/bin/sh\n")) || !bytes.Contains(s, []byte("\nset -e\n")) {
				t.Errorf("%s: no #!/bin/sh and set -e", body)
			}
			cmd := exec.Command("sh", "-n")
			cmd.Stdin = bytes.NewReader(s)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("sh -n %s: %v\n%s", body, err, out)
			}
		}
	}
}

// requireTool skips, loudly, when an inspection tool is missing.
func requireTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("SKIPPED: %s is not installed (Debian package %q: apt-get install %s); the packages were built but not inspected with it", name, pkg, pkg)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// wantFiles are the packaged files with their modes and owners (ls -l style).
var wantFiles = map[string]string{
	BinPath:    "-rwxr-xr-x root root",
	ConfigPath: "-rw-r----- root hanode",
	UnitPath:   "-rw-r--r-- root root",
	ManPath:    "-rw-r--r-- root root",
}

// wantService are settings the unit's [Service] section must have.
var wantService = map[string]string{
	"Type": "notify", "User": "hanode", "Group": "hanode",
	"ExecStart": "/usr/bin/hanode agent --config /etc/hanode/hanode.yaml", "KillMode": "mixed",
	"Restart": "on-failure", "RestartSec": "2", "LimitNOFILE": "1048576", "TimeoutStopSec": "90",
	"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
	"ReadWritePaths": "/var/lib/hanode", "WorkingDirectory": "/var/lib/hanode",
	"AmbientCapabilities": "", "CapabilityBoundingSet": "",
}

func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hanode and its packages")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "hanode")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/hanode/hanode/version.Version=test", "-o", bin, "github.com/hanode/hanode")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build hanode: %v\n%s", err, out)
	}
	const version = "0.0.0~git4cac97a"
	man, err := ManPage(bin, version, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	checkManPage(t, man)
	out := filepath.Join(dir, "dist")
	var paths []string
	// arm64 packs the amd64 binary: the test checks naming and metadata, not the executable.
	for _, arch := range []string{"amd64", "arm64"} {
		p, err := Build(Options{Version: version, Arch: arch, Binary: bin, ManPage: man, OutDir: out, MTime: time.Unix(1700000000, 0)})
		if err != nil {
			t.Fatalf("Build %s: %v", arch, err)
		}
		paths = append(paths, p...)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	wantNames := []string{"hanode_0.0.0~git4cac97a_amd64.deb", "hanode-0.0.0~git4cac97a.x86_64.rpm",
		"hanode_0.0.0~git4cac97a_arm64.deb", "hanode-0.0.0~git4cac97a.aarch64.rpm"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("packages %v, want %v", names, wantNames)
	}
	deb, rpm := paths[0], paths[1]
	t.Run("deb", func(t *testing.T) { checkDeb(t, deb, paths[2]) })
	t.Run("rpm", func(t *testing.T) { checkRPM(t, rpm, paths[3]) })
	t.Run("lintian", func(t *testing.T) { checkLintian(t, deb) })
}

func checkManPage(t *testing.T, gz []byte) {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("man page is not gzip: %v", err)
	}
	page, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".TH HANODE 1", ".SH OPTIONS", `\-\-data\-dir`, `.SS "hanode token create"`, `.SS "hanode init"`} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("man page lacks %q", want)
		}
	}
}

func checkDeb(t *testing.T, deb, debArm string) {
	requireTool(t, "dpkg-deb", "dpkg")
	info := run(t, "dpkg-deb", "--info", deb)
	for _, want := range []string{"Package: hanode", "Version: 0.0.0~git4cac97a", "Architecture: amd64",
		"Maintainer: hanode developers <dev@hanode.invalid>", "Section: net", "Priority: optional", "Recommends: systemd"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
		}
	}
	if strings.Contains(info, "Depends:") || strings.Contains(info, "Conflicts:") {
		t.Errorf("the deb has dependencies or conflicts:\n%s", info)
	}
	if arm := run(t, "dpkg-deb", "--field", debArm, "Architecture"); strings.TrimSpace(arm) != "arm64" {
		t.Errorf("arm64 deb has Architecture %q", arm)
	}

	// -rw-r----- root/hanode 1717 2023-11-14 22:13 ./etc/hanode/hanode.yaml
	got := map[string]string{}
	for _, line := range strings.Split(run(t, "dpkg-deb", "--contents", deb), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 {
			got[strings.TrimPrefix(f[5], ".")] = f[0] + " " + strings.Replace(f[1], "/", " ", 1)
		}
	}
	for path, want := range wantFiles {
		if got[path] != want {
			t.Errorf("deb: %s is %q, want %q", path, got[path], want)
		}
	}

	ctl := filepath.Join(t.TempDir(), "control")
	run(t, "dpkg-deb", "-e", deb, ctl)
	if conf, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(conf)) != ConfigPath {
		t.Errorf("conffiles = %q, want %s", conf, ConfigPath)
	}
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
		p := filepath.Join(ctl, s)
		st, err := os.Stat(p)
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("maintainer script %s missing or not executable: %v", s, err)
			continue
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
	}
	// The deb scripts must follow dpkg's arguments, not rpm's counts.
	postrm, _ := os.ReadFile(filepath.Join(ctl, "postrm"))
	if !bytes.Contains(postrm, []byte("purge)")) || !bytes.Contains(postrm, []byte("rm -rf /var/lib/hanode")) {
		t.Errorf("postrm does not delete the data on purge:\n%s", postrm)
	}

	root := filepath.Join(t.TempDir(), "root")
	run(t, "dpkg-deb", "-x", deb, root)
	unit, err := os.ReadFile(filepath.Join(root, UnitPath))
	if err != nil {
		t.Fatal(err)
	}
	svc := unitSection(string(unit), "Service")
	for k, want := range wantService {
		if v, ok := svc[k]; !ok || v != want {
			t.Errorf("hanode.service [Service] %s=%q (set: %v), want %q", k, v, ok, want)
		}
	}
	if unitSection(string(unit), "Install")["WantedBy"] != "multi-user.target" {
		t.Errorf("hanode.service has no [Install] WantedBy=multi-user.target")
	}
	if out, err := exec.Command(filepath.Join(root, BinPath), "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "test") {
		t.Errorf("packaged binary: hanode version: %v: %s", err, out)
	}
}

// unitSection parses a systemd unit's section into its key=value settings.
func unitSection(unit, section string) map[string]string {
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			in = line == "["+section+"]"
		case in:
			if k, v, ok := strings.Cut(line, "="); ok {
				out[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

func checkRPM(t *testing.T, rpm, rpmArm string) {
	requireTool(t, "rpm", "rpm")
	files := run(t, "rpm", "-qpl", rpm)
	for path := range wantFiles {
		if !strings.Contains(files, path+"\n") {
			t.Errorf("rpm -qpl lacks %s:\n%s", path, files)
		}
	}
	got := map[string]string{}
	for _, line := range strings.Split(run(t, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]`, rpm), "\n") {
		if f := strings.Fields(line); len(f) == 4 {
			got[f[3]] = strings.Join(f[:3], " ")
		}
	}
	for path, want := range wantFiles {
		if got[path] != want {
			t.Errorf("rpm: %s is %q, want %q", path, got[path], want)
		}
	}
	if conf := strings.TrimSpace(run(t, "rpm", "-qp", "--configfiles", rpm)); conf != ConfigPath {
		t.Errorf("rpm --configfiles = %q, want %s", conf, ConfigPath)
	}
	// FILEFLAGS bit 0x10 is RPMFILE_NOREPLACE: %config(noreplace).
	if flags := run(t, "rpm", "-qp", "--qf", `[%{FILENAMES} %{FILEFLAGS:fflags}\n]`, rpm); !regexp.MustCompile(`(?m)^/etc/hanode/hanode.yaml c?n`).MatchString(flags) {
		t.Errorf("hanode.yaml is not %%config(noreplace):\n%s", flags)
	}
	info := run(t, "rpm", "-qpi", rpm)
	for _, want := range []string{"Name        : hanode", "Version     : 0.0.0~git4cac97a", "Architecture: x86_64",
		"License     : Apache-2.0", "Vendor      : hanode", "Packager    : hanode developers <dev@hanode.invalid>"} {
		if !strings.Contains(info, want) {
			t.Errorf("rpm -qpi lacks %q:\n%s", want, info)
		}
	}
	if arch := run(t, "rpm", "-qp", "--qf", "%{ARCH}", rpmArm); arch != "aarch64" {
		t.Errorf("arm64 rpm has arch %q", arch)
	}
	if req := run(t, "rpm", "-qpR", rpm); strings.Contains(req, "systemd") {
		t.Errorf("the rpm requires systemd (it should have no dependencies):\n%s", req)
	}
	scripts := run(t, "rpm", "-qp", "--scripts", rpm)
	for _, want := range []string{"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
		`if [ "$1" -ge 2 ]; then`, "systemctl try-restart hanode.service", `if [ "$1" -eq 0 ]; then`} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm --scripts lacks %q", want)
		}
	}
	if strings.Contains(scripts, "purge)") {
		t.Errorf("the rpm carries deb maintainer scripts")
	}
}

// lintianAccepted are tags left on purpose: the scripts call systemctl because the same logic
// serves the rpm, where deb-systemd-invoke does not exist.
var lintianAccepted = []string{"maintainer-script-calls-systemctl"}

func checkLintian(t *testing.T, deb string) {
	requireTool(t, "lintian", "lintian")
	cmd := exec.Command("lintian", "--tag-display-limit", "0", deb)
	out, _ := cmd.CombinedOutput() // lintian exits non-zero on errors; the tags below decide
	tagRE := regexp.MustCompile(`(?m)^([EWI]): hanode(?: [a-z]+)?: ([a-z0-9-]+)`)
	for _, m := range tagRE.FindAllStringSubmatch(string(out), -1) {
		if m[1] == "I" || slices.Contains(lintianAccepted, m[2]) {
			continue
		}
		t.Errorf("lintian %s: %s\n%s", m[1], m[2], out)
	}
}
