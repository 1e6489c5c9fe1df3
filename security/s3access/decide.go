package s3access

import (
	"github.com/hanode/hanode/meta"
)

// Need is what lets a principal perform one operation (any one of them suffices).
type Need struct {
	Level  Level // a grant level (or ownership) that suffices; None: none does (root only)
	Bucket Perm  // a bucket ACL permission that suffices; 0: none does
	Object Perm  // an object ACL permission that suffices; 0: none does
	Action string
	// OwnerAlways: the bucket's owner may do it whatever the policy says (managing the
	// policy itself, so that an owner cannot lock itself out).
	OwnerAlways bool
}

// Ask is one request to decide.
type Ask struct {
	Principal string // access key; "" anonymous
	Key       string // the object, "" for a bucket operation
	// Value answers the policy's condition keys (see Request.Value).
	Value func(key string) ([]string, bool, error)
	// Object returns the object's ACL when the decision needs it (exists false: no such
	// object). Only called for object operations that the bucket level does not allow.
	Object func() (acl *meta.ACL, exists bool, err error)
}

// Decide reports whether a principal (not root: root may do everything) may perform an
// operation on b. Deny by default; in order:
//  1. a Deny statement of the bucket policy that applies refuses (but never the owner's
//     Need.OwnerAlways operations);
//  2. the principal's level (ownership or `hanode user grant`) allows;
//  3. the bucket ACL allows;
//  4. an Allow statement of the policy that applies allows (with the public access block's
//     RestrictPublicBuckets, a public policy allows only principals with a level);
//  5. the object's ACL allows. For an object that does not exist, the answer is whether the
//     principal may list the bucket (so that it gets NoSuchKey, else AccessDenied, as in S3).
func (b *Bucket) Decide(n Need, a Ask) (bool, error) {
	if !b.Exists {
		return false, nil
	}
	resource := "arn:aws:s3:::" + b.Name
	if a.Key != "" {
		resource += "/" + a.Key
	}
	eff := NoEffect
	if b.Policy != nil {
		var err error
		if eff, err = b.Policy.Evaluate(&Request{Principal: a.Principal, Action: n.Action, Resource: resource, Value: a.Value}); err != nil {
			return false, err
		}
	}
	level := b.Level(a.Principal, false)
	switch {
	case eff == Denied && !(n.OwnerAlways && level == Owner && a.Principal == b.Owner):
		return false, nil
	case n.Level > None && level >= n.Level:
		return true, nil
	case n.Bucket != 0 && b.BucketPerms(a.Principal)&n.Bucket == n.Bucket:
		return true, nil
	case eff == Allowed && !(b.Block != nil && b.Block.RestrictPublicBuckets && b.Policy.Public() && level == None):
		return true, nil
	case n.Object == 0 || a.Key == "" || a.Object == nil:
		return false, nil
	}
	acl, exists, err := a.Object()
	if err != nil {
		return false, err
	}
	if !exists {
		// As a listing of the key's name: s3:prefix is the key.
		value := func(k string) ([]string, bool, error) {
			if k == "s3:prefix" {
				return []string{a.Key}, true, nil
			}
			if a.Value == nil {
				return nil, false, nil
			}
			return a.Value(k)
		}
		return b.Decide(Need{Level: Read, Bucket: PermRead, Action: "s3:ListBucket"}, Ask{Principal: a.Principal, Value: value})
	}
	return b.ObjectPerms(acl, a.Principal)&n.Object == n.Object, nil
}
