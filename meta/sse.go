package meta

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SSE is how an object (or a multipart upload, for the object it makes) is encrypted at rest.
// Its chunks are sealed with internal/sealstream under the object key: a data key of its own
// for SSE-S3 and SSE-KMS, the customer's key for SSE-C. Chunk sizes in the record are the sealed sizes
// (what the datanodes hold); Object.Size and part sizes are the plaintext's.
type SSE struct {
	// Algorithm is SSES3, SSEKMS or SSEC.
	Algorithm string
	// SealedKey (SSE-S3) is the object's data key sealed with the cluster keyring; keyring
	// rotation re-seals it, never the data. SSE-KMS: the data key sealed under the KMS key
	// KMSKeyID's material, bound to KMSKeyID and KMSContext (security/kms).
	SealedKey []byte
	// KMSKeyID (SSE-KMS) names the built-in KMS's key that sealed SealedKey.
	KMSKeyID string
	// KMSContext (SSE-KMS) is the encryption context the writer gave (the base64 JSON of
	// x-amz-server-side-encryption-context), "" for none; opening the data key needs it.
	KMSContext string
	// KeyCheck (SSE-C) is a random salt and an HMAC-SHA256 of it under the customer's key:
	// what proves a key given on a read is the right one. The key itself is never stored.
	KeyCheck []byte
}

// Algorithms of SSE.
const (
	SSES3  = "AES256"
	SSEKMS = "aws:kms"
	SSEC   = "SSE-C"
)

// tagSSE is the optional trailing field of object and upload records that holds SSE. It is
// numbered apart from the others (versioning and object lock use 16–20) so that fields added alongside it do not collide.
const tagSSE = 24

const (
	sseKindS3  = 1
	sseKindC   = 2
	sseKindKMS = 3 // key id, sealed key, context
)

func (e *enc) sse(s *SSE) {
	e.byte(tagSSE)
	switch s.Algorithm {
	case SSES3:
		e.byte(sseKindS3)
		e.str(string(s.SealedKey))
	case SSEC:
		e.byte(sseKindC)
		e.str(string(s.KeyCheck))
	case SSEKMS:
		e.byte(sseKindKMS)
		e.str(s.KMSKeyID)
		e.str(string(s.SealedKey))
		e.str(s.KMSContext)
	default:
		panic(fmt.Sprintf("meta: unknown encryption algorithm %q", s.Algorithm)) // a programming error: callers set one of the two
	}
}

func (d *dec) sse() *SSE {
	switch kind := d.byte(); kind {
	case sseKindS3:
		return &SSE{Algorithm: SSES3, SealedKey: []byte(d.str())}
	case sseKindC:
		return &SSE{Algorithm: SSEC, KeyCheck: []byte(d.str())}
	case sseKindKMS:
		id := d.str()
		sealed := d.str()
		return &SSE{Algorithm: SSEKMS, KMSKeyID: id, SealedKey: []byte(sealed), KMSContext: d.str()}
	default:
		if d.err == nil {
			d.err = fmt.Errorf("%w: unknown encryption kind %d", ErrCorrupt, kind)
		}
		return nil
	}
}

// SetBucketEncryption sets bucket's default encryption (SSES3, SSEKMS with the KMS key
// kmsKeyID, or "" for none). It rewrites the bucket's record by compare-and-swap, so a
// concurrent change of the record is kept.
func (s *Store) SetBucketEncryption(ctx context.Context, bucket, algorithm, kmsKeyID string) error {
	k := BucketKey(bucket)
	for range maxConflictRetries {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("bucket %s: set encryption: %w", bucket, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
		}
		var b Bucket
		if err := json.Unmarshal(resp.Kvs[0].Value, &b); err != nil {
			return fmt.Errorf("bucket %s: %w: %v", bucket, ErrCorrupt, err)
		}
		b.Encryption, b.KMSKeyID = algorithm, kmsKeyID
		val, _ := json.Marshal(b)
		t, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(k, string(val))).Commit()
		if err != nil {
			return fmt.Errorf("bucket %s: set encryption: %w", bucket, err)
		}
		if t.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("bucket %s: set encryption: %w", bucket, errTooManyWriters)
}
