package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store reads and writes the metadata. It holds no state besides the client, so any number of
// coordinators share one keyspace safely: every multi-key change is one etcd transaction.
type Store struct {
	cli *clientv3.Client
	now func() time.Time
}

// New returns a Store on cli.
func New(cli *clientv3.Client) *Store { return &Store{cli: cli, now: time.Now} }

// maxConflictRetries bounds optimistic retries when a concurrent writer changed a key between
// our read and our transaction; each retry means another writer made progress.
const maxConflictRetries = 64

// errTooManyWriters: maxConflictRetries transactions all lost to concurrent writers.
var errTooManyWriters = errors.New("too many concurrent writers")

func versionGT0(key string) clientv3.Cmp { return clientv3.Compare(clientv3.Version(key), ">", 0) }

// --- buckets

// CreateBucket creates b; ErrBucketExists if it exists.
func (s *Store) CreateBucket(ctx context.Context, b Bucket) error {
	val, _ := json.Marshal(b)
	k := BucketKey(b.Name)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(val))).Commit()
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", b.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("create bucket %s: %w", b.Name, ErrBucketExists)
	}
	return nil
}

// GetBucket returns a bucket; ErrNoSuchBucket if absent.
func (s *Store) GetBucket(ctx context.Context, name string) (*Bucket, error) {
	resp, err := s.cli.Get(ctx, BucketKey(name))
	if err != nil {
		return nil, fmt.Errorf("get bucket %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("bucket %s: %w", name, ErrNoSuchBucket)
	}
	var b Bucket
	if err := json.Unmarshal(resp.Kvs[0].Value, &b); err != nil {
		return nil, fmt.Errorf("bucket %s: %w: %v", name, ErrCorrupt, err)
	}
	return &b, nil
}

// ListBuckets returns every bucket, by name.
func (s *Store) ListBuckets(ctx context.Context) ([]Bucket, error) {
	var out []Bucket
	err := s.scan(ctx, BucketPrefix, clientv3.GetPrefixRangeEnd(BucketPrefix), func(kv *mvccpb.KeyValue) (bool, error) {
		var b Bucket
		if err := json.Unmarshal(kv.Value, &b); err != nil {
			return false, fmt.Errorf("bucket %s: %w: %v", kv.Key, ErrCorrupt, err)
		}
		out = append(out, b)
		return true, nil
	})
	return out, err
}

// DeleteBucket deletes an empty bucket (no objects, no uploads in progress).
func (s *Store) DeleteBucket(ctx context.Context, name string) error {
	bk := BucketKey(name)
	objs, ups := ObjectPrefix+name+"/", UploadPrefix+name+"/"
	// One transaction: a concurrent PutObject either commits first (then the bucket is not
	// empty here) or finds the bucket gone. An empty range compares as version 0.
	resp, err := s.cli.Txn(ctx).If(
		versionGT0(bk),
		clientv3.Compare(clientv3.Version(objs), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.Version(ups), "=", 0).WithPrefix(),
	).Then(clientv3.OpDelete(bk)).Else(clientv3.OpGet(bk, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return fmt.Errorf("delete bucket %s: %w", name, err)
	}
	if resp.Succeeded {
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return fmt.Errorf("delete bucket %s: %w", name, ErrNoSuchBucket)
	}
	return fmt.Errorf("delete bucket %s: %w", name, ErrBucketNotEmpty)
}

// --- objects

// GetObject returns an object's record; ErrNoSuchKey or ErrNoSuchBucket when absent.
func (s *Store) GetObject(ctx context.Context, bucket, key string) (*Object, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(ObjectKey(bucket, key)), clientv3.OpGet(BucketKey(bucket), clientv3.WithCountOnly())).Commit()
	if err != nil {
		return nil, fmt.Errorf("get object %s/%s: %w", bucket, key, err)
	}
	if resp.Responses[1].GetResponseRange().Count == 0 {
		return nil, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("object %s/%s: %w", bucket, key, ErrNoSuchKey)
	}
	o, err := DecodeObject(kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("object %s/%s: %w", bucket, key, err)
	}
	return o, nil
}

// BeginWrite records an intent before any chunk of the write is stored, so that the chunks of
// a write that never commits (coordinator killed, client gone) are found and collected.
func (s *Store) BeginWrite(ctx context.Context, in Intent) error {
	now := s.now().UTC()
	in.Started, in.Touched = now, now
	val, _ := json.Marshal(in)
	if _, err := s.cli.Put(ctx, IntentPrefix+in.ID, string(val)); err != nil {
		return fmt.Errorf("begin write %s: %w", in.ID, err)
	}
	return nil
}

// TouchWrite refreshes a long write's intent so the collector does not take it for abandoned.
func (s *Store) TouchWrite(ctx context.Context, in Intent) error {
	in.Touched = s.now().UTC()
	val, _ := json.Marshal(in)
	k := IntentPrefix + in.ID
	resp, err := s.cli.Txn(ctx).If(versionGT0(k)).Then(clientv3.OpPut(k, string(val))).Commit()
	if err != nil {
		return fmt.Errorf("touch write %s: %w", in.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("touch write %s: %w", in.ID, ErrIntentLost)
	}
	return nil
}

// AbortWrite gives up a write whose commit was never sent: its intent is replaced by a garbage
// record naming the chunks it may have stored, to be deleted at once. It is unconditional (the
// intent may not have reached etcd), so it must never follow a commit attempt: a failed commit
// is settled by the commit call itself (commit.go).
func (s *Store) AbortWrite(ctx context.Context, id string, chunks []Chunk) error {
	g := &Garbage{After: s.now().UTC(), Chunks: chunks, Intent: id}
	_, err := s.cli.Txn(ctx).Then(clientv3.OpDelete(IntentPrefix+id), clientv3.OpPut(GCPrefix+id, string(EncodeGarbage(g)))).Commit()
	if err != nil {
		return fmt.Errorf("abort write %s: %w", id, err)
	}
	return nil
}

// garbageOp queues chunks for deletion after grace (so readers already streaming them finish).
func (s *Store) garbageOp(chunks []Chunk, grace time.Duration) (clientv3.Op, bool) {
	if len(chunks) == 0 {
		return clientv3.Op{}, false
	}
	g := &Garbage{After: s.now().Add(grace).UTC(), Chunks: chunks}
	return clientv3.OpPut(GCPrefix+NewWriteID(), string(EncodeGarbage(g))), true
}

// PutObject commits a written object: in one transaction it checks that the bucket exists and
// the write's intent is still there, replaces whatever was stored under the key, deletes the
// intent, and queues the replaced object's chunks for collection after grace.
//
// A failure is settled before PutObject returns (see commit.go): nil means the object is
// committed, even when a call on the way failed; any other error means the write is aborted and
// its chunks queued as garbage, or ErrCommitUnknown. The caller never aborts after it.
func (s *Store) PutObject(ctx context.Context, bucket, key string, o *Object, intent string, grace time.Duration) error {
	ok := ObjectKey(bucket, key)
	val := EncodeObject(o)
	err := s.putObject(ctx, bucket, ok, val, intent, grace)
	if err == nil {
		return nil
	}
	if intent == "" {
		err = s.resolvePut(ctx, ok, val, err)
	} else {
		err = s.resolveWrite(ctx, intent, ok, val, err)
	}
	if err != nil {
		return fmt.Errorf("put object %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (s *Store) putObject(ctx context.Context, bucket, ok string, value []byte, intent string, grace time.Duration) error {
	val := string(value)
	// Optimistic: first assume the key is new (one round trip). When it is not, the failed
	// transaction returns the current record, and the next attempt replaces exactly that one.
	var old *Object
	var rev int64
	for range maxConflictRetries {
		conds := []clientv3.Cmp{versionGT0(BucketKey(bucket)), clientv3.Compare(clientv3.ModRevision(ok), "=", rev)}
		ops := []clientv3.Op{clientv3.OpPut(ok, val)}
		if intent != "" {
			conds = append(conds, versionGT0(IntentPrefix+intent))
			ops = append(ops, clientv3.OpDelete(IntentPrefix+intent))
		}
		if old != nil {
			if op, ok := s.garbageOp(old.Chunks, grace); ok {
				ops = append(ops, op)
			}
		}
		done, cur, err := s.commit(ctx, conds, ops, bucket, intent, ok)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		old, rev = nil, 0
		if cur != nil {
			rev = cur.ModRevision
			// A record we cannot read is still replaced; its chunks leak rather than block writes.
			old, _ = DecodeObject(cur.Value)
		}
	}
	return errTooManyWriters
}

// DeleteObject removes an object and queues its chunks; deleting a missing key succeeds (S3).
// A delete transaction whose call fails is settled by deleting again from a fresh read (a
// delete is idempotent): the key is then either gone, whoever removed it having queued its
// chunks, or deleted now.
func (s *Store) DeleteObject(ctx context.Context, bucket, key string, grace time.Duration) error {
	err := s.deleteObject(ctx, bucket, key, grace)
	if err == nil || isDefinite(err) || errors.Is(err, ErrCorrupt) {
		return err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	if rerr := s.deleteObject(rctx, bucket, key, grace); rerr != nil {
		return fmt.Errorf("%w: %w; deleting again failed too: %v", ErrCommitUnknown, err, rerr)
	}
	return nil
}

func (s *Store) deleteObject(ctx context.Context, bucket, key string, grace time.Duration) error {
	ok := ObjectKey(bucket, key)
	for range maxConflictRetries {
		old, rev, err := s.getRaw(ctx, ok)
		if err != nil {
			return fmt.Errorf("delete object %s/%s: %w", bucket, key, err)
		}
		if old == nil {
			if _, err := s.GetBucket(ctx, bucket); err != nil {
				return err
			}
			return nil
		}
		ops := []clientv3.Op{clientv3.OpDelete(ok)}
		if op, ok := s.garbageOp(old.Chunks, grace); ok {
			ops = append(ops, op)
		}
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(ok), "=", rev)).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("delete object %s/%s: %w", bucket, key, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("delete object %s/%s: %w", bucket, key, errTooManyWriters)
}

// getRaw reads an object key, returning its decoded record (nil if absent) and mod revision.
func (s *Store) getRaw(ctx context.Context, k string) (*Object, int64, error) {
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	o, err := DecodeObject(resp.Kvs[0].Value)
	if err != nil {
		// A record we cannot read is still replaced; its chunks leak rather than block writes.
		return nil, resp.Kvs[0].ModRevision, nil
	}
	return o, resp.Kvs[0].ModRevision, nil
}

// commit runs a guarded transaction; on failure it tells a missing bucket or intent (errors)
// from a lost race (false, nil, and the current value of key, nil if absent: retry with it).
func (s *Store) commit(ctx context.Context, conds []clientv3.Cmp, ops []clientv3.Op, bucket, intent, key string) (bool, *mvccpb.KeyValue, error) {
	els := []clientv3.Op{clientv3.OpGet(BucketKey(bucket), clientv3.WithCountOnly()), clientv3.OpGet(key)}
	if intent != "" {
		els = append(els, clientv3.OpGet(IntentPrefix+intent, clientv3.WithCountOnly()))
	}
	resp, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Else(els...).Commit()
	if err != nil {
		return false, nil, err
	}
	if resp.Succeeded {
		return true, nil, nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return false, nil, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	if intent != "" && resp.Responses[2].GetResponseRange().Count == 0 {
		return false, nil, fmt.Errorf("write %s: %w", intent, ErrIntentLost)
	}
	var cur *mvccpb.KeyValue
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		cur = kvs[0]
	}
	return false, cur, nil
}

// Entry is one listed object.
type Entry struct {
	Key    string
	Object *Object
}

// ListResult is one page of a listing.
type ListResult struct {
	Objects   []Entry
	Prefixes  []string
	Truncated bool
	// Next is where the following page starts (exclusive); NextIsPrefix says it is a common
	// prefix, whose whole range the next page skips.
	Next         string
	NextIsPrefix bool
}

// listBatch is how many keys one etcd read returns while listing.
const listBatch = 1000

// ListObjects lists keys with prefix, strictly after `after` (skipping everything under it
// when afterIsPrefix), rolling keys up to common prefixes at the first delimiter after the
// prefix, returning at most max entries (objects plus prefixes).
func (s *Store) ListObjects(ctx context.Context, bucket, prefix, delimiter, after string, afterIsPrefix bool, max int) (*ListResult, error) {
	if _, err := s.GetBucket(ctx, bucket); err != nil {
		return nil, err
	}
	res := &ListResult{}
	if max <= 0 {
		return res, nil
	}
	base := ObjectPrefix + bucket + "/"
	from := base + prefix
	if after != "" && after >= prefix {
		if afterIsPrefix {
			from = clientv3.GetPrefixRangeEnd(base + after)
		} else {
			from = base + after + "\x00"
		}
	}
	end := clientv3.GetPrefixRangeEnd(base + prefix)
	lastPrefix := ""
	n := 0
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(listBatch))
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
		}
		skipped := false
		for _, kv := range resp.Kvs {
			key := string(kv.Key[len(base):])
			if delimiter != "" {
				if i := strings.Index(key[len(prefix):], delimiter); i >= 0 {
					cp := key[:len(prefix)+i+len(delimiter)]
					if cp == lastPrefix {
						continue
					}
					if n == max {
						res.Truncated = true
						return res, nil
					}
					res.Prefixes = append(res.Prefixes, cp)
					res.Next, res.NextIsPrefix, lastPrefix = cp, true, cp
					n++
					// Skip the rest of this prefix with a fresh read: a "directory" may hold
					// millions of keys.
					from = clientv3.GetPrefixRangeEnd(base + cp)
					skipped = true
					break
				}
			}
			if n == max {
				res.Truncated = true
				return res, nil
			}
			o, err := DecodeObject(kv.Value)
			if err != nil {
				return nil, fmt.Errorf("object %s/%s: %w", bucket, key, err)
			}
			res.Objects = append(res.Objects, Entry{Key: key, Object: o})
			res.Next, res.NextIsPrefix = key, false
			n++
		}
		if skipped {
			if from >= end {
				return res, nil
			}
			continue
		}
		if !resp.More {
			return res, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// scan calls fn for every key in [from, end) in pages, until fn returns false.
func (s *Store) scan(ctx context.Context, from, end string, fn func(kv *mvccpb.KeyValue) (bool, error)) error {
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(listBatch))
		if err != nil {
			return fmt.Errorf("scan %s: %w", from, err)
		}
		for _, kv := range resp.Kvs {
			more, err := fn(kv)
			if err != nil || !more {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// MarkBad records a damaged replica for the repair loop.
func (s *Store) MarkBad(ctx context.Context, chunkID, machine, reason string) error {
	val, _ := json.Marshal(map[string]any{"chunk": chunkID, "machine": machine, "reason": reason, "at": s.now().UTC()})
	if _, err := s.cli.Put(ctx, BadPrefix+chunkID+"/"+machine, string(val)); err != nil {
		return fmt.Errorf("mark replica %s on %s bad: %w", chunkID, machine, err)
	}
	return nil
}

// BadReplica is a recorded damaged replica.
type BadReplica struct {
	Chunk   string    `json:"chunk"`
	Machine string    `json:"machine"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// BadReplicas lists recorded damaged replicas (at most limit).
func (s *Store) BadReplicas(ctx context.Context, limit int) ([]BadReplica, error) {
	resp, err := s.cli.Get(ctx, BadPrefix, clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list bad replicas: %w", err)
	}
	out := make([]BadReplica, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var b BadReplica
		if json.Unmarshal(kv.Value, &b) == nil {
			out = append(out, b)
		}
	}
	return out, nil
}
