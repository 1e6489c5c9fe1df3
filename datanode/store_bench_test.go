package datanode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
)

// benchSizes are the chunk sizes of the store benchmarks: a small object's chunk and a large
// one's slice (the coordinator's chunks are up to 8 MiB; 1 MiB keeps a run's disk use small).
var benchSizes = []struct {
	name string
	size int
}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(Options{Dir: filepath.Join(b.TempDir(), "chunks"), MinFreeBytes: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkStorePut measures storing one chunk as the coordinator asks for it (with its
// SHA-256): CRC32C and SHA-256 of the data, the temp file, its fsync, the rename and the
// directory's fsync. A new id each time: a put of an existing chunk takes another path.
func BenchmarkStorePut(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s := openBench(b)
			data := randBytes(bs.size, 1)
			sum := shaHex(data)
			ctx := context.Background()
			r := bytes.NewReader(data)
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.Reset(data)
				if _, err := s.Put(ctx, fmt.Sprintf("bench-%d", i), r, int64(len(data)), sum); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStoreGet measures reading a whole chunk back: the footer, the CRC table and every
// block verified before it is returned (from the page cache: the chunk was just written).
func BenchmarkStoreGet(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s := openBench(b)
			data := randBytes(bs.size, 2)
			ctx := context.Background()
			if _, err := s.Put(ctx, "bench", bytes.NewReader(data), int64(len(data)), ""); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				rc, _, err := s.Get(ctx, "bench", 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil || n != int64(len(data)) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}
