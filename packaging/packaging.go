// Package packaging builds hanode's .deb and .rpm packages with nfpm: the static binary, a
// commented default configuration, the systemd unit, a man page made from the binary's own
// --help, and maintainer scripts that create the hanode account and data directory. The
// command packaging/cmd/mkpkg (make packages) drives it.
package packaging

import (
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the "rpm" packager
)

// Formats are the package formats Build writes for each architecture.
var Formats = []string{"deb", "rpm"}

// Paths inside the packages; the unit, the scripts and docs/install.md rely on them.
const (
	BinPath     = "/usr/bin/hanode"
	ConfigPath  = "/etc/hanode/hanode.yaml"
	UnitPath    = "/usr/lib/systemd/system/hanode.service"
	ManPath     = "/usr/share/man/man1/hanode.1.gz"
	DataDir     = "/var/lib/hanode"
	debDocDir   = "/usr/share/doc/hanode"
	rpmLicense  = "/usr/share/licenses/hanode/copyright"
	maintainer  = "hanode developers <dev@hanode.invalid>"
	description = `Highly available replicated object store in one static binary
hanode turns three or more Linux machines into a replicated S3-compatible
object store with a built-in TLS load balancer. One executable runs the
controller (embedded etcd: Raft, leader election, cluster state), datanode,
coordinator (S3 front end), proxy and agent roles; every hop is mutual TLS
from one cluster CA.
.
This package installs the binary, a systemd unit running it as the hanode
user, and a commented default configuration in /etc/hanode/hanode.yaml.`
)

//go:embed files scripts
var assets embed.FS

// Asset returns one of the embedded files, such as "files/hanode.yaml".
func Asset(name string) ([]byte, error) {
	b, err := assets.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("packaging asset %s: %w", name, err)
	}
	return b, nil
}

// Options describe the packages of one architecture.
type Options struct {
	Version string    // from PackageVersion: valid for both dpkg and rpm
	Arch    string    // GOARCH of Binary: amd64 or arm64
	Binary  string    // the static hanode binary to ship
	ManPage []byte    // gzipped man page from ManPage; the same for every architecture
	OutDir  string    // where the packages are written
	MTime   time.Time // stamped on every file so that the same input gives the same package
}

// FileName is the package file Build writes for a format and architecture:
// hanode_<version>_<arch>.deb or hanode-<version>.<arch>.rpm, with Debian and RPM arch names.
func FileName(format, version, goarch string) (string, error) {
	switch format {
	case "deb":
		a, ok := map[string]string{"amd64": "amd64", "arm64": "arm64"}[goarch]
		if !ok {
			return "", fmt.Errorf("packaging: architecture %q: want amd64 or arm64", goarch)
		}
		return fmt.Sprintf("hanode_%s_%s.deb", version, a), nil
	case "rpm":
		a, ok := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch]
		if !ok {
			return "", fmt.Errorf("packaging: architecture %q: want amd64 or arm64", goarch)
		}
		return fmt.Sprintf("hanode-%s.%s.rpm", version, a), nil
	}
	return "", fmt.Errorf("packaging: format %q: want deb or rpm", format)
}

// Build writes the deb and the rpm for o.Arch into o.OutDir and returns their paths.
func Build(o Options) ([]string, error) {
	if err := checkVersion(o.Version); err != nil {
		return nil, err
	}
	if len(o.ManPage) == 0 {
		return nil, fmt.Errorf("packaging: no man page given for %s", o.Arch)
	}
	if st, err := os.Stat(o.Binary); err != nil {
		return nil, fmt.Errorf("packaging: binary for %s: %w", o.Arch, err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("packaging: binary for %s: %s is not an executable file", o.Arch, o.Binary)
	}
	if o.MTime.IsZero() {
		o.MTime = time.Now()
	}
	o.MTime = o.MTime.UTC().Truncate(time.Second)
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("packaging: output dir: %w", err)
	}
	// nfpm reads every file from disk, so the embedded ones are staged first.
	stage, err := os.MkdirTemp("", "hanode-pkg-")
	if err != nil {
		return nil, fmt.Errorf("packaging: staging dir: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := writeStage(stage, o); err != nil {
		return nil, err
	}
	var out []string
	for _, format := range Formats {
		name, err := FileName(format, o.Version, o.Arch)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(o.OutDir, name)
		if err := pack(format, packageInfo(format, stage, o), path); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	return out, nil
}

func pack(format string, info *nfpm.Info, path string) error {
	p, err := nfpm.Get(format)
	if err != nil {
		return fmt.Errorf("packaging %s: %w", path, err)
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return fmt.Errorf("packaging %s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("packaging: %w", err)
	}
	if err := p.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("packaging %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("packaging %s: %w", path, err)
	}
	return nil
}

// scripts maps each packager's maintainer-script slot to its body in scripts/.
var scripts = map[string][4]string{ // preinstall, postinstall, preremove, postremove
	"deb": {"deb-preinst.sh", "deb-postinst.sh", "deb-prerm.sh", "deb-postrm.sh"},
	"rpm": {"rpm-pre.sh", "rpm-post.sh", "rpm-preun.sh", "rpm-postun.sh"},
}

// Script returns a complete maintainer script: shebang, set -e, the functions of scripts/lib
// that the body names on its first line ("# needs: f g ...") and the body. Inlining them keeps
// each script self-contained, which postrm needs: it runs after the package's files are gone.
func Script(body string) ([]byte, error) {
	b, err := Asset("scripts/" + body)
	if err != nil {
		return nil, err
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	needs, ok := strings.CutPrefix(string(first), "# needs:")
	if !ok {
		return nil, fmt.Errorf("packaging: scripts/%s: first line must be \"# needs: FUNCTION...\"", body)
	}
	var s bytes.Buffer
	fmt.Fprintf(&s, "#!/bin/sh\n# hanode %s, made from packaging/scripts/%s and scripts/lib.\nset -e\n\n", strings.TrimSuffix(body, ".sh"), body)
	for _, fn := range strings.Fields(needs) {
		lib, err := Asset("scripts/lib/" + fn + ".sh")
		if err != nil {
			return nil, fmt.Errorf("packaging: scripts/%s needs %s: %w", body, fn, err)
		}
		s.Write(lib)
		s.WriteString("\n")
	}
	s.Write(b[len(first)+1:])
	return s.Bytes(), nil
}

func writeStage(stage string, o Options) error {
	write := func(name string, data []byte, mode os.FileMode) error {
		if err := os.WriteFile(filepath.Join(stage, name), data, mode); err != nil {
			return fmt.Errorf("packaging: stage %s: %w", name, err)
		}
		return nil
	}
	for _, name := range []string{"hanode.yaml", "hanode.service", "copyright", "lintian-overrides"} {
		b, err := Asset("files/" + name)
		if err != nil {
			return err
		}
		if err := write(name, b, 0o644); err != nil {
			return err
		}
	}
	for _, list := range scripts {
		for _, body := range list {
			s, err := Script(body)
			if err != nil {
				return err
			}
			if err := write(body, s, 0o755); err != nil {
				return err
			}
		}
	}
	changelog, err := gzipBytes(debianChangelog(o.Version, o.MTime))
	if err != nil {
		return err
	}
	if err := write("changelog.gz", changelog, 0o644); err != nil {
		return err
	}
	return write("hanode.1.gz", o.ManPage, 0o644)
}

// debianChangelog is the one-entry changelog Debian policy asks every package to carry.
func debianChangelog(version string, t time.Time) []byte {
	return fmt.Appendf(nil, "hanode (%s) unstable; urgency=medium\n\n  * Built from hanode %s.\n\n -- %s  %s\n",
		version, version, maintainer, t.Format(time.RFC1123Z))
}

func packageInfo(format, stage string, o Options) *nfpm.Info {
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: filepath.Join(stage, src), Destination: dst,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: o.MTime}}
	}
	bin := file("", BinPath, 0o755)
	bin.Source = o.Binary
	conf := file("hanode.yaml", ConfigPath, 0o640)
	conf.Type = files.TypeConfigNoReplace // deb conffile, rpm %config(noreplace)
	conf.FileInfo.Group = "hanode"        // the service reads it; others must not see a token
	etc := &files.Content{Destination: filepath.Dir(ConfigPath), Type: files.TypeDir,
		FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: 0o755, MTime: o.MTime}}
	man := file("hanode.1.gz", ManPath, 0o644)
	contents := files.Contents{bin, etc, conf, man, file("hanode.service", UnitPath, 0o644)}
	sc := scripts[format]
	info := &nfpm.Info{
		Name:          "hanode",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       o.Version,
		VersionSchema: "none", // PackageVersion already made it valid; semver parsing would reorder it
		Section:       "net",
		Priority:      "optional",
		Maintainer:    maintainer,
		Description:   description,
		Vendor:        "hanode",
		License:       "Apache-2.0",
		MTime:         o.MTime,
		Overridables: nfpm.Overridables{
			Conflicts: []string{},
			Scripts: nfpm.Scripts{
				PreInstall:  filepath.Join(stage, sc[0]),
				PostInstall: filepath.Join(stage, sc[1]),
				PreRemove:   filepath.Join(stage, sc[2]),
				PostRemove:  filepath.Join(stage, sc[3]),
			},
		},
	}
	switch format {
	case "deb":
		// The binary is static: no Depends. The unit needs systemd, but the binary runs without.
		info.Recommends = []string{"systemd"}
		contents = append(contents,
			file("copyright", debDocDir+"/copyright", 0o644),
			file("changelog.gz", debDocDir+"/changelog.gz", 0o644),
			file("lintian-overrides", "/usr/share/lintian/overrides/hanode", 0o644))
	case "rpm":
		// rpm shows the summary apart, and separates paragraphs with a blank line, not a '.'.
		summary, rest, _ := strings.Cut(description, "\n")
		info.RPM.Summary = summary
		info.Description = strings.ReplaceAll(rest, "\n.\n", "\n\n")
		info.RPM.Packager = maintainer
		info.RPM.Group = "System Environment/Daemons"
		man.Type = files.TypeRPMDoc // rpm --excludedocs leaves man pages out, as rpm's own do
		lic := file("copyright", rpmLicense, 0o644)
		lic.Type = files.TypeRPMLicense
		contents = append(contents, lic)
	}
	info.Contents = contents
	return info
}

func gzipBytes(data []byte) ([]byte, error) {
	var b bytes.Buffer
	// No name and no timestamp in the header, so that the output depends on data alone.
	w, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return b.Bytes(), nil
}

var (
	shaRE       = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	describeRE  = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]{4,40})$`)
	badChars    = regexp.MustCompile(`[^A-Za-z0-9.+~]+`)
	validVerRE  = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
	tagStartsRE = regexp.MustCompile(`^[0-9]`)
)

// PackageVersion turns `git describe --tags --always` output into a version that dpkg and rpm
// both accept and order correctly:
//
//	4cac97a                 → 0.0.0~git4cac97a      (no tag: sorts before any release)
//	v1.2.0                  → 1.2.0
//	v1.2.0-rc.1             → 1.2.0~rc.1            (a pre-release sorts before 1.2.0)
//	v1.2.0-5-g4cac97a       → 1.2.0+git5.4cac97a    (commits after a tag sort after it)
//	...-dirty               → ...+dirty
//
// rpm forbids '-' in a version (it separates the release) and Debian reserves it for the
// revision, so none remains; '~' sorts before the empty string in both.
func PackageVersion(describe string) (string, error) {
	d := strings.TrimSpace(describe)
	if d == "" {
		return "", fmt.Errorf("package version from git describe %q: empty", describe)
	}
	dirty := false
	if s, ok := strings.CutSuffix(d, "-dirty"); ok {
		d, dirty = s, true
	}
	var v string
	switch {
	case shaRE.MatchString(d):
		v = "0.0.0~git" + d
	default:
		tag, extra := d, ""
		if m := describeRE.FindStringSubmatch(d); m != nil {
			tag, extra = m[1], "+git"+m[2]+"."+m[3]
		}
		tag = strings.TrimPrefix(strings.TrimPrefix(tag, "v"), "V")
		if !tagStartsRE.MatchString(tag) {
			return "", fmt.Errorf("package version from git describe %q: tag %q must start with a digit (v1.2.3 or 1.2.3)", describe, tag)
		}
		// The first '-' starts a pre-release (1.2.0-rc.1); any others become dots.
		if i := strings.IndexByte(tag, '-'); i >= 0 {
			tag = tag[:i] + "~" + strings.ReplaceAll(tag[i+1:], "-", ".")
		}
		v = badChars.ReplaceAllString(tag, ".") + extra
	}
	if dirty {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			v += "+dirty"
		}
	}
	if err := checkVersion(v); err != nil {
		return "", fmt.Errorf("package version from git describe %q: %w", describe, err)
	}
	return v, nil
}

func checkVersion(v string) error {
	if !validVerRE.MatchString(v) {
		return fmt.Errorf("version %q: want a digit first, then letters, digits, '.', '+' or '~'", v)
	}
	return nil
}
