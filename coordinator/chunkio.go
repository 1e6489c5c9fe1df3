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
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/sealstream"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/placement"
	"github.com/hanode/hanode/s3"
)

// Errors of the data path that the S3 layer maps to codes.
var (
	// errUnavailable: not enough live datanodes on distinct machines (503 ServiceUnavailable).
	errUnavailable = errors.New("not enough datanodes")
	// errIncomplete: the client sent fewer bytes than it announced (400 IncompleteBody).
	errIncomplete = errors.New("request body shorter than its content length")
)

// maxExtraWrites bounds how many replica writes of one chunk may be started beyond the
// replication factor, to replace failed or slow replicas.
const maxExtraWrites = 3

// A replica write still unanswered at putHedgeFactor × the first replica's acknowledgement
// time plus putHedgeSlack (and before its own deadline) is slow: another machine is given a
// copy too, and the first R acknowledgements win.
const (
	putHedgeFactor = 4
	putHedgeSlack  = 250 * time.Millisecond
)

// inflightChunks is how many chunks of one request are stored concurrently: the next chunk
// is read from the client while the previous one goes to its replicas.
const inflightChunks = 2

// written is the result of writing an object's bytes as chunks.
type written struct {
	chunks   []meta.Chunk
	md5      []byte
	size     int64
	checksum s3.Checksum // the request's x-amz-checksum-*, verified (writeBody)
	// inline is the data of an object kept in its record (inline.go); chunks is empty then.
	inline *meta.Inline
}

// writeChunks reads exactly size bytes from body, cuts them into chunks named writeID-n and
// stores every chunk on `replicas` datanodes on distinct machines, fsynced. It returns the
// chunk list and the MD5 of the whole body. On error, chunks may have been stored: the caller
// aborts the write intent and the collector removes them.
//
// With a sealer, each chunk is encrypted before it leaves (sse.go): the MD5 is the plaintext's,
// the chunk's size and SHA-256 the sealed bytes'.
func (c *Coordinator) writeChunks(ctx context.Context, body io.Reader, size int64, replicas int, writeID string, enc *sealer) (*written, error) {
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
		buf, err := c.bufs.fill(ctx, body, want)
		if err != nil {
			<-slots
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: got fewer than %d of %d bytes", errIncomplete, off+want, size)
			}
			fail(err)
			break
		}
		sum.Write(buf)
		if enc != nil {
			sealed, err := enc.seal(meta.ChunkID(writeID, i), buf)
			if err != nil {
				c.bufs.put(buf)
				<-slots
				fail(err)
				break
			}
			buf = sealed
		}
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

// storeChunk writes data to `replicas` datanodes on distinct machines, in parallel; the chunk
// is stored when that many acknowledged (fsynced) a copy with the expected SHA-256. A replica
// that fails, or misses its deadline, is replaced by another machine; one that is merely slow
// (see putHedgeFactor) gets a companion on another machine and the first acknowledgements
// win. A write cancelled that way may still complete on the slow machine: that copy is an
// unreferenced orphan (space leaked, never a wrong read). When fewer than `replicas` machines
// can take the chunk, the write fails with errUnavailable.
func (c *Coordinator) storeChunk(ctx context.Context, id string, data []byte, replicas int) (meta.Chunk, error) {
	sha := sha256.Sum256(data)
	shaHex := hex.EncodeToString(sha[:])
	ch := meta.Chunk{ID: id, Size: int64(len(data)), SHA256: sha}
	type result struct {
		node placement.Node
		took time.Duration
		err  error
	}
	maxWrites := replicas + maxExtraWrites
	results := make(chan result, maxWrites)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Writes still in flight are cancelled, and waited for: data goes back to the pool after.
	defer func() { cancel(); wg.Wait() }()
	var (
		inflight []string // machines being written
		failed   []string // machines that failed this chunk
		writes   int
		lastErr  error
	)
	launch := func(k int) error {
		targets, err := placement.Choose(c.placeable(), k, slices.Concat(ch.Replicas, inflight, failed), ch.Size, nil)
		if err != nil {
			return err
		}
		for _, t := range targets {
			inflight = append(inflight, t.Machine)
			writes++
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				_, err := c.o.Datanodes.PutBuffers(ctx, t.Address, id, [][]byte{data}, shaHex)
				results <- result{t, time.Since(t0), err}
			}()
		}
		return nil
	}
	unavailable := func(err error) error {
		if lastErr != nil {
			return fmt.Errorf("%w: chunk %s has %d of %d replicas: %v; last replica error: %v", errUnavailable, id, len(ch.Replicas), replicas, err, lastErr)
		}
		return fmt.Errorf("%w: %v", errUnavailable, err)
	}
	if err := launch(replicas); err != nil {
		return ch, unavailable(err)
	}
	var slow <-chan time.Time
	var slowOnes []string // in flight when the slow timer fired
	hedged := false
	// Replicas found slow and still unanswered when the chunk is stored lost the race.
	defer func() {
		if len(ch.Replicas) < replicas {
			return
		}
		for _, m := range slowOnes {
			if slices.Contains(inflight, m) {
				c.health.lostRace(m, "write")
			}
		}
	}()
	for len(ch.Replicas) < replicas {
		select {
		case r := <-results:
			m := r.node.Machine
			inflight = slices.DeleteFunc(inflight, func(x string) bool { return x == m })
			if r.err != nil {
				if ctx.Err() != nil {
					return ch, ctx.Err()
				}
				failed = append(failed, m)
				lastErr = r.err
				c.metrics.replicaErrors.WithLabelValues(m, "write").Inc()
				c.health.failed(m, "write", r.err)
				c.log.Warn("chunk replica write failed; placing it elsewhere", "chunk", id, "machine", m, "err", r.err)
			} else {
				ch.Replicas = append(ch.Replicas, m)
				c.health.answered(m)
				if slow == nil && len(ch.Replicas) < replicas {
					wait := min(putHedgeFactor*r.took+putHedgeSlack, c.o.Datanodes.TransferTimeout(ch.Size))
					t := time.NewTimer(wait)
					defer t.Stop()
					slow = t.C
				}
			}
			// Replace what failed; fail once nothing is in flight that could make up R.
			if need := replicas - len(ch.Replicas) - len(inflight); need > 0 {
				err := fmt.Errorf("%d replica writes failed, at most %d may be started", len(failed), maxWrites)
				if writes+need <= maxWrites {
					err = launch(need)
				}
				if err != nil && len(inflight) == 0 {
					return ch, unavailable(err)
				}
			}
		case <-slow:
			// The replicas still in flight are slow: one more machine for each, once.
			if hedged {
				continue
			}
			hedged = true
			slowOnes = slices.Clone(inflight)
			k := min(replicas-len(ch.Replicas), len(inflight), maxWrites-writes)
			if k > 0 && launch(k) == nil {
				c.metrics.slowReplicaWrites.Add(float64(k))
				c.log.Info("chunk replica writes slow; writing more copies elsewhere", "chunk", id, "slow", slowOnes)
			}
		case <-ctx.Done():
			return ch, ctx.Err()
		}
	}
	return ch, nil
}

// placeable is the datanodes a new chunk may go to, suspects marked for placement to avoid.
func (c *Coordinator) placeable() []placement.Node {
	nodes := c.nodes.writable()
	for i := range nodes {
		nodes[i].Suspect = c.health.isSuspect(nodes[i].Machine)
	}
	return nodes
}

// objectRef names the object a read serves, so that a failed replica is recorded only while
// the object still references it.
type objectRef struct{ bucket, key, version string }

// copySourceRef is the object a copy request reads.
func copySourceRef(rq *request) objectRef {
	b, k, v, _ := s3.ParseCopySource(rq.r.Header.Get("X-Amz-Copy-Source"))
	return objectRef{b, k, v}
}

// readRange writes bytes [off, off+n) of object o (named ref) to w, chunk by chunk. Each chunk
// is read from a live replica; a replica slow to deliver its first bytes gets a competitor
// (see readChunk), and when a replica fails or goes silent mid-stream the read resumes at the
// same byte on another, so the client sees one uninterrupted, verified stream. Only when every
// replica of a chunk fails does the read fail.
func (c *Coordinator) readRange(ctx context.Context, w io.Writer, ref objectRef, o *meta.Object, off, n int64) error {
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
		if err := c.readChunk(ctx, w, ref, ch, cOff, cN); err != nil {
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

// readChunk writes bytes [off, off+n) of chunk ch to w. Each stream comes from openReplica's
// race; a stream that fails (an error, or silence beyond its datanode's stall limit) after k
// bytes resumes at off+k on a replica that has not failed. Bytes reach w only from a datanode's
// verified stream, so w gets the exact bytes or an error, never a short success.
func (c *Coordinator) readChunk(ctx context.Context, w io.Writer, ref objectRef, ch meta.Chunk, off, n int64) error {
	var (
		errs   []error
		failed []string
	)
	for n > 0 {
		s, ferrs := c.openReplica(ctx, ref, ch, off, n, failed)
		errs = append(errs, ferrs...)
		for _, e := range ferrs {
			var re *replicaError
			if errors.As(e, &re) {
				failed = append(failed, re.machine)
			}
		}
		if s == nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			c.metrics.readFailures.Inc()
			return fmt.Errorf("chunk %s: every replica failed: %w", ch.ID, errors.Join(errs...))
		}
		tw := &trackingWriter{w: w}
		_, werr := tw.Write(s.first)
		var k int64
		var err error
		if werr == nil {
			k, err = io.CopyBuffer(tw, fillReader{io.LimitReader(s.rc, n-int64(len(s.first))), fillRead}, *s.buf)
			k += int64(len(s.first))
		}
		s.close(c)
		if tw.err != nil {
			if errors.Is(tw.err, sealstream.ErrAuth) { // the writer opens sealed blocks (sse.go)
				return fmt.Errorf("chunk %s from %s: %w", ch.ID, s.machine, tw.err)
			}
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
		// Resume on another replica where this one stopped.
		c.replicaFailed(ctx, ref, ch, s.machine, err)
		errs = append(errs, fmt.Errorf("%s after %d bytes: %w", s.machine, k, err))
		failed = append(failed, s.machine)
		off += k
		n -= k
	}
	return nil
}

// fillRead is how much a chunk read gathers from its replica before passing it on: a
// datanode sends 64 KiB blocks, and a write of that much to the client goes out as one system
// call for its four TLS records (tlscork) where a 16 KiB write per record would take four.
const fillRead = 64 << 10

// fillReader reads at least min bytes per Read (fewer only at the end of the stream or on an
// error, which it returns with the bytes read before it).
type fillReader struct {
	r   io.Reader
	min int
}

func (f fillReader) Read(p []byte) (n int, err error) {
	want := min(f.min, len(p))
	for n < want && err == nil {
		var k int
		k, err = f.r.Read(p[n:])
		n += k
	}
	return n, err
}

// replicaError is a replica that failed to open, named.
type replicaError struct {
	machine string
	err     error
}

func (e *replicaError) Error() string { return e.machine + ": " + e.err.Error() }
func (e *replicaError) Unwrap() error { return e.err }

// replicaStream is an open read of one replica whose first bytes have arrived.
type replicaStream struct {
	machine string
	rc      io.ReadCloser
	buf     *[]byte // from copyBufs
	first   []byte  // the first bytes, in buf
	cancel  context.CancelFunc
	err     error
}

func (s *replicaStream) close(c *Coordinator) {
	if s.rc != nil {
		s.rc.Close()
	}
	s.cancel()
	if s.buf != nil {
		c.copyBufs.Put(s.buf)
	}
}

// openReplica opens a stream of bytes [off, off+n) of ch from its replicas not in failed:
// this machine's first, then a per-chunk rotation, suspect datanodes last. When the replica
// being read has not delivered its first bytes within its datanode's hedging delay (the recent
// p95), the next one is started too, and the first to deliver wins; the others are cancelled.
// A replica that fails is recorded and the next one started at once. It returns nil when none
// delivered, with the failures (*replicaError).
func (c *Coordinator) openReplica(ctx context.Context, ref objectRef, ch meta.Chunk, off, n int64, failed []string) (*replicaStream, []error) {
	var errs []error
	var cands []string
	for _, m := range c.readOrder(ch) {
		if slices.Contains(failed, m) {
			continue
		}
		if _, live := c.nodes.addr(m); !live {
			errs = append(errs, &replicaError{m, errors.New("datanode not live")})
			continue
		}
		cands = append(cands, m)
	}
	if len(cands) == 0 {
		return nil, errs
	}
	results := make(chan *replicaStream, len(cands))
	type attempt struct {
		cancel  context.CancelFunc
		started time.Time
		delay   time.Duration
		done    bool
	}
	attempts := make(map[string]*attempt, len(cands))
	next, pending := 0, 0
	start := func() time.Duration {
		m := cands[next]
		next++
		pending++
		actx, cancel := context.WithCancel(ctx)
		a := &attempt{cancel: cancel, started: time.Now(), delay: c.health.hedgeDelay(m)}
		attempts[m] = a
		go func() { results <- c.tryReplica(actx, ch, m, off, n, cancel) }()
		return a.delay
	}
	// abandon cancels the attempts still running and releases them when they return. One
	// overtaken after waiting past its hedging delay lost a race.
	abandon := func(winner string) {
		for m, a := range attempts {
			if m == winner || a.done {
				continue
			}
			a.cancel()
			if winner != "" && time.Since(a.started) >= a.delay {
				c.health.lostRace(m, "read")
			}
		}
		if pending > 0 {
			go func(k int) {
				for range k {
					(<-results).close(c)
				}
			}(pending)
		}
	}
	hedge := time.NewTimer(start())
	defer hedge.Stop()
	for {
		select {
		case s := <-results:
			pending--
			attempts[s.machine].done = true
			if s.err == nil {
				abandon(s.machine)
				return s, errs
			}
			s.close(c)
			if ctx.Err() == nil {
				c.replicaFailed(ctx, ref, ch, s.machine, s.err)
				errs = append(errs, &replicaError{s.machine, s.err})
			}
			if next < len(cands) {
				hedge.Reset(start())
			} else if pending == 0 {
				return nil, errs
			}
		case <-hedge.C:
			if next < len(cands) {
				c.metrics.hedgedReads.Inc()
				hedge.Reset(start())
			}
		case <-ctx.Done():
			abandon("")
			return nil, append(errs, ctx.Err())
		}
	}
}

// tryReplica opens machine's replica and waits for its first bytes.
func (c *Coordinator) tryReplica(ctx context.Context, ch meta.Chunk, machine string, off, n int64, cancel context.CancelFunc) *replicaStream {
	s := &replicaStream{machine: machine, cancel: cancel}
	addr, live := c.nodes.addr(machine)
	if !live {
		s.err = errors.New("datanode not live")
		return s
	}
	t0 := time.Now()
	s.rc, s.err = c.o.Datanodes.Read(ctx, addr, ch.ID, off, n, datanode.ReadOptions{Idle: c.health.stallLimit(machine)})
	if s.err != nil {
		return s
	}
	s.buf = c.copyBufs.Get().(*[]byte)
	k, err := io.ReadAtLeast(s.rc, (*s.buf)[:min(int64(len(*s.buf)), n)], 1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		s.err = err
		return s
	}
	s.first = (*s.buf)[:k]
	c.health.firstByte(machine, time.Since(t0))
	return s
}

// readOrder is replicaOrder with suspect datanodes moved to the end.
func (c *Coordinator) readOrder(ch meta.Chunk) []string {
	out := c.replicaOrder(ch)
	slices.SortStableFunc(out, func(a, b string) int {
		sa, sb := c.health.isSuspect(a), c.health.isSuspect(b)
		switch {
		case sa == sb:
			return 0
		case sb:
			return -1
		}
		return 1
	})
	return out
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

// replicaFailed counts a failed replica read, takes note of a datanode that missed a deadline
// (suspect), and, when the replica is damaged rather than unreachable (corrupt, missing, a
// datanode error, or a stream cut while its datanode is still registered), records it under
// /hanode/s3/bad/ (the active master repairs them) — but only while the object still references the chunk there: a read that
// outlived an overwrite and the collection of the old chunks finds them gone, as it should.
func (c *Coordinator) replicaFailed(ctx context.Context, ref objectRef, ch meta.Chunk, machine string, err error) {
	c.metrics.replicaErrors.WithLabelValues(machine, "read").Inc()
	c.health.failed(machine, "read", err)
	reason := ""
	switch {
	case errors.Is(err, datanode.ErrDeadline):
	case errors.Is(err, datanode.ErrNotFound):
		reason = "missing"
	case errors.Is(err, datanode.ErrCorrupt):
		reason = "corrupt"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, datanode.ErrServer):
		reason = "read failed: " + err.Error()
	}
	c.log.Warn("chunk replica read failed; trying another replica", "chunk", ch.ID, "machine", machine, "err", err)
	if reason == "" {
		return
	}
	if _, live := c.nodes.addr(machine); !live {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	o, gerr := c.meta.GetObjectVersion(ctx, ref.bucket, ref.key, ref.version)
	switch {
	case errors.Is(gerr, meta.ErrNoSuchKey), errors.Is(gerr, meta.ErrNoSuchBucket), errors.Is(gerr, meta.ErrNoSuchVersion):
		return
	case gerr != nil:
		c.log.Warn("cannot check whether a failed replica is still referenced; not recording it", "chunk", ch.ID, "machine", machine, "err", gerr)
		return
	}
	if !slices.ContainsFunc(o.Chunks, func(x meta.Chunk) bool { return x.ID == ch.ID && slices.Contains(x.Replicas, machine) }) {
		c.log.Info("failed replica no longer referenced by the object (overwritten or deleted meanwhile); not recording it", "chunk", ch.ID, "machine", machine)
		return
	}
	if err := c.meta.MarkBad(ctx, ch.ID, machine, reason); err != nil {
		c.log.Warn("recording a damaged replica", "chunk", ch.ID, "machine", machine, "err", err)
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte(s))
}

// headSize is how much of a chunk must arrive before the chunk's buffer is reserved, and
// headBuffers bounds the requests waiting for that much: a client that stops sending holds one
// head buffer until the body's progress rule cuts it, never a chunk's share of the budget.
const (
	headSize    = 64 << 10
	headBuffers = 256
)

// bufferPool hands out chunk buffers under a memory budget: a coordinator never holds more
// than Options.Memory bytes of write buffers, whatever the number of concurrent uploads;
// beyond it writers wait (backpressure through TCP flow control to the clients). Waiting for
// the budget needs a chunk's first headSize bytes in hand, so the wait is for clients that send.
type bufferPool struct {
	sem   *semaphore.Weighted
	size  int64
	large sync.Pool // *[]byte of size bytes
	heads chan struct{}
	head  sync.Pool // *[]byte of headSize bytes
}

func newBufferPool(memory, chunkSize int64) *bufferPool {
	// Every buffer can hold its chunk sealed (sse.go encrypts in place): 0.024 % more.
	size := sealstream.SealedSize(chunkSize)
	p := &bufferPool{sem: semaphore.NewWeighted(max(memory, size)), size: size, heads: make(chan struct{}, headBuffers)}
	p.head.New = func() any { b := make([]byte, headSize); return &b }
	return p
}

// fill reads the next n bytes of body into a buffer of the budget (put it back with put):
// first up to headSize bytes into a head buffer, then, with those in hand, the rest into a
// buffer reserved for all n.
func (p *bufferPool) fill(ctx context.Context, body io.Reader, n int64) ([]byte, error) {
	select {
	case p.heads <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	hb := p.head.Get().(*[]byte)
	release := func() { p.head.Put(hb); <-p.heads }
	k, err := io.ReadFull(body, (*hb)[:min(n, headSize)])
	if err != nil {
		release()
		return nil, err
	}
	buf, err := p.get(ctx, n)
	if err != nil {
		release()
		return nil, err
	}
	copy(buf, (*hb)[:k])
	release()
	if _, err := io.ReadFull(body, buf[k:]); err != nil {
		p.put(buf)
		return nil, err
	}
	return buf, nil
}

func (p *bufferPool) get(ctx context.Context, n int64) ([]byte, error) {
	c := sealstream.SealedSize(n)
	if err := p.sem.Acquire(ctx, c); err != nil {
		return nil, err
	}
	if c == p.size {
		if b, ok := p.large.Get().(*[]byte); ok {
			return (*b)[:n], nil
		}
	}
	return make([]byte, n, c), nil
}

func (p *bufferPool) put(b []byte) {
	p.sem.Release(int64(cap(b)))
	if int64(cap(b)) == p.size {
		b = b[:p.size]
		p.large.Put(&b)
	}
}
