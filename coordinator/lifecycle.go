package coordinator

import (
	"net/http"
	"time"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

// Bucket lifecycle configuration (Put/Get/DeleteBucketLifecycleConfiguration): the rules are
// kept in the bucket's configuration and applied by the active master (controller/gc). Only
// expiration exists: a rule asking for a transition to another storage class is refused with
// 501, never stored.

const maxLifecycleRules = 1000

func (c *Coordinator) bucketLifecycle(rq *request) error {
	ctx := rq.r.Context()
	switch rq.r.Method {
	case http.MethodGet:
		cfg, err := c.meta.GetBucketConfig(ctx, rq.bucket)
		if err != nil {
			return err
		}
		if len(cfg.Lifecycle) == 0 {
			return s3.ErrorFor(s3.CodeNoSuchLifecycleConfiguration, "")
		}
		out := s3.LifecycleConfiguration{Xmlns: s3.Namespace}
		for i := range cfg.Lifecycle {
			out.Rules = append(out.Rules, lifecycleRuleXML(&cfg.Lifecycle[i]))
		}
		return s3.WriteXML(rq.w, http.StatusOK, out)
	case http.MethodDelete:
		err := c.meta.UpdateBucketConfig(ctx, rq.bucket, func(cfg *meta.BucketConfig) error {
			cfg.Lifecycle = nil
			return nil
		})
		c.configs.forget(rq.bucket)
		if err != nil {
			return err
		}
		rq.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	var in s3.LifecycleConfiguration
	if err := s3.DecodeXML(body, 1<<20, &in); err != nil {
		return err
	}
	rules, err := lifecycleRules(in.Rules)
	if err != nil {
		return err
	}
	err = c.meta.UpdateBucketConfig(ctx, rq.bucket, func(cfg *meta.BucketConfig) error {
		cfg.Lifecycle = rules
		return nil
	})
	c.configs.forget(rq.bucket)
	if err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// setExpiration sets the x-amz-expiration header of a response about key's current version o
// when a lifecycle rule of the bucket expires it, as S3 does: the expiry date (midnight UTC)
// and the rule's id. Failing to read the rules leaves the header out (and is logged): the
// object's own answer does not depend on it.
func (c *Coordinator) setExpiration(rq *request, key string, o *meta.Object) {
	cfg, err := c.configs.get(rq.r.Context(), rq.bucket)
	if err != nil {
		c.log.Warn("reading a bucket's lifecycle rules for x-amz-expiration", "bucket", rq.bucket, "request", rq.id, "err", err)
		return
	}
	if at, id, ok := meta.Expiry(cfg.Lifecycle, key, o); ok {
		rq.w.Header().Set("X-Amz-Expiration", `expiry-date="`+at.UTC().Format(http.TimeFormat)+`", rule-id="`+id+`"`)
	}
}

// lifecycleRules checks a configuration's rules as S3 does and converts them.
func lifecycleRules(in []s3.LifecycleRule) ([]meta.LifecycleRule, error) {
	if len(in) == 0 || len(in) > maxLifecycleRules {
		return nil, s3.ErrorFor(s3.CodeMalformedXML, "")
	}
	ids := map[string]bool{}
	out := make([]meta.LifecycleRule, 0, len(in))
	for _, x := range in {
		if len(x.Transitions) > 0 || len(x.NoncurrentVersionTransitions) > 0 {
			// A malformed one is the client's error first, as AWS answers it.
			for _, tr := range x.Transitions {
				if tr.Date != nil {
					if _, err := lifecycleDate(*tr.Date); err != nil {
						return nil, err
					}
				}
			}
			return nil, s3.ErrorFor(s3.CodeNotImplemented, "lifecycle transitions to other storage classes are not implemented by hanode")
		}
		r := meta.LifecycleRule{ID: x.ID}
		if r.ID == "" {
			r.ID = meta.NewWriteID()
		}
		if len(r.ID) > 255 {
			return nil, s3.ErrorFor(s3.CodeInvalidArgument, "ID length should not exceed allowed limit of 255")
		}
		if ids[r.ID] {
			return nil, s3.ErrorFor(s3.CodeInvalidArgument, "Rule ID must be unique. Found same ID for more than one rule")
		}
		ids[r.ID] = true
		switch x.Status {
		case "Enabled":
			r.Enabled = true
		case "Disabled":
		default:
			return nil, s3.ErrorFor(s3.CodeMalformedXML, "")
		}
		switch {
		case x.Prefix != nil && x.Filter != nil:
			return nil, s3.ErrorFor(s3.CodeMalformedXML, "")
		case x.Prefix != nil:
			r.Prefix, r.LegacyPrefix = *x.Prefix, true
		case x.Filter != nil:
			if err := lifecycleFilter(x.Filter, &r); err != nil {
				return nil, err
			}
		}
		actions := 0
		if e := x.Expiration; e != nil {
			n := 0
			if e.Days != nil {
				if *e.Days <= 0 {
					return nil, s3.ErrorFor(s3.CodeInvalidArgument, "'Days' for Expiration action must be a positive integer")
				}
				r.ExpireDays = *e.Days
				n++
			}
			if e.Date != nil {
				d, err := lifecycleDate(*e.Date)
				if err != nil {
					return nil, err
				}
				r.ExpireDate = d
				n++
			}
			if e.ExpiredObjectDeleteMarker != nil {
				r.ExpiredDeleteMarker = *e.ExpiredObjectDeleteMarker
				n++
			}
			if n != 1 {
				return nil, s3.ErrorFor(s3.CodeMalformedXML, "")
			}
			actions++
		}
		if nv := x.NoncurrentVersionExpiration; nv != nil {
			if nv.NoncurrentDays == nil || *nv.NoncurrentDays <= 0 {
				return nil, s3.ErrorFor(s3.CodeInvalidArgument, "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer")
			}
			r.NoncurrentDays = *nv.NoncurrentDays
			if nv.NewerNoncurrentVersions != nil {
				if *nv.NewerNoncurrentVersions <= 0 {
					return nil, s3.ErrorFor(s3.CodeInvalidArgument, "'NewerNoncurrentVersions' must be a positive integer")
				}
				r.NewerNoncurrent = *nv.NewerNoncurrentVersions
			}
			actions++
		}
		if a := x.AbortIncompleteMultipartUpload; a != nil {
			if a.DaysAfterInitiation == nil || *a.DaysAfterInitiation <= 0 {
				return nil, s3.ErrorFor(s3.CodeInvalidArgument, "'DaysAfterInitiation' must be a positive integer")
			}
			r.AbortDays = *a.DaysAfterInitiation
			actions++
		}
		if actions == 0 {
			return nil, s3.ErrorFor(s3.CodeMalformedXML, "")
		}
		out = append(out, r)
	}
	return out, nil
}

// lifecycleDate reads a rule's date: ISO 8601, at midnight UTC.
func lifecycleDate(v string) (time.Time, error) {
	d, err := time.Parse(time.RFC3339, v)
	if err != nil {
		d, err = time.Parse(time.DateOnly, v)
	}
	if err != nil || !d.UTC().Equal(d.UTC().Truncate(24*time.Hour)) {
		return time.Time{}, s3.ErrorFor(s3.CodeInvalidArgument, "'Date' must be at midnight GMT")
	}
	return d.UTC(), nil
}

func lifecycleFilter(f *s3.LifecycleFilter, r *meta.LifecycleRule) error {
	set := 0
	if f.Prefix != nil {
		r.Prefix = *f.Prefix
		set++
	}
	if f.Tag != nil {
		r.Tags = map[string]string{f.Tag.Key: f.Tag.Value}
		set++
	}
	if f.ObjectSizeGreaterThan != nil {
		r.SizeGreater = *f.ObjectSizeGreaterThan
		set++
	}
	if f.ObjectSizeLessThan != nil {
		r.SizeLess = *f.ObjectSizeLessThan
		set++
	}
	if a := f.And; a != nil {
		if a.Prefix != nil {
			r.Prefix = *a.Prefix
		}
		for _, t := range a.Tags {
			if r.Tags == nil {
				r.Tags = map[string]string{}
			}
			r.Tags[t.Key] = t.Value
		}
		if a.ObjectSizeGreaterThan != nil {
			r.SizeGreater = *a.ObjectSizeGreaterThan
		}
		if a.ObjectSizeLessThan != nil {
			r.SizeLess = *a.ObjectSizeLessThan
		}
		set++
	}
	if set > 1 { // several conditions go under And
		return s3.ErrorFor(s3.CodeMalformedXML, "")
	}
	return nil
}

// lifecycleRuleXML gives a stored rule back as it was set.
func lifecycleRuleXML(r *meta.LifecycleRule) s3.LifecycleRule {
	out := s3.LifecycleRule{ID: r.ID, Status: "Disabled"}
	if r.Enabled {
		out.Status = "Enabled"
	}
	if r.LegacyPrefix {
		p := r.Prefix
		out.Prefix = &p
	} else {
		f := &s3.LifecycleFilter{}
		conds := 0
		if r.Prefix != "" {
			conds++
		}
		conds += len(r.Tags)
		if r.SizeGreater > 0 {
			conds++
		}
		if r.SizeLess > 0 {
			conds++
		}
		if conds > 1 {
			a := &s3.LifecycleFilterAnd{}
			if r.Prefix != "" {
				p := r.Prefix
				a.Prefix = &p
			}
			for k, v := range r.Tags {
				a.Tags = append(a.Tags, s3.Tag{Key: k, Value: v})
			}
			if r.SizeGreater > 0 {
				a.ObjectSizeGreaterThan = &r.SizeGreater
			}
			if r.SizeLess > 0 {
				a.ObjectSizeLessThan = &r.SizeLess
			}
			f.And = a
		} else {
			p := r.Prefix
			f.Prefix = &p
			for k, v := range r.Tags {
				f.Tag, f.Prefix = &s3.Tag{Key: k, Value: v}, nil
			}
			if r.SizeGreater > 0 {
				f.ObjectSizeGreaterThan, f.Prefix = &r.SizeGreater, nil
			}
			if r.SizeLess > 0 {
				f.ObjectSizeLessThan, f.Prefix = &r.SizeLess, nil
			}
		}
		out.Filter = f
	}
	switch {
	case r.ExpireDays > 0:
		d := r.ExpireDays
		out.Expiration = &s3.LifecycleExpiration{Days: &d}
	case !r.ExpireDate.IsZero():
		d := r.ExpireDate.Format("2006-01-02T15:04:05.000Z")
		out.Expiration = &s3.LifecycleExpiration{Date: &d}
	case r.ExpiredDeleteMarker:
		t := true
		out.Expiration = &s3.LifecycleExpiration{ExpiredObjectDeleteMarker: &t}
	}
	if r.NoncurrentDays > 0 {
		nd := r.NoncurrentDays
		nv := &s3.NoncurrentVersionExpiration{NoncurrentDays: &nd}
		if r.NewerNoncurrent > 0 {
			nn := r.NewerNoncurrent
			nv.NewerNoncurrentVersions = &nn
		}
		out.NoncurrentVersionExpiration = nv
	}
	if r.AbortDays > 0 {
		ad := r.AbortDays
		out.AbortIncompleteMultipartUpload = &s3.AbortIncompleteMultipartUpload{DaysAfterInitiation: &ad}
	}
	return out
}
