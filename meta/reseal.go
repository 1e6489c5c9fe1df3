package meta

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Reseal rewrites the sealed data key of every SSE-S3 object and multipart upload for which
// reseal returns a new one (after a keyring rotation: the key sealed with the new primary
// key). Only the record's key field changes, never the data. Each rewrite is a compare-and-swap
// on the record's mod revision; a record changed meanwhile is read again, so a concurrent
// write is never overwritten. It returns how many records it rewrote; it is idempotent, so an
// interrupted run is simply run again.
func (s *Store) Reseal(ctx context.Context, reseal func(sealed []byte) ([]byte, error)) (int, error) {
	n := 0
	for _, prefix := range []string{ObjectPrefix, UploadPrefix} {
		err := s.rangeStream(ctx, prefix, clientv3.GetPrefixRangeEnd(prefix), 0, false, func(kv *mvccpb.KeyValue) (bool, error) {
			done, err := s.resealOne(ctx, prefix == UploadPrefix, string(kv.Key), kv.Value, kv.ModRevision, reseal)
			if done {
				n++
			}
			return true, err
		})
		if err != nil {
			return n, fmt.Errorf("re-seal the data keys under %s: %w", prefix, err)
		}
	}
	return n, nil
}

func (s *Store) resealOne(ctx context.Context, upload bool, key string, val []byte, rev int64, reseal func([]byte) ([]byte, error)) (bool, error) {
	for range maxConflictRetries {
		var (
			sse    *SSE
			encode func() []byte
		)
		if upload {
			u, err := DecodeUpload(val)
			if err != nil {
				return false, fmt.Errorf("%s: %w", key, err)
			}
			sse, encode = u.SSE, func() []byte { return EncodeUpload(u) }
		} else {
			o, err := DecodeObject(val)
			if err != nil {
				return false, fmt.Errorf("%s: %w", key, err)
			}
			sse, encode = o.SSE, func() []byte { return EncodeObject(o) }
		}
		if sse == nil || sse.Algorithm != SSES3 {
			return false, nil
		}
		next, err := reseal(sse.SealedKey)
		if err != nil {
			return false, fmt.Errorf("%s: %w", key, err)
		}
		if bytes.Equal(next, sse.SealedKey) {
			return false, nil
		}
		sse.SealedKey = next
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(encode()))).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return false, fmt.Errorf("%s: %w", key, err)
		}
		if resp.Succeeded {
			return true, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return false, nil // deleted meanwhile
		}
		val, rev = kvs[0].Value, kvs[0].ModRevision
	}
	return false, fmt.Errorf("%s: %w", key, errTooManyWriters)
}
