package gc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
)

// Lifecycle is the active master's execution of the buckets' lifecycle configurations (S3
// lifecycle expiration): current versions expire (a delete marker in a versioned bucket, the
// object removed in an unversioned one), noncurrent versions are removed some days after they
// became noncurrent (keeping the newest ones a rule asks to keep), a delete marker left alone is
// removed, and multipart uploads are aborted some days after they began. Every change is a
// meta delete or abort guarded by the master's fence; a version under object lock is never
// removed (meta refuses it, and it is left for a later round).
type Lifecycle struct {
	Meta  *meta.Store
	Log   *slog.Logger
	Grace time.Duration // gc-grace for the chunks of removed versions
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Expired counts the versions, markers and uploads removed; nil counts nowhere.
	Expired prometheus.Counter

	cursors map[string]lcCursor // per bucket, where the next round's scan continues
}

type lcCursor struct{ key, version string }

// Bounds of one round: each bucket's scan reads at most lifecycleScanned versions in pages
// of lifecyclePage, and continues where it stopped in the next round.
const (
	lifecycleScanned = 10000
	lifecyclePage    = 1000
	lifecycleUploads = 100
)

// Run applies the lifecycle configurations every interval until ctx ends. guard is the
// master's fence.
func (x *Lifecycle) Run(ctx context.Context, interval time.Duration, guard clientv3.Cmp) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := x.Round(ctx, guard); err != nil && ctx.Err() == nil {
			x.Log.Warn("lifecycle round", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round applies every bucket's lifecycle rules to the next slice of its versions and uploads;
// it returns how many versions, markers and uploads it removed.
func (x *Lifecycle) Round(ctx context.Context, guard ...clientv3.Cmp) (int, error) {
	if x.cursors == nil {
		x.cursors = map[string]lcCursor{}
	}
	buckets, err := x.Meta.LifecycleBuckets(ctx)
	if err != nil {
		return 0, err
	}
	for b := range x.cursors {
		if buckets[b] == nil {
			delete(x.cursors, b)
		}
	}
	done := 0
	for b, rules := range buckets {
		n, err := x.bucket(ctx, b, rules, guard)
		done += n
		if errors.Is(err, meta.ErrNoSuchBucket) { // deleted meanwhile
			continue
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (x *Lifecycle) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

// lcEntry is a version with what the rules judge besides its record.
type lcEntry struct {
	meta.VersionEntry
	since time.Time // when it became noncurrent (the newer version's write); zero if latest or unknown
	rank  int       // 1 for the key's newest noncurrent version; 0 when latest or unknown
}

func (x *Lifecycle) bucket(ctx context.Context, bucket string, rules []meta.LifecycleRule, guard []clientv3.Cmp) (int, error) {
	done := 0
	now := x.now()
	for i := range rules {
		r := &rules[i]
		if !r.Enabled || r.AbortDays <= 0 {
			continue
		}
		ups, err := x.Meta.StaleUploadsOf(ctx, bucket, r.Prefix, now.AddDate(0, 0, -r.AbortDays), lifecycleUploads)
		if err != nil {
			return done, err
		}
		for _, u := range ups {
			switch err := x.Meta.AbortUpload(ctx, u, guard...); {
			case err == nil, errors.Is(err, meta.ErrPartsPending):
				x.count(&done)
				x.Log.Info("lifecycle: aborted an incomplete multipart upload", "bucket", bucket, "key", u.Key, "upload", u.ID, "rule", r.ID)
			case errors.Is(err, meta.ErrNoSuchUpload):
			default:
				return done, err
			}
		}
	}

	cur := x.cursors[bucket]
	var pending *lcEntry
	var prev *meta.VersionEntry
	rank, scanned := 0, 0
	for scanned < lifecycleScanned {
		res, err := x.Meta.ListVersions(ctx, bucket, "", "", cur.key, cur.version, false, lifecyclePage)
		if err != nil {
			return done, err
		}
		for i := range res.Versions {
			v := res.Versions[i]
			e := &lcEntry{VersionEntry: v}
			if prev != nil && prev.Key == v.Key {
				rank++
				e.since, e.rank = prev.Object.Modified, rank
			} else {
				rank = 0
			}
			if pending != nil {
				if err := x.judge(ctx, bucket, rules, pending, &v, true, now, guard, &done); err != nil {
					return done, err
				}
			}
			pending, prev = e, &res.Versions[i]
		}
		scanned += len(res.Versions)
		if !res.Truncated {
			if pending != nil {
				if err := x.judge(ctx, bucket, rules, pending, nil, true, now, guard, &done); err != nil {
					return done, err
				}
			}
			delete(x.cursors, bucket)
			return done, nil
		}
		cur = lcCursor{res.NextKey, res.NextVersion}
	}
	// Stopped at the bound: the last version read is judged without knowing what follows it
	// (a delete marker's loneliness waits for a later pass); the next round continues after it,
	// where the versions of a key begun here have no known rank and wait for a later pass too.
	if pending != nil {
		if err := x.judge(ctx, bucket, rules, pending, nil, false, now, guard, &done); err != nil {
			return done, err
		}
	}
	x.cursors[bucket] = cur
	return done, nil
}

// judge applies the rules to one version; next is the version listed after it (nil: none),
// when nextKnown.
func (x *Lifecycle) judge(ctx context.Context, bucket string, rules []meta.LifecycleRule, e *lcEntry, next *meta.VersionEntry, nextKnown bool, now time.Time, guard []clientv3.Cmp, done *int) error {
	o := e.Object
	for i := range rules {
		r := &rules[i]
		if !r.Matches(e.Key, o) {
			continue
		}
		opt := meta.DeleteOptions{Grace: x.Grace, Guard: guard}
		switch {
		case e.Latest && !o.DeleteMarker && r.CurrentExpired(o.Modified, now):
			// Version "" deletes the key: a delete marker in a versioned bucket.
		case e.Latest && o.DeleteMarker && r.ExpiredDeleteMarker && nextKnown && (next == nil || next.Key != e.Key):
			opt.Version = o.VersionID()
		case !e.Latest && e.rank > r.NewerNoncurrent && r.NoncurrentDays > 0 && !e.since.IsZero() &&
			!now.Before(meta.ExpiryDay(e.since, r.NoncurrentDays)):
			opt.Version = o.VersionID()
		default:
			continue
		}
		_, err := x.Meta.DeleteVersion(ctx, bucket, e.Key, opt)
		switch {
		case errors.Is(err, meta.ErrLocked):
			x.Log.Debug("lifecycle: a version under object lock stays", "bucket", bucket, "key", e.Key, "version", o.VersionID(), "rule", r.ID)
			return nil
		case err != nil:
			return err
		}
		x.count(done)
		x.Log.Info("lifecycle: expired", "bucket", bucket, "key", e.Key, "version", o.VersionID(), "delete_marker", o.DeleteMarker, "rule", r.ID)
		return nil
	}
	return nil
}

func (x *Lifecycle) count(done *int) {
	*done++
	if x.Expired != nil {
		x.Expired.Inc()
	}
}
