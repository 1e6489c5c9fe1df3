package balancer

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

type sessKind uint8

const (
	sessNew      sessKind = iota // placed by this request
	sessPinned                   // stayed on its upstream
	sessRepinned                 // moved off a failed/removed upstream
)

func (k sessKind) String() string {
	switch k {
	case sessPinned:
		return "pinned"
	case sessRepinned:
		return "repinned"
	}
	return "new"
}

// reqState is one request's routing state. It is only touched by the
// handler goroutine (the ReverseProxy calls Rewrite, RoundTrip,
// ModifyResponse and ErrorHandler synchronously on it).
type reqState struct {
	start       time.Time
	client      netip.Addr
	trustedPeer bool
	secure      bool

	sid     string
	pinIn   string // the request's valid pin, echoed when unchanged
	up      *upstream
	kind    sessKind
	from    string // upstream the session moved off
	needPin bool

	tried    []*upstream
	triedBuf [3]*upstream // backs tried: no allocation for up to 2 retries
	retries  int
	errKind  string
	status   int
}

func (st *reqState) wasTried(u *upstream) bool {
	for _, t := range st.tried {
		if t == u {
			return true
		}
	}
	return false
}

// ServeHTTP proxies r to the upstream of its session.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{start: time.Now()}
	st.tried = st.triedBuf[:0]
	rw := &respWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			// http.ErrAbortHandler from the ReverseProxy when the response
			// body broke mid-stream: account for it, then let net/http
			// abort the connection.
			st.errKind = "aborted"
			p.finish(st, rw, r)
			panic(v)
		}
		p.finish(st, rw, r)
	}()

	p.clientInfo(r, st)
	pin := p.readPin(r)
	if pin != nil {
		st.sid, st.pinIn = pin.sid, pin.raw
	} else {
		st.sid = sidFor(p.affinityKey(r, st))
	}
	p.route(st, pin)
	if st.up == nil {
		st.errKind = "no_upstream"
		writeUnavailable(rw)
		return
	}

	if !isUpgrade(r) && h1Eligible(r) {
		p.forward(rw, r, st)
		return
	}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	if isUpgrade(r) {
		var done func()
		var ok bool
		if ctx, done, ok = p.trackUpgrade(ctx, st); !ok {
			st.errKind = "shutting_down"
			writeUnavailable(rw)
			return
		}
		defer done()
	}
	p.rp.ServeHTTP(rw, r.WithContext(ctx))
}

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func writeUnavailable(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Retry-After", "1")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("no coordinator available, retry\n"))
}

// rewrite builds the outbound request. The URL's scheme and host are set per
// attempt by RoundTrip; everything that SigV4 signs (Host, path, query) is
// forwarded unchanged.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := stateFrom(pr.In.Context())
	// Keep the exact query: ReverseProxy drops parameters it cannot parse,
	// which would break signatures; the proxy makes no query decisions.
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Host = pr.In.Host
	if st.trustedPeer {
		// Append to the trusted proxy's chain rather than starting over.
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetXForwarded()
	if st.trustedPeer {
		if v := pr.In.Header.Get("X-Forwarded-Proto"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
		if v := pr.In.Header.Get("X-Forwarded-Host"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
	}
}

// modifyResponse issues the pin for the upstream that answered.
func (p *Proxy) modifyResponse(res *http.Response) error {
	st := stateFrom(res.Request.Context())
	st.status = res.StatusCode
	p.issuePin(st, res.Header)
	return nil
}

// issuePin adds the session's pin to the response headers h: a new one (and its cookie) when
// the session was placed or moved, else the request's own, echoed.
func (p *Proxy) issuePin(st *reqState, h http.Header) {
	if st.needPin {
		m := p.pinFor(st.up.id, st.sid, st.secure)
		if c := h["Set-Cookie"]; len(c) > 0 {
			h["Set-Cookie"] = append(c, m.cookie[0])
		} else {
			h["Set-Cookie"] = m.cookie
		}
		h[PinHeader] = m.pin
	} else if st.pinIn != "" {
		h.Set(PinHeader, st.pinIn)
	}
}

// handleError answers when no upstream response could be obtained.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	p.answerError(w, r, stateFrom(r.Context()), err)
}

func (p *Proxy) answerError(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	var cbe *clientBodyError
	var nerr net.Error
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, errNoUpstream):
		writeUnavailable(w)
		return
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		code = 499 // client closed request (nginx's convention); nobody reads it
	case errors.As(err, &cbe):
		code = http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		code = http.StatusGatewayTimeout
	}
	if st != nil && st.errKind == "" {
		st.errKind = "proxy"
	}
	up := ""
	if st != nil && st.up != nil {
		up = st.up.id
	}
	p.log.Debug("proxy: request failed", "upstream", up, "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(http.StatusText(code) + "\n"))
}

// finish records metrics and the access log line.
func (p *Proxy) finish(st *reqState, rw *respWriter, r *http.Request) {
	d := time.Since(st.start)
	status := rw.status
	if status == 0 {
		status = st.status // e.g. 101: the upgrade bypasses WriteHeader
	}
	label := "none"
	if st.up != nil {
		label = st.up.id
		st.up.dur.Observe(d.Seconds())
		if d > p.cfg.SessionIdle/2 {
			p.touchEnd(st.sid, st.up)
		}
	}
	p.m.requests.WithLabelValues(label, strconv.Itoa(status)).Inc()
	switch st.errKind {
	case "", "dial", "upstream": // none, or counted per attempt by RoundTrip
	default:
		p.m.errors.WithLabelValues(label, st.errKind).Inc()
	}
	if p.cfg.AccessLog == nil {
		return
	}
	client := r.RemoteAddr
	if st.client.IsValid() {
		client = st.client.String()
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rw.bytes),
		slog.Duration("duration", d),
		slog.String("upstream", label),
		slog.String("client", client),
		slog.String("session", st.kind.String()),
	}
	if st.from != "" {
		attrs = append(attrs, slog.String("from", st.from))
	}
	if st.retries > 0 {
		attrs = append(attrs, slog.Int("retries", st.retries))
	}
	if st.errKind != "" {
		attrs = append(attrs, slog.String("error", st.errKind))
	}
	p.cfg.AccessLog.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// respWriter records status and size. Unwrap lets http.ResponseController
// (used by the ReverseProxy to flush and to hijack for upgrades) reach the
// real writer.
type respWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
