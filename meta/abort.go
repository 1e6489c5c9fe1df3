package meta

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// AbortUpload deletes an upload and its parts and queues their chunks at once. guard (the
// master's fence, when the master expires an upload) must hold for every write.
//
// An upload whose parts fit one transaction goes in one. A larger one (up to 10,000 parts of
// 5 GiB: hundreds of megabytes of part records) goes in steps, each within etcd's request
// limit: one transaction deletes the upload and leaves a marker under AbortPrefix (from then on
// no part can be uploaded, replaced or completed, since all of those require the upload), then
// the parts are deleted in batches, each with a garbage record for its chunks, and the marker
// last. If that stops part way (ErrPartsPending), the active master finishes it from the marker.
func (s *Store) AbortUpload(ctx context.Context, u *Upload, guard ...clientv3.Cmp) error {
	uk, pp := uploadKey(u.Bucket, u.Key, u.ID), PartPrefix+u.ID+"/"
	parts, rev, err := s.AllParts(ctx, u.ID)
	switch {
	case err == nil:
		var chunks []Chunk
		for _, p := range parts {
			chunks = append(chunks, p.Chunks...)
		}
		ops := []clientv3.Op{clientv3.OpDelete(uk), clientv3.OpDelete(pp, clientv3.WithPrefix())}
		if op, ok := s.garbageOp(chunks, 0); ok {
			ops = append(ops, op)
		}
		conds := append([]clientv3.Cmp{versionGT0(uk), clientv3.Compare(clientv3.ModRevision(pp), "<", rev+1).WithPrefix()}, guard...)
		if s.fits(conds, ops) == nil {
			tx, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Commit()
			if err != nil {
				return fmt.Errorf("abort upload %s: %w", u.ID, err)
			}
			if !tx.Succeeded {
				if _, err := s.GetUpload(ctx, u.Bucket, u.Key, u.ID); err != nil {
					return err
				}
				return fmt.Errorf("abort upload %s: %w", u.ID, ErrConflict)
			}
			return nil
		}
	case !errors.Is(err, ErrTooLarge):
		return err
	}
	mk := AbortPrefix + u.ID
	tx, err := s.cli.Txn(ctx).If(append([]clientv3.Cmp{versionGT0(uk)}, guard...)...).
		Then(clientv3.OpDelete(uk), clientv3.OpPut(mk, string(EncodeUpload(u)))).Commit()
	if err != nil {
		return fmt.Errorf("abort upload %s: %w", u.ID, err)
	}
	if !tx.Succeeded {
		if _, err := s.GetUpload(ctx, u.Bucket, u.Key, u.ID); err != nil {
			return err
		}
		return fmt.Errorf("abort upload %s: %w", u.ID, ErrConflict)
	}
	if err := s.dismantle(ctx, u.ID, guard...); err != nil {
		return fmt.Errorf("abort upload %s: %w: %w", u.ID, ErrPartsPending, err)
	}
	return nil
}

// dismantle deletes the parts of an aborted upload (marked under AbortPrefix) in batches that
// each fit a transaction, queuing their chunks, then the marker. The parts cannot change any
// more (the upload is gone); a batch requires the marker and its first part unchanged, so two
// dismantlers of one upload never queue a part twice.
func (s *Store) dismantle(ctx context.Context, id string, guard ...clientv3.Cmp) error {
	mk, pp := AbortPrefix+id, PartPrefix+id+"/"
	budget := s.recordLimit() // part record bytes per batch: their garbage record is smaller
	for conflicts := 0; conflicts < maxConflictRetries; {
		var batch []*mvccpb.KeyValue
		n := 0
		err := s.rangeStream(ctx, pp, clientv3.GetPrefixRangeEnd(pp), 0, false, func(kv *mvccpb.KeyValue) (bool, error) {
			if len(batch) > 0 && n+len(kv.Value) > budget {
				return false, nil
			}
			batch = append(batch, kv)
			n += len(kv.Value)
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("read parts of aborted upload %s: %w", id, err)
		}
		if len(batch) == 0 {
			tx, err := s.cli.Txn(ctx).If(append([]clientv3.Cmp{versionGT0(mk)}, guard...)...).Then(clientv3.OpDelete(mk)).Commit()
			if err != nil {
				return fmt.Errorf("remove abort marker of %s: %w", id, err)
			}
			if !tx.Succeeded {
				return s.fenced(ctx, mk, guard...)
			}
			return nil
		}
		var chunks []Chunk
		for _, kv := range batch {
			// A part record that cannot be read is deleted all the same: its chunks leak
			// rather than the upload staying for ever.
			if p, err := DecodePart(kv.Value); err == nil {
				chunks = append(chunks, p.Chunks...)
			}
		}
		first, last := string(batch[0].Key), string(batch[len(batch)-1].Key)
		ops := []clientv3.Op{clientv3.OpDelete(first, clientv3.WithRange(last+"\x00"))}
		if op, ok := s.garbageOp(chunks, 0); ok {
			ops = append(ops, op)
		}
		conds := append([]clientv3.Cmp{versionGT0(mk), clientv3.Compare(clientv3.ModRevision(first), "=", batch[0].ModRevision)}, guard...)
		if err := s.fits(conds, ops); err != nil {
			return fmt.Errorf("delete parts of aborted upload %s: %w", id, err)
		}
		tx, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Else(clientv3.OpGet(mk, clientv3.WithCountOnly())).Commit()
		if err != nil {
			return fmt.Errorf("delete parts of aborted upload %s: %w", id, err)
		}
		if tx.Succeeded {
			continue
		}
		if tx.Responses[0].GetResponseRange().Count == 0 {
			return nil // another dismantler finished
		}
		if err := s.fenced(ctx, mk, guard...); err != nil {
			return err
		}
		conflicts++
	}
	return fmt.Errorf("delete parts of aborted upload %s: %w", id, ErrConflict)
}

// fenced tells a failed guard from a lost race: it re-runs the guard alone.
func (s *Store) fenced(ctx context.Context, key string, guard ...clientv3.Cmp) error {
	if len(guard) == 0 {
		return nil
	}
	tx, err := s.cli.Txn(ctx).If(guard...).Commit()
	if err != nil {
		return fmt.Errorf("check fence for %s: %w", key, err)
	}
	if !tx.Succeeded {
		return fmt.Errorf("%s: %w: the guard no longer holds", key, ErrConflict)
	}
	return nil
}

// ResumeAborts finishes up to limit aborts that stopped part way (see AbortUpload) and
// returns how many it finished.
func (s *Store) ResumeAborts(ctx context.Context, limit int, guard ...clientv3.Cmp) (int, error) {
	var ids []string
	err := s.rangeStream(ctx, AbortPrefix, clientv3.GetPrefixRangeEnd(AbortPrefix), 0, true, func(kv *mvccpb.KeyValue) (bool, error) {
		ids = append(ids, string(kv.Key[len(AbortPrefix):]))
		return len(ids) < limit, nil
	})
	if err != nil {
		return 0, fmt.Errorf("list aborted uploads: %w", err)
	}
	for i, id := range ids {
		if err := s.dismantle(ctx, id, guard...); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// StaleUploads scans up to examine uploads in progress, in key order after the key `after`
// ("" from the first), and returns those initiated before cutoff, and where the next scan
// continues ("" when this one reached the last upload).
func (s *Store) StaleUploads(ctx context.Context, cutoff time.Time, after string, examine int) ([]*Upload, string, error) {
	from := UploadPrefix
	if after != "" {
		from = after + "\x00"
	}
	var out []*Upload
	next, n := "", 0
	err := s.rangeStream(ctx, from, clientv3.GetPrefixRangeEnd(UploadPrefix), 0, false, func(kv *mvccpb.KeyValue) (bool, error) {
		if n++; n > examine {
			return false, nil
		}
		next = string(kv.Key)
		if u, err := DecodeUpload(kv.Value); err == nil && u.Initiated.Before(cutoff) {
			out = append(out, u)
		}
		return true, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("scan uploads: %w", err)
	}
	if n <= examine {
		next = ""
	}
	return out, next, nil
}
