package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
)

// TestLabFrozenDatanode freezes one machine's datanode (SIGSTOP) under a load of 1 MiB GETs and
// PUTs through another machine's coordinator, keeps it frozen past its lease expiry, then
// resumes it: no GET and no PUT fails, each being a single attempt (no client retry) that must
// finish within 15 s, while the freeze lasts 20 s (so an operation stuck on the frozen datanode
// fails). The operation rates before, during and after are logged, never asserted.
func TestLabFrozenDatanode(t *testing.T) {
	l, drv := startLab(t, "127.0.36", 3)
	ca, err := os.ReadFile(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	u, _ := url.Parse(l.Endpoints.S3[0])
	ak, sk := l.S3Credentials()
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Secure: true, MaxRetries: 1,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 32}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := mc.MakeBucket(ctx, "frozen", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	const keys, size = 32, 1 << 20
	sums := make([][32]byte, keys)
	for i := range keys {
		d := labData(size, uint64(1000+i))
		sums[i] = sha256.Sum256(d)
		if _, err := mc.PutObject(ctx, "frozen", fmt.Sprintf("k%d", i), bytes.NewReader(d), size, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put := labData(size, 7)

	var gets, puts, failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	op := func(f func(ctx context.Context) error) error {
		octx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return f(octx)
	}
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(keys)
				err := op(func(ctx context.Context) error {
					o, err := mc.GetObject(ctx, "frozen", fmt.Sprintf("k%d", i), minio.GetObjectOptions{})
					if err != nil {
						return err
					}
					defer o.Close()
					h := sha256.New()
					if _, err := io.Copy(h, o); err != nil {
						return err
					}
					if [32]byte(h.Sum(nil)) != sums[i] {
						return fmt.Errorf("k%d: wrong bytes", i)
					}
					return nil
				})
				if err != nil {
					failures.Add(1)
					t.Errorf("GET k%d: %v", i, err)
					continue
				}
				gets.Add(1)
			}
		})
	}
	for w := range 4 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				err := op(func(ctx context.Context) error {
					_, err := mc.PutObject(ctx, "frozen", fmt.Sprintf("w%d-%d", w, j%16), bytes.NewReader(put), size, minio.PutObjectOptions{})
					return err
				})
				if err != nil {
					failures.Add(1)
					t.Errorf("PUT: %v", err)
					continue
				}
				puts.Add(1)
			}
		})
	}
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt)
	t.Cleanup(func() { _ = l.Signal(drv, "m2/datanode", "CONT") })

	type mark struct {
		at         time.Time
		gets, puts int64
	}
	now := func() mark { return mark{time.Now(), gets.Load(), puts.Load()} }
	rate := func(a, b mark) string {
		s := b.at.Sub(a.at).Seconds()
		return fmt.Sprintf("%.1f GET/s, %.1f PUT/s over %.1fs", float64(b.gets-a.gets)/s, float64(b.puts-a.puts)/s, s)
	}
	waitFor(t, "the load to be under way", time.Minute, func() bool { return gets.Load() > 50 && puts.Load() > 10 })
	m0 := now()
	waitFor(t, "healthy load", time.Minute, func() bool { return time.Since(m0.at) > 5*time.Second })
	m1 := now()
	if err := l.Signal(drv, "m2/datanode", "STOP"); err != nil {
		t.Fatal(err)
	}
	ec, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	waitFor(t, "m2's datanode registration to expire", 15*time.Second, func() bool {
		resp, err := ec.Get(ctx, cluster.NodesPrefix+"m2/datanode", clientv3.WithCountOnly())
		return err == nil && resp.Count == 0
	})
	waitFor(t, "load with m2 frozen", time.Minute, func() bool {
		return time.Since(m1.at) > 20*time.Second && gets.Load() > m1.gets && puts.Load() > m1.puts
	})
	m2 := now()
	if err := l.Signal(drv, "m2/datanode", "CONT"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m2's datanode to register again", 30*time.Second, func() bool {
		resp, err := ec.Get(ctx, cluster.NodesPrefix+"m2/datanode", clientv3.WithCountOnly())
		return err == nil && resp.Count == 1
	})
	waitFor(t, "load after the resume", time.Minute, func() bool { return time.Since(m2.at) > 5*time.Second })
	m3 := now()
	halt()
	t.Logf("healthy: %s; m2/datanode frozen: %s; resumed: %s; %d failures", rate(m0, m1), rate(m1, m2), rate(m2, m3), failures.Load())
	if failures.Load() > 0 {
		t.Fatalf("%d GETs or PUTs failed around a frozen datanode", failures.Load())
	}
}
