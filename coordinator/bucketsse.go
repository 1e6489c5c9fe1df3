package coordinator

import (
	"context"
	"net/http"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

// writeState is writeSettings for a write of key (PutObject, CopyObject, POST), read in the same
// round trip as what the key holds now: the commit's first transaction then expects that record
// (meta.Prior), so an overwrite is one transaction instead of a refused one and a second.
func (c *Coordinator) writeState(ctx context.Context, bucket, key string) (int, bucketDefault, meta.Prior, error) {
	b, prior, err := c.meta.ReadForWrite(ctx, bucket, key)
	if err != nil {
		return 0, bucketDefault{}, prior, err
	}
	replicas := c.o.Replicas
	if b.Replicas > 0 {
		replicas = b.Replicas
	}
	return replicas, bucketDefault{algo: b.Encryption, kmsKeyID: b.KMSKeyID}, prior, nil
}

// writeSettings returns what a new object of bucket gets from its bucket: the replication
// factor and the default encryption; one read of the bucket's record.
func (c *Coordinator) writeSettings(ctx context.Context, bucket string) (int, bucketDefault, error) {
	b, err := c.meta.GetBucket(ctx, bucket)
	if err != nil {
		return 0, bucketDefault{}, err
	}
	replicas := c.o.Replicas
	if b.Replicas > 0 {
		replicas = b.Replicas
	}
	return replicas, bucketDefault{algo: b.Encryption, kmsKeyID: b.KMSKeyID}, nil
}

// errNoEncryptionConfig is AWS's answer for a bucket without default encryption.
var errNoEncryptionConfig = &s3.Error{Code: "ServerSideEncryptionConfigurationNotFoundError", Status: http.StatusNotFound,
	Message: "The server side encryption configuration was not found"}

// putBucketEncryption sets the bucket's default encryption: SSE-S3, or SSE-KMS under a named
// KMS key (not checked here: a write under an unknown or disabled key fails as its own would).
func (c *Coordinator) putBucketEncryption(rq *request) error {
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	var cfg s3.ServerSideEncryptionConfiguration
	if err := s3.DecodeXML(body, 64<<10, &cfg); err != nil {
		return err
	}
	algo, keyID, err := cfg.DefaultAlgorithm()
	if err != nil {
		return err
	}
	switch {
	case algo == meta.SSEKMS && c.o.KMS == nil:
		return errNoKMS
	case algo == meta.SSES3 && c.o.DataKeys == nil:
		return errNoDataKeys
	}
	if err := c.meta.SetBucketEncryption(rq.r.Context(), rq.bucket, algo, keyID); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (c *Coordinator) getBucketEncryption(rq *request) error {
	b, err := c.meta.GetBucket(rq.r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if b.Encryption == "" {
		return errNoEncryptionConfig
	}
	off := false
	return s3.WriteXML(rq.w, http.StatusOK, s3.ServerSideEncryptionConfiguration{Xmlns: s3.Namespace, Rules: []s3.ServerSideEncRule{{
		Default: &s3.ServerSideEncDefault{SSEAlgorithm: b.Encryption, KMSMasterKeyID: b.KMSKeyID}, BucketKeyEnabled: &off}}})
}

func (c *Coordinator) deleteBucketEncryption(rq *request) error {
	if err := c.meta.SetBucketEncryption(rq.r.Context(), rq.bucket, "", ""); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}
