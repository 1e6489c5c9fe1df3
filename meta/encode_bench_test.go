package meta

import (
	"fmt"
	"testing"
)

// benchObjects are object records of the sizes a coordinator reads and writes most: a small
// object (one chunk) and a 1 GiB one (128 chunks of 8 MiB), each chunk on two machines.
var benchObjects = []int{1, 128}

// BenchmarkEncodeObject measures encoding an object record, done once per PUT (and per overwrite
// retry). Bytes are the record's encoded size.
func BenchmarkEncodeObject(b *testing.B) {
	for _, n := range benchObjects {
		b.Run(fmt.Sprintf("chunks=%d", n), func(b *testing.B) {
			o := sampleObject(n)
			b.SetBytes(int64(len(EncodeObject(o))))
			b.ReportAllocs()
			for b.Loop() {
				EncodeObject(o)
			}
		})
	}
}

// BenchmarkDecodeObject measures decoding an object record, done for every GET, HEAD and every
// object of a listing page.
func BenchmarkDecodeObject(b *testing.B) {
	for _, n := range benchObjects {
		b.Run(fmt.Sprintf("chunks=%d", n), func(b *testing.B) {
			rec := EncodeObject(sampleObject(n))
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeObject(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
