package gc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
)

// Uploads is the active master's expiry of abandoned multipart uploads: an upload neither
// completed nor aborted Expiry after it began is aborted, its parts' chunks queued as garbage
// (which the Collector then deletes). It also finishes aborts that stopped part way. Every
// write is fenced by the master's term.
type Uploads struct {
	Meta   *meta.Store
	Log    *slog.Logger
	Expiry time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	cursor string // where the next scan of the uploads continues
	// Metrics are where expiries are counted; nil counts nowhere.
	Metrics *Metrics
}

// Bounds of one round's work: a round scans a slice of the uploads and the next continues
// after it, so a cluster with millions of uploads in progress is covered over several rounds.
const (
	uploadsScanned = 10000
	uploadsAborted = 100
	abortsResumed  = 100
)

// Run expires uploads every interval until ctx ends. guard is the master's fence.
func (x *Uploads) Run(ctx context.Context, interval time.Duration, guard clientv3.Cmp) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := x.Round(ctx, guard); err != nil && ctx.Err() == nil {
			x.Log.Warn("multipart upload expiry round", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round finishes interrupted aborts, then scans the next slice of uploads and aborts the
// expired ones; it returns how many uploads it aborted.
func (x *Uploads) Round(ctx context.Context, guard ...clientv3.Cmp) (int, error) {
	if x.Metrics == nil {
		x.Metrics = NewMetrics(nil)
	}
	now := time.Now
	if x.Now != nil {
		now = x.Now
	}
	if n, err := x.Meta.ResumeAborts(ctx, abortsResumed, guard...); err != nil {
		return 0, err
	} else if n > 0 {
		x.Log.Info("finished deleting the parts of aborted uploads", "uploads", n)
	}
	stale, next, err := x.Meta.StaleUploads(ctx, now().Add(-x.Expiry), x.cursor, uploadsScanned)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, u := range stale {
		if done == uploadsAborted {
			return done, nil // the next round scans this slice again
		}
		err := x.Meta.AbortUpload(ctx, u, guard...)
		switch {
		case err == nil, errors.Is(err, meta.ErrPartsPending):
			x.Metrics.UploadsExpired.Inc()
			done++
			x.Log.Info("aborted an abandoned multipart upload", "bucket", u.Bucket, "key", u.Key, "upload", u.ID, "initiated", u.Initiated)
		case errors.Is(err, meta.ErrNoSuchUpload): // completed or aborted meanwhile
		default:
			// A conflict is a fenced master or a part uploaded meanwhile: either way the
			// round stops, and the next pass looks again.
			return done, err
		}
	}
	x.cursor = next
	return done, nil
}
