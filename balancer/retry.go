package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync/atomic"
	"time"
)

// errNoUpstream means no upstream can take the request (answered 503).
var errNoUpstream = errors.New("no upstream available")

// clientBodyError is a failure to read the client's request body: the
// client's fault, so neither retried nor held against the upstream.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// roundTripper is the ReverseProxy's Transport. It sends the request to
// st.up through that upstream's own http.Transport and retries on another
// upstream when that is safe. All retrying happens before a response is
// handed to the ReverseProxy, so no response byte has reached the client
// when a retry is decided.
type roundTripper struct{ p *Proxy }

// attempt observes one upstream attempt through httptrace, whose hooks run
// on the transport's goroutines.
type attempt struct {
	gotConn      atomic.Bool
	reused       atomic.Bool  // the connection came from the idle pool
	connAt       atomic.Int64 // unix nanos of GotConn
	wroteHeaders atomic.Bool
	got1xx       atomic.Bool
}

func (a *attempt) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			a.connAt.Store(time.Now().UnixNano())
			a.reused.Store(info.Reused)
			a.gotConn.Store(true)
		},
		WroteHeaders: func() { a.wroteHeaders.Store(true) },
		Got1xxResponse: func(int, textproto.MIMEHeader) error {
			a.got1xx.Store(true) // the ReverseProxy forwards it to the client
			return nil
		},
	}
}

// attemptBody wraps the client's body for one attempt. It counts what the
// transport read (nothing read means the body can go to another upstream),
// records read errors (the client's fault) and, once the attempt is
// abandoned, refuses further reads so a transport goroutine that outlives
// its RoundTrip cannot steal bytes from the next attempt.
type attemptBody struct {
	rc   io.ReadCloser
	n    atomic.Int64
	err  atomic.Pointer[error]
	dead atomic.Bool
}

var errAbandoned = errors.New("proxy: request body read after attempt was abandoned")

func (b *attemptBody) Read(p []byte) (int, error) {
	if b.dead.Load() {
		return 0, errAbandoned
	}
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// Close does not close the client's body: the server does that when the
// handler returns, and a retry may still need it.
func (b *attemptBody) Close() error { return nil }

func (b *attemptBody) readErr() error {
	if e := b.err.Load(); e != nil {
		return *e
	}
	return nil
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// RoundTrip implements the retry policy:
//   - a dial failure (refused, reset or timed out while connecting, TLS
//     handshake failure: no connection, so nothing was sent) is retried for
//     any method;
//   - once a connection was obtained the request may have been processed,
//     so only GET, HEAD, OPTIONS and requests with an Idempotency-Key are
//     retried, and only if the body can be replayed (none, or GetBody);
//   - at most MaxRetries retries, none starting later than RetryBudget after
//     the first attempt's dial;
//   - never after the client went away or its body failed, and never once a
//     1xx response was forwarded to the client.
//
// A request that reached no upstream at all ends in 503 with Retry-After
// (safe to resend), one that may have reached an upstream in 502 or 504.
//
// Every failure other than those last ones also ejects the upstream
// (passive health check) unless it happened on a pooled connection, and the
// retry re-picks the session's upstream.
func (rt roundTripper) RoundTrip(out *http.Request) (*http.Response, error) {
	return rt.p.roundTrip(stateFrom(out.Context()), out, nil)
}

// roundTrip is RoundTrip for st's request out; fw, when not nil, is the own forwarding path's
// request (forward), which always goes over h1.
func (p *Proxy) roundTrip(st *reqState, out *http.Request, fw *fwdRequest) (*http.Response, error) {
	body := out.Body
	var budgetEnd time.Time
	var prev *attemptBody
	for {
		if prev != nil {
			prev.dead.Store(true)
		}
		u := st.up
		st.tried = append(st.tried, u)
		tg := u.target.Load()

		at := &attempt{}
		useH1 := fw != nil || h1Eligible(out)
		req := out
		if useH1 {
			// The own path reports to at directly and dials tg's address itself: no trace to
			// compose and no URL to copy.
			if body != nil {
				r2 := *out
				req = &r2
			}
		} else {
			req = out.WithContext(httptrace.WithClientTrace(out.Context(), at.trace()))
			uu := *out.URL
			uu.Scheme, uu.Host = tg.url.Scheme, tg.url.Host
			req.URL = &uu
		}
		var ab *attemptBody
		if body != nil {
			ab = &attemptBody{rc: body}
			req.Body = ab
			prev = ab
		}

		var resp *http.Response
		var err error
		if useH1 {
			resp, err = tg.h1.roundTrip(req, at, fw)
		} else {
			resp, err = tg.tr.RoundTrip(req)
		}
		if err == nil {
			st.errKind = "" // an earlier attempt's failure was recovered
			return resp, nil
		}

		if out.Context().Err() != nil {
			st.errKind = "canceled"
			return nil, err
		}
		if ab != nil {
			if berr := ab.readErr(); berr != nil {
				st.errKind = "client_body"
				return nil, &clientBodyError{berr}
			}
		}
		// The transport may have retried internally (a pooled connection
		// found closed) and then failed to dial: the error decides, too.
		dialFailed := !at.gotConn.Load() || isDialError(err)
		kind := "upstream"
		if dialFailed {
			kind = "dial"
		}
		st.errKind = kind
		p.m.errors.WithLabelValues(u.id, kind).Inc()
		// A pooled connection that breaks is weak evidence: the upstream may
		// just have closed it while idle (the keep-alive race), or one
		// request killed it. Ejecting would move every session of a healthy
		// upstream; a fresh connection or a dial that fails is proof enough.
		if dialFailed || !at.reused.Load() {
			p.eject(u, err)
		}

		if budgetEnd.IsZero() {
			start := time.Now()
			if ns := at.connAt.Load(); ns != 0 {
				start = time.Unix(0, ns)
			}
			budgetEnd = start.Add(p.cfg.RetryBudget)
		}
		bodyOK := body == nil || out.GetBody != nil || (dialFailed && ab.n.Load() == 0)
		methodOK := dialFailed || idempotent(out)
		if !bodyOK || !methodOK || at.got1xx.Load() ||
			st.retries >= p.cfg.MaxRetries || !time.Now().Before(budgetEnd) || !p.repick(st) {
			if dialFailed {
				// Nothing reached an upstream: 503 tells the client that
				// trying again is safe.
				return nil, fmt.Errorf("%w: %w", errNoUpstream, err)
			}
			return nil, err
		}
		if body != nil && out.GetBody != nil && !(dialFailed && ab.n.Load() == 0) {
			b, gerr := out.GetBody()
			if gerr != nil {
				return nil, fmt.Errorf("proxy: replay request body: %w", gerr)
			}
			body = b
		}
		st.retries++
		p.m.retries.Inc()
		p.log.Debug("proxy: retrying request", "from", u.id, "to", st.up.id, "method", out.Method, "err", err)
	}
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}
