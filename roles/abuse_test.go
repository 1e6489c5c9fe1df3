package roles_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/appliance"
	"github.com/hanode/hanode/internal/keyspace"
)

// The finding of issue 16: every refused unauthenticated mutation stored its path (up to
// ~60 KiB) in the audit trail, so ~70 k requests filled etcd's quota. 100 k junk requests —
// admin mutations with long paths, joins with junk tokens, S3 requests signed with unknown
// keys — now leave etcd's database as it was: nothing is stored, refusals are counted.
func TestJunkRequestsLeaveEtcdBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("100k requests")
	}
	a := appliance.Start(t, "127.0.51.1", nil)
	ctx := context.Background()
	etcdURL := a.Config.URL(a.Config.Address, a.Config.EtcdClientPort)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, TLS: a.Bundle.ClientConfig(""), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	dbSize := func() int64 {
		t.Helper()
		// Compacted first, so that only live data counts (an unchanged revision is compacted already).
		if _, err := cli.Compact(ctx, mustRev(t, cli)); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatal(err)
		}
		st, err := cli.Status(ctx, etcdURL)
		if err != nil {
			t.Fatal(err)
		}
		return st.DbSizeInUse
	}
	audits := func() int64 {
		t.Helper()
		resp, err := cli.Get(ctx, keyspace.Audit, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	before, auditsBefore := dbSize(), audits()

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: a.TLS(), MaxIdleConnsPerHost: 16}}
	admin, s3url := a.Endpoints[config.RoleController], a.S3URL
	junk := strings.Repeat("j", 4<<10)
	total, workers := envInt("HANODE_JUNK", 100_000), 8
	var next atomic.Int64
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				var req *http.Request
				kind := ""
				switch i % 3 {
				case 0: // an admin mutation with a long path and no credential
					kind = "admin"
					req, _ = http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/v1/tokens/%s%d", admin, junk, i), nil)
				case 1: // a join with a junk token
					kind = "join"
					body := fmt.Sprintf(`{"token_id":"%s%d","secret":"x","machine":"evil","roles":["datanode"],"csr":"x"}`, junk, i)
					req, _ = http.NewRequest(http.MethodPost, admin+"/v1/join", strings.NewReader(body))
				default: // S3, signed with an unknown access key
					kind = "s3"
					req, _ = http.NewRequest(http.MethodPut, fmt.Sprintf("%s/bucket/%s%d", s3url, junk[:512], i), nil)
					req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
					req = signer.SignV4(*req, "HN"+rand.Text()[:18], "not-the-secret", "", a.Config.S3Region)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body) // so that the connection is reused
				resp.Body.Close()
				mu.Lock()
				codes[fmt.Sprintf("%s %d", kind, resp.StatusCode)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	after, auditsAfter := dbSize(), audits()
	t.Logf("%d junk requests in %v; answers %v; etcd db in use %d → %d bytes; audit entries %d → %d",
		total, elapsed.Round(time.Millisecond), codes, before, after, auditsBefore, auditsAfter)
	if auditsAfter != auditsBefore {
		t.Errorf("junk requests added %d audit entries", auditsAfter-auditsBefore)
	}
	// Before the fix, 33 k admin refusals alone stored over 130 MiB.
	if after-before > 1<<20 {
		t.Errorf("etcd's database grew by %d bytes", after-before)
	}
	for k, n := range codes {
		if strings.HasSuffix(k, " 200") || strings.HasSuffix(k, " 500") {
			t.Errorf("%d junk requests answered %s", n, k)
		}
	}
	if codes["join 429"] == 0 || codes["s3 503"] == 0 {
		t.Errorf("no join or S3 request was rate-limited: %v", codes)
	}
}

func mustRev(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// envInt reads a count from the environment (HANODE_JUNK=3000 for a quick run).
func envInt(name string, def int64) int64 {
	var n int64
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}
