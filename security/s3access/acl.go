package s3access

import (
	"github.com/hanode/hanode/meta"
)

// Perm is a set of S3 ACL permissions.
type Perm uint8

// The ACL permissions. On a bucket: READ lists it, WRITE creates, overwrites and deletes its
// objects, READ_ACP and WRITE_ACP read and write its ACL. On an object: READ reads it (data,
// metadata, tags), READ_ACP and WRITE_ACP its ACL; WRITE means nothing on an object (S3 does
// the same).
const (
	PermRead Perm = 1 << iota
	PermWrite
	PermReadACP
	PermWriteACP
	PermFullControl = PermRead | PermWrite | PermReadACP | PermWriteACP
)

var permNames = map[string]Perm{"READ": PermRead, "WRITE": PermWrite, "READ_ACP": PermReadACP, "WRITE_ACP": PermWriteACP, "FULL_CONTROL": PermFullControl}

// ParsePerm parses an S3 permission name.
func ParsePerm(s string) (Perm, bool) { p, ok := permNames[s]; return p, ok }

// Public reports whether acl grants anything to everyone or to every authenticated user.
func Public(acl *meta.ACL) bool {
	if acl == nil {
		return false
	}
	for _, g := range acl.Grants {
		if g.Grantee == meta.GroupAllUsers || g.Grantee == meta.GroupAuthenticatedUsers {
			return true
		}
	}
	return false
}

// granted returns what acl grants principal ("" anonymous) directly or through a group;
// ignorePublic leaves the groups out (a public access block's IgnorePublicAcls).
func granted(acl *meta.ACL, principal string, ignorePublic bool) Perm {
	var p Perm
	if acl == nil {
		return 0
	}
	for _, g := range acl.Grants {
		perm, ok := ParsePerm(g.Permission)
		if !ok {
			continue
		}
		switch g.Grantee {
		case meta.GroupAllUsers:
			if !ignorePublic {
				p |= perm
			}
		case meta.GroupAuthenticatedUsers:
			if !ignorePublic && principal != "" {
				p |= perm
			}
		default:
			if principal != "" && g.Grantee == principal {
				p |= perm
			}
		}
	}
	return p
}

// ACLsEnabled reports whether the bucket's ACLs (and its objects') count: not when its object
// ownership is BucketOwnerEnforced.
func (b *Bucket) ACLsEnabled() bool { return b.Ownership != "BucketOwnerEnforced" }

func (b *Bucket) ignorePublicACLs() bool { return b.Block != nil && b.Block.IgnorePublicAcls }

// BucketPerms returns what the bucket's ACL grants principal. The owner always has
// FULL_CONTROL of its bucket.
func (b *Bucket) BucketPerms(principal string) Perm {
	if !b.Exists {
		return 0
	}
	if principal != "" && principal == b.Owner {
		return PermFullControl
	}
	if b.ACL == nil || !b.ACLsEnabled() {
		return 0
	}
	return granted(b.ACL, principal, b.ignorePublicACLs())
}

// ObjectOwner returns the owner of an object whose ACL is acl (nil: the default).
func (b *Bucket) ObjectOwner(acl *meta.ACL) string {
	if acl == nil || acl.Owner == "" || !b.ACLsEnabled() {
		return b.Owner
	}
	return acl.Owner
}

// ObjectPerms returns what an object's ACL (nil: the default) grants principal. The object's
// owner may always read and write its ACL, as in S3.
func (b *Bucket) ObjectPerms(acl *meta.ACL, principal string) Perm {
	owner := b.ObjectOwner(acl)
	var p Perm
	if principal != "" && principal == owner {
		p = PermReadACP | PermWriteACP
	}
	if !b.ACLsEnabled() {
		return p
	}
	if acl == nil {
		if principal != "" && principal == owner {
			p |= PermFullControl
		}
		return p
	}
	return p | granted(acl, principal, b.ignorePublicACLs())
}
