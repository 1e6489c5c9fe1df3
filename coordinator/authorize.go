package coordinator

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/security/s3access"
)

// opNeed is what lets a principal perform each S3 operation on a bucket (security/s3access):
// a grant level, a bucket or object ACL permission, or a bucket policy allowing its action.
// An operation that is not here is refused to everyone but root; ListBuckets and CreateBucket
// need no bucket access (any user may create a bucket, and owns it).
var opNeed = map[string]s3access.Need{
	"HeadBucket":                    {Level: s3access.Read, Bucket: s3access.PermRead, Action: "s3:ListBucket"},
	"GetBucketLocation":             {Level: s3access.Read, Action: "s3:GetBucketLocation"},
	"GetBucketVersioning":           {Level: s3access.Read, Action: "s3:GetBucketVersioning"},
	"ListObjects":                   {Level: s3access.Read, Bucket: s3access.PermRead, Action: "s3:ListBucket"},
	"ListObjectsV2":                 {Level: s3access.Read, Bucket: s3access.PermRead, Action: "s3:ListBucket"},
	"ListObjectVersions":            {Level: s3access.Read, Bucket: s3access.PermRead, Action: "s3:ListBucketVersions"},
	"GetObject":                     {Level: s3access.Read, Object: s3access.PermRead, Action: "s3:GetObject"},
	"HeadObject":                    {Level: s3access.Read, Object: s3access.PermRead, Action: "s3:GetObject"},
	"GetObjectAttributes":           {Level: s3access.Read, Object: s3access.PermRead, Action: "s3:GetObjectAttributes"},
	"GetObjectTagging":              {Level: s3access.Read, Object: s3access.PermRead, Action: "s3:GetObjectTagging"},
	"PutObjectTagging":              {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObjectTagging"},
	"DeleteObjectTagging":           {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:DeleteObjectTagging"},
	"ListMultipartUploads":          {Level: s3access.Write, Bucket: s3access.PermRead, Action: "s3:ListBucketMultipartUploads"},
	"ListParts":                     {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:ListMultipartUploadParts"},
	"PutObject":                     {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObject"},
	"PostObject":                    {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObject"},
	"CopyObject":                    {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObject"},
	"UploadPart":                    {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObject"},
	"UploadPartCopy":                {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObject"},
	"CreateMultipartUpload":         {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObject"},
	"CompleteMultipartUpload":       {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObject"},
	"AbortMultipartUpload":          {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:AbortMultipartUpload"},
	"DeleteObject":                  {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:DeleteObject"},
	"DeleteObjects":                 {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:DeleteObject"},
	"GetBucketAcl":                  {Level: s3access.Owner, Bucket: s3access.PermReadACP, Action: "s3:GetBucketAcl"},
	"PutBucketAcl":                  {Level: s3access.Owner, Bucket: s3access.PermWriteACP, Action: "s3:PutBucketAcl"},
	"GetObjectAcl":                  {Level: s3access.Owner, Object: s3access.PermReadACP, Action: "s3:GetObjectAcl"},
	"PutObjectAcl":                  {Level: s3access.Owner, Object: s3access.PermWriteACP, Action: "s3:PutObjectAcl"},
	"DeleteBucket":                  {Level: s3access.Owner, Action: "s3:DeleteBucket"},
	"PutBucketPolicy":               {Level: s3access.Owner, Action: "s3:PutBucketPolicy", OwnerAlways: true},
	"GetBucketPolicy":               {Level: s3access.Owner, Action: "s3:GetBucketPolicy", OwnerAlways: true},
	"DeleteBucketPolicy":            {Level: s3access.Owner, Action: "s3:DeleteBucketPolicy", OwnerAlways: true},
	"GetBucketPolicyStatus":         {Level: s3access.Owner, Action: "s3:GetBucketPolicyStatus"},
	"GetBucketCors":                 {Level: s3access.Owner, Action: "s3:GetBucketCORS"},
	"PutBucketCors":                 {Level: s3access.Owner, Action: "s3:PutBucketCORS"},
	"DeleteBucketCors":              {Level: s3access.Owner, Action: "s3:PutBucketCORS"},
	"GetBucketTagging":              {Level: s3access.Owner, Action: "s3:GetBucketTagging"},
	"PutBucketTagging":              {Level: s3access.Owner, Action: "s3:PutBucketTagging"},
	"DeleteBucketTagging":           {Level: s3access.Owner, Action: "s3:PutBucketTagging"},
	"GetPublicAccessBlock":          {Level: s3access.Owner, Action: "s3:GetBucketPublicAccessBlock"},
	"PutPublicAccessBlock":          {Level: s3access.Owner, Action: "s3:PutBucketPublicAccessBlock"},
	"DeletePublicAccessBlock":       {Level: s3access.Owner, Action: "s3:PutBucketPublicAccessBlock"},
	"GetBucketOwnershipControls":    {Level: s3access.Owner, Action: "s3:GetBucketOwnershipControls"},
	"PutBucketOwnershipControls":    {Level: s3access.Owner, Action: "s3:PutBucketOwnershipControls"},
	"DeleteBucketOwnershipControls": {Level: s3access.Owner, Action: "s3:PutBucketOwnershipControls"},
	"PutBucketEncryption":           {Level: s3access.Owner, Action: "s3:PutEncryptionConfiguration"},
	"GetBucketEncryption":           {Level: s3access.Owner, Action: "s3:GetEncryptionConfiguration"},
	"DeleteBucketEncryption":        {Level: s3access.Owner, Action: "s3:PutEncryptionConfiguration"},
	// versioning.go, objectlock.go
	"PutBucketVersioning":        {Level: s3access.Owner, Action: "s3:PutBucketVersioning"},
	"GetObjectLockConfiguration": {Level: s3access.Read, Action: "s3:GetBucketObjectLockConfiguration"},
	"PutObjectLockConfiguration": {Level: s3access.Owner, Action: "s3:PutBucketObjectLockConfiguration"},
	"GetObjectRetention":         {Level: s3access.Read, Object: s3access.PermRead, Action: "s3:GetObjectRetention"},
	"PutObjectRetention":         {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObjectRetention"},
	"GetObjectLegalHold":         {Level: s3access.Read, Object: s3access.PermRead, Action: "s3:GetObjectLegalHold"},
	"PutObjectLegalHold":         {Level: s3access.Write, Bucket: s3access.PermWrite, Action: "s3:PutObjectLegalHold"},
	// lifecycle.go
	"GetBucketLifecycleConfiguration": {Level: s3access.Read, Action: "s3:GetLifecycleConfiguration"},
	"PutBucketLifecycleConfiguration": {Level: s3access.Owner, Action: "s3:PutLifecycleConfiguration"},
	"DeleteBucketLifecycle":           {Level: s3access.Owner, Action: "s3:PutLifecycleConfiguration"},
}

// bucketChanged ends a request that changed a bucket's access settings: when the change (err)
// succeeded, this coordinator's cached decision data for the bucket is dropped (other
// coordinators learn it from their watch) and status is answered.
func (c *Coordinator) bucketChanged(rq *request, status int, err error) error {
	if err != nil {
		return err
	}
	c.authz.forget(rq.bucket)
	rq.w.WriteHeader(status)
	return nil
}

func accessDenied() error { return s3.ErrorFor(s3.CodeAccessDenied, "") }

// authorize decides a request (signed or anonymous) against its bucket's owner, grants, ACLs
// and policy (s3access.Bucket.Decide), and for a copy its right to read the source. A
// missing bucket is NoSuchBucket for signed requests, AccessDenied for anonymous ones.
func (c *Coordinator) authorize(rq *request) error {
	ctx, ak := rq.r.Context(), rq.auth.AccessKey
	anonymous := ak == ""
	if !anonymous {
		root, err := c.keys.isRoot(ctx, ak)
		if err != nil {
			return err
		}
		rq.root = root
	}
	if rq.op == "ListBuckets" || rq.op == "CreateBucket" {
		if anonymous {
			c.refuseAnonymous(rq, "operation")
			return accessDenied()
		}
		return nil
	}
	need, ok := opNeed[rq.op]
	if !ok && !rq.root {
		return c.refuse(rq, "operation")
	}
	if anonymous && !c.authz.cached(rq.bucket) && !missAllowed(c.keys.limit, ctx) {
		c.refuseAnonymous(rq, "rate")
		return errSlowDown()
	}
	b, err := c.authz.bucket(ctx, rq.bucket)
	if err != nil {
		return err
	}
	rq.access = &b
	corsHeaders(rq, &b)
	if !b.Exists && !rq.root {
		if anonymous {
			return c.refuse(rq, "policy")
		}
		return s3.ErrorFor(s3.CodeNoSuchBucket, "")
	}
	if err := checkExpectedOwner(rq, rq.r.Header.Get("X-Amz-Expected-Bucket-Owner"), &b); err != nil {
		return err
	}
	// DeleteObjects names its keys in its body: with a bucket policy, whose statements may
	// speak of keys, each key is decided as a DeleteObject (authorizeKey).
	if !rq.root && !(rq.op == "DeleteObjects" && b.Policy != nil) {
		ok, err := b.Decide(need, c.ask(rq, &b, rq.bucket, rq.key, versionID(rq)))
		if err != nil {
			return err
		}
		if !ok {
			return c.refuse(rq, "grant")
		}
	}
	if rq.op == "CopyObject" || rq.op == "UploadPartCopy" {
		sb, sk, sv, err := s3.ParseCopySource(rq.r.Header.Get("X-Amz-Copy-Source"))
		if err != nil {
			return err
		}
		src, err := c.authz.bucket(ctx, sb)
		if err != nil {
			return err
		}
		if !src.Exists && !rq.root {
			return s3.ErrorFor(s3.CodeNoSuchBucket, "the copy source's bucket does not exist")
		}
		if err := checkExpectedOwner(rq, rq.r.Header.Get("X-Amz-Source-Expected-Bucket-Owner"), &src); err != nil {
			return err
		}
		if !rq.root {
			ok, err := src.Decide(opNeed["GetObject"], c.ask(rq, &src, sb, sk, sv))
			if err != nil {
				return err
			}
			if !ok {
				return c.refuse(rq, "grant")
			}
		}
	}
	return nil
}

// checkExpectedOwner refuses a request whose x-amz-expected-bucket-owner (or, for a copy's
// source, x-amz-source-expected-bucket-owner) names someone other than the bucket's owner, as
// S3 does (403), whoever sends it. Owners are named by access key; a bucket made before owners
// existed is root's, and matches only a root caller naming itself.
func checkExpectedOwner(rq *request, want string, b *s3access.Bucket) error {
	if want == "" || !b.Exists || want == b.Owner || b.Owner == "" && rq.root && want == rq.auth.AccessKey {
		return nil
	}
	return s3.ErrorFor(s3.CodeAccessDenied, "the bucket is not owned by the expected bucket owner")
}

// authorizeKey decides one key of a DeleteObjects as a DeleteObject of that key, when the
// bucket has a policy (authorize decided the request as a whole otherwise).
func (c *Coordinator) authorizeKey(rq *request, key string) error {
	if rq.root || rq.access == nil || rq.access.Policy == nil {
		return nil
	}
	ok, err := rq.access.Decide(opNeed["DeleteObject"], c.ask(rq, rq.access, rq.bucket, key, ""))
	if err != nil {
		return err
	}
	if !ok {
		return c.refuse(rq, "grant")
	}
	return nil
}

// refuse counts and logs a refused request and returns AccessDenied.
func (c *Coordinator) refuse(rq *request, reason string) error {
	if rq.auth == nil || rq.auth.AccessKey == "" {
		c.refuseAnonymous(rq, reason)
		return accessDenied()
	}
	c.metrics.denied.WithLabelValues("authenticated", reason).Inc()
	c.log.Debug("s3 request denied", "op", rq.op, "bucket", rq.bucket, "access_key", rq.auth.AccessKey, "reason", reason, "request", rq.id)
	return accessDenied()
}

// ask describes rq to s3access.Bucket.Decide for version ("": the current one) of the object
// key of bucket: the condition values of the request, and that version's ACL and tags read
// (once) when needed.
func (c *Coordinator) ask(rq *request, b *s3access.Bucket, bucket, key, version string) s3access.Ask {
	var (
		loaded bool
		obj    *meta.Object
		lerr   error
	)
	load := func() (*meta.Object, error) { // the version the request names ("": the current one)
		if !loaded {
			loaded = true
			obj, lerr = c.meta.GetObjectVersion(rq.r.Context(), bucket, key, version)
			switch {
			case errors.Is(lerr, meta.ErrNoSuchKey), errors.Is(lerr, meta.ErrNoSuchVersion), errors.Is(lerr, meta.ErrInvalidVersion):
				obj, lerr = nil, nil
			case lerr == nil && obj.DeleteMarker:
				obj = nil
			}
		}
		return obj, lerr
	}
	a := s3access.Ask{Principal: rq.auth.AccessKey, Key: key}
	a.Value = func(k string) ([]string, bool, error) { return c.conditionValue(rq, k, key, load) }
	if key != "" {
		a.Object = func() (*meta.ACL, bool, error) {
			o, err := load()
			if err != nil || o == nil {
				return nil, false, err
			}
			// The handler serves the record it reads itself: it must still be one this
			// principal may read (a concurrent PUT may have replaced it).
			if bucket == rq.bucket && key == rq.key {
				rq.objectGate = func(acl *meta.ACL) bool {
					n := opNeed[rq.op]
					return b.ObjectPerms(acl, rq.auth.AccessKey)&n.Object == n.Object
				}
			}
			return o.ACL, true, nil
		}
	}
	return a
}

// recheckObject refuses to serve an object record whose ACL no longer lets the principal
// read it, when it was the object's ACL that allowed the request (see ask).
func (rq *request) recheckObject(obj *meta.Object) error {
	if rq.objectGate != nil && !rq.objectGate(obj.ACL) {
		return accessDenied()
	}
	return nil
}

// conditionValue answers a bucket policy's condition key (lower case) for rq.
func (c *Coordinator) conditionValue(rq *request, k, key string, load func() (*meta.Object, error)) ([]string, bool, error) {
	r := rq.r
	one := func(v string, ok bool) ([]string, bool, error) {
		if !ok {
			return nil, false, nil
		}
		return []string{v}, true, nil
	}
	header := func(name string) ([]string, bool, error) {
		vs := r.Header.Values(name)
		return vs, len(vs) > 0, nil
	}
	query := func(name string) ([]string, bool, error) {
		vs, ok := r.URL.Query()[name]
		return vs, ok, nil
	}
	switch {
	case k == "aws:sourceip":
		src := sourceOf(r.Context())
		if host, _, err := net.SplitHostPort(src); err == nil {
			src = host
		}
		return one(src, src != "")
	case k == "aws:securetransport":
		return one(strconv.FormatBool(r.TLS != nil), true)
	case k == "aws:useragent":
		return header("User-Agent")
	case k == "aws:referer":
		return header("Referer")
	case k == "aws:username" || k == "aws:userid":
		return one(rq.auth.AccessKey, rq.auth.AccessKey != "")
	case k == "aws:principaltype":
		if rq.auth.AccessKey == "" {
			return one("Anonymous", true)
		}
		return one("User", true)
	case k == "s3:prefix" || k == "s3:delimiter" || k == "s3:max-keys":
		return query(strings.TrimPrefix(k, "s3:"))
	case k == "s3:signatureversion":
		return one("AWS4-HMAC-SHA256", rq.auth.AccessKey != "")
	case k == "s3:authtype":
		switch {
		case rq.op == "PostObject":
			return one("POST", true)
		case rq.auth.Presigned:
			return one("REST-QUERY-STRING", true)
		}
		return one("REST-HEADER", rq.auth.AccessKey != "")
	case strings.HasPrefix(k, "s3:existingobjecttag/"):
		if key == "" {
			return nil, false, nil
		}
		o, err := load()
		if err != nil || o == nil {
			return nil, false, err
		}
		v, ok := o.Tags[k[len("s3:existingobjecttag/"):]]
		if !ok { // tag keys are case-sensitive; the condition key was lowered
			for tk, tv := range o.Tags {
				if strings.EqualFold(tk, k[len("s3:existingobjecttag/"):]) {
					v, ok = tv, true
				}
			}
		}
		return one(v, ok)
	case strings.HasPrefix(k, "s3:requestobjecttag/"):
		if rq.op == "PutObjectTagging" {
			return nil, false, s3.ErrorFor(s3.CodeNotImplemented, "s3:RequestObjectTag conditions on PutObjectTagging are not implemented by hanode")
		}
		tags, err := s3.ParseTaggingHeader(r.Header.Get("X-Amz-Tagging"))
		if err != nil {
			return nil, false, err
		}
		name := k[len("s3:requestobjecttag/"):]
		for tk, tv := range tags {
			if strings.EqualFold(tk, name) {
				return one(tv, true)
			}
		}
		return nil, false, nil
	case strings.HasPrefix(k, "s3:"):
		// s3:x-amz-acl, s3:x-amz-copy-source, s3:x-amz-grant-*, ...: the request header.
		return header(strings.TrimPrefix(k, "s3:"))
	}
	return nil, false, nil
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

// --- bucket policy (security/s3access.ParsePolicy)

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
	if blk := rq.access.Block; blk != nil && blk.BlockPublicPolicy && p.Public() {
		return s3.ErrorFor(s3.CodeAccessDenied, "the bucket's public access block refuses public policies")
	}
	if err := s3access.New(c.o.Etcd).PutPolicy(rq.r.Context(), rq.bucket, p); err != nil {
		if errors.Is(err, s3access.ErrNoSuchBucket) {
			return s3.ErrorFor(s3.CodeNoSuchBucket, "")
		}
		return err
	}
	c.authz.forget(rq.bucket)
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
	return c.bucketChanged(rq, http.StatusNoContent, s3access.New(c.o.Etcd).DeletePolicy(rq.r.Context(), rq.bucket))
}

// anonLogEvery is how often a refused anonymous request may be logged.
const anonLogEvery = time.Second

// getPolicyStatus answers whether the bucket is public: its policy allows anyone something
// unconditionally, or its ACL grants something to everyone or every authenticated user.
func (c *Coordinator) getPolicyStatus(rq *request) error {
	b, _, err := s3access.New(c.o.Etcd).Load(rq.r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	public := b.Policy != nil && b.Policy.Public() || b.ACLsEnabled() && s3access.Public(b.ACL)
	rq.w.Header().Set("Content-Type", "application/xml")
	rq.w.WriteHeader(http.StatusOK)
	_, err = io.WriteString(rq.w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<PolicyStatus xmlns="`+s3.Namespace+`"><IsPublic>`+strconv.FormatBool(public)+`</IsPublic></PolicyStatus>`)
	return err
}
