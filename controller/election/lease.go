package election

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// keepLease holds a session's lease for as long as etcd keeps it and returns a channel closed
// once the lease is gone or cannot be confirmed alive.
//
// Why not just sess.Done(): clientv3 gives up keeping a lease alive when no keep-alive answer
// arrived within the lease's TTL, while etcd itself may still hold the lease — during a slow
// Raft election the new leader extends every lease. A controller that took sess.Done() as the
// end would step down (or, as a standby, campaign with a key that is about to vanish) although
// nothing was lost, and the deposed master it was meant to replace could win again. So when
// the client gives up, ask etcd: a lease still alive is re-attached to a new keep-alive.
func keepLease(ctx context.Context, cli *clientv3.Client, sess *concurrency.Session, ttl time.Duration, log *slog.Logger) <-chan struct{} {
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		cur := sess
		for {
			select {
			case <-ctx.Done():
				return
			case <-cur.Done():
			}
			if ctx.Err() != nil || !leaseAlive(ctx, cli, sess.Lease(), ttl) {
				return
			}
			next, err := concurrency.NewSession(cli, concurrency.WithLease(sess.Lease()), concurrency.WithContext(ctx))
			if err != nil {
				return
			}
			log.Info("etcd keep-alive gave up but the lease lives; re-attached", "lease", int64(sess.Lease()))
			cur = next
		}
	}()
	return lost
}

// leaseAlive asks etcd whether lease still exists, retrying within one TTL: the keep-alive
// gave up because etcd was slow to answer, so a single short question may meet the same.
// An answer that never comes counts as gone: a controller unsure of its lease must not lead.
func leaseAlive(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, ttl time.Duration) bool {
	deadline := time.Now().Add(ttl)
	for {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := cli.TimeToLive(qctx, lease)
		cancel()
		if err == nil {
			return resp.TTL > 0
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}
