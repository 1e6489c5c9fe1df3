// Package faults injects the faults of a hung process into a real HTTP handler, for tests: a
// Freezer behaves like a server that was sent SIGSTOP (connections are accepted, nothing is
// answered, nothing more is read or written) until it is thawed.
package faults

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// Freezer wraps a handler. While frozen, a new request waits before the handler runs, and a
// request in progress waits at its next body read or response write. Waiting ends when the
// Freezer thaws or the request's context ends (the client gave up).
type Freezer struct {
	h http.Handler

	mu     sync.Mutex
	thawed chan struct{} // closed while not frozen
	// stallAfter, when positive, freezes a response once it has written this many bytes.
	stallAfter atomic.Int64
}

// NewFreezer returns a thawed Freezer in front of h.
func NewFreezer(h http.Handler) *Freezer {
	f := &Freezer{h: h, thawed: make(chan struct{})}
	close(f.thawed)
	return f
}

// Freeze makes every request wait from now on.
func (f *Freezer) Freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.thawed:
		f.thawed = make(chan struct{})
	default:
	}
}

// Thaw lets every waiting request go on.
func (f *Freezer) Thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stallAfter.Store(0)
	select {
	case <-f.thawed:
	default:
		close(f.thawed)
	}
}

// FreezeAfter freezes the server as soon as a response has written n bytes (the stream stalls
// mid-way, as when a process is stopped while sending).
func (f *Freezer) FreezeAfter(n int64) { f.stallAfter.Store(n) }

func (f *Freezer) wait(done <-chan struct{}) {
	f.mu.Lock()
	ch := f.thawed
	f.mu.Unlock()
	select {
	case <-ch:
	case <-done:
	}
}

func (f *Freezer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	done := r.Context().Done()
	f.wait(done)
	if r.Body != nil {
		r.Body = &frozenBody{ReadCloser: r.Body, f: f, done: done}
	}
	f.h.ServeHTTP(&frozenWriter{ResponseWriter: w, f: f, done: done}, r)
}

type frozenBody struct {
	io.ReadCloser
	f    *Freezer
	done <-chan struct{}
}

func (b *frozenBody) Read(p []byte) (int, error) {
	b.f.wait(b.done)
	return b.ReadCloser.Read(p)
}

type frozenWriter struct {
	http.ResponseWriter
	f    *Freezer
	done <-chan struct{}
	n    int64
}

func (w *frozenWriter) Write(p []byte) (int, error) {
	if lim := w.f.stallAfter.Load(); lim > 0 {
		if w.n+int64(len(p)) > lim {
			k := int(max(lim-w.n, 0))
			m, err := w.ResponseWriter.Write(p[:k])
			w.n += int64(m)
			if err != nil {
				return m, err
			}
			if f, ok := w.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			w.f.Freeze()
			w.f.wait(w.done)
			k2, err := w.ResponseWriter.Write(p[k:])
			w.n += int64(k2)
			return m + k2, err
		}
	}
	w.f.wait(w.done)
	m, err := w.ResponseWriter.Write(p)
	w.n += int64(m)
	return m, err
}

func (w *frozenWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *frozenWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
