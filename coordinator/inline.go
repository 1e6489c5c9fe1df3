package coordinator

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"

	"github.com/hanode/hanode/internal/sealstream"
	"github.com/hanode/hanode/meta"
)

// Small objects are kept inline in their metadata record (meta/inline.go): a single PUT, POST
// or copy whose whole body is at most Options.InlineMax bytes is read into memory, sealed when
// encryption is asked for, and committed with its record in one etcd transaction: no intent,
// no datanode write, no fsync but etcd's. Reads answer from the record, its checksum verified.
// Multipart parts are never inline: a part's bytes must be somewhere its completion can list.

// MaxInline is the largest inline-max: every listed inline object's data is read with its
// record (a 1,000-key listing page of 64 KiB objects is 64 MiB), and all of it lives in etcd's
// memory-mapped database on every controller (docs/operations.md).
const MaxInline = 64 << 10

// errInlineCorrupt: an inline object's data does not match its checksum (500; logged).
var errInlineCorrupt = errors.New("inline object data damaged")

// inlines reports whether an object of size bytes written whole is kept in its record.
func (c *Coordinator) inlines(size int64) bool { return size <= c.o.InlineMax && c.o.InlineMax > 0 }

// store writes size bytes of body as a new object's data: inline when they fit (no write id:
// the commit needs no intent), else as chunks under a write intent (writeData).
func (c *Coordinator) store(ctx context.Context, bucket, key string, body io.Reader, size int64, replicas int, enc *sealer) (*written, string, error) {
	if c.inlines(size) {
		w, err := c.writeInline(ctx, body, size, enc)
		return w, "", err
	}
	return c.writeData(ctx, bucket, key, body, size, replicas, enc)
}

// writeInline reads exactly size bytes of body (and its end: a signed payload's hash or a
// streaming trailer is checked there) into the inline form of the object's data, sealed with a
// fresh id under enc's key when given. The buffer comes from the write budget while the body
// arrives, so inline writes wait for memory as chunked ones do.
func (c *Coordinator) writeInline(ctx context.Context, body io.Reader, size int64, enc *sealer) (*written, error) {
	var buf []byte
	if size > 0 {
		var err error
		if buf, err = c.bufs.fill(ctx, body, size); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: got fewer than %d bytes", errIncomplete, size)
			}
			return nil, err
		}
		defer c.bufs.put(buf)
	}
	var one [1]byte
	if k, err := body.Read(one[:]); k > 0 || (err != nil && err != io.EOF) {
		if err == nil {
			err = errors.New("request body longer than its content length")
		}
		return nil, err
	}
	sum := md5.Sum(buf)
	id, data := "", buf
	if enc != nil {
		id = meta.NewWriteID()
		sealed, err := enc.seal(id, buf)
		if err != nil {
			return nil, err
		}
		data = sealed
	}
	// The record takes a copy: buf goes back to the pool.
	in := meta.NewInline(id, append([]byte(nil), data...))
	c.metrics.inlineWrites.Inc()
	c.metrics.bytesIn.Add(float64(size))
	return &written{md5: sum[:], size: size, inline: in}, nil
}

// readInline writes bytes [off, off+n) of inline object o's plaintext to w, after checking
// the stored bytes against their checksum; an encrypted one's blocks holding the range are
// opened with key.
func (c *Coordinator) readInline(w io.Writer, ref objectRef, o *meta.Object, key []byte, off, n int64) error {
	in := o.Inline
	if err := in.Verify(); err != nil {
		c.metrics.inlineFailures.Inc()
		c.log.Error("inline object data damaged", "bucket", ref.bucket, "key", ref.key, "version", ref.version, "err", err)
		return fmt.Errorf("%w: %s/%s: %v", errInlineCorrupt, ref.bucket, ref.key, err)
	}
	c.metrics.inlineReads.Inc()
	if n <= 0 {
		return nil
	}
	if o.SSE == nil {
		if off < 0 || off+n > int64(len(in.Data)) {
			return fmt.Errorf("%w: %s/%s: bytes %d-%d of %d stored", errInlineCorrupt, ref.bucket, ref.key, off, off+n, len(in.Data))
		}
		if _, err := w.Write(in.Data[off : off+n]); err != nil {
			return &clientWriteError{err}
		}
		return nil
	}
	if key == nil {
		return errors.New("an encrypted object read without its key") // callers check: a programming error
	}
	aead, err := sealstream.ChunkCipher(key, in.ID)
	if err != nil {
		return err
	}
	span := sealstream.SpanOf(off, n, int64(len(in.Data)))
	if span.Off < 0 || span.Off+span.N > int64(len(in.Data)) {
		return fmt.Errorf("%w: %s/%s: sealed bytes %d-%d of %d stored", errInlineCorrupt, ref.bucket, ref.key, span.Off, span.Off+span.N, len(in.Data))
	}
	op := sealstream.NewOpener(w, aead, span, n)
	if _, err := op.Write(in.Data[span.Off : span.Off+span.N]); err != nil {
		if errors.Is(err, sealstream.ErrAuth) {
			return fmt.Errorf("inline object %s/%s: %w", ref.bucket, ref.key, err)
		}
		return &clientWriteError{err}
	}
	if !op.Done() {
		return fmt.Errorf("inline object %s/%s: %w", ref.bucket, ref.key, io.ErrUnexpectedEOF)
	}
	return nil
}
