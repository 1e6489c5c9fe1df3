package meta

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// rangeStream calls fn for each key of [from, end) in key order, read at revision rev (0: the
// current one), until fn returns false or the range ends.
//
// It reads through etcd's RangeStream, which hands the range out in chunks that start at ten
// keys and grow, and stops when the caller stops reading. A Range with a limit would instead
// make etcd count every key from `from` to the end of the range in its index (it reports the
// total), under a lock its writers wait for: for a listing that is a walk of the rest of the
// bucket for every page, and for every common prefix skipped. What a stream reads beyond the
// caller's need is what etcd sent before the cancellation reached it, bounded by the
// connection's flow-control window.
func (s *Store) rangeStream(ctx context.Context, from, end string, rev int64, keysOnly bool, fn func(*mvccpb.KeyValue) (bool, error)) error {
	return RangeStream(ctx, s.cli, from, end, rev, keysOnly, fn)
}

// RangeStream is Store.rangeStream for other readers of large ranges (the repair sweep).
func RangeStream(ctx context.Context, cli *clientv3.Client, from, end string, rev int64, keysOnly bool, fn func(*mvccpb.KeyValue) (bool, error)) error {
	if from >= end {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	opts := []clientv3.OpOption{clientv3.WithRange(end)}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	if keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	ch, err := cli.GetStream(ctx, from, opts...)
	if err != nil {
		cancel()
		return err
	}
	defer func() {
		cancel()
		for range ch { // the client's reader ends after delivering the cancellation
		}
	}()
	for r := range ch {
		if err := r.Err(); err != nil {
			return err
		}
		for _, kv := range r.Kvs {
			more, err := fn(kv)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// firstKey returns the first key of [from, end) at rev, "" when the range is empty, reading
// only that key from etcd's index.
func (s *Store) firstKey(ctx context.Context, from, end string, rev int64) (string, error) {
	var k string
	err := s.rangeStream(ctx, from, end, rev, true, func(kv *mvccpb.KeyValue) (bool, error) {
		k = string(kv.Key)
		return false, nil
	})
	return k, err
}
