package adminapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/adminapi"
)

// silent accepts TCP connections and never answers: a controller whose machine froze, or a
// network that swallows packets after the handshake. accepted counts the connections.
type silent struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func newSilent(t *testing.T) *silent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silent{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *silent) URL() string { return "https://" + s.ln.Addr().String() }

// controller is a TLS server answering the admin API's leader read and a write, counting
// requests.
type controller struct {
	*httptest.Server
	reads, writes atomic.Int64
}

func newController(t *testing.T, name string, status int) *controller {
	t.Helper()
	c := &controller{}
	c.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			c.reads.Add(1)
		} else {
			c.writes.Add(1)
			io.Copy(io.Discard, r.Body)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status/100 != 2 {
			json.NewEncoder(w).Encode(map[string]string{"error": name + " refuses"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"name": name, "epoch": 7})
	}))
	t.Cleanup(c.Close)
	return c
}

func tlsFor(servers ...*controller) *tls.Config {
	pool := x509.NewCertPool()
	for _, s := range servers {
		pool.AddCert(s.Certificate())
	}
	return &tls.Config{RootCAs: pool}
}

func newClient(t *testing.T, tlsCfg *tls.Config, endpoints ...string) *adminapi.Client {
	t.Helper()
	c, err := adminapi.NewWithOptions(adminapi.Options{Endpoints: endpoints, TLS: tlsCfg,
		HedgeDelay: 50 * time.Millisecond, DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// bounded is a context whose deadline is far longer than the hedge delay and the dial timeout
// but far shorter than the per-request timeout (10 s): a call that waits out a silent
// controller fails it.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A read that gets no answer from the first controller is sent to the next one, which answers;
// the next call starts with it and does not touch the silent one again.
func TestReadRacesPastSilentController(t *testing.T) {
	dead := newSilent(t)
	good := newController(t, "m2", http.StatusOK)
	c := newClient(t, tlsFor(good), dead.URL(), good.URL)
	l, err := c.Leader(bounded(t))
	if err != nil {
		t.Fatalf("leader with a silent first controller: %v", err)
	}
	if l.Name != "m2" {
		t.Fatalf("leader %q", l.Name)
	}
	if got := c.Endpoints()[0]; got != good.URL {
		t.Fatalf("next call starts with %s, want the controller that answered, %s", got, good.URL)
	}
	before := dead.accepted.Load()
	for i := 0; i < 3; i++ {
		if _, err := c.Leader(bounded(t)); err != nil {
			t.Fatal(err)
		}
	}
	if n := dead.accepted.Load() - before; n != 0 {
		t.Fatalf("the silent controller got %d more connections; the one that answered should be asked first", n)
	}
	if good.reads.Load() != 4 {
		t.Fatalf("good controller served %d reads, want 4", good.reads.Load())
	}
}

// A write is not raced: it moves on from a controller it could not connect to (here, no TLS
// handshake within the dial timeout) and is sent exactly once.
func TestWriteSkipsUnconnectableController(t *testing.T) {
	dead := newSilent(t)
	good := newController(t, "m2", http.StatusOK)
	other := newController(t, "m3", http.StatusOK)
	c := newClient(t, tlsFor(good, other), dead.URL(), good.URL, other.URL)
	ep, err := c.Do(bounded(t), http.MethodPost, "/v1/tokens", map[string]any{"ttl": "1h"}, nil)
	if err != nil {
		t.Fatalf("write with a silent first controller: %v", err)
	}
	if ep != good.URL || good.writes.Load() != 1 || other.writes.Load() != 0 {
		t.Fatalf("answered by %s; writes: good %d, other %d; want exactly one, on %s", ep, good.writes.Load(), other.writes.Load(), good.URL)
	}
}

// A write that reached a controller is never sent to another, whatever happened to it.
func TestWriteNotRepeatedAfterSent(t *testing.T) {
	var hits atomic.Int64
	dropper := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close() // the answer is lost: did it apply?
		}
	}))
	t.Cleanup(dropper.Close)
	good := newController(t, "m2", http.StatusOK)
	pool := x509.NewCertPool()
	pool.AddCert(dropper.Certificate())
	pool.AddCert(good.Certificate())
	c := newClient(t, &tls.Config{RootCAs: pool}, dropper.URL, good.URL)
	if _, err := c.Do(bounded(t), http.MethodPost, "/v1/tokens", map[string]any{"ttl": "1h"}, nil); err == nil {
		t.Fatal("a write whose answer was lost succeeded")
	}
	if hits.Load() != 1 || good.writes.Load() != 0 {
		t.Fatalf("dropper got %d writes, the next controller %d; want 1 and 0", hits.Load(), good.writes.Load())
	}
	// A 503 answer to a write is not retried either: the controller had the request.
	busy := newController(t, "m1", http.StatusServiceUnavailable)
	c = newClient(t, tlsFor(busy, good), busy.URL, good.URL)
	if _, err := c.Do(bounded(t), http.MethodPost, "/v1/tokens", nil, nil); err == nil || busy.writes.Load() != 1 || good.writes.Load() != 0 {
		t.Fatalf("write to a 503 controller: %v; writes %d then %d", err, busy.writes.Load(), good.writes.Load())
	}
}

func TestReadAnswers(t *testing.T) {
	good := newController(t, "m3", http.StatusOK)
	tests := []struct {
		name       string
		status     int
		wantErr    int // APIError status; 0: the good controller answers
		goodReads  int64
		firstReads int64
	}{
		{"5xx fails over", http.StatusServiceUnavailable, 0, 1, 1},
		{"4xx is the answer", http.StatusNotFound, http.StatusNotFound, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			good.reads.Store(0)
			first := newController(t, "m1", tc.status)
			c := newClient(t, tlsFor(first, good), first.URL, good.URL)
			_, err := c.Leader(bounded(t))
			var ae *adminapi.APIError
			switch {
			case tc.wantErr == 0 && err != nil:
				t.Fatalf("leader: %v", err)
			case tc.wantErr != 0 && (!errors.As(err, &ae) || ae.Status != tc.wantErr):
				t.Fatalf("leader: %v, want a %d answer", err, tc.wantErr)
			}
			if first.reads.Load() != tc.firstReads || good.reads.Load() != tc.goodReads {
				t.Fatalf("reads: first %d, good %d; want %d, %d", first.reads.Load(), good.reads.Load(), tc.firstReads, tc.goodReads)
			}
		})
	}
}

// Every controller silent: the call fails once each was asked (no TLS handshake within the
// dial timeout), naming both.
func TestAllSilentFails(t *testing.T) {
	a, b := newSilent(t), newSilent(t)
	c := newClient(t, &tls.Config{}, a.URL(), b.URL())
	_, err := c.Leader(bounded(t))
	if err == nil || !strings.Contains(err.Error(), a.ln.Addr().String()) || !strings.Contains(err.Error(), b.ln.Addr().String()) {
		t.Fatalf("leader with every controller silent: %v, want an error naming both", err)
	}
	if a.accepted.Load() != adminapi.DefaultRounds || b.accepted.Load() != adminapi.DefaultRounds {
		t.Fatalf("connections: %d and %d, want %d each (both asked in every round)", a.accepted.Load(), b.accepted.Load(), adminapi.DefaultRounds)
	}
}

// Every controller answering 503 (no active master while one is elected): the read is asked
// again after a backoff, and the answer that comes then is the call's.
func TestReadRetriedWhileEveryControllerFails(t *testing.T) {
	var calls atomic.Int64
	flaky := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"error": "no active master"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"name": "m2", "epoch": 9})
	}))
	t.Cleanup(flaky.Close)
	busy := newController(t, "m1", http.StatusServiceUnavailable)
	pool := x509.NewCertPool()
	pool.AddCert(flaky.Certificate())
	pool.AddCert(busy.Certificate())
	c := newClient(t, &tls.Config{RootCAs: pool}, busy.URL, flaky.URL)
	l, err := c.Leader(bounded(t))
	if err != nil || l.Name != "m2" {
		t.Fatalf("leader: %+v, %v; want m2 on the third round", l, err)
	}
	if busy.reads.Load() != 3 || calls.Load() != 3 {
		t.Fatalf("reads: %d and %d, want 3 rounds of both", busy.reads.Load(), calls.Load())
	}
}

func TestSetEndpointsKeepsTheOneThatAnswered(t *testing.T) {
	a := newController(t, "m1", http.StatusServiceUnavailable)
	b := newController(t, "m2", http.StatusOK)
	c := newClient(t, tlsFor(a, b), a.URL, b.URL)
	if _, err := c.Leader(bounded(t)); err != nil {
		t.Fatal(err)
	}
	c.SetEndpoints([]string{a.URL + "/", "https://127.0.0.1:1", b.URL})
	got := c.Endpoints()
	if len(got) != 3 || got[0] != b.URL || got[1] != a.URL {
		t.Fatalf("endpoints after SetEndpoints: %q", got)
	}
	empty := adminapi.NewEmpty(adminapi.Options{})
	if _, err := empty.Leader(bounded(t)); err == nil {
		t.Fatal("a client without endpoints answered")
	}
}
