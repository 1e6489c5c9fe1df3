package coordinator

import (
	"context"
	"fmt"
	"net/http"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/security/s3access"
)

// S3 ACLs of buckets and objects (security/s3access evaluates them; docs/security.md).

// ownerOnly is an ACL that says what the default one does: the owner alone, FULL_CONTROL.
// Such an ACL is stored as none (nil).
func ownerOnly(grants []meta.Grant, owner string) bool {
	return len(grants) == 1 && grants[0].Grantee == owner && grants[0].Permission == "FULL_CONTROL"
}

// checkGrantees refuses grants to access keys that do not exist (InvalidArgument, as S3 does
// for an unknown canonical id).
func (c *Coordinator) checkGrantees(ctx context.Context, grants []meta.Grant) error {
	seen := map[string]bool{}
	for _, g := range grants {
		if g.Grantee == meta.GroupAllUsers || g.Grantee == meta.GroupAuthenticatedUsers || seen[g.Grantee] {
			continue
		}
		seen[g.Grantee] = true
		resp, err := c.o.Etcd.Get(ctx, meta.UserPrefix+g.Grantee, clientv3.WithCountOnly())
		if err != nil {
			return fmt.Errorf("look up the grantee %s: %w", g.Grantee, err)
		}
		if resp.Count == 0 {
			return s3.ErrorFor(s3.CodeInvalidArgument, "Invalid id: no user has the access key "+g.Grantee)
		}
	}
	return nil
}

// enforcedACL refuses a request setting an ACL in a bucket whose object ownership is
// BucketOwnerEnforced (ACLs off), unless it is the canned bucket-owner-full-control, which
// says what the bucket does anyway (as S3 answers: AccessControlListNotSupported).
func enforcedACL(rq *request) error {
	if rq.access == nil || rq.access.ACLsEnabled() || rq.op == "CreateBucket" {
		return nil
	}
	h := rq.r.Header
	if h.Get("X-Amz-Acl") == "bucket-owner-full-control" {
		return nil
	}
	return s3.ErrorFor(s3.CodeAccessControlListNotSupported, "")
}

// aclAllowed applies the bucket's object ownership and public access block to an ACL a
// request sets: with BucketOwnerEnforced only the default ACL is accepted
// (AccessControlListNotSupported), with BlockPublicAcls no public one (AccessDenied).
func aclAllowed(b *s3access.Bucket, grants []meta.Grant, owner string) error {
	if !b.ACLsEnabled() && !ownerOnly(grants, owner) && !(len(grants) == 2 && grants[1].Grantee == b.Owner && grants[1].Permission == "FULL_CONTROL") {
		return s3.ErrorFor(s3.CodeAccessControlListNotSupported, "")
	}
	if b.Block != nil && b.Block.BlockPublicAcls && s3access.Public(&meta.ACL{Grants: grants}) {
		return s3.ErrorFor(s3.CodeAccessDenied, "the bucket's public access block refuses public ACLs")
	}
	return nil
}

// requestedACL reads the ACL a write asks for in its headers (x-amz-acl, x-amz-grant-*) for
// an object or bucket owned by owner; nil when it asks for none or for the default.
func (c *Coordinator) requestedACL(rq *request, owner string) (*meta.ACL, error) {
	bucketOwner := owner
	if rq.access != nil {
		bucketOwner = rq.access.Owner
	}
	grants, set, err := s3.RequestACL(rq.r.Header, owner, bucketOwner)
	if err != nil || !set {
		return nil, err
	}
	if err := enforcedACL(rq); err != nil {
		return nil, err
	}
	if err := c.checkGrantees(rq.r.Context(), grants); err != nil {
		return nil, err
	}
	if rq.access != nil && rq.op != "CreateBucket" {
		if err := aclAllowed(rq.access, grants, owner); err != nil {
			return nil, err
		}
	}
	return &meta.ACL{Grants: grants}, nil
}

// objectACL is the ACL a new object written by rq gets: the one its headers ask for, owned by
// the writer (the bucket's owner when the bucket enforces that, or for anonymous writers).
// nil means the default: owned by the bucket's owner, who alone has access.
func (c *Coordinator) objectACL(rq *request) (*meta.ACL, error) {
	owner := rq.auth.AccessKey
	bucketOwner := ""
	if rq.access != nil {
		bucketOwner = rq.access.Owner
		if !rq.access.ACLsEnabled() || rq.access.Ownership == "BucketOwnerPreferred" && rq.r.Header.Get("X-Amz-Acl") == "bucket-owner-full-control" {
			owner = bucketOwner
		}
	}
	if owner == "" {
		owner = bucketOwner
	}
	acl, err := c.requestedACL(rq, owner)
	if err != nil {
		return nil, err
	}
	if acl == nil {
		if owner == bucketOwner {
			return nil, nil
		}
		acl = &meta.ACL{Grants: []meta.Grant{{Grantee: owner, Permission: "FULL_CONTROL"}}}
	}
	if owner != bucketOwner {
		acl.Owner = owner
	} else if ownerOnly(acl.Grants, owner) {
		return nil, nil
	}
	return acl, nil
}

// bodyACL reads a PutBucketAcl/PutObjectAcl request: the headers, or else the XML body. The
// owner a body names must be the resource's (an ACL does not change owners).
func (c *Coordinator) bodyACL(rq *request, owner string) ([]meta.Grant, error) {
	if err := enforcedACL(rq); err != nil {
		return nil, err
	}
	grants, set, err := s3.RequestACL(rq.r.Header, owner, rq.access.Owner)
	if err != nil {
		return nil, err
	}
	if !set {
		if rq.r.ContentLength == 0 {
			return nil, s3.ErrorFor(s3.CodeMissingSecurityHeader, "PutAcl needs an ACL: x-amz-acl, x-amz-grant-* or an AccessControlPolicy body")
		}
		body, err := rq.auth.Body(rq.r)
		if err != nil {
			return nil, err
		}
		var docOwner string
		if docOwner, grants, err = s3.ParseACL(body); err != nil {
			return nil, err
		}
		if docOwner != "" && docOwner != owner {
			return nil, s3.ErrorFor(s3.CodeAccessDenied, "an ACL cannot change the owner")
		}
	}
	if err := c.checkGrantees(rq.r.Context(), grants); err != nil {
		return nil, err
	}
	if err := aclAllowed(rq.access, grants, owner); err != nil {
		return nil, err
	}
	return grants, nil
}

func (c *Coordinator) getBucketACL(rq *request) error {
	b, err := c.meta.GetBucket(rq.r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	return s3.WriteXML(rq.w, http.StatusOK, s3.ACLPolicy(b.ACL, b.Owner))
}

func (c *Coordinator) putBucketACL(rq *request) error {
	grants, err := c.bodyACL(rq, rq.access.Owner)
	if err != nil {
		return err
	}
	var acl *meta.ACL
	if !ownerOnly(grants, rq.access.Owner) {
		acl = &meta.ACL{Grants: grants}
	}
	return c.bucketChanged(rq, http.StatusOK, c.meta.UpdateBucket(rq.r.Context(), rq.bucket, func(b *meta.Bucket) error {
		b.ACL = acl
		return nil
	}))
}

func (c *Coordinator) getObjectACL(rq *request) error {
	obj, err := c.namedVersion(rq)
	if err != nil {
		return err
	}
	if err := rq.recheckObject(obj); err != nil {
		return err
	}
	acl := obj.ACL
	if !rq.access.ACLsEnabled() {
		acl = nil
	}
	return s3.WriteXML(rq.w, http.StatusOK, s3.ACLPolicy(acl, rq.access.ObjectOwner(acl)))
}

func (c *Coordinator) putObjectACL(rq *request) error {
	ctx := rq.r.Context()
	obj, err := c.namedVersion(rq) // the current version, or the one versionId names
	if err != nil {
		return err
	}
	if err := rq.recheckObject(obj); err != nil {
		return err
	}
	owner := rq.access.ObjectOwner(obj.ACL)
	grants, err := c.bodyACL(rq, owner)
	if err != nil {
		return err
	}
	// The ACL goes on the record only if it is still the version whose owner was read.
	err = c.meta.UpdateVersion(ctx, rq.bucket, rq.key, versionID(rq), func(o *meta.Object) error {
		if o.VersionID() != obj.VersionID() || rq.access.ObjectOwner(o.ACL) != owner {
			return fmt.Errorf("the object was replaced while its ACL was set: %w", meta.ErrConflict)
		}
		switch {
		case owner != rq.access.Owner:
			o.ACL = &meta.ACL{Owner: owner, Grants: grants}
		case !ownerOnly(grants, owner):
			o.ACL = &meta.ACL{Grants: grants}
		default:
			o.ACL = nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	if versionID(rq) != "" {
		rq.w.Header().Set("X-Amz-Version-Id", obj.VersionID())
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// bucketACLFor is the ACL a new bucket gets from CreateBucket's headers (nil: the default).
func (c *Coordinator) bucketACLFor(rq *request) (*meta.ACL, error) {
	acl, err := c.requestedACL(rq, rq.auth.AccessKey)
	if err != nil || acl == nil || ownerOnly(acl.Grants, rq.auth.AccessKey) {
		return nil, err
	}
	return acl, nil
}
