// Package sealstream encrypts an object's chunks for storage so that any byte range can be read
// back without decrypting the rest: each chunk is cut into blocks of BlockSize plaintext bytes,
// and each block is sealed on its own with AES-256-GCM.
//
// Keys and nonces. A chunk's key is derived from the object's key with HKDF-SHA256, the chunk's
// id as info. Chunk ids are unique (a random 128-bit write id and the chunk's index), so no two
// chunks share a key, even when a customer uses one SSE-C key for many objects, and a chunk
// moved under another id (or into another object) does not open. Within a chunk the nonce is
// the block's index, so blocks cannot be reordered; the chunk's sealed size is recorded in the
// object's record (and checked by the datanode), so blocks cannot be dropped from the end.
// Sealing is deterministic for (object key, chunk id, plaintext): a chunk re-sent to another
// replica is the same bytes.
//
// Why not AES-CTR with a MAC per block: the same expansion (a tag per block) for two
// primitives instead of one; GCM is what the cluster keyring already uses.
package sealstream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	// BlockSize is the plaintext of one sealed block. 64 KiB keeps the expansion at 0.024 %
	// and a ranged read's extra work (at most two partial blocks) small.
	BlockSize = 64 << 10
	// Overhead is what sealing adds to each block: the GCM tag.
	Overhead = 16
	// SealedBlock is the stored size of a full block.
	SealedBlock = BlockSize + Overhead
	// KeySize is the size of an object key (AES-256).
	KeySize = 32
)

// ErrAuth is returned when a block does not open: a wrong key, or bytes that are not what was
// sealed.
var ErrAuth = errors.New("sealstream: block authentication failed")

// ChunkCipher returns the AEAD that seals chunk chunkID of an object whose key is objectKey.
func ChunkCipher(objectKey []byte, chunkID string) (cipher.AEAD, error) {
	if len(objectKey) != KeySize {
		return nil, fmt.Errorf("sealstream: object key is %d bytes, want %d", len(objectKey), KeySize)
	}
	k, err := hkdf.Key(sha256.New, objectKey, []byte("hanode sealstream v1"), "chunk "+chunkID, KeySize)
	if err != nil {
		return nil, fmt.Errorf("sealstream: derive the key of chunk %s: %w", chunkID, err)
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("sealstream: chunk %s: %w", chunkID, err)
	}
	return cipher.NewGCM(b)
}

func nonce(block int64) []byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[4:], uint64(block))
	return n[:]
}

// SealedSize is the stored size of n plaintext bytes.
func SealedSize(n int64) int64 {
	return n + (n+BlockSize-1)/BlockSize*Overhead
}

// PlainSize is the plaintext size of a chunk stored as s sealed bytes.
func PlainSize(s int64) (int64, error) {
	full, rest := s/SealedBlock, s%SealedBlock
	if s < 0 || rest > 0 && rest <= Overhead {
		return 0, fmt.Errorf("sealstream: %d is not a sealed size", s)
	}
	n := full * BlockSize
	if rest > 0 {
		n += rest - Overhead
	}
	return n, nil
}

// Seal encrypts buf[:n] in place and returns the sealed bytes, buf[:SealedSize(n)]; buf must
// have that capacity. Blocks are sealed last to first, each moved to its place first, so that
// no block overwrites plaintext not yet sealed.
func Seal(aead cipher.AEAD, buf []byte, n int) []byte {
	total := int(SealedSize(int64(n)))
	out := buf[:total]
	for b := (n - 1) / BlockSize; n > 0 && b >= 0; b-- {
		from := b * BlockSize
		l := min(BlockSize, n-from)
		to := b * SealedBlock
		copy(out[to:to+l], out[from:from+l])
		aead.Seal(out[to:to], nonce(int64(b)), out[to:to+l], nil)
	}
	return out
}

// Span is the part of a chunk a plaintext range needs: the sealed bytes [Off, Off+N) to read,
// which start at block First, and how many plaintext bytes of the first block to Skip.
type Span struct {
	Off, N int64
	First  int64
	Skip   int64
}

// SpanOf maps plaintext bytes [off, off+n) of a chunk of sealedSize stored bytes to the whole
// blocks that hold them.
func SpanOf(off, n, sealedSize int64) Span {
	first := off / BlockSize
	last := (off + n - 1) / BlockSize
	end := min((last+1)*SealedBlock, sealedSize)
	return Span{Off: first * SealedBlock, N: end - first*SealedBlock, First: first, Skip: off - first*BlockSize}
}

// Opener is a writer that takes the sealed bytes of a Span, opens each block as it completes
// and writes exactly the plaintext range asked for to W. A block that does not open fails the
// write with ErrAuth; the block's bytes never reach W.
type Opener struct {
	w     io.Writer
	aead  cipher.AEAD
	block int64 // index of the block being filled
	left  int64 // sealed bytes of the span not yet opened (the buffered ones included)
	skip  int64 // plaintext bytes to drop from the front
	want  int64 // plaintext bytes still to write
	buf   []byte
	fill  int
}

// NewOpener returns an Opener writing plaintext bytes [s.Skip, s.Skip+n) of span s to w.
func NewOpener(w io.Writer, aead cipher.AEAD, s Span, n int64) *Opener {
	return &Opener{w: w, aead: aead, block: s.First, left: s.N, skip: s.Skip, want: n, buf: make([]byte, SealedBlock)}
}

// Write buffers sealed bytes and opens every block completed.
func (o *Opener) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		size := int(min(SealedBlock, o.left))
		if size == 0 {
			return done, fmt.Errorf("sealstream: %d bytes beyond the span", len(p))
		}
		k := copy(o.buf[o.fill:size], p)
		o.fill += k
		p = p[k:]
		done += k
		if o.fill < size {
			break
		}
		if err := o.open(size); err != nil {
			return done, err
		}
	}
	return done, nil
}

func (o *Opener) open(size int) error {
	pt, err := o.aead.Open(o.buf[:0], nonce(o.block), o.buf[:size], nil)
	if err != nil {
		return fmt.Errorf("%w (block %d)", ErrAuth, o.block)
	}
	o.block++
	o.left -= int64(size)
	o.fill = 0
	s := min(o.skip, int64(len(pt)))
	pt = pt[s:]
	o.skip -= s
	pt = pt[:min(int64(len(pt)), o.want)]
	o.want -= int64(len(pt))
	if len(pt) == 0 {
		return nil
	}
	_, err = o.w.Write(pt)
	return err
}

// Done reports whether every byte of the span arrived (and so every requested byte was written).
func (o *Opener) Done() bool { return o.left == 0 && o.fill == 0 }
