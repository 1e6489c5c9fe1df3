package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
)

type candidate struct {
	name   string
	el     *Elector
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	terms  []*Term
	reg    *prometheus.Registry
}

func (c *candidate) lastTerm() *Term {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.terms) == 0 {
		return nil
	}
	return c.terms[len(c.terms)-1]
}

// run starts a candidate whose lead function holds the term until it is cancelled.
func run(t *testing.T, cli *clientv3.Client, name, addr string, ttl, probe time.Duration) *candidate {
	t.Helper()
	reg := prometheus.NewRegistry()
	el, err := New(Config{Client: cli, Self: Candidate{Name: name, Address: addr}, TTL: ttl, Probe: probe,
		Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{name: name, el: el, cancel: cancel, done: make(chan struct{}), reg: reg}
	go func() {
		defer close(c.done)
		_ = el.Run(ctx, func(term *Term) {
			c.mu.Lock()
			c.terms = append(c.terms, term)
			c.mu.Unlock()
			<-term.Context().Done()
		})
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *candidate) stop() { c.cancel(); <-c.done }

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaders(cs []*candidate) []string {
	var out []string
	for _, c := range cs {
		if c.el.IsLeader() {
			out = append(out, c.name)
		}
	}
	return out
}

func TestOneLeaderAndResignOnStop(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.78.1")
	var cs []*candidate
	for i := range 3 {
		cs = append(cs, run(t, cli, fmt.Sprintf("c%d", i), "https://127.0.0.1:1", 30*time.Second, 0))
	}
	waitFor(t, "a leader", 10*time.Second, func() bool { return len(leaders(cs)) == 1 })
	first := leaders(cs)[0]
	l, err := CurrentLeader(context.Background(), cli, "")
	if err != nil || l.Name != first || l.Epoch == 0 || l.Since.IsZero() {
		t.Fatalf("CurrentLeader = %+v, %v; want %s with epoch and since", l, err, first)
	}
	// A graceful stop resigns: with a 30 s TTL only resignation can hand over within the deadline.
	for _, c := range cs {
		if c.name == first {
			c.stop()
		}
	}
	waitFor(t, "a new leader after resign", 5*time.Second, func() bool {
		l := leaders(cs)
		return len(l) == 1 && l[0] != first
	})
	l2, err := CurrentLeader(context.Background(), cli, "")
	if err != nil || l2.Epoch <= l.Epoch {
		t.Fatalf("new leader %+v (%v): epoch must grow past %d", l2, err, l.Epoch)
	}
}

func TestDeposedLeaderIsFenced(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.78.2")
	a := run(t, cli, "a", "https://127.0.0.1:1", 30*time.Second, 0)
	waitFor(t, "a to lead", 10*time.Second, a.el.IsLeader)
	old := a.lastTerm()
	ctx := context.Background()
	if err := old.Put(ctx, "/hanode/test/owner", "a"); err != nil {
		t.Fatalf("leader write: %v", err)
	}
	b := run(t, cli, "b", "https://127.0.0.1:1", 30*time.Second, 0)
	// Simulate a's lease expiring while it was paused: revoke it behind a's back.
	l, err := CurrentLeader(ctx, cli, "")
	if err != nil || l.Name != "a" {
		t.Fatalf("leader = %+v, %v", l, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(l.Lease)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to lead", 10*time.Second, func() bool { return b.el.IsLeader() })
	// The old term's writes are refused even though a's code still holds the Term.
	err = old.Put(ctx, "/hanode/test/owner", "a-again")
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed leader write: got %v, want ErrFenced", err)
	}
	resp, err := cli.Get(ctx, "/hanode/test/owner")
	if err != nil || string(resp.Kvs[0].Value) != "a" {
		t.Fatalf("owner key changed by a fenced write: %v %v", resp, err)
	}
	if got := testutil.ToFloat64(a.el.m.fenced); got != 1 {
		t.Fatalf("fenced writes metric = %v, want 1", got)
	}
	select {
	case <-old.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("deposed leader's term context was not cancelled")
	}
	// The new term writes fine, and its guarded txn still evaluates the caller's comparisons.
	nt := b.lastTerm()
	ok, err := nt.Txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.Value("/hanode/test/owner"), "=", "a")},
		[]clientv3.Op{clientv3.OpPut("/hanode/test/owner", "b")}, nil)
	if err != nil || !ok {
		t.Fatalf("new leader txn: ok=%v err=%v", ok, err)
	}
}

func TestStandbyRevokesUnresponsiveLeader(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.78.3")
	// a's health endpoint answers at first, then dies while a's etcd session stays alive.
	var alive sync.Mutex
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		alive.Lock()
		defer alive.Unlock()
		if !healthy {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	a := run(t, cli, "a", srv.URL, time.Minute, 50*time.Millisecond)
	waitFor(t, "a to lead", 10*time.Second, a.el.IsLeader)
	b := run(t, cli, "b", "http://"+net.JoinHostPort("127.0.0.1", "1"), time.Minute, 50*time.Millisecond)
	// While a answers, b leaves it alone.
	time.Sleep(500 * time.Millisecond) // a window for wrongful revocations to show; not a timing assertion
	if !a.el.IsLeader() || b.el.IsLeader() {
		t.Fatal("a healthy leader was deposed")
	}
	alive.Lock()
	healthy = false
	alive.Unlock()
	// The lease TTL is a minute: only b's revocation can make b the leader within the deadline.
	waitFor(t, "b to depose a", 15*time.Second, func() bool { return b.el.IsLeader() && !a.el.IsLeader() })
	if got := testutil.ToFloat64(b.el.m.revocations); got != 1 {
		t.Fatalf("revocations = %v, want 1", got)
	}
}
