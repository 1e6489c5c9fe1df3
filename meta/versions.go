package meta

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Versioning (S3 bucket versioning) in the key layout:
//
//	o/<bucket>/<key>                 the current version, when it is an object (not a marker)
//	v/<bucket>/<key>\x00<sort key>   every other version: noncurrent ones and delete markers
//	bc/<bucket>                      the bucket's versioning and object lock configuration
//
// A version's sort key is 16 hex digits of its inverted sequence number (a commit-time
// nanosecond clock, made larger than the key's newest version's), then 8 hex digits that with
// it form the version id, or "null" for the null version. So a key's versions sort newest
// first, and all of them right after the key would: merging the o/ and v/ ranges of a bucket
// in byte order ("k" < "k\x00..." < "k/...", keys hold no NUL) gives ListObjectVersions' order
// with no sort, and a listing stays a paged range read of each prefix. ListObjects reads o/
// only: a bucket's old versions and delete markers cost it nothing.
//
// Invariant: the latest version of a key is o/ when o/ exists; otherwise it is the first v/
// entry of the key, a delete marker. Every change of a key's latest version compares o/'s mod
// revision; the one change that can make a noncurrent version current again while o/ is absent
// (deleting the latest delete marker) also requires that no version of the key was created
// since its read.
//
// Garbage: a version's chunks are queued for collection only by the transaction that removes
// its record (a delete by version id, or the null version replaced while versioning is
// suspended). Making a version noncurrent moves its record from o/ to v/ and keeps its chunks;
// the repair sweep reads v/ as it reads o/, so noncurrent chunks are repaired and never taken
// for unreferenced files.

// Versioning states of a bucket.
const (
	VersioningEnabled   = "Enabled"
	VersioningSuspended = "Suspended"
)

// NullVersion is the version id of the null version.
const NullVersion = "null"

// Errors of versioned operations.
var (
	ErrNoSuchVersion = errors.New("no such version")
	// ErrInvalidVersion: a version id hanode could not have made.
	ErrInvalidVersion = errors.New("invalid version id")
	// ErrDeleteMarker: the version asked for is a delete marker (S3: 405 MethodNotAllowed).
	ErrDeleteMarker = errors.New("the version is a delete marker")
)

// BucketConfig is a bucket's versioning and object lock configuration (ConfigPrefix).
type BucketConfig struct {
	// Versioning is VersioningEnabled, VersioningSuspended, or "" (never enabled).
	Versioning string `json:"versioning,omitempty"`
	// ObjectLock: the bucket was created with object lock; versioning stays enabled.
	ObjectLock bool `json:"object_lock,omitempty"`
	// DefaultRetention, when set, is given to every new version written without a retention.
	DefaultRetention *DefaultRetention `json:"default_retention,omitempty"`
	// Lifecycle is the bucket's lifecycle configuration (lifecycle.go); nil when it has none.
	Lifecycle []LifecycleRule `json:"lifecycle,omitempty"`
}

// ConfigKey is the etcd key of a bucket's configuration.
func ConfigKey(bucket string) string { return ConfigPrefix + bucket }

// VersionKey is the etcd key of a noncurrent version (or delete marker) with sort key sk.
func VersionKey(bucket, key, sk string) string {
	return VersionPrefix + bucket + "/" + key + "\x00" + sk
}

// versionRange is the range of a key's noncurrent versions.
func versionRange(bucket, key string) (string, string) {
	p := VersionPrefix + bucket + "/" + key
	return p + "\x00", p + "\x01"
}

// VersionID is the version id S3 shows for o.
func (o *Object) VersionID() string {
	if len(o.Version) != 24 {
		return NullVersion
	}
	return o.Version
}

// SortKey is o's version sort key; an object written before its bucket was versioned sorts by
// its modification time.
func (o *Object) SortKey() string {
	if o.Version != "" {
		return o.Version
	}
	return seqHex(uint64(o.Modified.UnixNano())) + NullVersion
}

func seqHex(seq uint64) string { return fmt.Sprintf("%016x", ^seq) }

// sortSeq is the sequence number of sort key sk (0 when it is not one).
func sortSeq(sk string) uint64 {
	if len(sk) < 16 {
		return 0
	}
	v, err := strconv.ParseUint(sk[:16], 16, 64)
	if err != nil {
		return 0
	}
	return ^v
}

// ValidVersionID reports whether id is "null" or an id hanode makes (24 lower-case hex digits).
func ValidVersionID(id string) bool {
	if id == NullVersion {
		return true
	}
	if len(id) != 24 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// --- bucket configuration

// CreateBucketWith creates b with its configuration cfg in one transaction.
func (s *Store) CreateBucketWith(ctx context.Context, b Bucket, cfg BucketConfig) error {
	val, _ := json.Marshal(b)
	cv, _ := json.Marshal(cfg)
	k := BucketKey(b.Name)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(val)), clientv3.OpPut(ConfigKey(b.Name), string(cv))).Commit()
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", b.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("create bucket %s: %w", b.Name, ErrBucketExists)
	}
	return nil
}

// GetBucketConfig returns a bucket's configuration (the zero one when versioning was never
// enabled); ErrNoSuchBucket when the bucket does not exist.
func (s *Store) GetBucketConfig(ctx context.Context, bucket string) (*BucketConfig, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(BucketKey(bucket), clientv3.WithCountOnly()), clientv3.OpGet(ConfigKey(bucket))).Commit()
	if err != nil {
		return nil, fmt.Errorf("get configuration of bucket %s: %w", bucket, err)
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return nil, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	cfg, _, err := decodeConfig(bucket, resp.Responses[1].GetResponseRange().Kvs)
	return cfg, err
}

func decodeConfig(bucket string, kvs []*mvccpb.KeyValue) (*BucketConfig, int64, error) {
	cfg := &BucketConfig{}
	if len(kvs) == 0 {
		return cfg, 0, nil
	}
	if err := json.Unmarshal(kvs[0].Value, cfg); err != nil {
		return nil, 0, fmt.Errorf("configuration of bucket %s: %w: %v", bucket, ErrCorrupt, err)
	}
	return cfg, kvs[0].ModRevision, nil
}

// UpdateBucketConfig changes a bucket's configuration with fn, in a transaction that requires
// the bucket and the configuration fn saw to be unchanged. An error from fn is returned as is.
func (s *Store) UpdateBucketConfig(ctx context.Context, bucket string, fn func(*BucketConfig) error) error {
	bk, ck := BucketKey(bucket), ConfigKey(bucket)
	for range maxConflictRetries {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(bk, clientv3.WithCountOnly()), clientv3.OpGet(ck)).Commit()
		if err != nil {
			return fmt.Errorf("update configuration of bucket %s: %w", bucket, err)
		}
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
		}
		cfg, rev, err := decodeConfig(bucket, resp.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return err
		}
		if err := fn(cfg); err != nil {
			return err
		}
		val, _ := json.Marshal(cfg)
		tx, err := s.cli.Txn(ctx).If(versionGT0(bk), clientv3.Compare(clientv3.ModRevision(ck), "=", rev)).
			Then(clientv3.OpPut(ck, string(val))).Commit()
		if err != nil {
			return fmt.Errorf("update configuration of bucket %s: %w", bucket, err)
		}
		if tx.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("update configuration of bucket %s: %w", bucket, errTooManyWriters)
}

// --- the state of one key

// keyState is what a versioned change of a key reads, at one revision.
type keyState struct {
	rev    int64 // of the read
	cur    *Object
	curRev int64 // o/'s mod revision, 0 when absent
	cfg    *BucketConfig
	cfgRev int64
	head   *mvccpb.KeyValue // the key's first v/ entry (its newest noncurrent version), nil if none
}

func (s *Store) readKey(ctx context.Context, bucket, key string) (*keyState, error) {
	ok := ObjectKey(bucket, key)
	vfrom, vend := versionRange(bucket, key)
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(ok),
		clientv3.OpGet(ConfigKey(bucket)),
		clientv3.OpGet(BucketKey(bucket), clientv3.WithCountOnly()),
		// A limit makes etcd count the rest of the range: here one key's versions only.
		clientv3.OpGet(vfrom, clientv3.WithRange(vend), clientv3.WithLimit(1)),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	if resp.Responses[2].GetResponseRange().Count == 0 {
		return nil, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	st := &keyState{rev: resp.Header.Revision}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		st.curRev = kvs[0].ModRevision
		if st.cur, err = DecodeObject(kvs[0].Value); err != nil {
			return nil, fmt.Errorf("object %s/%s: %w", bucket, key, err)
		}
	}
	if st.cfg, st.cfgRev, err = decodeConfig(bucket, resp.Responses[1].GetResponseRange().Kvs); err != nil {
		return nil, err
	}
	if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) > 0 {
		st.head = kvs[0]
	}
	return st, nil
}

// nextSeq is the sequence number of a new latest version: the clock, but always after the
// key's newest version (clocks of coordinators differ).
func (st *keyState) nextSeq(now time.Time) uint64 {
	var newest uint64
	switch {
	case st.cur != nil:
		newest = sortSeq(st.cur.SortKey())
	case st.head != nil:
		newest = sortSeq(versionSortOf(st.head.Key))
	}
	return max(uint64(now.UnixNano()), newest+1)
}

// versionSortOf is the sort key of a v/ key.
func versionSortOf(k []byte) string {
	s := string(k)
	if i := strings.LastIndexByte(s, 0); i >= 0 {
		return s[i+1:]
	}
	return ""
}

// findVersion reads the v/ record of version id of key at rev (nil when there is none): a
// version id is its sort key's suffix, and the null version is found by scanning the key's
// versions (there is at most one).
func (s *Store) findVersion(ctx context.Context, bucket, key, id string, rev int64) (*mvccpb.KeyValue, error) {
	vfrom, vend := versionRange(bucket, key)
	var k string
	if id == NullVersion {
		err := s.rangeStream(ctx, vfrom, vend, rev, true, func(kv *mvccpb.KeyValue) (bool, error) {
			if strings.HasSuffix(string(kv.Key), NullVersion) {
				k = string(kv.Key)
				return false, nil
			}
			return true, nil
		})
		if err != nil || k == "" {
			return nil, err
		}
	} else {
		if !ValidVersionID(id) {
			return nil, fmt.Errorf("version %q: %w", id, ErrInvalidVersion)
		}
		k = VersionKey(bucket, key, id)
	}
	resp, err := s.cli.Get(ctx, k, clientv3.WithRev(rev))
	if err != nil {
		return nil, fmt.Errorf("read version %s of %s/%s: %w", id, bucket, key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0], nil
}

// noncurrentOp moves the current version o to v/ (a version id for legacy objects included).
func noncurrentOp(bucket, key string, o *Object) clientv3.Op {
	moved := *o
	moved.Version = o.SortKey()
	return clientv3.OpPut(VersionKey(bucket, key, moved.Version), string(EncodeObject(&moved)))
}

// --- writes

// errVersioned: a write assumed its bucket unversioned and found a configuration; it is done
// again as a versioned write. Nothing was written.
var errVersioned = errors.New("the bucket has a versioning configuration")

// versionedWrite is a new current version of a key in a versioned bucket, with what the
// operation that makes it (PutObject, CompleteMultipartUpload) adds to its transaction.
type versionedWrite struct {
	bucket, key string
	obj         *Object
	intent      string
	cond        Condition
	grace       time.Duration
	conds       []clientv3.Cmp
	ops         []clientv3.Op
	garbage     []Chunk
	// refused tells, after a transaction that failed, a definite reason (the upload or the
	// intent is gone) from a race to retry (nil).
	refused func(context.Context) error
}

// putVersion commits w: the new version becomes current, the old current version becomes
// noncurrent (or, while versioning is suspended, the null version is replaced and its chunks
// queued). It sets w.obj.Version (and the lock a default retention gives it) and returns the
// record it last tried to put, for the caller's settling of a failed call.
func (s *Store) putVersion(ctx context.Context, w *versionedWrite) ([]byte, error) {
	ok := ObjectKey(w.bucket, w.key)
	suffix := randomSuffix()
	var val []byte
	for range maxConflictRetries {
		st, err := s.readKey(ctx, w.bucket, w.key)
		if err != nil {
			return val, err
		}
		if err := w.cond.check(st.cur != nil, st.cur); err != nil {
			return val, err
		}
		suspended := st.cfg.Versioning != VersioningEnabled
		o := *w.obj
		id := suffix
		if suspended {
			id = NullVersion
		}
		if st.cfg.Versioning != "" {
			o.Version = seqHex(st.nextSeq(s.now())) + id
		} // else a bucket never versioned (with a lifecycle configuration): the null version, as before
		if r := st.cfg.DefaultRetention; r != nil && o.Lock.Mode == "" {
			o.Lock.Mode, o.Lock.Until = r.Mode, r.until(o.Modified)
		}
		val = EncodeObject(&o)
		if err := s.recordFits(val); err != nil {
			return val, err
		}
		conds := append([]clientv3.Cmp{
			versionGT0(BucketKey(w.bucket)),
			clientv3.Compare(clientv3.ModRevision(ConfigKey(w.bucket)), "=", st.cfgRev),
			clientv3.Compare(clientv3.ModRevision(ok), "=", st.curRev),
		}, w.conds...)
		ops := append([]clientv3.Op{clientv3.OpPut(ok, string(val))}, w.ops...)
		garbage := append([]Chunk(nil), w.garbage...)
		if st.cur != nil {
			if suspended && st.cur.VersionID() == NullVersion {
				garbage = append(garbage, st.cur.Chunks...)
			} else {
				ops = append(ops, noncurrentOp(w.bucket, w.key, st.cur))
			}
		}
		if suspended {
			nk, err := s.findVersion(ctx, w.bucket, w.key, NullVersion, st.rev)
			if err != nil {
				return val, err
			}
			if nk != nil {
				if old, err := DecodeObject(nk.Value); err == nil {
					garbage = append(garbage, old.Chunks...)
				}
				conds = append(conds, clientv3.Compare(clientv3.ModRevision(string(nk.Key)), "=", nk.ModRevision))
				ops = append(ops, clientv3.OpDelete(string(nk.Key)))
			}
		}
		if w.intent != "" {
			conds = append(conds, versionGT0(IntentPrefix+w.intent))
			ops = append(ops, clientv3.OpDelete(IntentPrefix+w.intent))
		}
		if op, ok := s.garbageOp(garbage, w.grace); ok {
			ops = append(ops, op)
		}
		if err := s.fits(conds, ops); err != nil {
			return val, err
		}
		resp, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Commit()
		if err != nil {
			return val, err
		}
		if resp.Succeeded {
			w.obj.Version, w.obj.Lock = o.Version, o.Lock
			return val, nil
		}
		if w.refused != nil {
			if err := w.refused(ctx); err != nil {
				return val, err
			}
		}
	}
	return val, errTooManyWriters
}

// intentGone is a versioned PutObject's refused: its intent expired.
func (s *Store) intentGone(intent string) func(context.Context) error {
	return func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, IntentPrefix+intent, clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		if resp.Count == 0 {
			return fmt.Errorf("write %s: %w", intent, ErrIntentLost)
		}
		return nil
	}
}

// --- reads

// GetObjectVersion returns version id of key ("": the current version, as GetObject). A
// delete marker is returned with DeleteMarker set; ErrNoSuchVersion when there is no such
// version, ErrInvalidVersion for an id hanode cannot have made.
func (s *Store) GetObjectVersion(ctx context.Context, bucket, key, id string) (*Object, error) {
	if id == "" {
		return s.GetObject(ctx, bucket, key)
	}
	kv, err := s.locate(ctx, bucket, key, id)
	if err != nil {
		return nil, err
	}
	o, err := DecodeObject(kv.Value)
	if err != nil {
		return nil, fmt.Errorf("version %s of %s/%s: %w", id, bucket, key, err)
	}
	return o, nil
}

// locate finds version id of key: the current record or a v/ one.
func (s *Store) locate(ctx context.Context, bucket, key, id string) (*mvccpb.KeyValue, error) {
	if !ValidVersionID(id) {
		return nil, fmt.Errorf("version %q: %w", id, ErrInvalidVersion)
	}
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(ObjectKey(bucket, key)), clientv3.OpGet(BucketKey(bucket), clientv3.WithCountOnly())).Commit()
	if err != nil {
		return nil, fmt.Errorf("get version %s of %s/%s: %w", id, bucket, key, err)
	}
	if resp.Responses[1].GetResponseRange().Count == 0 {
		return nil, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if o, err := DecodeObject(kvs[0].Value); err == nil && o.VersionID() == id {
			return kvs[0], nil
		}
	}
	kv, err := s.findVersion(ctx, bucket, key, id, resp.Header.Revision)
	if err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, fmt.Errorf("version %s of %s/%s: %w", id, bucket, key, ErrNoSuchVersion)
	}
	return kv, nil
}

// LatestIsDeleteMarker reports whether key's latest version is a delete marker (what S3 says
// in x-amz-delete-marker when a read finds no current object).
func (s *Store) LatestIsDeleteMarker(ctx context.Context, bucket, key string) (bool, string, error) {
	st, err := s.readKey(ctx, bucket, key)
	if err != nil {
		return false, "", err
	}
	if st.cur != nil || st.head == nil {
		return false, "", nil
	}
	o, err := DecodeObject(st.head.Value)
	if err != nil {
		return false, "", fmt.Errorf("latest version of %s/%s: %w", bucket, key, err)
	}
	return o.DeleteMarker, o.VersionID(), nil
}

// UpdateVersion rewrites version id of key ("": the current version) with fn, in a
// transaction that requires the record fn saw to be unchanged; the data stays as it is. A
// delete marker is ErrDeleteMarker; an error from fn is returned as is.
func (s *Store) UpdateVersion(ctx context.Context, bucket, key, id string, fn func(*Object) error) error {
	for range maxConflictRetries {
		var kv *mvccpb.KeyValue
		if id == "" {
			resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(ObjectKey(bucket, key)), clientv3.OpGet(BucketKey(bucket), clientv3.WithCountOnly())).Commit()
			if err != nil {
				return fmt.Errorf("update %s/%s: %w", bucket, key, err)
			}
			if resp.Responses[1].GetResponseRange().Count == 0 {
				return fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
			}
			kvs := resp.Responses[0].GetResponseRange().Kvs
			if len(kvs) == 0 {
				return fmt.Errorf("object %s/%s: %w", bucket, key, ErrNoSuchKey)
			}
			kv = kvs[0]
		} else {
			var err error
			if kv, err = s.locate(ctx, bucket, key, id); err != nil {
				return err
			}
		}
		o, err := DecodeObject(kv.Value)
		if err != nil {
			return fmt.Errorf("update %s/%s: %w", bucket, key, err)
		}
		if o.DeleteMarker {
			return fmt.Errorf("version %s of %s/%s: %w", id, bucket, key, ErrDeleteMarker)
		}
		if err := fn(o); err != nil {
			return err
		}
		val := EncodeObject(o)
		if err := s.recordFits(val); err != nil {
			return fmt.Errorf("update %s/%s: %w", bucket, key, err)
		}
		k := string(kv.Key)
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).Then(clientv3.OpPut(k, string(val))).Commit()
		if err != nil {
			return fmt.Errorf("update %s/%s: %w", bucket, key, err)
		}
		if tx.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("update %s/%s: %w", bucket, key, errTooManyWriters)
}

// --- deletes

// DeleteOptions says what a delete removes and under which conditions.
type DeleteOptions struct {
	// Version is the version id to remove for good; "" deletes the key: in a versioned bucket
	// that adds a delete marker.
	Version string
	// Cond is an If-Match on the version removed (or the current one, for a delete marker).
	Cond Condition
	// BypassGovernance lets the delete remove a version under GOVERNANCE retention.
	BypassGovernance bool
	Grace            time.Duration
	// Guard is added to the delete's transaction (the active master's fence, for lifecycle
	// expiration): a guard that fails makes the delete ErrConflict.
	Guard []clientv3.Cmp
}

// DeleteResult is what a delete did.
type DeleteResult struct {
	VersionID    string // the version removed or the delete marker made; "" in an unversioned bucket
	DeleteMarker bool   // a delete marker was made, or the version removed was one
}

// DeleteVersion deletes a key or one of its versions, as S3's DeleteObject does in a bucket
// of any versioning state. A version that is locked (objectlock.go) is refused with ErrLocked.
// A delete transaction whose call fails is settled by doing it again from a fresh read, as
// DeleteObject does (at worst a second delete marker).
func (s *Store) DeleteVersion(ctx context.Context, bucket, key string, opt DeleteOptions) (DeleteResult, error) {
	res, err := s.deleteVersion(ctx, bucket, key, opt)
	if err == nil || isDefinite(err) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrLocked) || errors.Is(err, ErrInvalidVersion) {
		return res, err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	res, rerr := s.deleteVersion(rctx, bucket, key, opt)
	if rerr != nil {
		return res, fmt.Errorf("%w: %w; deleting again failed too: %v", ErrCommitUnknown, err, rerr)
	}
	return res, nil
}

func (s *Store) deleteVersion(ctx context.Context, bucket, key string, opt DeleteOptions) (DeleteResult, error) {
	for range maxConflictRetries {
		st, err := s.readKey(ctx, bucket, key)
		if err != nil {
			return DeleteResult{}, err
		}
		var conds []clientv3.Cmp
		var ops []clientv3.Op
		var res DeleteResult
		if opt.Version == "" {
			res, conds, ops, err = s.deleteLatest(ctx, bucket, key, st, opt)
		} else {
			res, conds, ops, err = s.deleteOne(ctx, bucket, key, st, opt)
		}
		if err != nil || ops == nil {
			return res, err
		}
		conds = append(conds, versionGT0(BucketKey(bucket)), clientv3.Compare(clientv3.ModRevision(ConfigKey(bucket)), "=", st.cfgRev))
		conds = append(conds, opt.Guard...)
		tx, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Commit()
		if err != nil {
			return res, fmt.Errorf("delete %s/%s: %w", bucket, key, err)
		}
		if tx.Succeeded {
			return res, nil
		}
		if len(opt.Guard) > 0 {
			g, err := s.cli.Txn(ctx).If(opt.Guard...).Commit()
			if err != nil {
				return res, fmt.Errorf("delete %s/%s: %w", bucket, key, err)
			}
			if !g.Succeeded {
				return res, fmt.Errorf("delete %s/%s: the guard failed: %w", bucket, key, ErrConflict)
			}
		}
	}
	return DeleteResult{}, fmt.Errorf("delete %s/%s: %w", bucket, key, errTooManyWriters)
}

// deleteLatest deletes the key: in an unversioned bucket its record goes (and its chunks);
// otherwise a delete marker becomes the latest version.
func (s *Store) deleteLatest(ctx context.Context, bucket, key string, st *keyState, opt DeleteOptions) (DeleteResult, []clientv3.Cmp, []clientv3.Op, error) {
	ok := ObjectKey(bucket, key)
	if st.cur != nil {
		if err := opt.Cond.check(true, st.cur); err != nil {
			return DeleteResult{}, nil, nil, fmt.Errorf("delete %s/%s: %w", bucket, key, err)
		}
	}
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(ok), "=", st.curRev)}
	if st.cfg.Versioning == "" {
		if st.cur == nil {
			return DeleteResult{}, nil, nil, nil // nothing to delete (S3 answers success)
		}
		ops := []clientv3.Op{clientv3.OpDelete(ok)}
		if op, ok := s.garbageOp(st.cur.Chunks, opt.Grace); ok {
			ops = append(ops, op)
		}
		return DeleteResult{}, conds, ops, nil
	}
	suspended := st.cfg.Versioning != VersioningEnabled
	id := randomSuffix()
	if suspended {
		id = NullVersion
	}
	marker := &Object{Modified: s.now().UTC(), DeleteMarker: true}
	marker.Version = seqHex(st.nextSeq(marker.Modified)) + id
	ops := []clientv3.Op{clientv3.OpPut(VersionKey(bucket, key, marker.Version), string(EncodeObject(marker)))}
	var garbage []Chunk
	if st.cur != nil {
		ops = append(ops, clientv3.OpDelete(ok))
		if suspended && st.cur.VersionID() == NullVersion {
			garbage = append(garbage, st.cur.Chunks...)
		} else {
			ops = append(ops, noncurrentOp(bucket, key, st.cur))
		}
	}
	if suspended {
		nk, err := s.findVersion(ctx, bucket, key, NullVersion, st.rev)
		if err != nil {
			return DeleteResult{}, nil, nil, err
		}
		if nk != nil {
			if old, err := DecodeObject(nk.Value); err == nil {
				garbage = append(garbage, old.Chunks...)
			}
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(string(nk.Key)), "=", nk.ModRevision))
			ops = append(ops, clientv3.OpDelete(string(nk.Key)))
		}
	}
	if op, ok := s.garbageOp(garbage, opt.Grace); ok {
		ops = append(ops, op)
	}
	return DeleteResult{VersionID: marker.VersionID(), DeleteMarker: true}, conds, ops, nil
}

// deleteOne removes version opt.Version for good, its chunks queued. When it was the latest
// version, the newest remaining one becomes current (if it is an object).
func (s *Store) deleteOne(ctx context.Context, bucket, key string, st *keyState, opt DeleteOptions) (DeleteResult, []clientv3.Cmp, []clientv3.Op, error) {
	ok := ObjectKey(bucket, key)
	res := DeleteResult{VersionID: opt.Version}
	var target *Object
	var tkey string
	var trev int64
	if st.cur != nil && st.cur.VersionID() == opt.Version {
		target, tkey, trev = st.cur, ok, st.curRev
	} else {
		kv, err := s.findVersion(ctx, bucket, key, opt.Version, st.rev)
		if err != nil {
			return res, nil, nil, err
		}
		if kv == nil {
			return res, nil, nil, nil // no such version: nothing to delete (S3 answers success)
		}
		if target, err = DecodeObject(kv.Value); err != nil {
			return res, nil, nil, fmt.Errorf("version %s of %s/%s: %w", opt.Version, bucket, key, err)
		}
		tkey, trev = string(kv.Key), kv.ModRevision
	}
	res.DeleteMarker = target.DeleteMarker
	if !target.DeleteMarker {
		if err := target.Lock.allowsDelete(s.now(), opt.BypassGovernance); err != nil {
			return res, nil, nil, fmt.Errorf("delete version %s of %s/%s: %w", opt.Version, bucket, key, err)
		}
	}
	if err := opt.Cond.check(true, target); err != nil {
		return res, nil, nil, fmt.Errorf("delete version %s of %s/%s: %w", opt.Version, bucket, key, err)
	}
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(tkey), "=", trev), clientv3.Compare(clientv3.ModRevision(ok), "=", st.curRev)}
	var ops []clientv3.Op
	if op, ok := s.garbageOp(target.Chunks, opt.Grace); ok {
		ops = append(ops, op)
	}
	// The latest version goes: the newest remaining one, if an object, becomes current.
	var next *mvccpb.KeyValue
	switch {
	case tkey == ok:
		next = st.head
	case st.cur == nil && st.head != nil && string(st.head.Key) == tkey:
		_, vend := versionRange(bucket, key)
		err := s.rangeStream(ctx, tkey+"\x00", vend, st.rev, false, func(kv *mvccpb.KeyValue) (bool, error) {
			next = kv
			return false, nil
		})
		if err != nil {
			return res, nil, nil, fmt.Errorf("read versions of %s/%s: %w", bucket, key, err)
		}
		// No version of the key may appear meanwhile (a delete marker added while o/ is absent
		// changes nothing else this transaction compares).
		vfrom, vend2 := versionRange(bucket, key)
		conds = append(conds, clientv3.Compare(clientv3.CreateRevision(vfrom), "<", st.rev+1).WithRange(vend2))
	}
	if next != nil {
		n, err := DecodeObject(next.Value)
		if err != nil {
			return res, nil, nil, fmt.Errorf("version %s of %s/%s: %w", next.Key, bucket, key, err)
		}
		conds = append(conds, clientv3.Compare(clientv3.ModRevision(string(next.Key)), "=", next.ModRevision))
		if !n.DeleteMarker {
			// One transaction may not both delete and put o/: the put replaces it.
			ops = append(ops, clientv3.OpDelete(string(next.Key)), clientv3.OpPut(ok, string(next.Value)))
			if tkey == ok {
				return res, conds, ops, nil
			}
		}
	}
	return res, conds, append(ops, clientv3.OpDelete(tkey)), nil
}
