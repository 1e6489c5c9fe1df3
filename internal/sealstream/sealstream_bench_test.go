package sealstream

import (
	"io"
	"testing"
)

// BenchmarkSeal is the coordinator's cost of sealing one 8 MiB chunk (the default chunk size).
func BenchmarkSeal(b *testing.B) {
	k := key(b)
	a, err := ChunkCipher(k, "bench-0")
	if err != nil {
		b.Fatal(err)
	}
	const n = 8 << 20
	buf := make([]byte, n, SealedSize(n))
	b.SetBytes(n)
	for b.Loop() {
		Seal(a, buf, n)
	}
}

// BenchmarkOpen is the cost of opening one 8 MiB chunk as a GET streams it.
func BenchmarkOpen(b *testing.B) {
	k := key(b)
	const n = 8 << 20
	plain := make([]byte, n)
	sealed := sealChunk(b, k, "bench-0", plain)
	a, err := ChunkCipher(k, "bench-0")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	for b.Loop() {
		o := NewOpener(io.Discard, a, SpanOf(0, n, int64(len(sealed))), n)
		for p := sealed; len(p) > 0; p = p[min(len(p), 256<<10):] {
			if _, err := o.Write(p[:min(len(p), 256<<10)]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
