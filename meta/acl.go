package meta

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ACL is an S3 access control list of a bucket or an object (security/s3access evaluates it).
// A nil ACL is the default one: the owner has FULL_CONTROL, nobody else anything.
type ACL struct {
	// Owner is the access key owning an object (its writer). For a bucket it is empty: the
	// bucket record's Owner is the owner. An object record without an ACL is owned by its
	// bucket's owner.
	Owner  string  `json:"owner,omitempty"`
	Grants []Grant `json:"grants"`
}

// Grant gives one grantee one permission.
type Grant struct {
	// Grantee is an access key, or one of the groups GroupAllUsers, GroupAuthenticatedUsers.
	Grantee string `json:"grantee"`
	// Permission is FULL_CONTROL, READ, WRITE, READ_ACP or WRITE_ACP.
	Permission string `json:"permission"`
}

// The groups of S3 ACLs hanode serves (their URIs are in package s3).
const (
	GroupAllUsers           = "group:AllUsers"
	GroupAuthenticatedUsers = "group:AuthenticatedUsers"
)

// Optional trailing fields of object and upload records taken by ACLs: far from the low
// numbers other fields use, so that fields added in parallel do not collide.
const (
	tagACL = 32 // owner string, then count and (grantee, permission) strings
)

func (e *enc) acl(a *ACL) {
	e.byte(tagACL)
	e.str(a.Owner)
	e.uvarint(uint64(len(a.Grants)))
	for _, g := range a.Grants {
		e.str(g.Grantee)
		e.str(g.Permission)
	}
}

func (d *dec) acl() *ACL {
	a := &ACL{Owner: d.str()}
	n := d.count()
	for range n {
		a.Grants = append(a.Grants, Grant{Grantee: d.str(), Permission: d.str()})
	}
	return a
}

// SetObjectACL replaces an object's ACL with what change makes of the current one (nil: the
// default one), as SetTags does its tags: the record it read must be unchanged when it is
// written back. ErrNoSuchKey or ErrNoSuchBucket when absent; change's error as is.
func (s *Store) SetObjectACL(ctx context.Context, bucket, key string, change func(cur *ACL) (*ACL, error)) error {
	return s.updateObject(ctx, bucket, key, "set the ACL of", func(o *Object) error {
		acl, err := change(o.ACL)
		o.ACL = acl
		return err
	})
}

// updateObject rewrites an object's record with change applied, if the record is unchanged
// meanwhile (retrying otherwise); the object's data and chunks stay as they are.
func (s *Store) updateObject(ctx context.Context, bucket, key, what string, change func(*Object) error) error {
	ok := ObjectKey(bucket, key)
	for range maxConflictRetries {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(ok), clientv3.OpGet(BucketKey(bucket), clientv3.WithCountOnly())).Commit()
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", what, bucket, key, err)
		}
		if resp.Responses[1].GetResponseRange().Count == 0 {
			return fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return fmt.Errorf("object %s/%s: %w", bucket, key, ErrNoSuchKey)
		}
		o, err := DecodeObject(kvs[0].Value)
		if err != nil {
			return fmt.Errorf("object %s/%s: %w", bucket, key, err)
		}
		if err := change(o); err != nil {
			return err
		}
		val := EncodeObject(o)
		if err := s.recordFits(val); err != nil {
			return fmt.Errorf("%s %s/%s: %w", what, bucket, key, err)
		}
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(ok), "=", kvs[0].ModRevision)).
			Then(clientv3.OpPut(ok, string(val))).Commit()
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", what, bucket, key, err)
		}
		if tx.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("%s %s/%s: %w", what, bucket, key, errTooManyWriters)
}

// UpdateBucket rewrites a bucket's record with change applied (which may refuse with an
// error, returned as is), if the record is unchanged meanwhile (retrying otherwise).
// ErrNoSuchBucket when absent.
func (s *Store) UpdateBucket(ctx context.Context, name string, change func(*Bucket) error) error {
	k := BucketKey(name)
	for range maxConflictRetries {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("read bucket %s: %w", name, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("bucket %s: %w", name, ErrNoSuchBucket)
		}
		var b Bucket
		if err := json.Unmarshal(resp.Kvs[0].Value, &b); err != nil {
			return fmt.Errorf("bucket %s: %w: %v", name, ErrCorrupt, err)
		}
		if err := change(&b); err != nil {
			return err
		}
		val, _ := json.Marshal(b)
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(k, string(val))).Commit()
		if err != nil {
			return fmt.Errorf("update bucket %s: %w", name, err)
		}
		if tx.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("update bucket %s: %w", name, errTooManyWriters)
}
