package meta

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// CreateUpload starts a multipart upload in an existing bucket.
func (s *Store) CreateUpload(ctx context.Context, u *Upload) error {
	k := uploadKey(u.Bucket, u.Key, u.ID)
	resp, err := s.cli.Txn(ctx).If(versionGT0(BucketKey(u.Bucket))).Then(clientv3.OpPut(k, string(EncodeUpload(u)))).Commit()
	if err != nil {
		return fmt.Errorf("create upload %s/%s: %w", u.Bucket, u.Key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("bucket %s: %w", u.Bucket, ErrNoSuchBucket)
	}
	return nil
}

// GetUpload returns an upload in progress; ErrNoSuchUpload when it is not (any more).
func (s *Store) GetUpload(ctx context.Context, bucket, key, id string) (*Upload, error) {
	resp, err := s.cli.Get(ctx, uploadKey(bucket, key, id))
	if err != nil {
		return nil, fmt.Errorf("get upload %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("upload %s: %w", id, ErrNoSuchUpload)
	}
	return DecodeUpload(resp.Kvs[0].Value)
}

// PutPart commits an uploaded part, replacing (and collecting) an earlier upload of the same
// part number. Like PutObject it settles a failed commit before returning: nil means the part
// is committed; otherwise the write is aborted, or the error wraps ErrCommitUnknown.
func (s *Store) PutPart(ctx context.Context, u *Upload, p *Part, intent string, grace time.Duration) error {
	pk := partKey(u.ID, p.Number)
	val := EncodePart(p)
	if err := s.putPart(ctx, u, p.Number, pk, val, intent, grace); err != nil {
		return s.resolveWrite(ctx, intent, pk, val, err)
	}
	return nil
}

func (s *Store) putPart(ctx context.Context, u *Upload, num int, pk string, value []byte, intent string, grace time.Duration) error {
	uk := uploadKey(u.Bucket, u.Key, u.ID)
	val := string(value)
	for range maxConflictRetries {
		resp, err := s.cli.Get(ctx, pk)
		if err != nil {
			return fmt.Errorf("put part %d of %s: %w", num, u.ID, err)
		}
		var rev int64
		ops := []clientv3.Op{clientv3.OpPut(pk, val), clientv3.OpDelete(IntentPrefix + intent)}
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if old, err := DecodePart(resp.Kvs[0].Value); err == nil {
				if op, ok := s.garbageOp(old.Chunks, grace); ok {
					ops = append(ops, op)
				}
			}
		}
		tx, err := s.cli.Txn(ctx).If(versionGT0(uk), versionGT0(IntentPrefix+intent), clientv3.Compare(clientv3.ModRevision(pk), "=", rev)).
			Then(ops...).Else(clientv3.OpGet(uk, clientv3.WithCountOnly()), clientv3.OpGet(IntentPrefix+intent, clientv3.WithCountOnly())).Commit()
		if err != nil {
			return fmt.Errorf("put part %d of %s: %w", num, u.ID, err)
		}
		if tx.Succeeded {
			return nil
		}
		if tx.Responses[0].GetResponseRange().Count == 0 {
			return fmt.Errorf("upload %s: %w", u.ID, ErrNoSuchUpload)
		}
		if tx.Responses[1].GetResponseRange().Count == 0 {
			return fmt.Errorf("write %s: %w", intent, ErrIntentLost)
		}
	}
	return fmt.Errorf("put part %d of %s: %w", num, u.ID, errTooManyWriters)
}

// ListParts returns the parts after part number `after`, at most max, and whether more follow.
func (s *Store) ListParts(ctx context.Context, id string, after, max int) ([]*Part, bool, error) {
	from := partKey(id, after) + "\x00"
	if after <= 0 {
		from = PartPrefix + id + "/"
	}
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(PartPrefix+id+"/")), clientv3.WithLimit(int64(max)))
	if err != nil {
		return nil, false, fmt.Errorf("list parts of %s: %w", id, err)
	}
	out := make([]*Part, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		p, err := DecodePart(kv.Value)
		if err != nil {
			return nil, false, fmt.Errorf("part %s: %w", kv.Key, err)
		}
		out = append(out, p)
	}
	return out, resp.More, nil
}

// AllParts returns every part of an upload and the revision they were read at. The parts of an
// upload that can complete fit one transaction (the used ones' chunks become the object's
// record, the others' are queued as garbage), so it reads no more than that: beyond etcd's
// request limit it stops with ErrTooLarge.
func (s *Store) AllParts(ctx context.Context, id string) ([]*Part, int64, error) {
	pre := PartPrefix + id + "/"
	// The current revision, to read every part as of one revision.
	head, err := s.cli.Get(ctx, pre, clientv3.WithCountOnly(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("read parts of %s: %w", id, err)
	}
	rev := head.Header.Revision
	var out []*Part
	n := 0
	err = s.rangeStream(ctx, pre, clientv3.GetPrefixRangeEnd(pre), rev, false, func(kv *mvccpb.KeyValue) (bool, error) {
		if n += len(kv.Value); n > s.lim.request-txnSlack {
			return false, fmt.Errorf("%w: the parts' records take more than %d bytes", ErrTooLarge, s.lim.request-txnSlack)
		}
		p, err := DecodePart(kv.Value)
		if err != nil {
			return false, fmt.Errorf("part %s: %w", kv.Key, err)
		}
		out = append(out, p)
		return true, nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read parts of %s: %w", id, err)
	}
	return out, rev, nil
}

// CompleteUpload makes the object built from an upload's parts visible, in one transaction
// that requires the upload to still exist and no part to have changed since partsRev, removes
// the upload and its parts, and queues the replaced object's and the unused parts' chunks. A
// record over recordLimit, or a transaction over etcd's request limit, is refused with
// ErrTooLarge before anything is written: the upload stays as it was, for an abort.
//
// The object records the upload's id (Object.Upload), so that a retried completion finds it.
//
// A failed commit is settled before it returns: nil means the object is committed.
func (s *Store) CompleteUpload(ctx context.Context, u *Upload, o *Object, unused []Chunk, partsRev int64, grace time.Duration) error {
	return s.CompleteUploadIf(ctx, u, o, unused, partsRev, grace, Condition{})
}

// CompleteUploadIf is CompleteUpload made conditional on the object the key holds (If-Match,
// If-None-Match), evaluated against the record the commit replaces, in its transaction. A
// condition that fails leaves the upload as it was.
func (s *Store) CompleteUploadIf(ctx context.Context, u *Upload, o *Object, unused []Chunk, partsRev int64, grace time.Duration, cond Condition) error {
	ok := ObjectKey(u.Bucket, u.Key)
	o.Upload = u.ID
	val := EncodeObject(o)
	err := s.completeUpload(ctx, u, ok, val, unused, partsRev, grace, cond)
	if errors.Is(err, errVersioned) {
		uk, pp := uploadKey(u.Bucket, u.Key, u.ID), PartPrefix+u.ID+"/"
		val, err = s.putVersion(ctx, &versionedWrite{bucket: u.Bucket, key: u.Key, obj: o, cond: cond, grace: grace, garbage: unused,
			conds: []clientv3.Cmp{versionGT0(uk), clientv3.Compare(clientv3.ModRevision(pp), "<", partsRev+1).WithPrefix()},
			ops:   []clientv3.Op{clientv3.OpDelete(uk), clientv3.OpDelete(pp, clientv3.WithPrefix())},
			refused: func(ctx context.Context) error {
				// Keys, not a count: etcd counts a range without its mod-revision filter.
				tx, err := s.cli.Txn(ctx).Then(clientv3.OpGet(uk, clientv3.WithCountOnly()), clientv3.OpGet(pp, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMinModRev(partsRev+1))).Commit()
				switch {
				case err != nil:
					return fmt.Errorf("complete upload %s: %w", u.ID, err)
				case tx.Responses[0].GetResponseRange().Count == 0:
					return fmt.Errorf("upload %s: %w", u.ID, ErrNoSuchUpload)
				case len(tx.Responses[1].GetResponseRange().Kvs) > 0:
					return fmt.Errorf("upload %s: a part was uploaded again while completing: %w", u.ID, ErrConflict)
				}
				return nil
			}})
	}
	if err != nil {
		return s.resolvePut(ctx, ok, val, err)
	}
	return nil
}

func (s *Store) completeUpload(ctx context.Context, u *Upload, ok string, value []byte, unused []Chunk, partsRev int64, grace time.Duration, cond Condition) error {
	uk, pp := uploadKey(u.Bucket, u.Key, u.ID), PartPrefix+u.ID+"/"
	if err := s.recordFits(value); err != nil {
		return fmt.Errorf("complete upload %s: %w", u.ID, err)
	}
	val := string(value)
	for range maxConflictRetries {
		old, rev, err := s.getRaw(ctx, ok)
		if err != nil {
			return fmt.Errorf("complete upload %s: %w", u.ID, err)
		}
		// The condition holds for the record at rev, and the transaction requires rev.
		if err := cond.check(rev != 0, old); err != nil {
			return fmt.Errorf("complete upload %s: %w", u.ID, err)
		}
		var garbage []Chunk
		garbage = append(garbage, unused...)
		if old != nil {
			garbage = append(garbage, old.Chunks...)
		}
		ops := []clientv3.Op{clientv3.OpPut(ok, val), clientv3.OpDelete(uk), clientv3.OpDelete(pp, clientv3.WithPrefix())}
		if op, ok := s.garbageOp(garbage, grace); ok {
			ops = append(ops, op)
		}
		conds := []clientv3.Cmp{
			versionGT0(uk),
			versionGT0(BucketKey(u.Bucket)),
			clientv3.Compare(clientv3.ModRevision(ok), "=", rev),
			clientv3.Compare(clientv3.ModRevision(pp), "<", partsRev+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(ConfigKey(u.Bucket)), "=", 0), // else versioned (versions.go)
		}
		if err := s.fits(conds, ops); err != nil {
			return fmt.Errorf("complete upload %s: %w", u.ID, err)
		}
		tx, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Else(clientv3.OpGet(uk, clientv3.WithCountOnly()),
			clientv3.OpGet(pp, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithMinModRev(partsRev+1)),
			clientv3.OpGet(ConfigKey(u.Bucket), clientv3.WithCountOnly())).Commit()
		if err != nil {
			return fmt.Errorf("complete upload %s: %w", u.ID, err)
		}
		if tx.Succeeded {
			return nil
		}
		if tx.Responses[0].GetResponseRange().Count == 0 {
			return fmt.Errorf("upload %s: %w", u.ID, ErrNoSuchUpload)
		}
		// Before the parts' count: etcd counts a range without its mod-revision filter.
		if tx.Responses[2].GetResponseRange().Count > 0 {
			return errVersioned
		}
		if tx.Responses[1].GetResponseRange().Count > 0 {
			return fmt.Errorf("upload %s: a part was uploaded again while completing: %w", u.ID, ErrConflict)
		}
	}
	return fmt.Errorf("complete upload %s: %w", u.ID, errTooManyWriters)
}

// ListUploads lists uploads in progress in key order (then upload id), starting after
// (keyMarker, idMarker), at most max.
func (s *Store) ListUploads(ctx context.Context, bucket, prefix, keyMarker, idMarker string, max int) ([]*Upload, bool, error) {
	if _, err := s.GetBucket(ctx, bucket); err != nil {
		return nil, false, err
	}
	base := UploadPrefix + bucket + "/"
	from := base + prefix
	if keyMarker != "" && keyMarker >= prefix {
		if idMarker != "" {
			from = base + keyMarker + "\x00" + idMarker + "\x00"
		} else {
			from = base + keyMarker + "\x01" // after every upload of keyMarker
		}
	}
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(base+prefix)), clientv3.WithLimit(int64(max)))
	if err != nil {
		return nil, false, fmt.Errorf("list uploads of %s: %w", bucket, err)
	}
	out := make([]*Upload, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if !strings.Contains(string(kv.Key[len(base):]), "\x00") {
			continue
		}
		u, err := DecodeUpload(kv.Value)
		if err != nil {
			return nil, false, fmt.Errorf("upload %s: %w", kv.Key, err)
		}
		out = append(out, u)
	}
	return out, resp.More, nil
}
