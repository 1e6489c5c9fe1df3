package coordinator

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/security/s3access"
)

// opLevel is the access level each S3 operation on a bucket needs (security/s3access). An
// operation that is not here is refused to everyone but root; ListBuckets and CreateBucket
// need no bucket access (any user may create a bucket, and owns it).
var opLevel = map[string]s3access.Level{
	"HeadBucket":              s3access.Read,
	"GetBucketLocation":       s3access.Read,
	"GetBucketVersioning":     s3access.Read,
	"ListObjects":             s3access.Read,
	"ListObjectsV2":           s3access.Read,
	"ListObjectVersions":      s3access.Read,
	"GetObject":               s3access.Read,
	"HeadObject":              s3access.Read,
	"GetObjectTagging":        s3access.Read,
	"PutObjectTagging":        s3access.Write,
	"DeleteObjectTagging":     s3access.Write,
	"ListMultipartUploads":    s3access.Write,
	"ListParts":               s3access.Write,
	"PutObject":               s3access.Write,
	"CopyObject":              s3access.Write,
	"UploadPart":              s3access.Write,
	"UploadPartCopy":          s3access.Write,
	"CreateMultipartUpload":   s3access.Write,
	"CompleteMultipartUpload": s3access.Write,
	"AbortMultipartUpload":    s3access.Write,
	"DeleteObject":            s3access.Write,
	"DeleteObjects":           s3access.Write,
	"DeleteBucket":            s3access.Owner,
	"PutBucketPolicy":         s3access.Owner,
	"GetBucketPolicy":         s3access.Owner,
	"DeleteBucketPolicy":      s3access.Owner,
	"PutBucketEncryption":     s3access.Owner,
	"GetBucketEncryption":     s3access.Owner,
	"DeleteBucketEncryption":  s3access.Owner,
	// versioning.go, objectlock.go
	"PutBucketVersioning":        s3access.Owner,
	"GetObjectLockConfiguration": s3access.Read,
	"PutObjectLockConfiguration": s3access.Owner,
	"GetObjectRetention":         s3access.Read,
	"PutObjectRetention":         s3access.Write,
	"GetObjectLegalHold":         s3access.Read,
	"PutObjectLegalHold":         s3access.Write,
	// lifecycle.go
	"GetBucketLifecycleConfiguration": s3access.Read,
	"PutBucketLifecycleConfiguration": s3access.Owner,
	"DeleteBucketLifecycle":           s3access.Owner,
}

func accessDenied() error { return s3.ErrorFor(s3.CodeAccessDenied, "") }

// authorize checks an authenticated request against the grants of its bucket (and, for a
// copy, read access to the source bucket). A missing bucket is NoSuchBucket, as in S3.
func (c *Coordinator) authorize(rq *request) error {
	ctx, ak := rq.r.Context(), rq.auth.AccessKey
	root, err := c.keys.isRoot(ctx, ak)
	if err != nil {
		return err
	}
	rq.root = root
	if rq.op == "ListBuckets" || rq.op == "CreateBucket" {
		return nil
	}
	need, ok := opLevel[rq.op]
	if !ok && !root {
		return c.deny(rq, "operation")
	}
	b, err := c.authz.bucket(ctx, rq.bucket)
	if err != nil {
		return err
	}
	rq.access = &b
	if !b.Exists && !root {
		return s3.ErrorFor(s3.CodeNoSuchBucket, "")
	}
	if !b.Allows(ak, root, need) {
		return c.deny(rq, "grant")
	}
	if rq.op == "CopyObject" || rq.op == "UploadPartCopy" {
		sb, _, _, err := s3.ParseCopySource(rq.r.Header.Get("X-Amz-Copy-Source"))
		if err != nil {
			return err
		}
		src, err := c.authz.bucket(ctx, sb)
		if err != nil {
			return err
		}
		if !src.Exists && !root {
			return s3.ErrorFor(s3.CodeNoSuchBucket, "the copy source's bucket does not exist")
		}
		if !src.Allows(ak, root, s3access.Read) {
			return c.deny(rq, "grant")
		}
	}
	return nil
}

func (c *Coordinator) deny(rq *request, reason string) error {
	c.metrics.denied.WithLabelValues("authenticated", reason).Inc()
	c.log.Debug("s3 request denied", "op", rq.op, "bucket", rq.bucket, "access_key", rq.auth.AccessKey, "reason", reason, "request", rq.id)
	return accessDenied()
}

// authorizeAnonymous lets an anonymous request through only if its bucket's policy makes it
// public for this operation.
func (c *Coordinator) authorizeAnonymous(rq *request) error {
	if rq.bucket == "" {
		c.refuseAnonymous(rq, "operation")
		return accessDenied()
	}
	if !c.authz.cached(rq.bucket) && !missAllowed(c.keys.limit, rq.r.Context()) {
		c.refuseAnonymous(rq, "rate")
		return errSlowDown()
	}
	b, err := c.authz.bucket(rq.r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if !b.AnonymousAllows(rq.op) {
		c.refuseAnonymous(rq, "policy")
		return accessDenied()
	}
	rq.access = &b
	return nil
}

// refuseAnonymous counts a refused anonymous request and logs a sample of them (at most one
// a second per coordinator); nothing is stored.
func (c *Coordinator) refuseAnonymous(rq *request, reason string) {
	c.metrics.denied.WithLabelValues("anonymous", reason).Inc()
	if c.anonLog.Allow() {
		c.log.Info("anonymous s3 request refused (sampled: at most one logged a second)", "method", rq.r.Method, "bucket", rq.bucket,
			"remote", rq.r.RemoteAddr, "reason", reason)
	}
}

// bucketOwner is the owner S3 listings show: the bucket's owner, else the caller.
func (rq *request) bucketOwner() *s3.Owner {
	id := ""
	switch {
	case rq.access != nil && rq.access.Owner != "":
		id = rq.access.Owner
	case rq.auth != nil:
		id = rq.auth.AccessKey
	}
	return &s3.Owner{ID: id, DisplayName: id}
}

// --- bucket policy (public read only; security/s3access.ParsePolicy)

func (c *Coordinator) putBucketPolicy(rq *request) error {
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	doc, err := io.ReadAll(io.LimitReader(body, s3access.MaxPolicySize+1))
	if err != nil {
		return err
	}
	p, err := s3access.ParsePolicy(rq.bucket, doc)
	switch {
	case errors.Is(err, s3access.ErrUnsupportedPolicy):
		return s3.ErrorFor(s3.CodeNotImplemented, err.Error())
	case err != nil:
		return s3.ErrorFor(s3.CodeMalformedPolicy, err.Error())
	}
	if err := s3access.New(c.o.Etcd).PutPolicy(rq.r.Context(), rq.bucket, p); err != nil {
		if errors.Is(err, s3access.ErrNoSuchBucket) {
			return s3.ErrorFor(s3.CodeNoSuchBucket, "")
		}
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Coordinator) getBucketPolicy(rq *request) error {
	b, _, err := s3access.New(c.o.Etcd).Load(rq.r.Context(), rq.bucket)
	switch {
	case err != nil:
		return err
	case !b.Exists:
		return s3.ErrorFor(s3.CodeNoSuchBucket, "")
	case b.Policy == nil:
		return s3.ErrorFor(s3.CodeNoSuchBucketPolicy, "")
	}
	rq.w.Header().Set("Content-Type", "application/json")
	rq.w.WriteHeader(http.StatusOK)
	_, err = io.WriteString(rq.w, b.Policy.Document)
	return err
}

func (c *Coordinator) deleteBucketPolicy(rq *request) error {
	if err := s3access.New(c.o.Etcd).DeletePolicy(rq.r.Context(), rq.bucket); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

// anonLogEvery is how often a refused anonymous request may be logged.
const anonLogEvery = time.Second
