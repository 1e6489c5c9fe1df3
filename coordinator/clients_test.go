package coordinator

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool returns the path of an S3 command-line client from Debian (make deps installs them);
// CI must have them, a developer's machine may not.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (make deps installs it)", name)
		}
		t.Skipf("%s is not installed; make deps installs it", name)
	}
	return p
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRcloneAndS3cmd drives the coordinator with two independent S3 clients (aws-sdk-go inside
// rclone, and s3cmd's own signer), multipart uploads included.
func TestRcloneAndS3cmd(t *testing.T) {
	rclone, s3cmd := tool(t, "rclone"), tool(t, "s3cmd")
	tc := newTestCluster(t, clusterOpts{machines: 2, replicas: 2, chunkSize: 1 << 20, etcdHost: "127.0.88.8"})
	dir := t.TempDir()
	src := filepath.Join(dir, "f.bin")
	data := randData(12<<20+17, 9)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(tc.s3.URL, "http://")

	env := []string{"RCLONE_CONFIG=/dev/null", "AWS_CA_BUNDLE=", "RCLONE_CONFIG_H_TYPE=s3", "RCLONE_CONFIG_H_PROVIDER=Other",
		"RCLONE_CONFIG_H_ENDPOINT=" + tc.s3.URL, "RCLONE_CONFIG_H_ACCESS_KEY_ID=" + tc.access, "RCLONE_CONFIG_H_SECRET_ACCESS_KEY=" + tc.secret}
	run(t, env, rclone, "-q", "mkdir", "h:rcl")
	run(t, env, rclone, "-q", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "copyto", src, "h:rcl/dir/mp.bin")
	run(t, env, rclone, "-q", "copyto", src, "h:rcl/single.bin")
	if out := run(t, env, rclone, "ls", "h:rcl"); !strings.Contains(out, "dir/mp.bin") || !strings.Contains(out, "single.bin") {
		t.Fatalf("rclone ls: %s", out)
	}
	for _, k := range []string{"dir/mp.bin", "single.bin"} {
		if got := run(t, env, rclone, "cat", "h:rcl/"+k); got != string(data) {
			t.Fatalf("rclone cat %s: %d bytes differ", k, len(got))
		}
	}
	run(t, env, rclone, "-q", "purge", "h:rcl")

	cfg := filepath.Join(dir, "s3cfg")
	conf := "[default]\naccess_key = " + tc.access + "\nsecret_key = " + tc.secret + "\nhost_base = " + host + "\nhost_bucket = " + host + "\nuse_https = False\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s3 := func(args ...string) string { return run(t, nil, s3cmd, append([]string{"-c", cfg}, args...)...) }
	s3("mb", "s3://s3c")
	s3("put", "-q", "--multipart-chunk-size-mb=5", src, "s3://s3c/x")
	if out := s3("ls", "s3://s3c"); !strings.Contains(out, "s3://s3c/x") {
		t.Fatalf("s3cmd ls: %s", out)
	}
	dst := filepath.Join(dir, "g.bin")
	s3("get", "-q", "s3://s3c/x", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("s3cmd get: bytes differ")
	}
	s3("del", "-q", "s3://s3c/x")
	s3("rb", "s3://s3c")
}
