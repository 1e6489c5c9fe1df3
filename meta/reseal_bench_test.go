package meta

import (
	"context"
	"fmt"
	"testing"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/security/secrets"
)

// BenchmarkReseal is a keyring rotation's cost per SSE-S3 object: each op re-seals the data
// key of every one of 2,000 records (one streamed pass, a compare-and-swap each).
func BenchmarkReseal(b *testing.B) {
	cli := etcdtest.Start(b, "127.0.120.2")
	s := New(cli)
	ring, err := secrets.NewKeyring()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const n = 2000
	for i := range n {
		_, sealed, err := ring.NewDataKey()
		if err != nil {
			b.Fatal(err)
		}
		o := sampleObject(1)
		o.SSE = &SSE{Algorithm: SSES3, SealedKey: sealed}
		if _, err := cli.Put(ctx, ObjectKey("bk", fmt.Sprintf("k%05d", i)), string(EncodeObject(o))); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := ring.Rotate(); err != nil {
			b.Fatal(err)
		}
		k, err := s.Reseal(ctx, ring.ResealDataKey)
		if err != nil || k != n {
			b.Fatalf("re-sealed %d of %d: %v", k, n, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
