package coordinator

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hanode/hanode/meta"
)

// benchChunks are the chunk sizes of the data-path benchmarks: 1 MiB and the default 8 MiB.
var benchChunks = []struct {
	name string
	size int
}{{"1MiB", 1 << 20}, {"8MiB", 8 << 20}}

// BenchmarkStoreChunk measures writing one chunk through the coordinator to two of three real
// datanode stores (plain HTTP on loopback, temp dirs on the same disk): the SHA-256, placement,
// both replica PUTs in parallel and their fsyncs. Bytes are the chunk's, not the replicas'.
func BenchmarkStoreChunk(b *testing.B) {
	for _, bc := range benchChunks {
		b.Run(bc.name, func(b *testing.B) {
			tc := newTestCluster(b, clusterOpts{machines: 3, replicas: 2, chunkSize: int64(bc.size), etcdHost: "127.0.88.50"})
			data := benchData(bc.size)
			w := meta.NewWriteID()
			ctx := context.Background()
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := tc.coord.storeChunk(ctx, meta.ChunkID(w, i), data, 2); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadChunk measures reading one whole chunk through the coordinator from its
// replicas: the replica race, the datanode's verified stream and the copy to the client.
func BenchmarkReadChunk(b *testing.B) {
	for _, bc := range benchChunks {
		b.Run(bc.name, func(b *testing.B) {
			tc := newTestCluster(b, clusterOpts{machines: 3, replicas: 2, chunkSize: int64(bc.size), etcdHost: "127.0.88.50"})
			ctx := context.Background()
			ch, err := tc.coord.storeChunk(ctx, meta.ChunkID(meta.NewWriteID(), 0), benchData(bc.size), 2)
			if err != nil {
				b.Fatal(err)
			}
			ref := objectRef{bucket: "bench", key: "object"}
			b.SetBytes(ch.Size)
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.coord.readChunk(ctx, io.Discard, ref, ch, 0, ch.Size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchData(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n >> 20)}).Read(b)
	return b
}
