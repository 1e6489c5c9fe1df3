package coordinator

import (
	"encoding/json"
	"fmt"
	"net/http"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/security/s3access"
)

// Bucket configurations kept in the bucket's record (public access block, object ownership)
// or beside its grants (tagging): small documents, each replaced whole.

func (c *Coordinator) publicAccessBlock(rq *request) error {
	ctx := rq.r.Context()
	switch rq.r.Method {
	case http.MethodGet:
		b, err := c.meta.GetBucket(ctx, rq.bucket)
		if err != nil {
			return err
		}
		if b.PublicAccessBlock == nil {
			return s3.ErrorFor(s3.CodeNoSuchPublicAccessBlock, "")
		}
		p := b.PublicAccessBlock
		return s3.WriteXML(rq.w, http.StatusOK, s3.PublicAccessBlockConfiguration{Xmlns: s3.Namespace, BlockPublicAcls: p.BlockPublicAcls,
			IgnorePublicAcls: p.IgnorePublicAcls, BlockPublicPolicy: p.BlockPublicPolicy, RestrictPublicBuckets: p.RestrictPublicBuckets})
	case http.MethodPut:
		body, err := rq.auth.Body(rq.r)
		if err != nil {
			return err
		}
		var cfg s3.PublicAccessBlockConfiguration
		if err := s3.DecodeXML(body, 16<<10, &cfg); err != nil {
			return err
		}
		blk := &meta.PublicAccessBlock{BlockPublicAcls: cfg.BlockPublicAcls, IgnorePublicAcls: cfg.IgnorePublicAcls,
			BlockPublicPolicy: cfg.BlockPublicPolicy, RestrictPublicBuckets: cfg.RestrictPublicBuckets}
		return c.bucketChanged(rq, http.StatusOK, c.meta.UpdateBucket(ctx, rq.bucket, func(b *meta.Bucket) error { b.PublicAccessBlock = blk; return nil }))
	}
	return c.bucketChanged(rq, http.StatusNoContent, c.meta.UpdateBucket(ctx, rq.bucket, func(b *meta.Bucket) error { b.PublicAccessBlock = nil; return nil }))
}

func (c *Coordinator) ownershipControls(rq *request) error {
	ctx := rq.r.Context()
	switch rq.r.Method {
	case http.MethodGet:
		b, err := c.meta.GetBucket(ctx, rq.bucket)
		if err != nil {
			return err
		}
		if b.Ownership == "" {
			return s3.ErrorFor(s3.CodeOwnershipControlsNotFound, "")
		}
		return s3.WriteXML(rq.w, http.StatusOK, s3.OwnershipControls{Xmlns: s3.Namespace, Rules: []s3.OwnershipControlRule{{ObjectOwnership: b.Ownership}}})
	case http.MethodPut:
		body, err := rq.auth.Body(rq.r)
		if err != nil {
			return err
		}
		var cfg s3.OwnershipControls
		if err := s3.DecodeXML(body, 16<<10, &cfg); err != nil {
			return err
		}
		if len(cfg.Rules) != 1 || !s3.ValidOwnership(cfg.Rules[0].ObjectOwnership) {
			return s3.ErrorFor(s3.CodeMalformedXML, "one Rule with ObjectOwnership BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter")
		}
		o := cfg.Rules[0].ObjectOwnership
		return c.bucketChanged(rq, http.StatusOK, c.meta.UpdateBucket(ctx, rq.bucket, func(b *meta.Bucket) error {
			// ACLs are off under BucketOwnerEnforced: a bucket whose ACL grants others
			// something must be made private first, as in S3.
			if o == "BucketOwnerEnforced" && b.ACL != nil && !ownerOnly(b.ACL.Grants, b.Owner) {
				return s3.ErrorFor(s3.CodeInvalidBucketACLWithObjectOwnership, "")
			}
			b.Ownership = o
			return nil
		}))
	}
	return c.bucketChanged(rq, http.StatusNoContent, c.meta.UpdateBucket(ctx, rq.bucket, func(b *meta.Bucket) error { b.Ownership = ""; return nil }))
}

// bucketTagging serves Get/Put/DeleteBucketTagging; the tag set is kept beside the bucket's
// grants (deleted with the bucket).
func (c *Coordinator) bucketTagging(rq *request) error {
	ctx := rq.r.Context()
	k := s3access.TaggingKey(rq.bucket)
	switch rq.r.Method {
	case http.MethodGet:
		resp, err := c.o.Etcd.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("read the tags of bucket %s: %w", rq.bucket, err)
		}
		if len(resp.Kvs) == 0 {
			return s3.ErrorFor(s3.CodeNoSuchTagSet, "")
		}
		var tags map[string]string
		if err := json.Unmarshal(resp.Kvs[0].Value, &tags); err != nil {
			return fmt.Errorf("tags of bucket %s: %w: %v", rq.bucket, meta.ErrCorrupt, err)
		}
		return s3.WriteXML(rq.w, http.StatusOK, s3.NewTaggingResult(tags))
	case http.MethodPut:
		body, err := rq.auth.Body(rq.r)
		if err != nil {
			return err
		}
		var t s3.Tagging
		if err := s3.DecodeXML(body, 64<<10, &t); err != nil {
			return err
		}
		tags, err := t.Tags()
		if err != nil {
			return err
		}
		val, _ := json.Marshal(tags)
		resp, err := c.o.Etcd.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(meta.BucketKey(rq.bucket)), ">", 0)).
			Then(clientv3.OpPut(k, string(val))).Commit()
		if err != nil {
			return fmt.Errorf("put the tags of bucket %s: %w", rq.bucket, err)
		}
		if !resp.Succeeded {
			return s3.ErrorFor(s3.CodeNoSuchBucket, "")
		}
		rq.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if _, err := c.o.Etcd.Delete(ctx, k); err != nil {
		return fmt.Errorf("delete the tags of bucket %s: %w", rq.bucket, err)
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}
