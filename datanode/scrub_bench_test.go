package datanode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
)

// scrubBenchChunks fills s with n chunks of size bytes and returns their ids.
func scrubBenchChunks(b *testing.B, s *Store, n, size int) []string {
	b.Helper()
	data := randBytes(size, 7)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("scrub%04d-0", i)
		if _, err := s.Put(context.Background(), ids[i], bytes.NewReader(data), int64(size), ""); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// BenchmarkScrubPass measures one scrub pass over 64 chunks of 1 MiB with no rate limit: every
// block's CRC32C and every chunk's SHA-256 checked, as a datanode does in the background (the
// files are likely in the page cache, so this is the CPU cost, the disk's read speed aside).
func BenchmarkScrubPass(b *testing.B) {
	s := openBench(b)
	const n, size = 64, 1 << 20
	scrubBenchChunks(b, s, n, size)
	sc := NewScrubber(s, ScrubOptions{Rate: 1 << 40})
	ctx := context.Background()
	b.SetBytes(n * size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := sc.Pass(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetDuringScrub measures client reads of whole 1 MiB chunks alone and while a scrub
// runs passes back to back at the default scrub-rate (50 MiB/s) on the same store: the cost of
// scrubbing to client throughput.
func BenchmarkGetDuringScrub(b *testing.B) {
	for _, scrubbing := range []bool{false, true} {
		name := "idle"
		if scrubbing {
			name = "scrubbing"
		}
		b.Run(name, func(b *testing.B) {
			s := openBench(b)
			const n, size = 64, 1 << 20
			ids := scrubBenchChunks(b, s, n, size)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				if !scrubbing {
					return
				}
				sc := NewScrubber(s, ScrubOptions{Rate: 50 << 20})
				for ctx.Err() == nil {
					_ = sc.Pass(ctx)
				}
			}()
			b.Cleanup(func() { cancel(); <-done })
			b.SetBytes(size)
			b.ResetTimer()
			i := 0
			for b.Loop() {
				rc, _, err := s.Get(ctx, ids[i%n], 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
				i++
			}
		})
	}
}
