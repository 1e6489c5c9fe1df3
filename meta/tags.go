package meta

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SetTags replaces an object's tag set (nil removes it), in a transaction that requires the
// record it read to be unchanged: a concurrent write of the key is never undone, and the
// object's data and chunks stay as they are. ErrNoSuchKey or ErrNoSuchBucket when absent.
func (s *Store) SetTags(ctx context.Context, bucket, key string, tags map[string]string) error {
	ok := ObjectKey(bucket, key)
	for range maxConflictRetries {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(ok), clientv3.OpGet(BucketKey(bucket), clientv3.WithCountOnly())).Commit()
		if err != nil {
			return fmt.Errorf("set tags of %s/%s: %w", bucket, key, err)
		}
		if resp.Responses[1].GetResponseRange().Count == 0 {
			return fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return fmt.Errorf("object %s/%s: %w", bucket, key, ErrNoSuchKey)
		}
		o, err := DecodeObject(kvs[0].Value)
		if err != nil {
			return fmt.Errorf("object %s/%s: %w", bucket, key, err)
		}
		o.Tags = tags
		val := EncodeObject(o)
		if err := s.recordFits(val); err != nil {
			return fmt.Errorf("set tags of %s/%s: %w", bucket, key, err)
		}
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(ok), "=", kvs[0].ModRevision)).
			Then(clientv3.OpPut(ok, string(val))).Commit()
		if err != nil {
			return fmt.Errorf("set tags of %s/%s: %w", bucket, key, err)
		}
		if tx.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("set tags of %s/%s: %w", bucket, key, errTooManyWriters)
}
