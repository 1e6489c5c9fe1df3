package election

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// TestLeaseOutlivesKeepAliveGiveUp: when clientv3 stops keeping the session's lease alive while
// etcd still holds it, keepLease re-attaches instead of reporting the lease lost; once etcd
// drops the lease, it reports it.
func TestLeaseOutlivesKeepAliveGiveUp(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.78.4")
	const ttl = 2 * time.Second
	// The session's own context stands in for the client giving up: cancelling it ends the
	// keep-alive and closes sess.Done() while the lease lives on in etcd.
	sessCtx, giveUp := context.WithCancel(context.Background())
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(ttl/time.Second)), concurrency.WithContext(sessCtx))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lost := keepLease(ctx, cli, sess, ttl, slog.New(slog.DiscardHandler))

	giveUp()
	<-sess.Done()
	// Three TTLs later the lease must still be alive (kept by the re-attached keep-alive).
	end := time.Now().Add(3 * ttl)
	for time.Now().Before(end) {
		select {
		case <-lost:
			t.Fatal("keepLease reported a live lease as lost")
		case <-time.After(100 * time.Millisecond):
		}
	}
	resp, err := cli.TimeToLive(context.Background(), sess.Lease())
	if err != nil || resp.TTL <= 0 {
		t.Fatalf("lease not kept alive after the client gave up: ttl %v, err %v", resp.TTL, err)
	}

	if _, err := cli.Revoke(context.Background(), sess.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * ttl):
		t.Fatal("keepLease did not report a revoked lease as lost")
	}
}
