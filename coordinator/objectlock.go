package coordinator

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

// Object lock (meta/objectlock.go enforces it): a bucket created with object lock (its
// versioning enabled for good), its default retention, and each version's retention and legal
// hold, set when it is written (x-amz-object-lock-* headers) or afterwards (?retention,
// ?legal-hold). A request for object lock on a bucket without it is refused with InvalidRequest,
// as AWS does, never accepted and ignored.

// Upload headers under which CreateMultipartUpload keeps the lock the completed object gets.
const (
	lockModeHeader  = "x-amz-object-lock-mode"
	lockUntilHeader = "x-amz-object-lock-retain-until-date"
	lockHoldHeader  = "x-amz-object-lock-legal-hold"
)

func errNoLock() error {
	return s3.ErrorFor(s3.CodeInvalidRequest, "Bucket is missing Object Lock Configuration")
}

// createBucketRecord creates the bucket, with object lock (and versioning) when asked.
func (c *Coordinator) createBucketRecord(rq *request, b meta.Bucket) error {
	v := strings.TrimSpace(rq.r.Header.Get("X-Amz-Bucket-Object-Lock-Enabled"))
	switch {
	case v == "" || strings.EqualFold(v, "false"):
		return c.meta.CreateBucket(rq.r.Context(), b)
	case strings.EqualFold(v, "true"):
		return c.meta.CreateBucketWith(rq.r.Context(), b, meta.BucketConfig{Versioning: meta.VersioningEnabled, ObjectLock: true})
	}
	return s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-bucket-object-lock-enabled must be true or false")
}

// parseLock reads a lock from its three header values; ok says any was given.
func parseLock(mode, until, hold string) (lock meta.Lock, ok bool, err error) {
	if mode == "" && until == "" && hold == "" {
		return lock, false, nil
	}
	if (mode == "") != (until == "") {
		return lock, true, s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date must both be given")
	}
	if mode != "" {
		if mode != meta.LockGovernance && mode != meta.LockCompliance {
			return lock, true, s3.ErrorFor(s3.CodeInvalidArgument, "Unknown wormMode directive.")
		}
		t, perr := time.Parse(time.RFC3339Nano, until)
		if perr != nil {
			return lock, true, s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-object-lock-retain-until-date must be an ISO 8601 date")
		}
		if !t.After(time.Now()) {
			return lock, true, s3.ErrorFor(s3.CodeInvalidArgument, "The retain until date must be in the future!")
		}
		lock.Mode, lock.Until = mode, t.UTC()
	}
	switch hold {
	case "", "OFF":
	case "ON":
		lock.LegalHold = true
	default:
		return lock, true, s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-object-lock-legal-hold must be ON or OFF")
	}
	return lock, true, nil
}

// requestLock is the lock a write asks for in its headers; the bucket must have object lock.
func (c *Coordinator) requestLock(rq *request) (meta.Lock, error) {
	h := rq.r.Header
	lock, ok, err := parseLock(h.Get("X-Amz-Object-Lock-Mode"), h.Get("X-Amz-Object-Lock-Retain-Until-Date"), h.Get("X-Amz-Object-Lock-Legal-Hold"))
	if err != nil || !ok {
		return lock, err
	}
	cfg, err := c.meta.GetBucketConfig(rq.r.Context(), rq.bucket)
	if err != nil {
		return lock, err
	}
	if !cfg.ObjectLock {
		return lock, errNoLock()
	}
	return lock, nil
}

// uploadLock keeps a CreateMultipartUpload's lock headers with the upload (checked like a
// PutObject's), for the completion to give the object.
func (c *Coordinator) uploadLock(rq *request, headers map[string]string) error {
	if _, err := c.requestLock(rq); err != nil {
		return err
	}
	for _, k := range []string{lockModeHeader, lockUntilHeader, lockHoldHeader} {
		if v := rq.r.Header.Get(k); v != "" {
			headers[k] = v
		}
	}
	return nil
}

// completedLock takes the lock an upload's headers carry out of them (they are not response
// headers of the object).
func completedLock(headers map[string]string) (meta.Lock, map[string]string) {
	mode, until, hold := headers[lockModeHeader], headers[lockUntilHeader], headers[lockHoldHeader]
	if mode == "" && until == "" && hold == "" {
		return meta.Lock{}, headers
	}
	out := make(map[string]string, len(headers))
	for k, v := range headers {
		if k != lockModeHeader && k != lockUntilHeader && k != lockHoldHeader {
			out[k] = v
		}
	}
	var lock meta.Lock
	if t, err := time.Parse(time.RFC3339Nano, until); err == nil && mode != "" {
		lock.Mode, lock.Until = mode, t.UTC()
	}
	lock.LegalHold = hold == "ON"
	return lock, out
}

// lockHeaders describes a version's lock on a read.
func lockHeaders(h http.Header, l meta.Lock) {
	if l.Mode != "" {
		h.Set("X-Amz-Object-Lock-Mode", l.Mode)
		h.Set("X-Amz-Object-Lock-Retain-Until-Date", l.Until.UTC().Format(s3.TimeFormat))
	}
	if l.LegalHold {
		h.Set("X-Amz-Object-Lock-Legal-Hold", "ON")
	}
}

func (c *Coordinator) objectLockConfiguration(rq *request) error {
	ctx := rq.r.Context()
	if rq.r.Method == http.MethodGet {
		cfg, err := c.meta.GetBucketConfig(ctx, rq.bucket)
		if err != nil {
			return err
		}
		if !cfg.ObjectLock {
			return s3.ErrorFor(s3.CodeObjectLockConfigNotFound, "")
		}
		out := s3.ObjectLockConfiguration{Xmlns: s3.Namespace, ObjectLockEnabled: "Enabled"}
		if r := cfg.DefaultRetention; r != nil {
			d := &s3.DefaultRetention{Mode: r.Mode}
			if r.Days > 0 {
				d.Days = &r.Days
			}
			if r.Years > 0 {
				d.Years = &r.Years
			}
			out.Rule = &s3.ObjectLockRule{DefaultRetention: d}
		}
		return s3.WriteXML(rq.w, http.StatusOK, out)
	}
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	var in s3.ObjectLockConfiguration
	if err := s3.DecodeXML(body, 64<<10, &in); err != nil {
		return err
	}
	if in.ObjectLockEnabled != "Enabled" {
		return s3.ErrorFor(s3.CodeMalformedXML, "")
	}
	var def *meta.DefaultRetention
	if in.Rule != nil {
		d := in.Rule.DefaultRetention
		switch {
		case d == nil || d.Mode != meta.LockGovernance && d.Mode != meta.LockCompliance:
			return s3.ErrorFor(s3.CodeMalformedXML, "")
		case (d.Days == nil) == (d.Years == nil):
			return s3.ErrorFor(s3.CodeMalformedXML, "")
		case d.Days != nil && *d.Days <= 0, d.Years != nil && *d.Years <= 0:
			return s3.ErrorFor(s3.CodeInvalidRetentionPeriod, "")
		}
		def = &meta.DefaultRetention{Mode: d.Mode}
		if d.Days != nil {
			def.Days = *d.Days
		} else {
			def.Years = *d.Years
		}
	}
	err = c.meta.UpdateBucketConfig(ctx, rq.bucket, func(cfg *meta.BucketConfig) error {
		// AWS lets an existing bucket take object lock once its versioning is enabled.
		if cfg.Versioning != meta.VersioningEnabled {
			return s3.ErrorFor(s3.CodeInvalidBucketState, "object lock needs versioning enabled on the bucket")
		}
		cfg.ObjectLock, cfg.DefaultRetention = true, def
		return nil
	})
	if err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// lockedBucket checks that the request's bucket has object lock.
func (c *Coordinator) lockedBucket(rq *request) error {
	cfg, err := c.meta.GetBucketConfig(rq.r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if !cfg.ObjectLock {
		return errNoLock()
	}
	return nil
}

func (c *Coordinator) objectRetention(rq *request) error {
	ctx := rq.r.Context()
	if err := c.lockedBucket(rq); err != nil {
		return err
	}
	if rq.r.Method == http.MethodGet {
		obj, err := c.namedVersion(rq)
		if err != nil {
			return err
		}
		if obj.Lock.Mode == "" {
			return s3.ErrorFor(s3.CodeNoSuchObjectLockConfig, "")
		}
		return s3.WriteXML(rq.w, http.StatusOK, s3.Retention{Xmlns: s3.Namespace, Mode: obj.Lock.Mode, RetainUntilDate: &s3.RetainUntil{Time: obj.Lock.Until}})
	}
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	var in s3.Retention
	if err := s3.DecodeXML(body, 64<<10, &in); err != nil {
		return err
	}
	if in.Mode != "" && in.Mode != meta.LockGovernance && in.Mode != meta.LockCompliance || (in.Mode == "") != (in.RetainUntilDate == nil) {
		return s3.ErrorFor(s3.CodeMalformedXML, "")
	}
	var want meta.Lock
	if in.Mode != "" {
		want.Mode, want.Until = in.Mode, in.RetainUntilDate.UTC()
		if !want.Until.After(time.Now()) {
			return s3.ErrorFor(s3.CodeInvalidArgument, "The retain until date must be in the future!")
		}
	}
	bypass := rq.bypassGovernance()
	err = c.meta.UpdateVersion(ctx, rq.bucket, rq.key, versionID(rq), func(o *meta.Object) error {
		if err := retentionChange(o.Lock, want, time.Now(), bypass); err != nil {
			return err
		}
		o.Lock.Mode, o.Lock.Until = want.Mode, want.Until
		return nil
	})
	if err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// retentionChange says whether a version's running retention may become want: it may always
// be extended in its mode; COMPLIANCE may never be shortened, removed or changed; GOVERNANCE
// only with the bypass.
func retentionChange(cur, want meta.Lock, now time.Time, bypass bool) error {
	if !cur.Retained(now) {
		return nil
	}
	if want.Mode == cur.Mode && !want.Until.Before(cur.Until) {
		return nil
	}
	if cur.Mode == meta.LockGovernance && bypass {
		return nil
	}
	return s3.ErrorFor(s3.CodeAccessDenied, "the object version's retention may only be extended")
}

func (c *Coordinator) objectLegalHold(rq *request) error {
	ctx := rq.r.Context()
	if err := c.lockedBucket(rq); err != nil {
		return err
	}
	if rq.r.Method == http.MethodGet {
		obj, err := c.namedVersion(rq)
		if err != nil {
			return err
		}
		status := "OFF"
		if obj.Lock.LegalHold {
			status = "ON"
		}
		return s3.WriteXML(rq.w, http.StatusOK, s3.LegalHold{Xmlns: s3.Namespace, Status: status})
	}
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	var in s3.LegalHold
	if err := s3.DecodeXML(body, 64<<10, &in); err != nil {
		return err
	}
	if in.Status != "ON" && in.Status != "OFF" {
		return s3.ErrorFor(s3.CodeMalformedXML, "")
	}
	err = c.meta.UpdateVersion(ctx, rq.bucket, rq.key, versionID(rq), func(o *meta.Object) error {
		o.Lock.LegalHold = in.Status == "ON"
		return nil
	})
	if errors.Is(err, meta.ErrDeleteMarker) {
		return s3.ErrorFor(s3.CodeMethodNotAllowed, "")
	}
	if err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}
