// Command mkpkg builds hanode's .deb and .rpm packages from already built static binaries:
//
//	go run ./packaging/cmd/mkpkg --out dist --bin amd64=dist/bin/amd64/hanode --bin arm64=dist/bin/arm64/hanode
//
// writes dist/hanode_<version>_amd64.deb, dist/hanode-<version>.x86_64.rpm and the arm64
// (aarch64) pair. The version comes from `git describe --tags --always` unless --version is
// given; file times come from $SOURCE_DATE_EPOCH or the last commit, so a rebuild of the same
// commit gives the same packages.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hanode/hanode/packaging"
)

type binFlags map[string]string

func (b binFlags) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binFlags) Set(s string) error {
	arch, path, ok := strings.Cut(s, "=")
	if !ok || arch == "" || path == "" {
		return fmt.Errorf("--bin %q: want ARCH=PATH, such as amd64=dist/bin/amd64/hanode", s)
	}
	b[arch] = path
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		os.Exit(1)
	}
}

func run() error {
	bins := binFlags{}
	out := flag.String("out", "dist", "directory to write the packages to")
	version := flag.String("version", "", "package version (default: from git describe --tags --always)")
	helpBin := flag.String("help-bin", "", "a hanode binary that runs on this machine, for the man page (default: the --bin of this machine's architecture)")
	flag.Var(bins, "bin", "ARCH=PATH of a static hanode binary; repeat for each architecture (amd64, arm64)")
	flag.Parse()
	if len(bins) == 0 {
		return fmt.Errorf("no --bin ARCH=PATH given")
	}
	v := *version
	if v == "" {
		d, err := git("describe", "--tags", "--always")
		if err != nil {
			return err
		}
		if v, err = packaging.PackageVersion(d); err != nil {
			return err
		}
	}
	mtime, err := sourceDate()
	if err != nil {
		return err
	}
	hb := *helpBin
	if hb == "" {
		hb = bins[runtime.GOARCH]
	}
	if hb == "" {
		return fmt.Errorf("no --bin for this machine's architecture %s to make the man page from: give --help-bin", runtime.GOARCH)
	}
	man, err := packaging.ManPage(hb, v, mtime)
	if err != nil {
		return err
	}
	arches := make([]string, 0, len(bins))
	for a := range bins {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	for _, arch := range arches {
		paths, err := packaging.Build(packaging.Options{Version: v, Arch: arch, Binary: bins[arch], ManPage: man, OutDir: *out, MTime: mtime})
		if err != nil {
			return err
		}
		for _, p := range paths {
			fmt.Println(p)
		}
	}
	return nil
}

// sourceDate is $SOURCE_DATE_EPOCH (the reproducible-builds convention), else the time of the
// last commit, else now.
func sourceDate() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if s, err := git("log", "-1", "--format=%ct"); err == nil {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	return time.Now().UTC(), nil
}

func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
