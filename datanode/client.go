package datanode

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hanode/hanode/internal/tlscork"
)

var (
	// ErrServer is a datanode's 500 answer other than a corrupt chunk (an I/O error, say).
	ErrServer = errors.New("datanode internal error")
	// ErrDeadline: a call missed one of its deadlines (response headers, the transfer, or a
	// stream silent for longer than its idle limit). The datanode may be hung.
	ErrDeadline = errors.New("datanode missed a deadline")
)

// Default deadlines of a Client.
const (
	DefaultHeaderTimeout = 5 * time.Second
	DefaultTransferBase  = 5 * time.Second
	DefaultMinRate       = 1 << 20 // bytes per second
	DefaultIdleTimeout   = 5 * time.Second
)

// NewClient returns a client of the datanodes' chunk API that presents tlsCfg's certificate (a
// coordinator's or controller's: the API takes no other). Connecting is bounded here (a stopped
// datanode's kernel still accepts TCP connections, so the TLS handshake is what hangs); each
// call's own deadlines are the Client's.
func NewClient(tlsCfg *tls.Config) *Client {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
		// A chunk's body goes out in 256 KiB writes, each one system call for its 16 TLS
		// records (tlscork).
		DialTLSContext: tlscork.DialTLS(&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 15 * time.Second}, tlsCfg, 2*time.Second),
		// A backstop only: every call has a tighter deadline of its own.
		ResponseHeaderTimeout: time.Minute,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
		ForceAttemptHTTP2:     false, // HTTP/1.1: one TCP stream per transfer, no head-of-line blocking
	}
	return &Client{HTTP: &http.Client{Transport: tr}}
}

// Client calls datanodes' chunk API on behalf of a coordinator or controller. It maps the API's
// statuses back to the store's errors (ErrNotFound, ErrExists, ErrChecksum, ErrNoSpace, ...), so
// callers handle a remote datanode as they would a local Store.
//
// Every call has deadlines (zero fields take the defaults); a missed one fails the call with an
// error wrapping ErrDeadline. Connecting is bounded by the HTTP client's transport.
type Client struct {
	// HTTP carries the caller's cluster certificate (the API accepts coordinators and controllers).
	HTTP *http.Client
	// HeaderTimeout bounds a GET, HEAD, DELETE or usage call from sending the request to the
	// response headers (a GET's headers come with its first verified block).
	HeaderTimeout time.Duration
	// A chunk transfer may take TransferBase plus its size at MinRate bytes per second: a PUT
	// from the request to the answer (the datanode answers after fsync), a GET's body counting
	// only the time spent waiting for the datanode (not the caller's time between reads).
	TransferBase time.Duration
	MinRate      int64
	// IdleTimeout: a GET body that delivers no byte for this long fails (ReadOptions.Idle
	// overrides it per call).
	IdleTimeout time.Duration
}

func (c *Client) headerTimeout() time.Duration {
	return orDefault(c.HeaderTimeout, DefaultHeaderTimeout)
}

// TransferTimeout is how long a transfer of size bytes may take.
func (c *Client) TransferTimeout(size int64) time.Duration {
	rate := c.MinRate
	if rate <= 0 {
		rate = DefaultMinRate
	}
	return orDefault(c.TransferBase, DefaultTransferBase) + time.Duration(float64(max(size, 0))/float64(rate)*float64(time.Second))
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// withDeadline bounds a call: its context ends after d with a cause wrapping ErrDeadline.
func withDeadline(ctx context.Context, d time.Duration, what string) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, fmt.Errorf("%w: %s within %v", ErrDeadline, what, d))
}

// callErr names the missed deadline when the call's own deadline (not the caller's context)
// ended it.
func callErr(ctx, callCtx context.Context, err error) error {
	if ctx.Err() == nil {
		if cause := context.Cause(callCtx); errors.Is(cause, ErrDeadline) {
			return fmt.Errorf("%w (%v)", cause, err)
		}
	}
	return err
}

// Unreachable reports whether err says the datanode did not answer: a missed deadline or a
// failure to connect (as opposed to an answer, even an error answer).
func Unreachable(err error) bool {
	if errors.Is(err, ErrDeadline) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Put streams size bytes of r as chunk id to the datanode at base (https://host:8911); wantSHA256,
// if set, is checked by the datanode before it keeps the chunk. It fails with ErrDeadline when the
// datanode has not acknowledged within TransferTimeout(size).
func (c *Client) Put(ctx context.Context, base, id string, r io.Reader, size int64, wantSHA256 string) (Info, error) {
	return c.put(ctx, base, id, size, wantSHA256, func() io.Reader { return r }, nil)
}

// PutBuffers stores the concatenation of bufs as chunk id, like Put. It never touches bufs after
// it returns, so the caller may reuse them at once (an HTTP transport may otherwise still read a
// request body after the call ended).
func (c *Client) PutBuffers(ctx context.Context, base, id string, bufs [][]byte, wantSHA256 string) (Info, error) {
	var size int64
	for _, b := range bufs {
		size += int64(len(b))
	}
	var (
		mu      sync.Mutex
		readers []*buffersReader
	)
	open := func() io.Reader {
		mu.Lock()
		defer mu.Unlock()
		r := &buffersReader{bufs: bufs}
		readers = append(readers, r)
		return r
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range readers {
			r.detach()
		}
	}()
	return c.put(ctx, base, id, size, wantSHA256, open, open)
}

func (c *Client) put(ctx context.Context, base, id string, size int64, wantSHA256 string, body, again func() io.Reader) (Info, error) {
	d := c.TransferTimeout(size)
	cctx, cancel := withDeadline(ctx, d, fmt.Sprintf("no acknowledgement of %d bytes", size))
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPut, chunkURL(base, id), body())
	if err != nil {
		return Info{}, err
	}
	req.ContentLength = size
	if again != nil {
		// A request on a reused connection that the datanode had closed is retried with a
		// fresh body.
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(again()), nil }
	}
	if size == 0 {
		req.Body, req.GetBody = http.NoBody, nil
	}
	if wantSHA256 != "" {
		req.Header.Set(HeaderSHA256, wantSHA256)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Info{}, fmt.Errorf("put chunk %s to %s: %w", id, base, callErr(ctx, cctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return Info{}, fmt.Errorf("put chunk %s to %s: %w", id, base, statusErr(resp))
	}
	var info Info
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&info); err != nil {
		return Info{}, fmt.Errorf("put chunk %s to %s: decode answer: %w", id, base, callErr(ctx, cctx, err))
	}
	return info, nil
}

// buffersReader reads a list of buffers until detached; after detach it never touches them.
type buffersReader struct {
	mu       sync.Mutex
	bufs     [][]byte
	detached bool
}

func (r *buffersReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.detached {
		return 0, errors.New("datanode: request body read after the call ended")
	}
	n := 0
	for n < len(p) && len(r.bufs) > 0 {
		k := copy(p[n:], r.bufs[0])
		n += k
		if r.bufs[0] = r.bufs[0][k:]; len(r.bufs[0]) == 0 {
			r.bufs = r.bufs[1:]
		}
	}
	if n == 0 && len(r.bufs) == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (r *buffersReader) detach() {
	r.mu.Lock()
	r.detached, r.bufs = true, nil
	r.mu.Unlock()
}

// ReadOptions are a GET's per-call deadlines.
type ReadOptions struct {
	// FirstByte bounds the wait for the response headers, which the datanode sends with the
	// first verified block (0: HeaderTimeout).
	FirstByte time.Duration
	// Idle: a Read of the body that waits longer fails with ErrDeadline (0: IdleTimeout).
	Idle time.Duration
	// Repair marks the read as a repair transfer: the datanode sends it under its repair rate.
	Repair bool
}

// Get reads [off, off+n) of chunk id (n < 0: to the end) with the client's default deadlines.
// The body fails rather than return a byte the datanode could not verify: a corruption found
// mid-stream aborts the response.
func (c *Client) Get(ctx context.Context, base, id string, off, n int64) (io.ReadCloser, error) {
	return c.Read(ctx, base, id, off, n, ReadOptions{})
}

// Read is Get with per-call deadlines. Besides o's, the body's reads together may wait at most
// TransferTimeout(n) for the datanode. Closing the body ends the call.
func (c *Client) Read(ctx context.Context, base, id string, off, n int64, o ReadOptions) (io.ReadCloser, error) {
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	first := orDefault(o.FirstByte, c.headerTimeout())
	cctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, chunkURL(base, id), nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if off > 0 || n > 0 {
		rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
		if n > 0 {
			rng += strconv.FormatInt(off+n-1, 10)
		}
		req.Header.Set("Range", rng)
	}
	if o.Repair {
		req.Header.Set(HeaderRepair, "1")
	}
	headerErr := fmt.Errorf("%w: no response headers within %v", ErrDeadline, first)
	t := time.AfterFunc(first, func() { cancel(headerErr) })
	resp, err := c.HTTP.Do(req)
	if !t.Stop() && err == nil {
		resp.Body.Close()
		err = context.Cause(cctx)
	}
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("get chunk %s from %s: %w", id, base, callErr(ctx, cctx, err))
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		defer cancel(nil)
		defer resp.Body.Close()
		return nil, fmt.Errorf("get chunk %s from %s: %w", id, base, statusErr(resp))
	}
	size := resp.ContentLength
	if n > 0 {
		size = n
	}
	return &stream{body: resp.Body, ctx: ctx, cctx: cctx, cancel: cancel, what: "get chunk " + id + " from " + base,
		idle: orDefault(o.Idle, orDefault(c.IdleTimeout, DefaultIdleTimeout)), budget: c.TransferTimeout(size)}, nil
}

// stream is a GET body under an idle limit per Read and a budget for all Reads together.
type stream struct {
	body      io.ReadCloser
	ctx, cctx context.Context // the caller's, the call's
	cancel    context.CancelCauseFunc
	what      string
	idle      time.Duration
	budget    time.Duration
	err       error
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	cause := fmt.Errorf("%w: no bytes for %v", ErrDeadline, s.idle)
	d := s.idle
	if s.budget < d {
		d = max(s.budget, 0)
		cause = fmt.Errorf("%w: transfer took longer than its deadline", ErrDeadline)
	}
	t := time.AfterFunc(d, func() { s.cancel(cause) })
	t0 := time.Now()
	n, err := s.body.Read(p)
	t.Stop()
	s.budget -= time.Since(t0)
	if err != nil && err != io.EOF {
		s.err = fmt.Errorf("%s: %w", s.what, callErr(s.ctx, s.cctx, err))
		return n, s.err
	}
	return n, err
}

func (s *stream) Close() error {
	err := s.body.Close()
	s.cancel(nil)
	return err
}

// Usage asks the datanode at base for its disk usage; it is also a cheap liveness probe.
func (c *Client) Usage(ctx context.Context, base string) (Usage, error) {
	cctx, cancel := withDeadline(ctx, c.headerTimeout(), "no answer")
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/usage", nil)
	if err != nil {
		return Usage{}, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of %s: %w", base, callErr(ctx, cctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Usage{}, fmt.Errorf("usage of %s: %w", base, statusErr(resp))
	}
	var u Usage
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&u); err != nil {
		return Usage{}, fmt.Errorf("usage of %s: decode answer: %w", base, callErr(ctx, cctx, err))
	}
	return u, nil
}

// Delete removes chunk id from the datanode at base.
func (c *Client) Delete(ctx context.Context, base, id string) error {
	cctx, cancel := withDeadline(ctx, c.headerTimeout(), "no answer")
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodDelete, chunkURL(base, id), nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("delete chunk %s on %s: %w", id, base, callErr(ctx, cctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("delete chunk %s on %s: %w", id, base, statusErr(resp))
	}
	return nil
}

func chunkURL(base, id string) string {
	return strings.TrimSuffix(base, "/") + "/v1/chunks/" + url.PathEscape(id)
}

// statusErr turns an error answer into the store error it stands for, keeping the message.
func statusErr(resp *http.Response) error {
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	var base error
	switch resp.StatusCode {
	case http.StatusNotFound:
		base = ErrNotFound
	case http.StatusConflict:
		base = ErrExists
	case http.StatusInsufficientStorage:
		base = ErrNoSpace
	case http.StatusRequestEntityTooLarge:
		base = ErrTooLarge
	case http.StatusRequestedRangeNotSatisfiable:
		base = ErrBadRange
	case http.StatusInternalServerError:
		base = ErrServer
		if strings.Contains(body.Error, ErrCorrupt.Error()) {
			base = ErrCorrupt
		}
	case http.StatusBadRequest:
		switch {
		case strings.Contains(body.Error, ErrChecksum.Error()):
			base = ErrChecksum
		case strings.Contains(body.Error, ErrBadID.Error()):
			base = ErrBadID
		}
	}
	msg := fmt.Sprintf("%d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), body.Error)
	if base == nil {
		return errors.New(msg)
	}
	return fmt.Errorf("%w (%s)", base, msg)
}

// List returns up to limit chunks with ids after `after`, in id order, and the id to continue
// from (empty on the last page).
func (c *Client) List(ctx context.Context, base, after string, limit int) ([]Info, string, error) {
	q := url.Values{"after": {after}, "limit": {strconv.Itoa(limit)}}
	// A page may stat up to limit chunk files: the header and a transfer's base allowance.
	cctx, cancel := withDeadline(ctx, c.headerTimeout()+c.TransferTimeout(0), "no full answer")
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/chunks?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("list chunks on %s: %w", base, callErr(ctx, cctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("list chunks on %s: %w", base, statusErr(resp))
	}
	var lr ListResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&lr); err != nil {
		return nil, "", fmt.Errorf("list chunks on %s: decode answer: %w", base, callErr(ctx, cctx, err))
	}
	return lr.Chunks, lr.Next, nil
}
