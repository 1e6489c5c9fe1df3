package secrets

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// reencryptPage bounds how many values Reencrypt holds in memory at once.
const reencryptPage = 256

// Put seals val with aad = key, so a sealed value copied to another key does
// not open there, and writes it. opts are passed to etcd's Put (for example
// clientv3.WithLease).
func Put(ctx context.Context, cli *clientv3.Client, k *Keyring, key string, val []byte, opts ...clientv3.OpOption) error {
	sealed, err := k.Seal(val, []byte(key))
	if err != nil {
		return fmt.Errorf("secrets: put %s: %w", key, err)
	}
	if _, err := cli.Put(ctx, key, string(sealed), opts...); err != nil {
		return fmt.Errorf("secrets: put %s: %w", key, err)
	}
	return nil
}

// Get reads key and opens its value. found is false (with a nil error) when
// the key does not exist.
func Get(ctx context.Context, cli *clientv3.Client, k *Keyring, key string) (val []byte, found bool, err error) {
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("secrets: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	val, err = k.Open(resp.Kvs[0].Value, []byte(key))
	if err != nil {
		return nil, false, fmt.Errorf("secrets: get %s: %w", key, err)
	}
	return val, true, nil
}

// Reencrypt re-seals every value under prefix that is not already sealed with
// the primary key, so that older keys can eventually be dropped. Each rewrite
// is a compare-and-swap on the key's mod revision (keeping its lease); on
// conflict the fresh value is re-read and retried, so a concurrent writer is
// never overwritten. It returns how many values it rewrote. A value that is
// not sealed, or that no key of the keyring opens, stops it with an error: it
// is idempotent, so it can simply be run again once that is fixed.
func Reencrypt(ctx context.Context, cli *clientv3.Client, k *Keyring, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("secrets: reencrypt: empty prefix would cover the whole keyspace")
	}
	primary := k.PrimaryID()
	if primary == "" {
		return 0, errors.New("secrets: reencrypt: keyring has no primary key")
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	n := 0
	for start := prefix; ; {
		resp, err := cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(reencryptPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return n, fmt.Errorf("secrets: reencrypt %s: list: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			done, err := reencryptOne(ctx, cli, k, primary, string(kv.Key), kv.Value, kv.ModRevision)
			if err != nil {
				return n, err
			}
			if done {
				n++
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return n, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// reencryptOne rewrites one key unless it is already sealed with primary or
// has been deleted meanwhile. rewrote reports whether it wrote.
func reencryptOne(ctx context.Context, cli *clientv3.Client, k *Keyring, primary, key string, val []byte, rev int64) (rewrote bool, err error) {
	for {
		if _, id, _, ok := split(val); ok && id == primary {
			return false, nil
		}
		plain, err := k.Open(val, []byte(key))
		if err != nil {
			return false, fmt.Errorf("secrets: reencrypt %s: %w", key, err)
		}
		sealed, err := k.Seal(plain, []byte(key))
		if err != nil {
			return false, fmt.Errorf("secrets: reencrypt %s: %w", key, err)
		}
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(sealed), clientv3.WithIgnoreLease())).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return false, fmt.Errorf("secrets: reencrypt %s: %w", key, err)
		}
		if resp.Succeeded {
			return true, nil
		}
		// Someone wrote or deleted the key since we read it: start over from
		// what is there now.
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return false, nil
		}
		if kvs[0].ModRevision == rev {
			// Cannot happen with a consistent etcd; guard against a spin.
			return false, fmt.Errorf("secrets: reencrypt %s: compare-and-swap failed without a change", key)
		}
		val, rev = kvs[0].Value, kvs[0].ModRevision
	}
}
