package coordinator

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/placement"
)

// Errors of the data path that the S3 layer maps to codes.
var (
	// errUnavailable: not enough live datanodes on distinct machines (503 ServiceUnavailable).
	errUnavailable = errors.New("not enough datanodes")
	// errIncomplete: the client sent fewer bytes than it announced (400 IncompleteBody).
	errIncomplete = errors.New("request body shorter than its content length")
)

// maxPlacementRounds bounds how often one chunk is re-placed after replica failures.
const maxPlacementRounds = 3

// inflightChunks is how many chunks of one request are stored concurrently: the next chunk
// is read from the client while the previous one goes to its replicas.
const inflightChunks = 2

// written is the result of writing an object's bytes as chunks.
type written struct {
	chunks []meta.Chunk
	md5    []byte
	size   int64
}

// writeChunks reads exactly size bytes from body, cuts them into chunks named writeID-n and
// stores every chunk on `replicas` datanodes on distinct machines, fsynced. It returns the
// chunk list and the MD5 of the whole body. On error, chunks may have been stored: the caller
// aborts the write intent and the collector removes them.
func (c *Coordinator) writeChunks(ctx context.Context, body io.Reader, size int64, replicas int, writeID string) (*written, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sum := md5.New()
	n := int((size + c.o.ChunkSize - 1) / c.o.ChunkSize)
	res := &written{chunks: make([]meta.Chunk, n), size: size}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	slots := make(chan struct{}, inflightChunks)
	for i := 0; i < n; i++ {
		off := int64(i) * c.o.ChunkSize
		want := min(c.o.ChunkSize, size-off)
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		buf, err := c.bufs.get(ctx, want)
		if err != nil {
			<-slots
			fail(err)
			break
		}
		if _, err := io.ReadFull(body, buf); err != nil {
			c.bufs.put(buf)
			<-slots
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: got %d of %d bytes", errIncomplete, off, size)
			}
			fail(err)
			break
		}
		sum.Write(buf)
		wg.Add(1)
		go func(i int, buf []byte) {
			defer wg.Done()
			defer func() { c.bufs.put(buf); <-slots }()
			ch, err := c.storeChunk(ctx, meta.ChunkID(writeID, i), buf, replicas)
			if err != nil {
				fail(err)
				return
			}
			res.chunks[i] = ch
		}(i, buf)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Read to EOF: a signed payload's hash (or a streaming trailer) is checked there, and a
	// mismatch must fail the write before anything becomes visible.
	var one [1]byte
	if k, err := body.Read(one[:]); k > 0 || (err != nil && err != io.EOF) {
		if err == nil {
			err = errors.New("request body longer than its content length")
		}
		return nil, err
	}
	res.md5 = sum.Sum(nil)
	return res, nil
}

// storeChunk writes data to `replicas` datanodes on distinct machines, in parallel. A datanode
// that fails is excluded and the missing replicas are placed elsewhere; the chunk is stored
// only when every replica acknowledged (fsynced) a copy with the expected SHA-256.
func (c *Coordinator) storeChunk(ctx context.Context, id string, data []byte, replicas int) (meta.Chunk, error) {
	sha := sha256.Sum256(data)
	shaHex := hex.EncodeToString(sha[:])
	ch := meta.Chunk{ID: id, Size: int64(len(data)), SHA256: sha}
	var exclude []string
	var lastErr error
	for round := 0; round < maxPlacementRounds && len(ch.Replicas) < replicas; round++ {
		targets, err := placement.Choose(c.nodes.writable(), replicas-len(ch.Replicas), append(slices.Clone(ch.Replicas), exclude...), int64(len(data)), nil)
		if err != nil {
			if lastErr != nil {
				return ch, fmt.Errorf("%w: %v; last replica error: %v", errUnavailable, err, lastErr)
			}
			return ch, fmt.Errorf("%w: %v", errUnavailable, err)
		}
		errs := make([]error, len(targets))
		var wg sync.WaitGroup
		for i, t := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.o.Datanodes.Put(ctx, t.Address, id, bytes.NewReader(data), int64(len(data)), shaHex)
			}()
		}
		wg.Wait()
		for i, t := range targets {
			if errs[i] != nil {
				exclude = append(exclude, t.Machine)
				lastErr = errs[i]
				c.metrics.replicaErrors.WithLabelValues(t.Machine, "write").Inc()
				c.log.Warn("chunk replica write failed; placing it elsewhere", "chunk", id, "machine", t.Machine, "err", errs[i])
				continue
			}
			ch.Replicas = append(ch.Replicas, t.Machine)
		}
		if ctx.Err() != nil {
			return ch, ctx.Err()
		}
	}
	if len(ch.Replicas) < replicas {
		return ch, fmt.Errorf("%w: chunk %s reached %d of %d replicas: %v", errUnavailable, id, len(ch.Replicas), replicas, lastErr)
	}
	return ch, nil
}

// readRange writes bytes [off, off+n) of object o to w, chunk by chunk. Each chunk is read
// from a live replica; when a replica fails (unreachable, missing chunk, checksum error,
// stream cut) the read resumes at the same byte on the next replica, so the client sees one
// uninterrupted, verified stream. Only when every replica of a chunk fails does the read fail.
func (c *Coordinator) readRange(ctx context.Context, w io.Writer, o *meta.Object, off, n int64) error {
	var pos int64
	for _, ch := range o.Chunks {
		if n <= 0 {
			break
		}
		if off >= pos+ch.Size {
			pos += ch.Size
			continue
		}
		cOff := off - pos
		cN := min(ch.Size-cOff, n)
		if err := c.readChunk(ctx, w, ch, cOff, cN); err != nil {
			return err
		}
		off += cN
		n -= cN
		pos += ch.Size
	}
	return nil
}

// clientWriteError marks a failure writing to the S3 client (not a replica's fault).
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "write to client: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }

type trackingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	k, err := t.w.Write(p)
	t.n += int64(k)
	if err != nil {
		t.err = err
	}
	return k, err
}

func (c *Coordinator) readChunk(ctx context.Context, w io.Writer, ch meta.Chunk, off, n int64) error {
	order := c.replicaOrder(ch)
	var errs []error
	for _, m := range order {
		addr, live := c.nodes.addr(m)
		if !live {
			errs = append(errs, fmt.Errorf("%s: datanode not live", m))
			continue
		}
		rc, err := c.o.Datanodes.Get(ctx, addr, ch.ID, off, n)
		if err != nil {
			c.replicaFailed(ctx, ch, m, err)
			errs = append(errs, err)
			continue
		}
		tw := &trackingWriter{w: w}
		buf := c.copyBufs.Get().(*[]byte)
		k, err := io.CopyBuffer(tw, io.LimitReader(rc, n), *buf)
		c.copyBufs.Put(buf)
		rc.Close()
		if tw.err != nil {
			return &clientWriteError{tw.err}
		}
		if err == nil && k < n {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Resume on the next replica where this one stopped.
		c.replicaFailed(ctx, ch, m, err)
		errs = append(errs, err)
		off += k
		n -= k
	}
	c.metrics.readFailures.Inc()
	return fmt.Errorf("chunk %s: every replica failed: %w", ch.ID, errors.Join(errs...))
}

// replicaOrder puts a replica on this machine first (no network hop), then the others in a
// per-chunk rotation so reads spread over all replicas.
func (c *Coordinator) replicaOrder(ch meta.Chunk) []string {
	out := slices.Clone(ch.Replicas)
	if len(out) > 1 {
		r := int(ch.SHA256[0]) % len(out)
		out = append(out[r:], out[:r]...)
	}
	if i := slices.Index(out, c.o.Name); i > 0 {
		out[0], out[i] = out[i], out[0]
	}
	return out
}

// replicaFailed counts a failed replica read and, when the replica is damaged rather than
// unreachable (corrupt, missing, a datanode error, or a stream cut while its datanode is still
// registered), records it for the repair loop.
func (c *Coordinator) replicaFailed(ctx context.Context, ch meta.Chunk, machine string, err error) {
	c.metrics.replicaErrors.WithLabelValues(machine, "read").Inc()
	reason := ""
	switch {
	case errors.Is(err, datanode.ErrNotFound):
		reason = "missing"
	case errors.Is(err, datanode.ErrCorrupt):
		reason = "corrupt"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, datanode.ErrServer):
		reason = "read failed: " + err.Error()
	}
	c.log.Warn("chunk replica read failed; trying the next replica", "chunk", ch.ID, "machine", machine, "err", err)
	if reason == "" {
		return
	}
	if _, live := c.nodes.addr(machine); !live {
		return
	}
	if err := c.meta.MarkBad(context.WithoutCancel(ctx), ch.ID, machine, reason); err != nil {
		c.log.Warn("recording a damaged replica", "chunk", ch.ID, "machine", machine, "err", err)
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte(s))
}

// bufferPool hands out chunk buffers under a memory budget: a coordinator never holds more
// than Options.Memory bytes of write buffers, whatever the number of concurrent uploads;
// beyond it writers wait (backpressure through TCP flow control to the clients).
type bufferPool struct {
	sem   *semaphore.Weighted
	size  int64
	large sync.Pool // *[]byte of size bytes
}

func (p *bufferPool) get(ctx context.Context, n int64) ([]byte, error) {
	if err := p.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	if n == p.size {
		if b, ok := p.large.Get().(*[]byte); ok {
			return (*b)[:n], nil
		}
	}
	return make([]byte, n), nil
}

func (p *bufferPool) put(b []byte) {
	p.sem.Release(int64(len(b)))
	if int64(cap(b)) == p.size {
		b = b[:p.size]
		p.large.Put(&b)
	}
}
