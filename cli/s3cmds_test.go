package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/appliance"
)

func TestS3Commands(t *testing.T) {
	a := appliance.Start(t, "127.0.87.20", nil)
	t.Setenv("AWS_ACCESS_KEY_ID", a.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", a.SecretKey)
	for _, v := range []string{"HANODE_S3_ENDPOINTS", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE", "HANODE_CONFIG"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	s3 := []string{"--endpoint", a.S3, "--ca-cert", a.CAFile}
	admin := []string{"--data-dir", a.Config.DataDir, "--controllers", a.Endpoints[config.RoleController]}
	ok := func(t *testing.T, args ...string) string {
		t.Helper()
		code, out, errOut := run(t, args...)
		if code != 0 {
			t.Fatalf("hanode %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	ctx := context.Background()

	ok(t, append([]string{"mb", "s3://cli-test"}, s3...)...)

	t.Run("cp round trip", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "big.bin")
		data := make([]byte, 40<<20)
		rand.NewChaCha8([32]byte{40}).Read(data)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := run(t, append([]string{"cp", src, "s3://cli-test/dir/"}, s3...)...)
		if code != 0 || !strings.Contains(errOut, "uploaded 40.0 MiB") {
			t.Fatalf("upload: exit %d: %s", code, errOut)
		}
		st, err := a.Minio(t).StatObject(ctx, "cli-test", "dir/big.bin", minio.StatObjectOptions{})
		if err != nil || st.Size != int64(len(data)) || !strings.HasSuffix(strings.Trim(st.ETag, `"`), "-3") {
			t.Fatalf("uploaded object: %v, size %d, ETag %s (want 3 parts of 16 MiB)", err, st.Size, st.ETag)
		}

		out := t.TempDir()
		code, _, errOut = run(t, append([]string{"cp", "--quiet", "s3://cli-test/dir/big.bin", out}, s3...)...)
		if code != 0 || errOut != "" {
			t.Fatalf("download: exit %d: %q", code, errOut)
		}
		got, err := os.ReadFile(filepath.Join(out, "big.bin"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("downloaded file: %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, data))
		}
		if ents, _ := os.ReadDir(out); len(ents) != 1 {
			t.Fatalf("download left %d files in the directory", len(ents))
		}

		// A single-part object to stdout (its MD5 is checked against the ETag).
		small := filepath.Join(dir, "small.txt")
		os.WriteFile(small, []byte("hello, hanode\n"), 0o644)
		ok(t, append([]string{"cp", "-q", small, "s3://cli-test/small.txt"}, s3...)...)
		if got := ok(t, append([]string{"cp", "-q", "s3://cli-test/small.txt", "-"}, s3...)...); got != "hello, hanode\n" {
			t.Fatalf("cp to stdout: %q", got)
		}

		ls := ok(t, append([]string{"ls", "s3://cli-test"}, s3...)...)
		if !regexp.MustCompile(`PRE +dir/`).MatchString(ls) || !strings.Contains(ls, "small.txt") {
			t.Fatalf("ls:\n%s", ls)
		}
		if ls := ok(t, append([]string{"ls", "-r", "s3://cli-test/dir/"}, s3...)...); !strings.Contains(ls, " 41943040 dir/big.bin") {
			t.Fatalf("ls -r:\n%s", ls)
		}

		code, _, errOut = run(t, append([]string{"cp", "s3://cli-test/nope", out}, s3...)...)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "NoSuchKey") && !strings.Contains(errOut, "does not exist") {
			t.Fatalf("cp of a missing key: exit %d: %q", code, errOut)
		}
	})

	t.Run("bench", func(t *testing.T) {
		args := append([]string{"bench", "--size", "4KiB", "--count", "60", "--concurrency", "4", "--op", "mixed", "--keys", "8", "--bucket", "bench-test"}, s3...)
		out := ok(t, args...)
		t.Logf("hanode bench output:\n%s", out)
		for _, op := range []string{"put", "get"} {
			if !regexp.MustCompile(`(?m)^ *` + op + ` .* 0 *$`).MatchString(out) {
				t.Errorf("bench output lacks a %s line with 0 errors:\n%s", op, out)
			}
		}
		var rep benchReport
		if err := json.Unmarshal([]byte(ok(t, append(args, "--json")...)), &rep); err != nil {
			t.Fatal(err)
		}
		var ops int64
		for _, r := range rep.Results {
			ops += r.Ops
			if r.Errors != 0 || r.P50ms <= 0 || r.P99ms < r.P50ms || r.Maxms < r.P99ms {
				t.Errorf("bench --json result %+v", r)
			}
		}
		if ops != 60 || len(rep.Results) != 2 {
			t.Errorf("bench --json: %d ops in %d results, want 60 in put and get", ops, len(rep.Results))
		}
		// 60 signed TLS requests cost the client some CPU, and never more than all its time
		// on every core.
		if rep.CPUSeconds <= 0 || rep.CPUSeconds > rep.Seconds*float64(runtime.NumCPU()) {
			t.Errorf("bench --json: cpu_seconds %v over %v s", rep.CPUSeconds, rep.Seconds)
		}
	})

	t.Run("locate", func(t *testing.T) {
		out := ok(t, append([]string{"locate", "cli-test/dir/big.bin"}, admin...)...)
		rows := regexp.MustCompile(`(?m)^\d+ +\d+ +\d+ +[0-9a-f]{12} +solo \(live\)$`).FindAllString(out, -1)
		var l adminapi.Locate
		if err := json.Unmarshal([]byte(ok(t, append([]string{"locate", "--json", "s3://cli-test/dir/big.bin"}, admin...)...)), &l); err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, ch := range l.Chunks {
			size += ch.Size
			if len(ch.Replicas) == 0 {
				t.Errorf("chunk %s has no replica", ch.ID)
			}
		}
		if len(l.Chunks) == 0 || len(rows) != len(l.Chunks) || size != 40<<20 {
			t.Fatalf("locate: %d table rows, %d chunks of %d bytes:\n%s", len(rows), len(l.Chunks), size, out)
		}
		// A small object is kept in its record (inline-max, 4 KiB by default): no chunk to list.
		if out := ok(t, append([]string{"locate", "cli-test/small.txt"}, admin...)...); !strings.Contains(out, "inline: 14 bytes in its metadata record") {
			t.Fatalf("locate of a small object:\n%s", out)
		}
		if code, _, errOut := run(t, append([]string{"locate", "cli-test/nope"}, admin...)...); code != 1 || !strings.Contains(errOut, "404") {
			t.Fatalf("locate of a missing object: exit %d: %s", code, errOut)
		}
	})

	t.Run("user add list remove", func(t *testing.T) {
		out := ok(t, append([]string{"user", "add", "--access-key", "cli-user", "--description", "from the test"}, admin...)...)
		m := regexp.MustCompile(`(?m)^access key: (\S+)\nsecret key: (\S+)$`).FindStringSubmatch(out)
		if m == nil || m[1] != "cli-user" {
			t.Fatalf("user add printed %q", out)
		}
		mc, err := minio.New(a.S3, &minio.Options{Creds: credentials.NewStaticV4(m[1], m[2], ""), Secure: true,
			Transport: &http.Transport{TLSClientConfig: a.TLS()}, Region: a.Config.S3Region})
		if err != nil {
			t.Fatal(err)
		}
		if bs, err := mc.ListBuckets(ctx); err != nil || len(bs) != 0 {
			t.Fatalf("the new key's ListBuckets: %v, %+v (want none: it owns nothing and has no grant)", err, bs)
		}
		// Deny by default; user grant opens a bucket, user revoke closes it again.
		read := func() error {
			o, err := mc.GetObject(ctx, "cli-test", "small.txt", minio.GetObjectOptions{})
			if err == nil {
				_, err = o.Stat()
				o.Close()
			}
			return err
		}
		waitFor := func(what string, cond func() bool) {
			t.Helper()
			for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal(what)
				}
			}
		}
		if err := read(); minio.ToErrorResponse(err).Code != "AccessDenied" {
			t.Fatalf("the new key reads root's bucket: %v", err)
		}
		if out := ok(t, append([]string{"user", "grant", "cli-user", "cli-test", "read"}, admin...)...); !strings.Contains(out, "cli-user may read bucket cli-test") {
			t.Fatalf("user grant printed %q", out)
		}
		waitFor("the read grant does not open the bucket", func() bool { return read() == nil })
		if _, err := mc.PutObject(ctx, "cli-test", "x", strings.NewReader("x"), 1, minio.PutObjectOptions{}); minio.ToErrorResponse(err).Code != "AccessDenied" {
			t.Fatalf("a read grant lets the key write: %v", err)
		}
		if list := ok(t, append([]string{"user", "grants", "cli-user"}, admin...)...); !regexp.MustCompile(`cli-test +cli-user +read`).MatchString(list) {
			t.Fatalf("user grants:\n%s", list)
		}
		if code, _, errOut := run(t, append([]string{"user", "grant", "cli-user", "no-such-bucket", "read"}, admin...)...); code != 1 || !strings.Contains(errOut, "404") {
			t.Fatalf("grant on a missing bucket: exit %d: %s", code, errOut)
		}
		if code, _, _ := run(t, append([]string{"user", "grant", "cli-user", "cli-test", "admin"}, admin...)...); code != 2 {
			t.Fatalf("grant of an unknown level: exit %d, want 2", code)
		}
		ok(t, append([]string{"user", "revoke", "cli-user", "cli-test"}, admin...)...)
		waitFor("the revoked grant still opens the bucket", func() bool { return minio.ToErrorResponse(read()).Code == "AccessDenied" })
		if audit := ok(t, append([]string{"audit"}, admin...)...); !strings.Contains(audit, "/v1/s3/grants/cli-test/cli-user") {
			t.Fatalf("the grant is not in the audit trail:\n%s", audit)
		}
		if list := ok(t, append([]string{"user", "list"}, admin...)...); !regexp.MustCompile(`cli-user +.*from the test`).MatchString(list) {
			t.Fatalf("user list:\n%s", list)
		}
		ok(t, append([]string{"user", "remove", "cli-user"}, admin...)...)
		deadline := time.Now().Add(5 * time.Second)
		for _, err := mc.ListBuckets(ctx); err == nil; _, err = mc.ListBuckets(ctx) {
			if time.Now().After(deadline) {
				t.Fatal("the removed key still works")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"cp", "a", "b"},
			{"cp", "s3://x/y", "s3://x/z"},
			{"cp", "--part-size", "1MiB", "a", "s3://x/y"},
			{"bench", "--count", "1", "--duration", "1s"},
			{"bench", "--size", "4XB"},
			{"mb", "s3://x/y"},
			{"locate", "nokey"},
		} {
			if code, _, errOut := run(t, append(args, s3...)...); code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") > 0 && !strings.Contains(errOut, "Usage") {
				t.Errorf("hanode %s: exit %d, want 2: %q", strings.Join(args, " "), code, errOut)
			}
		}
	})
}

func TestSizeFlagAndHistogram(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "4KiB": 4096, "1MiB": 1 << 20, "64MiB": 64 << 20, "1MB": 1e6, "2k": 2048, "1.5GiB": 3 << 29} {
		if got, err := parseSizeFlag(in); err != nil || got != want {
			t.Errorf("parseSizeFlag(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "4XB", "-1"} {
		if _, err := parseSizeFlag(bad); err == nil {
			t.Errorf("parseSizeFlag(%q) accepted", bad)
		}
	}
	var h latencyHist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Millisecond, 0.9: 900 * time.Millisecond, 0.99: 990 * time.Millisecond} {
		if got := h.quantile(q); got < want || float64(got) > float64(want)*1.07 {
			t.Errorf("quantile(%v) = %v, want %v within 7%%", q, got, want)
		}
	}
	if h.quantile(1) != time.Second || h.max != time.Second {
		t.Errorf("quantile(1) = %v, max %v", h.quantile(1), h.max)
	}
	// Contents are the same whatever the offset and length they are generated at.
	whole := make([]byte, 1000)
	fillBenchPattern(whole, 42, 0)
	part := make([]byte, 77)
	fillBenchPattern(part, 42, 13)
	if !bytes.Equal(part, whole[13:90]) {
		t.Error("pattern differs when generated at an unaligned offset")
	}
}
