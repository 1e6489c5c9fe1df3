package s3access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

// Errors of the store.
var (
	ErrNoSuchBucket = errors.New("no such bucket")
	ErrNoSuchUser   = errors.New("no such access key")
	ErrNoGrant      = errors.New("no such grant")
	ErrNoPolicy     = errors.New("the bucket has no policy")
)

// maxGrantsPerBucket bounds what Load reads for one bucket.
const maxGrantsPerBucket = 10000

// Grant is one access key's access to one bucket.
type Grant struct {
	Bucket    string    `json:"bucket"`
	AccessKey string    `json:"access_key"`
	Level     string    `json:"level"`
	By        string    `json:"by,omitempty"`
	Created   time.Time `json:"created"`
}

// Store reads and writes grants and policies.
type Store struct{ kv clientv3.KV }

// New returns a Store.
func New(kv clientv3.KV) *Store { return &Store{kv: kv} }

func exists(key string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(key), ">", 0) }

// Load reads everything that decides access to bucket, in one consistent read; rev is its
// revision.
func (s *Store) Load(ctx context.Context, bucket string) (b Bucket, rev int64, err error) {
	resp, err := s.kv.Txn(ctx).Then(clientv3.OpGet(meta.BucketKey(bucket)),
		clientv3.OpGet(BucketPrefix(bucket), clientv3.WithPrefix(), clientv3.WithLimit(maxGrantsPerBucket))).Commit()
	if err != nil {
		return Bucket{}, 0, fmt.Errorf("read the access of bucket %s: %w", bucket, err)
	}
	b = Bucket{Name: bucket, Grants: map[string]Level{}}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		var rec meta.Bucket
		if err := json.Unmarshal(kvs[0].Value, &rec); err != nil {
			return Bucket{}, 0, fmt.Errorf("bucket %s: %w: %v", bucket, meta.ErrCorrupt, err)
		}
		b.Exists, b.Owner, b.ACL, b.Ownership, b.Block = true, rec.Owner, rec.ACL, rec.Ownership, rec.PublicAccessBlock
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		k := string(kv.Key)
		switch {
		case k == PolicyKey(bucket):
			var stored Policy
			if err := json.Unmarshal(kv.Value, &stored); err != nil {
				return Bucket{}, 0, fmt.Errorf("policy of bucket %s: %w: %v", bucket, meta.ErrCorrupt, err)
			}
			// Only the document is stored; it was valid when it was put.
			p, err := ParsePolicy(bucket, []byte(stored.Document))
			if err != nil {
				return Bucket{}, 0, fmt.Errorf("policy of bucket %s: %w: %v", bucket, meta.ErrCorrupt, err)
			}
			b.Policy = p
		case k == CORSKey(bucket):
			var c s3.CORSConfiguration
			if err := json.Unmarshal(kv.Value, &c); err != nil {
				return Bucket{}, 0, fmt.Errorf("CORS configuration of bucket %s: %w: %v", bucket, meta.ErrCorrupt, err)
			}
			b.CORS = &c
		case strings.HasPrefix(k, grantPrefix(bucket)):
			var g Grant
			if err := json.Unmarshal(kv.Value, &g); err != nil {
				return Bucket{}, 0, fmt.Errorf("grant %s: %w: %v", k, meta.ErrCorrupt, err)
			}
			if l, err := ParseLevel(g.Level); err == nil {
				b.Grants[strings.TrimPrefix(k, grantPrefix(bucket))] = l
			}
		}
	}
	return b, resp.Header.Revision, nil
}

// Grant gives accessKey level on bucket (replacing what it had), if both exist.
func (s *Store) Grant(ctx context.Context, g Grant) error {
	if _, err := ParseLevel(g.Level); err != nil {
		return err
	}
	if g.Created.IsZero() {
		g.Created = time.Now().UTC()
	}
	val, _ := json.Marshal(g)
	bk, uk := meta.BucketKey(g.Bucket), meta.UserPrefix+g.AccessKey
	resp, err := s.kv.Txn(ctx).If(exists(bk), exists(uk)).Then(clientv3.OpPut(GrantKey(g.Bucket, g.AccessKey), string(val))).
		Else(clientv3.OpGet(bk, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return fmt.Errorf("grant %s %s on bucket %s: %w", g.AccessKey, g.Level, g.Bucket, err)
	}
	if resp.Succeeded {
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return fmt.Errorf("grant on bucket %s: %w", g.Bucket, ErrNoSuchBucket)
	}
	return fmt.Errorf("grant to %s: %w", g.AccessKey, ErrNoSuchUser)
}

// Revoke removes accessKey's grant on bucket.
func (s *Store) Revoke(ctx context.Context, bucket, accessKey string) error {
	resp, err := s.kv.Delete(ctx, GrantKey(bucket, accessKey))
	if err != nil {
		return fmt.Errorf("revoke %s on bucket %s: %w", accessKey, bucket, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%s on bucket %s: %w", accessKey, bucket, ErrNoGrant)
	}
	return nil
}

// List returns the grants, of one bucket and/or one access key when they are not empty.
func (s *Store) List(ctx context.Context, bucket, accessKey string) ([]Grant, error) {
	prefix := keyspace.S3Access
	if bucket != "" {
		prefix = grantPrefix(bucket)
	}
	resp, err := s.kv.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	out := []Grant{}
	for _, kv := range resp.Kvs {
		if !strings.Contains(strings.TrimPrefix(string(kv.Key), keyspace.S3Access), "/grant/") {
			continue
		}
		var g Grant
		if json.Unmarshal(kv.Value, &g) != nil || (accessKey != "" && g.AccessKey != accessKey) {
			continue
		}
		out = append(out, g)
	}
	return out, nil
}

// GrantedBuckets returns the buckets accessKey holds a grant on (keys only: no record read).
func (s *Store) GrantedBuckets(ctx context.Context, accessKey string) (map[string]bool, error) {
	resp, err := s.kv.Get(ctx, keyspace.S3Access, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list the grants of %s: %w", accessKey, err)
	}
	out := map[string]bool{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if b := BucketOfKey(k); k == GrantKey(b, accessKey) {
			out[b] = true
		}
	}
	return out, nil
}

// RevokeAll removes every grant of accessKey (when the access key is removed), so that a key
// made again under the same name starts with none. It returns how many it removed.
func (s *Store) RevokeAll(ctx context.Context, accessKey string) (int, error) {
	bs, err := s.GrantedBuckets(ctx, accessKey)
	if err != nil {
		return 0, err
	}
	n := 0
	for b := range bs {
		if err := s.Revoke(ctx, b, accessKey); err == nil {
			n++
		} else if !errors.Is(err, ErrNoGrant) {
			return n, err
		}
	}
	return n, nil
}

// PutPolicy stores bucket's policy if the bucket exists.
func (s *Store) PutPolicy(ctx context.Context, bucket string, p *Policy) error {
	val, _ := json.Marshal(p)
	resp, err := s.kv.Txn(ctx).If(exists(meta.BucketKey(bucket))).Then(clientv3.OpPut(PolicyKey(bucket), string(val))).Commit()
	if err != nil {
		return fmt.Errorf("put the policy of bucket %s: %w", bucket, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("put the policy of bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	return nil
}

// PutCORS stores bucket's CORS configuration (encoded by the caller) if the bucket exists.
func (s *Store) PutCORS(ctx context.Context, bucket string, cfg []byte) error {
	resp, err := s.kv.Txn(ctx).If(exists(meta.BucketKey(bucket))).Then(clientv3.OpPut(CORSKey(bucket), string(cfg))).Commit()
	if err != nil {
		return fmt.Errorf("put the CORS configuration of bucket %s: %w", bucket, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("put the CORS configuration of bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	return nil
}

// DeleteCORS removes bucket's CORS configuration.
func (s *Store) DeleteCORS(ctx context.Context, bucket string) error {
	if _, err := s.kv.Delete(ctx, CORSKey(bucket)); err != nil {
		return fmt.Errorf("delete the CORS configuration of bucket %s: %w", bucket, err)
	}
	return nil
}

// DeletePolicy removes bucket's policy (no error when it has none, as S3 answers 204).
func (s *Store) DeletePolicy(ctx context.Context, bucket string) error {
	if _, err := s.kv.Delete(ctx, PolicyKey(bucket)); err != nil {
		return fmt.Errorf("delete the policy of bucket %s: %w", bucket, err)
	}
	return nil
}
