package meta

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// GarbageEntry is a queued garbage record and its etcd key.
type GarbageEntry struct {
	Key string
	Rev int64
	*Garbage
}

// DueGarbage returns up to limit garbage records whose grace period has passed.
func (s *Store) DueGarbage(ctx context.Context, limit int) ([]GarbageEntry, error) {
	now := s.now()
	var out []GarbageEntry
	err := s.scan(ctx, GCPrefix, clientv3.GetPrefixRangeEnd(GCPrefix), func(kv *mvccpb.KeyValue) (bool, error) {
		g, err := DecodeGarbage(kv.Value)
		if err != nil {
			return true, nil // unreadable: skipped, left for an operator
		}
		if g.After.After(now) {
			return true, nil
		}
		out = append(out, GarbageEntry{Key: string(kv.Key), Rev: kv.ModRevision, Garbage: g})
		return len(out) < limit, nil
	})
	return out, err
}

// GarbageCount returns how many garbage records are queued.
func (s *Store) GarbageCount(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, GCPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count garbage: %w", err)
	}
	return resp.Count, nil
}

// Collected removes a garbage record once its chunks are deleted everywhere; guard (the
// master's fence) makes a deposed master's call fail.
func (s *Store) Collected(ctx context.Context, key string, guard ...clientv3.Cmp) error {
	resp, err := s.cli.Txn(ctx).If(guard...).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("remove garbage record %s: %w", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("remove garbage record %s: %w", key, ErrConflict)
	}
	return nil
}

// ExpireIntents turns intents untouched since before cutoff into garbage records covering
// every chunk their write may have stored; the write, if it is somehow still running, then
// fails at commit (its intent is gone). It returns the expired write ids.
func (s *Store) ExpireIntents(ctx context.Context, cutoff time.Time, guard ...clientv3.Cmp) ([]string, error) {
	type stale struct {
		key string
		rev int64
	}
	var todo []stale
	err := s.scan(ctx, IntentPrefix, clientv3.GetPrefixRangeEnd(IntentPrefix), func(kv *mvccpb.KeyValue) (bool, error) {
		var in Intent
		if json.Unmarshal(kv.Value, &in) == nil && in.Touched.After(cutoff) {
			return true, nil
		}
		todo = append(todo, stale{key: string(kv.Key), rev: kv.ModRevision})
		return len(todo) < 1000, nil
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, st := range todo {
		id := st.key[len(IntentPrefix):]
		g := &Garbage{After: s.now().UTC(), Intent: id}
		conds := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(st.key), "=", st.rev)}, guard...)
		resp, err := s.cli.Txn(ctx).If(conds...).Then(clientv3.OpDelete(st.key), clientv3.OpPut(GCPrefix+id, string(EncodeGarbage(g)))).Commit()
		if err != nil {
			return ids, fmt.Errorf("expire intent %s: %w", id, err)
		}
		if resp.Succeeded {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
