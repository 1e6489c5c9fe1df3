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

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
)

// labS3 returns a minio-go client of a lab coordinator with the lab's S3 user.
func labS3(t *testing.T, l *Lab, endpoint string) *minio.Client {
	t.Helper()
	ca, err := os.ReadFile(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	u, _ := url.Parse(endpoint)
	ak, sk := l.S3Credentials()
	if ak == "" {
		t.Fatal("the lab wrote no S3 credentials")
	}
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Secure: true,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 32}})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func labData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// putSummed writes n objects to bucket, key fmt.Sprintf(keyFmt, i), of size+i*step bytes of
// labData(seed+i), and returns each key's SHA-256.
func putSummed(ctx context.Context, t *testing.T, mc *minio.Client, bucket, keyFmt string, n, size, step int, seed uint64) map[string][32]byte {
	t.Helper()
	sums := make(map[string][32]byte, n)
	for i := range n {
		d := labData(size+i*step, seed+uint64(i))
		key := fmt.Sprintf(keyFmt, i)
		sums[key] = sha256.Sum256(d)
		if _, err := mc.PutObject(ctx, bucket, key, bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return sums
}

// readSum reads an object through S3 whole and returns its SHA-256.
func readSum(ctx context.Context, mc *minio.Client, bucket, key string) ([32]byte, error) {
	o, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return [32]byte{}, err
	}
	defer o.Close()
	h := sha256.New()
	if _, err := io.Copy(h, o); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}

// checkSummed fails the test unless every key of sums reads back with its SHA-256.
func checkSummed(ctx context.Context, t *testing.T, mc *minio.Client, bucket string, sums map[string][32]byte, when string) {
	t.Helper()
	for key, want := range sums {
		got, err := readSum(ctx, mc, bucket, key)
		if err != nil || got != want {
			t.Fatalf("%s %s: %v, bytes differ: %v", key, when, err, got != want)
		}
	}
}

// TestLabS3 is the data path on three machines: a standard S3 client uploads (100 MiB
// multipart), lists, downloads and deletes; locate shows every chunk on R = 2 distinct
// machines; kill -9 of a datanode fails no read and no write.
func TestLabS3(t *testing.T) {
	l, drv := startLab(t, "127.0.33", 3)
	mc := labS3(t, l, l.Endpoints.S3[0])
	ctx := context.Background()
	if err := mc.MakeBucket(ctx, "lab", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	big := labData(100<<20, 1)
	info, err := mc.PutObject(ctx, "lab", "big", bytes.NewReader(big), int64(len(big)), minio.PutObjectOptions{PartSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(big)) {
		t.Fatalf("uploaded %d bytes", info.Size)
	}
	want := sha256.Sum256(big)
	readAll := func(mc *minio.Client, key string) ([32]byte, error) {
		o, err := mc.GetObject(ctx, "lab", key, minio.GetObjectOptions{})
		if err != nil {
			return [32]byte{}, err
		}
		defer o.Close()
		h := sha256.New()
		if _, err := io.Copy(h, o); err != nil {
			return [32]byte{}, err
		}
		return [32]byte(h.Sum(nil)), nil
	}
	// Read through another machine's coordinator: any coordinator serves any object.
	if got, err := readAll(labS3(t, l, l.Endpoints.S3[1]), "big"); err != nil || got != want {
		t.Fatalf("download through m2: %v", err)
	}
	n := 0
	for oi := range mc.ListObjects(ctx, "lab", minio.ListObjectsOptions{}) {
		if oi.Err != nil || oi.Key != "big" || oi.Size != int64(len(big)) {
			t.Fatalf("list: %+v", oi)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("listed %d objects", n)
	}

	// locate: every chunk on two distinct machines.
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	var loc adminapi.Locate
	if _, err := ac.Get(ctx, "/v1/locate/lab/big", &loc); err != nil {
		t.Fatal(err)
	}
	if len(loc.Chunks) != 13 { // 6 parts of 16 MiB and one of 4 MiB, in 8 MiB chunks
		t.Fatalf("%d chunks", len(loc.Chunks))
	}
	for _, ch := range loc.Chunks {
		if len(ch.Replicas) != 2 || ch.Replicas[0] == ch.Replicas[1] {
			t.Fatalf("chunk %s on %v: want two distinct machines", ch.ID, ch.Replicas)
		}
	}

	// kill -9 one datanode while readers stream the object and writers keep writing.
	var failures atomic.Int64
	var reads, writes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := readAll(mc, "big")
				if err != nil || got != want {
					failures.Add(1)
					t.Errorf("read %d failed during the datanode kill: %v", i, err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for j := 0; ; j++ {
			select {
			case <-stop:
				return
			default:
			}
			d := labData(3<<20, uint64(100+j))
			if _, err := mc.PutObject(ctx, "lab", fmt.Sprintf("w%d", j), bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err != nil {
				failures.Add(1)
				t.Errorf("write %d failed during the datanode kill: %v", j, err)
				return
			}
			writes.Add(1)
		}
	}()
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt)
	waitFor(t, "the load to be under way", time.Minute, func() bool { return writes.Load() > 0 || failures.Load() > 0 })
	if err := l.Signal(drv, "m2/datanode", "KILL"); err != nil {
		t.Fatal(err)
	}
	r0, w0 := reads.Load(), writes.Load()
	// Keep going past the datanode's lease expiry, when the coordinators stop placing on m2, and
	// until reads and writes have completed since then.
	ec, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	waitFor(t, "m2's datanode registration to expire", 15*time.Second, func() bool {
		resp, err := ec.Get(ctx, cluster.NodesPrefix+"m2/datanode", clientv3.WithCountOnly())
		return err == nil && resp.Count == 0
	})
	r1, w1 := reads.Load(), writes.Load()
	waitFor(t, "reads and writes after m2's datanode is gone", 2*time.Minute, func() bool {
		return failures.Load() > 0 || (reads.Load() > r1 && writes.Load() > w1+1)
	})
	halt()
	t.Logf("after the kill: %d full reads and %d writes (%d and %d once m2's lease expired), %d failures",
		reads.Load()-r0, writes.Load()-w0, reads.Load()-r1, writes.Load()-w1, failures.Load())
	if failures.Load() > 0 {
		t.Fatal("reads or writes failed while the datanode was down")
	}

	// Delete and clean up.
	if err := mc.RemoveObject(ctx, "lab", "big", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.StatObject(ctx, "lab", "big", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("after delete: %v", err)
	}
}
