package datanode

import (
	"context"
	"fmt"
	"io"
)

// Get returns a reader of bytes [off, off+n) of chunk id (n = -1: to the
// end) and the chunk's Info. The reader verifies the CRC32C of every block it
// touches before returning any byte of it; a mismatch fails Read with
// ErrCorrupt. The reader holds one of the MaxStreams slots until Close, and a disk slot
// (MaxConcurrent) only while it reads a block, so readers that consume slowly never keep
// others from the disk.
func (s *Store) Get(ctx context.Context, id string, off, n int64) (io.ReadCloser, Info, error) {
	rc, info, _, _, err := s.get(ctx, id, func(size int64) (int64, int64, error) {
		if n == -1 {
			n = size - off
		}
		if off < 0 || n < 0 || off > size || n > size-off {
			return 0, 0, fmt.Errorf("datanode: chunk %q: [%d, +%d) of %d bytes: %w", id, off, n, size, ErrBadRange)
		}
		return off, n, nil
	})
	return rc, info, err
}

// get opens id and resolves the byte range once the size is known.
func (s *Store) get(ctx context.Context, id string, rng func(size int64) (off, n int64, err error)) (io.ReadCloser, Info, int64, int64, error) {
	if err := checkID(id); err != nil {
		return nil, Info{}, 0, 0, err
	}
	if err := s.openStream(ctx); err != nil {
		return nil, Info{}, 0, 0, fmt.Errorf("datanode: get chunk %q: %w", id, err)
	}
	if err := s.acquire(ctx); err != nil {
		s.closeStream()
		return nil, Info{}, 0, 0, fmt.Errorf("datanode: get chunk %q: %w", id, err)
	}
	cf, err := s.openChunk(id, true)
	s.release()
	if err != nil {
		s.closeStream()
		return nil, Info{}, 0, 0, err
	}
	info := cf.ft.info(id)
	off, n, err := rng(info.Size)
	if err != nil {
		cf.f.Close()
		s.closeStream()
		return nil, info, 0, 0, err
	}
	return &reader{s: s, ctx: ctx, cf: cf, pos: off, end: off + n, blk: -1}, info, off, n, nil
}

type reader struct {
	s        *Store
	ctx      context.Context
	cf       *chunkFile
	pos, end int64
	buf      *[]byte // one verified block, returned to the pool once consumed
	blk      int64   // index of the block in buf, -1 if none
	data     []byte  // verified bytes of block blk
	err      error   // sticky
	closed   bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.closed {
		return 0, fmt.Errorf("datanode: chunk %q: read after close", r.cf.id)
	}
	if r.pos >= r.end {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if blk := r.pos / BlockSize; blk != r.blk {
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("datanode: chunk %q: %w", r.cf.id, err)
			return 0, r.err
		}
		if r.buf == nil {
			r.buf = r.s.getBuf()
		}
		r.blk = -1
		if err := r.s.acquire(r.ctx); err != nil {
			r.err = fmt.Errorf("datanode: chunk %q: %w", r.cf.id, err)
			return 0, r.err
		}
		b, err := r.s.readBlock(r.cf, blk, *r.buf)
		r.s.release()
		if err != nil {
			r.err = err
			return 0, err
		}
		r.blk, r.data = blk, b
	}
	start := r.pos - r.blk*BlockSize
	stop := min(int64(len(r.data)), r.end-r.blk*BlockSize)
	n := copy(p, r.data[start:stop])
	r.pos += int64(n)
	if r.pos-r.blk*BlockSize == int64(len(r.data)) || r.pos >= r.end {
		// The block is consumed: an idle reader holds no block buffer.
		r.s.putBuf(r.buf)
		r.buf, r.data, r.blk = nil, nil, -1
	}
	return n, nil
}

func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.buf != nil {
		r.s.putBuf(r.buf)
		r.buf, r.data = nil, nil
	}
	r.s.closeStream()
	return r.cf.f.Close()
}
