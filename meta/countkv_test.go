package meta

import (
	"context"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// countingKV passes every request to the real etcd KV and records what the store asked for:
// the keys etcd returned (the records a request made it read) and the compares of every
// transaction, so tests can check how much work a request costs etcd.
type countingKV struct {
	clientv3.KV

	mu       sync.Mutex
	returned int              // keys in all range responses, inside transactions or not
	valued   int              // of those, the ones etcd sent with their value (a record read)
	compares [][]clientv3.Cmp // of each committed transaction
	gets     []clientv3.Op    // every Get, alone or inside a transaction
	streams  []clientv3.Op    // every GetStream
}

// countKV makes s's client record its requests in the returned countingKV.
func countKV(s *Store) *countingKV {
	k := &countingKV{KV: s.cli.KV}
	s.cli.KV = k
	return k
}

func (k *countingKV) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.returned, k.valued, k.compares, k.gets, k.streams = 0, 0, nil, nil, nil
}

func (k *countingKV) snapshot() (returned int, compares [][]clientv3.Cmp, gets, streams []clientv3.Op) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.returned, k.compares, k.gets, k.streams
}

// count adds a response's keys; k.mu is held.
func (k *countingKV) count(kvs []*mvccpb.KeyValue) {
	k.returned += len(kvs)
	for _, kv := range kvs {
		if len(kv.Value) > 0 {
			k.valued++
		}
	}
}

// records returns how many keys etcd sent, and how many of them with their values.
func (k *countingKV) records() (keys, values int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.returned, k.valued
}

func (k *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := k.KV.Get(ctx, key, opts...)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gets = append(k.gets, clientv3.OpGet(key, opts...))
	if err == nil {
		k.count(resp.Kvs)
	}
	return resp, err
}

func (k *countingKV) GetStream(ctx context.Context, key string, opts ...clientv3.OpOption) (clientv3.GetStreamChan, error) {
	ch, err := k.KV.GetStream(ctx, key, opts...)
	k.mu.Lock()
	k.streams = append(k.streams, clientv3.OpGet(key, opts...))
	k.mu.Unlock()
	if err != nil {
		return ch, err
	}
	out := make(chan clientv3.RangeStreamResponse)
	go func() {
		defer close(out)
		for r := range ch {
			if r.RangeResponse != nil {
				k.mu.Lock()
				k.count(r.Kvs)
				k.mu.Unlock()
			}
			out <- r
		}
	}()
	return out, nil
}

func (k *countingKV) Txn(ctx context.Context) clientv3.Txn {
	return &countingTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type countingTxn struct {
	clientv3.Txn
	kv   *countingKV
	cmps []clientv3.Cmp
	ops  []clientv3.Op
}

func (t *countingTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.cmps = append(t.cmps, cs...)
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *countingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.ops = append(t.ops, ops...)
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *countingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.ops = append(t.ops, ops...)
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *countingTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	t.kv.mu.Lock()
	defer t.kv.mu.Unlock()
	t.kv.compares = append(t.kv.compares, t.cmps)
	for _, op := range t.ops {
		if op.IsGet() {
			t.kv.gets = append(t.kv.gets, op)
		}
	}
	if err == nil {
		for _, r := range resp.Responses {
			if rr := r.GetResponseRange(); rr != nil {
				t.kv.count(rr.Kvs)
			}
		}
	}
	return resp, err
}
