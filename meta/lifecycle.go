package meta

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// LifecycleRule is one rule of a bucket's lifecycle configuration (S3 lifecycle expiration;
// transitions to other storage classes do not exist here). It lives in the bucket's
// configuration (BucketConfig.Lifecycle); the active master applies it (controller/gc).
type LifecycleRule struct {
	ID string `json:"id"`
	// LegacyPrefix: the rule named its prefix outside a Filter (as it is given back).
	LegacyPrefix bool              `json:"legacy_prefix,omitempty"`
	Enabled      bool              `json:"enabled"`
	Prefix       string            `json:"prefix,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"` // every one must be on the object
	// Objects larger or smaller than these (bytes; 0: no bound) only.
	SizeGreater int64 `json:"size_greater,omitempty"`
	SizeLess    int64 `json:"size_less,omitempty"`
	// Expiration of the current version: Days after it was written, or on Date.
	ExpireDays int       `json:"expire_days,omitempty"`
	ExpireDate time.Time `json:"expire_date,omitzero"`
	// ExpiredDeleteMarker removes a delete marker that is the only version of its key.
	ExpiredDeleteMarker bool `json:"expired_delete_marker,omitempty"`
	// NoncurrentDays removes a noncurrent version that many days after it became noncurrent,
	// keeping the NewerNoncurrent newest noncurrent versions whatever their age.
	NoncurrentDays  int `json:"noncurrent_days,omitempty"`
	NewerNoncurrent int `json:"newer_noncurrent,omitempty"`
	// AbortDays aborts a multipart upload that many days after it began.
	AbortDays int `json:"abort_days,omitempty"`
}

// Matches reports whether the rule applies to key's version o.
func (r *LifecycleRule) Matches(key string, o *Object) bool {
	if !r.Enabled || !strings.HasPrefix(key, r.Prefix) {
		return false
	}
	for k, v := range r.Tags {
		if t, ok := o.Tags[k]; !ok || t != v {
			return false
		}
	}
	if r.SizeGreater > 0 && o.Size <= r.SizeGreater || r.SizeLess > 0 && o.Size >= r.SizeLess {
		return false
	}
	return true
}

// CurrentExpired reports whether the rule expires a current version written at modified.
func (r *LifecycleRule) CurrentExpired(modified, now time.Time) bool {
	switch {
	case r.ExpireDays > 0:
		return !now.Before(ExpiryDay(modified, r.ExpireDays))
	case !r.ExpireDate.IsZero():
		return !now.Before(r.ExpireDate)
	}
	return false
}

// Expiry returns when rules expire key's current version o, and the rule that does: the
// earliest of the enabled rules with an expiration (Days or Date) that match it, as S3 names it
// in the x-amz-expiration header. ok is false when none does.
func Expiry(rules []LifecycleRule, key string, o *Object) (at time.Time, ruleID string, ok bool) {
	for i := range rules {
		r := &rules[i]
		var t time.Time
		switch {
		case r.ExpireDays > 0:
			t = ExpiryDay(o.Modified, r.ExpireDays)
		case !r.ExpireDate.IsZero():
			t = r.ExpireDate
		default:
			continue
		}
		if r.Matches(key, o) && (!ok || t.Before(at)) {
			at, ruleID, ok = t, r.ID, true
		}
	}
	return at, ruleID, ok
}

// ExpiryDay is when an object written at modified expires after days: S3 rounds up to the
// next midnight UTC.
func ExpiryDay(modified time.Time, days int) time.Time {
	d := modified.UTC().Truncate(24*time.Hour).AddDate(0, 0, days)
	if d.Before(modified.AddDate(0, 0, days)) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// StaleUploadsOf lists up to max uploads of bucket under prefix begun before cutoff.
func (s *Store) StaleUploadsOf(ctx context.Context, bucket, prefix string, cutoff time.Time, max int) ([]*Upload, error) {
	from := UploadPrefix + bucket + "/" + prefix
	var out []*Upload
	err := s.rangeStream(ctx, from, clientv3.GetPrefixRangeEnd(from), 0, false, func(kv *mvccpb.KeyValue) (bool, error) {
		u, err := DecodeUpload(kv.Value)
		if err != nil {
			return false, fmt.Errorf("upload %s: %w", kv.Key, err)
		}
		if u.Initiated.Before(cutoff) {
			out = append(out, u)
		}
		return len(out) < max, nil
	})
	return out, err
}

// LifecycleBuckets returns the buckets that have lifecycle rules, with their rules: one scan of
// the configurations (only buckets ever versioned or configured have one).
func (s *Store) LifecycleBuckets(ctx context.Context) (map[string][]LifecycleRule, error) {
	out := map[string][]LifecycleRule{}
	err := s.scan(ctx, ConfigPrefix, clientv3.GetPrefixRangeEnd(ConfigPrefix), func(kv *mvccpb.KeyValue) (bool, error) {
		name := string(kv.Key[len(ConfigPrefix):])
		cfg, _, err := decodeConfig(name, []*mvccpb.KeyValue{kv})
		if err != nil {
			return false, err
		}
		if len(cfg.Lifecycle) > 0 {
			out[name] = cfg.Lifecycle
		}
		return true, nil
	})
	return out, err
}
