package balancer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
)

// forward proxies a request the own HTTP/1.1 path takes (h1Eligible, no upgrade) without
// httputil.ReverseProxy: the request is not cloned (its headers are written to the upstream
// as they are, minus the hop-by-hop ones, plus X-Forwarded-*), the response headers are moved
// into the client's header map rather than copied, and the body goes through one pooled
// buffer, flushed to the client whenever the upstream has nothing more buffered. What it
// keeps from the ReverseProxy: the retry policy (roundTrip), 1xx forwarding, pins
// (issuePin), trailers, and aborting the client's response when the upstream's breaks.
func (p *Proxy) forward(w *respWriter, in *http.Request, st *reqState) {
	out := *in // shallow: the header map is in's, read only
	if in.ContentLength == 0 {
		out.Body = nil
	}
	out.Close = false
	at1xx := func(code int, h http.Header) error {
		dst := w.Header()
		for k, vv := range h {
			dst[k] = vv
		}
		w.WriteHeader(code)
		clear(dst) // WriteHeader does not clear them after a 1xx
		return nil
	}
	fw := fwdRequest{in: in, st: st, on1xx: at1xx}
	res, err := p.roundTrip(st, &out, &fw)
	if err != nil {
		p.answerError(w, in, st, err)
		return
	}
	removeHopByHop(res.Header)
	st.status = res.StatusCode
	p.issuePin(st, res.Header)
	dst := w.Header()
	for k, vv := range res.Header {
		dst[k] = vv // res is this request's alone: its slices can move
	}
	if len(res.Trailer) > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	if err := p.copyBody(w, res); err != nil {
		res.Body.Close()
		// The response is streamed: all that is left is to abort it, so the client sees a
		// broken response rather than a short one that looks whole (as the ReverseProxy does).
		panic(http.ErrAbortHandler)
	}
	res.Body.Close()
	if len(res.Trailer) > 0 {
		for k, vv := range res.Trailer {
			dst[http.TrailerPrefix+k] = vv
		}
	}
}

// copyBody copies the response body to the client, flushing whenever the upstream connection
// has nothing more buffered: a response that arrived whole goes out in one write when the
// handler returns, a trickle (S3 listings, select) goes out as it comes.
func (p *Proxy) copyBody(w *respWriter, res *http.Response) error {
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	hb, _ := res.Body.(*h1Body)
	var fl http.Flusher
	var written int64
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			written += int64(n)
			// Not when the body is complete: the handler's return sends it (over HTTP/2 with
			// the end of the stream in the same write).
			complete := res.ContentLength >= 0 && written >= res.ContentLength
			if rerr == nil && !complete && hb != nil && hb.idle() {
				if fl == nil {
					fl, _ = w.ResponseWriter.(http.Flusher)
				}
				if fl != nil {
					fl.Flush()
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// idle reports whether the next read would wait for the upstream (nothing buffered).
func (b *h1Body) idle() bool { return !b.done && b.c.br.Buffered() == 0 }

// fwdRequest is what the own path writes beyond the inbound request itself.
type fwdRequest struct {
	in    *http.Request
	st    *reqState
	on1xx func(code int, h http.Header) error
}

// hopHeaders are the hop-by-hop headers a proxy does not forward (RFC 9110 7.6.1), as the
// ReverseProxy's list; Te is sent again as "trailers" when the client asked for them.
var hopHeaders = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func isHopHeader(k string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// skipOut reports whether an inbound header is not written to the upstream as it is: hop-by-hop
// headers, those the Connection header names, the framing the writer sets itself, and the
// forwarding headers, which writeForwarded writes.
func (f *fwdRequest) skipOut(k string) bool {
	switch k {
	case "Host", "Content-Length", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	if isHopHeader(k) {
		return true
	}
	for _, v := range f.in.Header["Connection"] {
		for t := range strings.SplitSeq(v, ",") {
			if textproto.TrimString(t) != "" && http.CanonicalHeaderKey(textproto.TrimString(t)) == k {
				return true
			}
		}
	}
	return false
}

// writeForwarded writes Te and the X-Forwarded-* headers, as rewrite and SetXForwarded set
// them on the ReverseProxy's path: the client's chain is kept only from a trusted peer.
func (f *fwdRequest) writeForwarded(w *bufio.Writer) {
	in := f.in
	if headerHasToken(in.Header, "Te", "trailers") {
		w.WriteString("Te: trailers\r\n")
	}
	if clientIP, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		w.WriteString("X-Forwarded-For: ")
		if f.st.trustedPeer {
			for _, v := range in.Header["X-Forwarded-For"] {
				w.WriteString(v)
				w.WriteString(", ")
			}
		}
		w.WriteString(clientIP)
		w.WriteString("\r\n")
	}
	fh, fp := in.Host, "http"
	if in.TLS != nil {
		fp = "https"
	}
	if f.st.trustedPeer {
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			fp = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			fh = v
		}
	}
	w.WriteString("X-Forwarded-Host: ")
	w.WriteString(fh)
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(fp)
	w.WriteString("\r\n")
}

// removeHopByHop deletes the hop-by-hop headers of a response and those its Connection names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for t := range strings.SplitSeq(v, ",") {
			if t = textproto.TrimString(t); t != "" {
				delete(h, http.CanonicalHeaderKey(t))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}
