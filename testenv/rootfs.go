package testenv

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// The Docker driver's images are built from scratch: no registry is needed. The base is a
// Debian bookworm made with debootstrap from the host's own apt mirror and imported into Docker
// once; each lab then installs the hanode .deb into it (dpkg -i, so the maintainer scripts run)
// and commits the result as hanode-lab:<deb sha256 prefix>.
const (
	BaseImage      = "hanode-lab-base:bookworm"
	baseSuite      = "bookworm"
	labImageRepo   = "hanode-lab"
	basePackages   = "ca-certificates,iproute2,procps"
	rootfsDirName  = "rootfs-" + baseSuite
	rootfsDoneName = rootfsDirName + ".done"
)

// CacheDir is where the debootstrap tree is kept between runs: $XDG_CACHE_HOME/hanode-lab or
// ~/.cache/hanode-lab.
func CacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "hanode-lab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache dir for the lab's base image: %w", err)
	}
	return filepath.Join(home, ".cache", "hanode-lab"), nil
}

// docker runs the docker CLI and returns its trimmed combined output; the error quotes it.
func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("docker %s: %w: %s", strings.Join(redactArgs(args), " "), err, s)
	}
	return s, nil
}

// redactArgs shortens long arguments (scripts) in error messages.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 80 {
			a = a[:77] + "..."
		}
		out[i] = a
	}
	return out
}

func imageExists(ctx context.Context, image string) bool {
	_, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", image)
	return err == nil
}

// EnsureBaseImage makes BaseImage unless it exists: debootstrap (minbase, with
// ca-certificates, iproute2 and procps) into the cache dir, then `docker import`. A finished
// debootstrap tree in the cache is imported again without downloading anything.
func EnsureBaseImage(ctx context.Context, out io.Writer) error {
	if imageExists(ctx, BaseImage) {
		return nil
	}
	cache, err := CacheDir()
	if err != nil {
		return err
	}
	root := filepath.Join(cache, rootfsDirName)
	done := filepath.Join(cache, rootfsDoneName)
	if _, err := os.Stat(done); err != nil {
		if err := debootstrap(ctx, cache, root, done, out); err != nil {
			return err
		}
	}
	start := time.Now()
	// tar -C ROOT -c . | docker import - IMAGE
	tar := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", root, "-c", ".")
	imp := exec.CommandContext(ctx, "docker", "import", "--change", "CMD [\"/bin/bash\"]", "-", BaseImage)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	var tarErr, impOut strings.Builder
	tar.Stderr = &tarErr
	imp.Stdout, imp.Stderr = &impOut, &impOut
	if err := tar.Start(); err != nil {
		return fmt.Errorf("tar the base rootfs: %w", err)
	}
	ierr := imp.Run()
	terr := tar.Wait()
	if ierr != nil || terr != nil {
		return fmt.Errorf("import %s into docker as %s: %v %v: %s%s", root, BaseImage, ierr, terr, impOut.String(), tarErr.String())
	}
	if out != nil {
		fmt.Fprintf(out, "lab: imported %s in %s\n", BaseImage, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

func debootstrap(ctx context.Context, cache, root, done string, out io.Writer) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("building the lab's base image %s needs debootstrap as root (once; it is cached in %s): run `hanode lab up --driver docker` once as root, or import a Debian %s rootfs as %s", BaseImage, cache, baseSuite, BaseImage)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if out != nil {
			fmt.Fprintln(out, "lab: installing debootstrap")
		}
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "debootstrap")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install -y debootstrap: %w\n%s", err, tailString(string(b), 10))
		}
	}
	mirror, err := DebianMirror()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	tmp := root + ".tmp"
	_ = os.RemoveAll(tmp)
	_ = os.RemoveAll(root)
	start := time.Now()
	if out != nil {
		fmt.Fprintf(out, "lab: debootstrap %s from %s into %s (once; cached)\n", baseSuite, mirror, root)
	}
	args := []string{"--variant=minbase", "--include=" + basePackages}
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		args = append(args, "--arch="+runtime.GOARCH)
	}
	args = append(args, baseSuite, tmp, mirror)
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("debootstrap %s: %w\n%s", strings.Join(args, " "), err, tailString(string(b), 15))
	}
	// Smaller image: no package lists or downloaded .debs.
	for _, d := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		matches, _ := filepath.Glob(filepath.Join(tmp, d, "*.deb"))
		for _, m := range matches {
			_ = os.Remove(m)
		}
	}
	if err := os.Rename(tmp, root); err != nil {
		return err
	}
	if err := os.WriteFile(done, []byte(fmt.Sprintf("debootstrap %s from %s at %s\n", baseSuite, mirror, time.Now().UTC().Format(time.RFC3339))), 0o644); err != nil {
		return err
	}
	if out != nil {
		fmt.Fprintf(out, "lab: debootstrap took %s\n", time.Since(start).Round(time.Second))
	}
	return nil
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DebianMirror is the host's own apt mirror for bookworm: the URIs of a deb822 source in
// /etc/apt/sources.list.d/*.sources whose Suites name bookworm, or the URL of a
// `deb URL bookworm ...` line in /etc/apt/sources.list(.d/*.list). $HANODE_LAB_MIRROR overrides.
func DebianMirror() (string, error) {
	if m := os.Getenv("HANODE_LAB_MIRROR"); m != "" {
		return m, nil
	}
	sources, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	sort.Strings(sources)
	for _, f := range sources {
		if m := mirrorFromDeb822(f); m != "" {
			return m, nil
		}
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	sort.Strings(lists)
	for _, f := range append([]string{"/etc/apt/sources.list"}, lists...) {
		if m := mirrorFromList(f); m != "" {
			return m, nil
		}
	}
	return "", errors.New("no Debian mirror for " + baseSuite + " in the host's apt sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list); set HANODE_LAB_MIRROR=URL")
}

// mirrorFromDeb822 reads the stanzas of a .sources file: the first URI of a "Types: deb"
// stanza whose Suites include the base suite.
func mirrorFromDeb822(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, stanza := range strings.Split(string(data), "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if strings.EqualFold(fields["enabled"], "no") || !containsWord(fields["types"], "deb") || !containsWord(fields["suites"], baseSuite) {
			continue
		}
		if uris := strings.Fields(fields["uris"]); len(uris) > 0 {
			return uris[0]
		}
	}
	return ""
}

func mirrorFromList(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || fs[0] != "deb" {
			continue
		}
		fs = fs[1:]
		if strings.HasPrefix(fs[0], "[") { // deb [signed-by=...] URL suite
			for len(fs) > 0 && !strings.HasSuffix(fs[0], "]") {
				fs = fs[1:]
			}
			if len(fs) > 0 {
				fs = fs[1:]
			}
		}
		if len(fs) >= 2 && fs[1] == baseSuite {
			return fs[0]
		}
	}
	return ""
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// LabImage returns hanode-lab:<sha256 prefix of deb>, building it unless it exists: a
// container from BaseImage gets the .deb (docker cp) and installs it with dpkg -i, so that the
// maintainer scripts create the hanode user and /var/lib/hanode (systemd is absent), then the
// container is committed.
func LabImage(ctx context.Context, deb string, out io.Writer) (string, error) {
	f, err := os.Open(deb)
	if err != nil {
		return "", fmt.Errorf("the hanode package for the docker lab: %w (build it with `make packages`, or pass --package)", err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return "", err
	}
	image := labImageRepo + ":" + hex.EncodeToString(h.Sum(nil))[:12]
	if imageExists(ctx, image) {
		return image, nil
	}
	if err := EnsureBaseImage(ctx, out); err != nil {
		return "", err
	}
	start := time.Now()
	name := fmt.Sprintf("hanode-lab-build-%d", os.Getpid())
	_, _ = docker(context.Background(), "rm", "-f", name)
	if _, err := docker(ctx, "create", "--name", name, BaseImage, "sleep", "infinity"); err != nil {
		return "", err
	}
	defer func() { _, _ = docker(context.Background(), "rm", "-f", name) }()
	if _, err := docker(ctx, "start", name); err != nil {
		return "", err
	}
	if _, err := docker(ctx, "cp", deb, name+":/tmp/hanode.deb"); err != nil {
		return "", err
	}
	if o, err := docker(ctx, "exec", "-u", "root", name, "sh", "-c",
		"dpkg -i /tmp/hanode.deb && rm -f /tmp/hanode.deb && id hanode && test -d /var/lib/hanode && /usr/bin/hanode version"); err != nil {
		return "", fmt.Errorf("install %s in %s: %w", deb, BaseImage, err)
	} else if out != nil {
		fmt.Fprintf(out, "lab: installed %s: %s\n", filepath.Base(deb), lastLine(o))
	}
	if _, err := docker(ctx, "stop", "-t", "0", name); err != nil {
		return "", err
	}
	if _, err := docker(ctx, "commit", "--change", "CMD [\"sleep\", \"infinity\"]", name, image); err != nil {
		return "", err
	}
	if out != nil {
		fmt.Fprintf(out, "lab: built %s in %s\n", image, time.Since(start).Round(100*time.Millisecond))
	}
	return image, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
