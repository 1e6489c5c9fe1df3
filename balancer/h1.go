package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// h1Pool is the proxy's own HTTP/1.1 forwarding path to one upstream: a LIFO pool of kept-alive
// connections, each with its reader and writer buffers, used by the calling goroutine alone.
// net/http's Transport, which it replaces for plain requests, runs a read and a write goroutine
// per connection and hands every request and response between them over channels; that
// machinery, not the system calls, was most of the proxy's CPU per small request
// (docs/benchmarks.md). Requests it does not take (protocol upgrades, Expect: 100-continue,
// request trailers) go through the http.Transport as before (h1Eligible).
type h1Pool struct {
	addr        string      // host:port
	tls         *tls.Config // nil: plain HTTP
	bufs        *bufferPool // request-body copy buffers, the Proxy's
	dialer      *net.Dialer
	maxIdle     int
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   []*h1Conn // most recently used last
	closed bool
}

// h1Conn is one upstream connection. While a request uses it, it belongs to that request only.
type h1Conn struct {
	pool   *h1Pool
	nc     net.Conn        // *tls.Conn for https
	rc     syscall.RawConn // the TCP connection under nc, for alive's peek; nil if it has none
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	peek   func(fd uintptr) bool
	idleOK bool // peek's answer
}

const h1BufSize = 16 << 10 // one TLS record

func newH1Pool(u Upstream, tlsCfg *tls.Config, cfg *Config, bufs *bufferPool) *h1Pool {
	host := u.URL.Host
	if u.URL.Port() == "" {
		port := "80"
		if u.URL.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.URL.Hostname(), port)
	}
	p := &h1Pool{
		addr:        host,
		bufs:        bufs,
		dialer:      &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		maxIdle:     cfg.MaxIdleConnsPerHost,
		idleTimeout: cfg.IdleConnTimeout,
	}
	if u.URL.Scheme == "https" {
		c := &tls.Config{}
		if tlsCfg != nil {
			c = tlsCfg.Clone()
		}
		if c.ServerName == "" {
			c.ServerName = u.URL.Hostname()
		}
		c.NextProtos = []string{"http/1.1"}
		p.tls = c
	}
	return p
}

// h1Eligible reports whether the own forwarding path can carry req; the rest goes through
// net/http's Transport, which implements them (upgrades hijack the connection, 100-continue
// waits for the upstream's interim answer before sending the body).
func h1Eligible(req *http.Request) bool {
	return req.Header.Get("Upgrade") == "" && len(req.Trailer) == 0 &&
		!strings.EqualFold(req.Header.Get("Expect"), "100-continue")
}

// get returns an idle connection that still looks alive, or dials a new one.
func (p *h1Pool) get(ctx context.Context) (*h1Conn, bool, error) {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if now.Sub(c.idleAt) < p.idleTimeout && c.alive() {
			return c, true, nil
		}
		c.nc.Close()
	}
	c, err := p.dial(ctx)
	return c, false, err
}

func (p *h1Pool) dial(ctx context.Context) (*h1Conn, error) {
	raw, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err // a *net.OpError with Op "dial": the retry policy's dial failure
	}
	nc := raw
	if p.tls != nil {
		tc := tls.Client(raw, p.tls)
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			// No request byte was sent: report it as a dial failure, as net/http does.
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: raw.RemoteAddr(), Err: fmt.Errorf("tls handshake: %w", err)}
		}
		nc = tc
	}
	c := &h1Conn{pool: p, nc: nc, br: bufio.NewReaderSize(nc, h1BufSize), bw: bufio.NewWriterSize(nc, h1BufSize)}
	if sc, ok := raw.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.peek = c.peekFD
	return c, nil
}

// alive reports whether an idle connection can take a request: nothing buffered and, on the
// socket, neither data nor EOF (one non-blocking peek). An upstream that closed it while idle
// is noticed here rather than by the request sent on it.
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.rc == nil {
		return true
	}
	c.idleOK = false
	err := c.rc.Read(c.peek)
	return err == nil && c.idleOK
}

// peekFD is alive's non-blocking peek; bound once per connection (c.peek) so that a check
// allocates nothing.
func (c *h1Conn) peekFD(fd uintptr) bool {
	var b [1]byte
	n, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.idleOK = n < 0 && (e == syscall.EAGAIN || e == syscall.EWOULDBLOCK)
	return true // never wait for readability
}

// put returns a connection whose response was read completely to the pool.
func (p *h1Pool) put(c *h1Conn) {
	c.idleAt = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// closeIdle closes the idle connections; with stop, the pool keeps none from now on.
func (p *h1Pool) closeIdle(stop bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if stop {
		p.closed = true
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// expireIdle closes the connections idle for longer than the idle timeout (the health loop
// calls it, so a quiet upstream's sockets do not wait for the next request).
func (p *h1Pool) expireIdle(now time.Time) {
	p.mu.Lock()
	var old []*h1Conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if now.Sub(c.idleAt) >= p.idleTimeout {
			old = append(old, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, c := range old {
		c.nc.Close()
	}
}

// errStaleConn: a pooled connection failed before any answer; the request may be sent again
// on a fresh one when it has no body.
type errStaleConn struct{ err error }

func (e *errStaleConn) Error() string { return e.err.Error() }
func (e *errStaleConn) Unwrap() error { return e.err }

// roundTrip sends req on a pooled or new connection and returns the response; its body hands
// the connection back to the pool once read to the end.
// at, when not nil, learns what the retry policy needs (connection obtained and reused, headers
// written, an interim answer forwarded); req's context trace (the ReverseProxy's) gets the 1xx.
func (p *h1Pool) roundTrip(req *http.Request, at *attempt, fw *fwdRequest) (*http.Response, error) {
	for {
		resp, err := p.roundTripOnce(req, at, fw)
		var stale *errStaleConn
		if errors.As(err, &stale) {
			if req.Body == nil || req.Body == http.NoBody {
				continue // the upstream closed a kept-alive connection: once more, on a fresh one
			}
			return nil, stale.err
		}
		return resp, err
	}
}

func (p *h1Pool) roundTripOnce(req *http.Request, at *attempt, fw *fwdRequest) (*http.Response, error) {
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	c, reused, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	if at != nil {
		at.connAt.Store(time.Now().UnixNano())
		at.reused.Store(reused)
		at.gotConn.Store(true)
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: reused})
	}
	// The client going away ends the exchange: the connection is closed under the blocked
	// read or write. Stopped once the response body is done (h1Body).
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error, stale bool) (*http.Response, error) {
		stop()
		c.nc.Close()
		if stale && reused && ctx.Err() == nil {
			return nil, &errStaleConn{err}
		}
		return nil, err
	}
	if err := c.writeRequest(req, trace, at, fw); err != nil {
		return fail(err, true)
	}
	resp, err := http.ReadResponse(c.br, req)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		// Interim answers (103 Early Hints): the ReverseProxy forwards them through the trace.
		if at != nil {
			at.got1xx.Store(true)
		}
		if fw != nil && fw.on1xx != nil {
			if err := fw.on1xx(resp.StatusCode, resp.Header); err != nil {
				return fail(err, false)
			}
		} else if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err, false)
			}
		}
		resp, err = http.ReadResponse(c.br, req)
	}
	if err != nil {
		return fail(err, c.br.Buffered() == 0)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("proxy: unexpected 101 Switching Protocols to a request without Upgrade"), false)
	}
	// A body per response, never per connection: the ReverseProxy closes it after reading it
	// to the end, when the connection may already carry the next request.
	resp.Body = &h1Body{c: c, rc: resp.Body, stop: stop, reuse: !resp.Close && !req.Close}
	return resp, nil
}

// aLongTimeAgo is a deadline in the past: it unblocks any read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// writeRequest writes the request line, the headers and the body, and flushes. With fw (the
// own forwarding path), req's headers are the client's, filtered and completed here.
func (c *h1Conn) writeRequest(req *http.Request, trace *httptrace.ClientTrace, at *attempt, fw *fwdRequest) error {
	w := c.bw
	uri := req.URL.RequestURI()
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vs := range req.Header {
		if fw != nil {
			if fw.skipOut(k) {
				continue
			}
		} else if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" {
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v) // as net/http does
			}
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if fw != nil {
		fw.writeForwarded(w)
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	chunked := false
	switch {
	case hasBody && req.ContentLength < 0:
		chunked = true
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case req.ContentLength > 0 || (hasBody && req.ContentLength == 0):
		var nb [20]byte
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(nb[:0], req.ContentLength, 10))
		w.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	if _, err := w.WriteString("\r\n"); err != nil {
		return err
	}
	if at != nil {
		at.wroteHeaders.Store(true)
	}
	if trace != nil && trace.WroteHeaders != nil {
		trace.WroteHeaders()
	}
	if hasBody {
		if err := c.writeBody(req, chunked); err != nil {
			return err
		}
	}
	return w.Flush()
}

func (c *h1Conn) writeBody(req *http.Request, chunked bool) error {
	buf := c.pool.bufs.Get()
	defer c.pool.bufs.Put(buf)
	var sent int64
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			if chunked {
				var nb [16]byte
				c.bw.Write(strconv.AppendInt(nb[:0], int64(n), 16))
				c.bw.WriteString("\r\n")
			}
			if _, err := c.bw.Write(buf[:n]); err != nil {
				return err
			}
			if chunked {
				c.bw.WriteString("\r\n")
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if chunked {
		_, err := c.bw.WriteString("0\r\n\r\n")
		return err
	}
	if sent != req.ContentLength {
		return fmt.Errorf("proxy: request body of %d bytes, Content-Length %d", sent, req.ContentLength)
	}
	return nil
}

// h1Body is a response body on a pooled connection: read to its end, it returns the connection
// to the pool; closed earlier, it closes the connection (draining an unread body of unknown
// size could take as long as the download the client gave up).
type h1Body struct {
	c     *h1Conn
	rc    io.ReadCloser
	stop  func() bool
	reuse bool
	done  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(b.reuse)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(reuse bool) {
	b.done = true
	if !b.stop() {
		reuse = false // the context ended: the deadline may be set
	}
	if reuse {
		b.c.pool.put(b.c)
		return
	}
	b.c.nc.Close()
}
