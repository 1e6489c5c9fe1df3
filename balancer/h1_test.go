package balancer

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter records the distinct upstream connections that carried requests (not health
// checks) and how many of them the backend has seen closed.
type connCounter struct {
	mu     sync.Mutex
	seen   map[string]bool
	closed atomic.Int64
}

func (c *connCounter) note(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	c.seen[r.RemoteAddr] = true
}

func (c *connCounter) conns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// TestH1Forwarding: requests of every body shape go over the proxy's own HTTP/1.1 path, arrive
// whole, and one kept-alive upstream connection carries them all.
func TestH1Forwarding(t *testing.T) {
	var cc connCounter
	be := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		cc.note(r)
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Body-Len", itoa(n))
		w.Header().Set("X-Got-Cl", r.Header.Get("Content-Length"))
		w.Header().Set("X-Got-Te", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-Got-Query", r.URL.RawQuery)
		w.Header().Set("X-Got-Proto", r.Proto)
		_, _ = io.WriteString(w, r.Method)
	})
	p := newProxy(t, Config{}, be)
	ts := serve(t, p)
	c := sourceClient(t, 1)

	tests := []struct {
		name, method, query string
		body                io.Reader
		wantLen, wantCL     string
		wantTE              string
	}{
		{"get", http.MethodGet, "a=1&b=%2F", nil, "0", "", ""},
		{"head", http.MethodHead, "", nil, "0", "", ""},
		{"put fixed length", http.MethodPut, "x", strings.NewReader(strings.Repeat("z", 100_000)), "100000", "100000", ""},
		{"put empty", http.MethodPut, "", nil, "0", "0", ""},
		// An io.Reader of unknown length: the client sends it chunked, and so does the proxy.
		{"put chunked", http.MethodPut, "", io.MultiReader(strings.NewReader("abc"), strings.NewReader(strings.Repeat("q", 70_000))), "70003", "", "chunked"},
		{"delete", http.MethodDelete, "uploadId=7", nil, "0", "", ""},
		{"post", http.MethodPost, "uploads", strings.NewReader("<x/>"), "4", "4", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := ts.URL + "/bkt/key"
			if tc.query != "" {
				u += "?" + tc.query
			}
			r, err := do(c, tc.method, u, nil, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			h := r.header
			if r.status != http.StatusOK || h.Get("X-Body-Len") != tc.wantLen || h.Get("X-Got-Cl") != tc.wantCL ||
				h.Get("X-Got-Te") != tc.wantTE || h.Get("X-Got-Query") != tc.query || h.Get("X-Got-Proto") != "HTTP/1.1" {
				t.Errorf("status %d, upstream got body %s, Content-Length %q, Transfer-Encoding %q, query %q, %s; want body %s, %q, %q, %q",
					r.status, h.Get("X-Body-Len"), h.Get("X-Got-Cl"), h.Get("X-Got-Te"), h.Get("X-Got-Query"), h.Get("X-Got-Proto"),
					tc.wantLen, tc.wantCL, tc.wantTE, tc.query)
			}
			if tc.method != http.MethodHead && r.body != tc.method {
				t.Errorf("body %q, want %q", r.body, tc.method)
			}
		})
	}
	if n := cc.conns(); n != 1 {
		t.Errorf("%d upstream connections carried %d sequential requests, want 1", n, len(tests))
	}
}

// TestH1IdleClosedByUpstream: an upstream that closes a kept-alive connection while it is idle
// does not cost the next request, with a body or without.
func TestH1IdleClosedByUpstream(t *testing.T) {
	var cc connCounter
	be := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		cc.note(r)
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Body-Len", itoa(n))
	})
	p := newProxy(t, Config{}, be)
	ts := serve(t, p)
	c := sourceClient(t, 1)
	for i, method := range []string{http.MethodGet, http.MethodPut, http.MethodGet, http.MethodPut} {
		r, err := do(c, method, ts.URL+"/bkt/key", nil, strings.NewReader("body"))
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("request %d (%s after the upstream closed its idle connections): %v %v", i, method, r.status, err)
		}
		// The upstream closes every idle connection, as a coordinator's idle timeout does
		// (again on every poll: the backend may not count it idle yet).
		be.mu.Lock()
		srv := be.srv
		be.mu.Unlock()
		up := upByID(p, "a").target.Load().h1
		eventually(t, 5*time.Second, "the closed idle connection is noticed", func() bool {
			srv.SetKeepAlivesEnabled(false)
			srv.SetKeepAlivesEnabled(true)
			up.mu.Lock()
			defer up.mu.Unlock()
			return len(up.idle) == 0 || !up.idle[0].alive()
		})
	}
	if n := cc.conns(); n != 4 {
		t.Errorf("%d upstream connections, want 4 (one per request: each was closed while idle)", n)
	}
}

// TestH1ClientGone: a client that leaves in the middle of a response ends the upstream
// connection too, and it is not reused.
func TestH1ClientGone(t *testing.T) {
	gone := make(chan struct{})
	be := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := make([]byte, 32<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				close(gone)
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(gone)
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	p := newProxy(t, Config{}, be)
	ts := serve(t, p)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/bkt/endless", nil)
	resp, err := sourceClient(t, 1).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream kept sending 5s after the client left")
	}
	up := upByID(p, "a").target.Load().h1
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.idle) != 0 {
		t.Errorf("%d idle connections after an abandoned response, want 0", len(up.idle))
	}
}

// TestH1DialFailure: a refused connection is a dial failure (retried, the upstream ejected),
// as it was through net/http's Transport.
func TestH1DialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	be := startBackend(t, "b", nil)
	p := newProxy(t, Config{}, be)
	u := Upstream{ID: "a", URL: be.upstream().URL}
	u.URL.Host = dead
	if err := p.SetUpstreams([]Upstream{u, be.upstream()}); err != nil {
		t.Fatal(err)
	}
	ts := serve(t, p)
	pin := p.signPin("a", sidFor("x"), p.now().Unix())
	r, err := do(sourceClient(t, 1), http.MethodPut, ts.URL+"/bkt/key", pinHeader(pin), strings.NewReader("abc"))
	if err != nil || r.status != http.StatusOK || r.node != "b" || r.header.Get("X-Body-Len") != "3" {
		t.Fatalf("PUT pinned to a refusing upstream: %v %d from %q, body %s; want 200 from b with the body", err, r.status, r.node, r.header.Get("X-Body-Len"))
	}
	if s := stateOf(p, "a"); s != StateDown {
		t.Errorf("refusing upstream %v, want down", s)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
