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

	"github.com/hanode/hanode/internal/keyspace"
)

// Store reads and writes the metadata. It holds no state besides the client, so any number of
// coordinators share one keyspace safely: every multi-key change is one etcd transaction.
type Store struct {
	cli *clientv3.Client
	now func() time.Time
	lim limits
}

// limits bound the work and the size of requests; tests lower them.
type limits struct {
	request                       int // etcd's request limit
	listBytes, listKeys, listSkip int
}

// New returns a Store on cli.
func New(cli *clientv3.Client) *Store {
	return &Store{cli: cli, now: time.Now, lim: limits{request: MaxRequestBytes, listBytes: listPageBytes, listKeys: listPageKeys, listSkip: listSkip}}
}

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

// DeleteBucket deletes an empty bucket (no objects, no versions or delete markers, no uploads
// in progress), and with it its configuration (versioning, object lock) and the
// bucket's grants and policy (keyspace.S3Access), so a bucket made again under the name starts
// with none.
func (s *Store) DeleteBucket(ctx context.Context, name string) error {
	bk := BucketKey(name)
	objs, ups, vers := ObjectPrefix+name+"/", UploadPrefix+name+"/", VersionPrefix+name+"/"
	// First the first key of each range, from etcd's index (no record is read): a bucket that
	// is not empty is refused without a write transaction, whose range compares would make
	// etcd read every record of the bucket while it applies them, stalling every other write.
	br, err := s.cli.Get(ctx, bk, clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("delete bucket %s: %w", name, err)
	}
	if br.Count == 0 {
		return fmt.Errorf("delete bucket %s: %w", name, ErrNoSuchBucket)
	}
	for _, pre := range []string{objs, ups, vers} {
		k, err := s.firstKey(ctx, pre, clientv3.GetPrefixRangeEnd(pre), br.Header.Revision)
		if err != nil {
			return fmt.Errorf("delete bucket %s: %w", name, err)
		}
		if k != "" {
			return fmt.Errorf("delete bucket %s: %w", name, ErrBucketNotEmpty)
		}
	}
	// Then one transaction: a concurrent PutObject either commits first (then the bucket is not
	// empty here) or finds the bucket gone. An empty range compares as version 0; the ranges
	// were empty a moment ago, so the compares read at most what was written since.
	resp, err := s.cli.Txn(ctx).If(
		versionGT0(bk),
		clientv3.Compare(clientv3.Version(objs), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.Version(ups), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.Version(vers), "=", 0).WithPrefix(),
	).Then(clientv3.OpDelete(bk), clientv3.OpDelete(ConfigKey(name)), clientv3.OpDelete(keyspace.S3Access+name+"/", clientv3.WithPrefix())).
		Else(clientv3.OpGet(bk, clientv3.WithCountOnly())).Commit()
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
// the write's intent is still there (an inline object, written with none, skips that check), replaces whatever was stored under the key, deletes the
// intent, and queues the replaced object's chunks for collection after grace.
//
// A failure is settled before PutObject returns (see commit.go): nil means the object is
// committed, even when a call on the way failed; any other error means the write is aborted and
// its chunks queued as garbage, or ErrCommitUnknown. The caller never aborts after it.
func (s *Store) PutObject(ctx context.Context, bucket, key string, o *Object, intent string, grace time.Duration) error {
	return s.PutObjectIf(ctx, bucket, key, o, intent, grace, Condition{})
}

// PutObjectIf is PutObject made conditional on the object the key holds (If-Match,
// If-None-Match): the condition is evaluated against the record the commit replaces, in the
// commit's transaction. A condition that fails is a refusal like any other: the write is
// aborted and the error wraps ErrPreconditionFailed or ErrNoSuchKey.
func (s *Store) PutObjectIf(ctx context.Context, bucket, key string, o *Object, intent string, grace time.Duration, cond Condition) error {
	return s.PutObjectAfter(ctx, bucket, key, o, intent, grace, cond, Prior{})
}

// Prior is what a writer read of a key before writing it (ReadForWrite). The commit's first
// transaction assumes it is still current, instead of assuming the key new: an overwrite then
// costs one transaction, not a refused one and a second. A prior gone stale is a lost race like
// any other: the transaction returns the current record and the next attempt uses that.
//
// The read is serializable (the local member's state, which may be behind the cluster's), so
// nothing decided from it stands unchecked: the commit requires the bucket record it read
// (bucketRev), and a precondition that fails against it is checked again against a fresh read.
type Prior struct {
	known bool
	rev   int64   // mod revision of the key's record; 0: none
	old   *Object // the record at rev; nil when none or when it does not decode
	// bucket is the bucket's record as read, at bucketRev; the commit requires it unchanged, or
	// changed only in what a write does not use (sameWriteSettings).
	bucket    *Bucket
	bucketRev int64
}

// sameWriteSettings reports whether two records of a bucket give a new object the same
// replication factor and default encryption: what a writer takes from its bucket.
func sameWriteSettings(a, b *Bucket) bool {
	return a.Replicas == b.Replicas && a.Encryption == b.Encryption && a.KMSKeyID == b.KMSKeyID
}

// ReadForWrite reads bucket's record (ErrNoSuchBucket when it has none) and what key holds, for
// a write of key that follows (PutObjectAfter). One serializable round trip to the member the
// client is connected to: no read index, whose wait for the commits in flight to apply would
// otherwise cost a write about one more Raft commit. A bucket the member does not know is looked
// up again linearizably, as it may have been created a moment ago.
func (s *Store) ReadForWrite(ctx context.Context, bucket, key string) (*Bucket, Prior, error) {
	b, p, err := s.readForWrite(ctx, bucket, key, clientv3.WithSerializable())
	if errors.Is(err, ErrNoSuchBucket) {
		b, p, err = s.readForWrite(ctx, bucket, key)
	}
	return b, p, err
}

func (s *Store) readForWrite(ctx context.Context, bucket, key string, opts ...clientv3.OpOption) (*Bucket, Prior, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(BucketKey(bucket), opts...), clientv3.OpGet(ObjectKey(bucket, key), opts...)).Commit()
	if err != nil {
		return nil, Prior{}, fmt.Errorf("read bucket %s and key %s: %w", bucket, key, err)
	}
	bkv := resp.Responses[0].GetResponseRange().Kvs
	if len(bkv) == 0 {
		return nil, Prior{}, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	var b Bucket
	if err := json.Unmarshal(bkv[0].Value, &b); err != nil {
		return nil, Prior{}, fmt.Errorf("bucket %s: %w: %v", bucket, ErrCorrupt, err)
	}
	p := Prior{known: true, bucket: &b, bucketRev: bkv[0].ModRevision}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		p.rev = kvs[0].ModRevision
		// A record we cannot read is still replaced; its chunks leak rather than block writes.
		p.old, _ = DecodeObject(kvs[0].Value)
	}
	return &b, p, nil
}

// PutObjectAfter is PutObjectIf for a writer that read the key first (ReadForWrite).
func (s *Store) PutObjectAfter(ctx context.Context, bucket, key string, o *Object, intent string, grace time.Duration, cond Condition, prior Prior) error {
	ok := ObjectKey(bucket, key)
	val := EncodeObject(o)
	err := s.putObject(ctx, bucket, ok, val, intent, grace, cond, prior)
	if errors.Is(err, errVersioned) {
		w := &versionedWrite{bucket: bucket, key: key, obj: o, intent: intent, cond: cond, grace: grace}
		if intent != "" { // an inline object has none (inline.go): a failed transaction is a race
			w.refused = s.intentGone(intent)
		}
		val, err = s.putVersion(ctx, w)
	}
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

func (s *Store) putObject(ctx context.Context, bucket, ok string, value []byte, intent string, grace time.Duration, cond Condition, prior Prior) error {
	if err := s.recordFits(value); err != nil {
		return err
	}
	val := string(value)
	// Optimistic: first assume the key is new (one round trip), or holds what the caller read
	// before (prior). When it does not, the failed transaction returns the current record, and
	// the next attempt replaces exactly that one.
	// An If-Match needs the current record first: assuming the key new would commit a write
	// whose condition requires an object.
	old, rev := prior.old, prior.rev
	// fresh: old and rev come from a linearizable read (a refused transaction returns one).
	fresh := false
	if len(cond.IfMatch) > 0 && !prior.known {
		var err error
		if old, rev, err = s.getRaw(ctx, ok); err != nil {
			return err
		}
		fresh = true
	}
	bucketRev := prior.bucketRev
	for range maxConflictRetries {
		// The condition holds for the record at rev, and the transaction requires rev. A
		// condition failing on a serializable read may be the read's lag: it is read again.
		if err := cond.check(rev != 0, old); err != nil {
			if fresh {
				return err
			}
			if old, rev, err = s.getRaw(ctx, ok); err != nil {
				return err
			}
			fresh = true
			continue
		}
		// A bucket with a versioning configuration takes the versioned path (versions.go).
		conds := []clientv3.Cmp{versionGT0(BucketKey(bucket)), clientv3.Compare(clientv3.ModRevision(ok), "=", rev),
			clientv3.Compare(clientv3.ModRevision(ConfigKey(bucket)), "=", 0)}
		if bucketRev != 0 {
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(BucketKey(bucket)), "=", bucketRev))
		}
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
		done, cur, bkv, err := s.commit(ctx, conds, ops, bucket, intent, ok)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if bucketRev != 0 && bkv.ModRevision != bucketRev {
			var b Bucket
			if err := json.Unmarshal(bkv.Value, &b); err != nil {
				// Refused all the same: a definite outcome, not an unknown one.
				return fmt.Errorf("bucket %s: its record no longer decodes (%v): %w", bucket, err, ErrConflict)
			}
			if !sameWriteSettings(prior.bucket, &b) {
				// Nothing was committed; the client retries under the new settings.
				return fmt.Errorf("bucket %s: its replication or default encryption changed during the write: %w", bucket, ErrConflict)
			}
			bucketRev = bkv.ModRevision
		}
		old, rev, fresh = nil, 0, true
		if cur != nil {
			rev = cur.ModRevision
			// A record we cannot read is still replaced; its chunks leak rather than block writes.
			old, _ = DecodeObject(cur.Value)
		}
	}
	return errTooManyWriters
}

// DeleteObject deletes a key as S3's DeleteObject without a version id does: an unversioned
// bucket's object is removed and its chunks queued (a missing key is no error); a versioned
// bucket gets a delete marker. It is DeleteVersion's plain case (versions.go), which settles a
// failed call by deleting again from a fresh read.
func (s *Store) DeleteObject(ctx context.Context, bucket, key string, grace time.Duration) error {
	return s.DeleteObjectIf(ctx, bucket, key, grace, Condition{})
}

// DeleteObjectIf is DeleteObject made conditional on the object the key holds (If-Match),
// evaluated against the record the delete transaction removes. A missing key is deleted
// whatever the condition, as in S3.
func (s *Store) DeleteObjectIf(ctx context.Context, bucket, key string, grace time.Duration, cond Condition) error {
	_, err := s.DeleteVersion(ctx, bucket, key, DeleteOptions{Cond: cond, Grace: grace})
	return err
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
// from a lost race (false, nil, the current value of key, nil if absent: retry with it, and the
// bucket's current record).
func (s *Store) commit(ctx context.Context, conds []clientv3.Cmp, ops []clientv3.Op, bucket, intent, key string) (bool, *mvccpb.KeyValue, *mvccpb.KeyValue, error) {
	if err := s.fits(conds, ops); err != nil { // e.g. replacing an object recorded before records were capped
		return false, nil, nil, err
	}
	els := []clientv3.Op{clientv3.OpGet(BucketKey(bucket)), clientv3.OpGet(key), clientv3.OpGet(ConfigKey(bucket), clientv3.WithCountOnly())}
	if intent != "" {
		els = append(els, clientv3.OpGet(IntentPrefix+intent, clientv3.WithCountOnly()))
	}
	resp, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Else(els...).Commit()
	if err != nil {
		return false, nil, nil, err
	}
	if resp.Succeeded {
		return true, nil, nil, nil
	}
	bkvs := resp.Responses[0].GetResponseRange().Kvs
	if len(bkvs) == 0 {
		return false, nil, nil, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	if resp.Responses[2].GetResponseRange().Count > 0 {
		return false, nil, nil, errVersioned
	}
	if intent != "" && resp.Responses[3].GetResponseRange().Count == 0 {
		return false, nil, nil, fmt.Errorf("write %s: %w", intent, ErrIntentLost)
	}
	var cur *mvccpb.KeyValue
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		cur = kvs[0]
	}
	return false, cur, bkvs[0], nil
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

// Bounds on one listing page's work; a page that reaches one ends early, truncated with fewer
// than max entries (S3 allows that) and a continuation marker after its last entry.
const (
	// listPageBytes bounds the object records a page reads: a record holds its object's chunk
	// list and may take megabytes.
	listPageBytes = 16 << 20
	// listPageKeys bounds the keys a delimited page scans (without values): the entries, and the
	// keys under its common prefixes that it steps over.
	listPageKeys = 100_000
	// listSkip is how many keys under one common prefix a scan steps over before it restarts
	// past the prefix: a restart costs a round trip and what etcd streams ahead before the
	// cancellation reaches it (about 1,300 keys measured on loopback), so stepping over up to
	// that many costs at most about twice the best choice made knowing the prefix's size.
	listSkip = 1000
)

// ListObjects lists keys with prefix, strictly after `after` (skipping everything under it
// when afterIsPrefix), rolling keys up to common prefixes at the first delimiter after the
// prefix, returning at most max entries (objects plus prefixes), all as of one revision.
//
// Its work is bounded whatever the layout: records are read only for the objects returned (at
// most max of them and listPageBytes); with a delimiter the keys are scanned without values
// (etcd serves them from its index), and a common prefix holding many keys is skipped by
// restarting the scan past it.
func (s *Store) ListObjects(ctx context.Context, bucket, prefix, delimiter, after string, afterIsPrefix bool, max int) (*ListResult, error) {
	br, err := s.cli.Get(ctx, BucketKey(bucket), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
	}
	if br.Count == 0 {
		return nil, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	res := &ListResult{}
	if max <= 0 {
		return res, nil
	}
	l := &lister{s: s, bucket: bucket, base: ObjectPrefix + bucket + "/", rev: br.Header.Revision, max: max, res: res}
	from := l.base + prefix
	if after != "" && after >= prefix {
		if afterIsPrefix {
			from = clientv3.GetPrefixRangeEnd(l.base + after)
		} else {
			from = l.base + after + "\x00"
		}
	}
	end := clientv3.GetPrefixRangeEnd(l.base + prefix)
	if err := l.list(ctx, from, end, prefix, delimiter); err != nil {
		return nil, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
	}
	return res, nil
}

// lister builds one listing page.
type lister struct {
	s            *Store
	bucket, base string
	rev          int64
	max          int
	bytes        int // object record bytes read
	res          *ListResult
}

func (l *lister) entries() int { return len(l.res.Objects) + len(l.res.Prefixes) }

// objects appends the objects of [from, end), keys the page lists, until the byte bound ends
// the page (truncated).
func (l *lister) objects(ctx context.Context, from, end string) error {
	return l.s.rangeStream(ctx, from, end, l.rev, false, func(kv *mvccpb.KeyValue) (bool, error) {
		key := string(kv.Key[len(l.base):])
		if l.entries() > 0 && l.bytes >= l.s.lim.listBytes {
			l.res.Truncated = true
			return false, nil
		}
		o, err := DecodeObject(kv.Value)
		if err != nil {
			return false, fmt.Errorf("object %s/%s: %w", l.bucket, key, err)
		}
		l.res.Objects = append(l.res.Objects, Entry{Key: key, Object: o})
		l.res.Next, l.res.NextIsPrefix = key, false
		l.bytes += len(kv.Value)
		return true, nil
	})
}

// list lists [from, end), rolling keys up at the first delimiter after prefix. A first pass
// scans keys only and decides the page's entries; a second reads the records of its objects,
// one range read per run of objects between common prefixes, over exactly their keys.
func (l *lister) list(ctx context.Context, from, end, prefix, delimiter string) error {
	type entry struct {
		key    string
		prefix bool
	}
	var entries []entry
	scanned, beyond := 0, false
	for from < end && !beyond {
		restart, skipped := "", 0
		err := l.s.rangeStream(ctx, from, end, l.rev, true, func(kv *mvccpb.KeyValue) (bool, error) {
			key := string(kv.Key[len(l.base):])
			if n := len(entries); n > 0 && entries[n-1].prefix && strings.HasPrefix(key, entries[n-1].key) {
				if skipped++; skipped > l.s.lim.listSkip {
					restart = entries[n-1].key
					return false, nil
				}
				scanned++
				return true, nil
			}
			skipped = 0
			if len(entries) == l.max || len(entries) > 0 && scanned >= l.s.lim.listKeys {
				beyond = true
				return false, nil
			}
			scanned++
			if i := strings.Index(key[len(prefix):], delimiter); delimiter != "" && i >= 0 {
				entries = append(entries, entry{key: key[:len(prefix)+i+len(delimiter)], prefix: true})
			} else {
				entries = append(entries, entry{key: key})
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if restart == "" {
			break
		}
		from = clientv3.GetPrefixRangeEnd(l.base + restart)
	}
	for i := 0; i < len(entries); {
		if entries[i].prefix {
			l.res.Prefixes = append(l.res.Prefixes, entries[i].key)
			l.res.Next, l.res.NextIsPrefix = entries[i].key, true
			i++
			continue
		}
		j := i
		for j < len(entries) && !entries[j].prefix {
			j++
		}
		// Consecutive entries with no common prefix between them are all the keys of their
		// range, at the page's revision.
		if err := l.objects(ctx, l.base+entries[i].key, l.base+entries[j-1].key+"\x00"); err != nil {
			return err
		}
		if l.res.Truncated { // the byte bound ended the page inside the run
			return nil
		}
		i = j
	}
	l.res.Truncated = beyond
	return nil
}

// scan calls fn for every key in [from, end), until fn returns false.
func (s *Store) scan(ctx context.Context, from, end string, fn func(kv *mvccpb.KeyValue) (bool, error)) error {
	if err := s.rangeStream(ctx, from, end, 0, false, fn); err != nil {
		return fmt.Errorf("scan %s: %w", from, err)
	}
	return nil
}

// MarkBad records a damaged replica; the active master's repair replaces it and deletes the
// record.
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
