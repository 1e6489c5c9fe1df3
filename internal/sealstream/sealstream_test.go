package sealstream

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func key(t testing.TB) []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// sealChunk seals plain as chunk id under k.
func sealChunk(t testing.TB, k []byte, id string, plain []byte) []byte {
	t.Helper()
	a, err := ChunkCipher(k, id)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(plain), SealedSize(int64(len(plain))))
	copy(buf, plain)
	return Seal(a, buf, len(plain))
}

// openRange reads plaintext [off, off+n) from sealed the way the coordinator does: the span's
// sealed bytes, written to an Opener in pieces of step bytes.
func openRange(t testing.TB, k []byte, id string, sealed []byte, off, n int64, step int) ([]byte, error) {
	t.Helper()
	a, err := ChunkCipher(k, id)
	if err != nil {
		t.Fatal(err)
	}
	s := SpanOf(off, n, int64(len(sealed)))
	var out bytes.Buffer
	o := NewOpener(&out, a, s, n)
	src := sealed[s.Off : s.Off+s.N]
	for len(src) > 0 {
		k := min(step, len(src))
		if _, err := o.Write(src[:k]); err != nil {
			return nil, err
		}
		src = src[k:]
	}
	if !o.Done() {
		t.Fatalf("span [%d,+%d) of %d: opener not done", s.Off, s.N, len(sealed))
	}
	return out.Bytes(), nil
}

func TestSizes(t *testing.T) {
	for _, n := range []int64{0, 1, BlockSize - 1, BlockSize, BlockSize + 1, 3*BlockSize + 17, 8 << 20} {
		s := SealedSize(n)
		back, err := PlainSize(s)
		if err != nil || back != n {
			t.Errorf("PlainSize(SealedSize(%d)=%d) = %d, %v", n, s, back, err)
		}
	}
	for _, bad := range []int64{-1, 1, Overhead, SealedBlock + Overhead} {
		if _, err := PlainSize(bad); err == nil {
			t.Errorf("PlainSize(%d) accepted a size no plaintext seals to", bad)
		}
	}
}

func TestRoundTripRanges(t *testing.T) {
	k := key(t)
	size := 3*BlockSize + 1234
	plain := make([]byte, size)
	rand.Read(plain)
	sealed := sealChunk(t, k, "w-0", plain)
	if int64(len(sealed)) != SealedSize(int64(size)) {
		t.Fatalf("sealed %d bytes, want %d", len(sealed), SealedSize(int64(size)))
	}
	if bytes.Contains(sealed, plain[:64]) {
		t.Fatal("sealed bytes contain the plaintext")
	}
	cases := []struct{ off, n int64 }{
		{0, int64(size)},
		{0, 1},
		{BlockSize - 1, 2},                // across the first boundary
		{BlockSize, BlockSize},            // exactly one block
		{BlockSize - 5, 2*BlockSize + 10}, // three blocks, partial at both ends
		{int64(size) - 1, 1},              // the last byte
		{3 * BlockSize, 1234},             // the short last block
		{2*BlockSize + 100, int64(size) - 2*BlockSize - 100},
	}
	for _, c := range cases {
		for _, step := range []int{1, 4096, SealedBlock + 3, 1 << 20} {
			got, err := openRange(t, k, "w-0", sealed, c.off, c.n, step)
			if err != nil {
				t.Fatalf("range %d+%d step %d: %v", c.off, c.n, step, err)
			}
			if !bytes.Equal(got, plain[c.off:c.off+c.n]) {
				t.Fatalf("range %d+%d step %d: wrong bytes", c.off, c.n, step)
			}
		}
	}
}

func TestTamperingFails(t *testing.T) {
	k := key(t)
	plain := bytes.Repeat([]byte("hanode"), BlockSize) // 6 blocks
	sealed := sealChunk(t, k, "w-0", plain)
	n := int64(len(plain))
	flip := func(i int) []byte { b := bytes.Clone(sealed); b[i] ^= 1; return b }
	swapped := bytes.Clone(sealed)
	copy(swapped[:SealedBlock], sealed[SealedBlock:2*SealedBlock])
	copy(swapped[SealedBlock:2*SealedBlock], sealed[:SealedBlock])
	cases := []struct {
		name   string
		key    []byte
		id     string
		sealed []byte
	}{
		{"other key", key(t), "w-0", sealed},
		{"other chunk id", k, "w-1", sealed},
		{"flipped bit", k, "w-0", flip(SealedBlock + 7)},
		{"flipped tag", k, "w-0", flip(len(sealed) - 1)},
		{"swapped blocks", k, "w-0", swapped},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := openRange(t, c.key, c.id, c.sealed, 0, n, 1<<20)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("got %v, want ErrAuth", err)
			}
		})
	}
}

func TestSealIsDeterministic(t *testing.T) {
	k := key(t)
	plain := make([]byte, 2*BlockSize+5)
	rand.Read(plain)
	a, b := sealChunk(t, k, "w-3", plain), sealChunk(t, k, "w-3", plain)
	if !bytes.Equal(a, b) {
		t.Fatal("sealing the same chunk twice gave different bytes: replicas would differ")
	}
	if c := sealChunk(t, k, "w-4", plain); bytes.Equal(a[:32], c[:32]) {
		t.Fatal("two chunk ids sealed to the same bytes: their keys are not distinct")
	}
}

func FuzzRanges(f *testing.F) {
	f.Add(uint32(0), uint32(10), uint32(5), uint16(7))
	f.Add(uint32(BlockSize-1), uint32(3), uint32(BlockSize*2), uint16(1))
	k := make([]byte, KeySize)
	f.Fuzz(func(t *testing.T, off, n, size uint32, step uint16) {
		sz := int64(size % (4*BlockSize + 100))
		if sz == 0 {
			return
		}
		o := int64(off) % sz
		l := 1 + int64(n)%(sz-o)
		plain := make([]byte, sz)
		for i := range plain {
			plain[i] = byte(i * 7)
		}
		sealed := sealChunk(t, k, "f-0", plain)
		got, err := openRange(t, k, "f-0", sealed, o, l, 1+int(step))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain[o:o+l]) {
			t.Fatalf("range %d+%d of %d: wrong bytes", o, l, sz)
		}
	})
}
