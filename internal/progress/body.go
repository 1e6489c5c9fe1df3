// Package progress holds a request body to a minimum rate, so that a client that stops sending
// (or trickles) releases what the server holds for it: within every Window of time spent waiting
// for the client, at least MinBytes must arrive, or the read fails with ErrTooSlow. Time the
// handler spends elsewhere (storing what arrived, say) does not count against the client.
package progress

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// ErrTooSlow: the client sent less than the minimum within a window.
var ErrTooSlow = errors.New("request body arrived too slowly")

// Body is a request body under the rule; Stop must be called when the handler is done reading.
type Body struct {
	r        *http.Request
	rc       io.ReadCloser
	ctl      *http.ResponseController
	window   time.Duration
	minBytes int64

	got     int64         // bytes in this window
	waited  time.Duration // read time spent in this window
	err     error
	cleared bool
}

// Guard puts r.Body under the rule: at least minBytes within every window of reading.
func Guard(w http.ResponseWriter, r *http.Request, window time.Duration, minBytes int64) *Body {
	b := &Body{r: r, rc: r.Body, ctl: http.NewResponseController(w), window: window, minBytes: minBytes}
	r.Body = b
	return b
}

func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.cleared {
		return b.rc.Read(p)
	}
	left := b.window - b.waited
	if left <= 0 {
		b.err = b.tooSlow()
		return 0, b.err
	}
	var stop func() bool
	if err := b.ctl.SetReadDeadline(time.Now().Add(left)); err != nil {
		// No connection deadline (a writer that cannot set one): closing the body unblocks a
		// pending read instead.
		stop = time.AfterFunc(left, func() { b.rc.Close() }).Stop
	}
	t0 := time.Now()
	n, err := b.rc.Read(p)
	b.waited += time.Since(t0)
	timedOut := stop != nil && !stop()
	b.got += int64(n)
	if b.got >= b.minBytes {
		b.got, b.waited = 0, 0 // a new window
	}
	switch {
	case err == io.EOF:
		b.cleared = true
		_ = b.ctl.SetReadDeadline(time.Time{})
	case err != nil && (timedOut || isTimeout(err)):
		b.err = b.tooSlow()
		b.cleared = true // the connection is done for: the expired deadline stays
		b.r.Body = b.rc
		return n, b.err
	}
	return n, err
}

func (b *Body) tooSlow() error {
	return fmt.Errorf("%w: less than %d bytes in %v", ErrTooSlow, b.minBytes, b.window)
}

// Stop ends the rule when the handler is done with the body, and gives the request its own
// body back (the server treats the rest of a body it knows by type). A body read to EOF has
// already lifted the connection's read deadline: the server's next reads of the connection must
// not inherit it. For a body the handler gave up on, the server reads what remains (up to 256
// KiB) before it answers; that read gets one more window, so a stalled client cannot hold it.
func (b *Body) Stop() {
	b.r.Body = b.rc
	if !b.cleared {
		b.cleared = true
		_ = b.ctl.SetReadDeadline(time.Now().Add(b.window))
	}
}

func (b *Body) Close() error { return b.rc.Close() }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
