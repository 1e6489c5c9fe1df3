package s3access

import (
	"testing"

	"github.com/hanode/hanode/meta"
)

func TestDecide(t *testing.T) {
	pol, err := ParsePolicy("b", []byte(`{"Version":"2012-10-17","Statement":[
	 {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/secret/*"},
	 {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/pub/*"},
	 {"Effect":"Deny","Principal":"*","Action":"s3:PutBucketPolicy","Resource":"arn:aws:s3:::b"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b := &Bucket{Name: "b", Exists: true, Owner: "alice", Grants: map[string]Level{"reader": Read},
		ACL:    &meta.ACL{Grants: []meta.Grant{{Grantee: "alice", Permission: "FULL_CONTROL"}, {Grantee: meta.GroupAllUsers, Permission: "READ"}, {Grantee: "writer", Permission: "WRITE"}}},
		Policy: pol}
	get, list, put := Need{Level: Read, Object: PermRead, Action: "s3:GetObject"}, Need{Level: Read, Bucket: PermRead, Action: "s3:ListBucket"}, Need{Level: Write, Bucket: PermWrite, Action: "s3:PutObject"}
	setPolicy := Need{Level: Owner, Action: "s3:PutBucketPolicy", OwnerAlways: true}
	obj := func(acl *meta.ACL, exists bool) func() (*meta.ACL, bool, error) {
		return func() (*meta.ACL, bool, error) { return acl, exists, nil }
	}
	public := &meta.ACL{Owner: "writer", Grants: []meta.Grant{{Grantee: "writer", Permission: "FULL_CONTROL"}, {Grantee: meta.GroupAllUsers, Permission: "READ"}}}
	for _, c := range []struct {
		name string
		need Need
		ask  Ask
		want bool
	}{
		{"owner reads a private object", get, Ask{Principal: "alice", Key: "k", Object: obj(nil, true)}, true},
		{"a read grant reads it", get, Ask{Principal: "reader", Key: "k", Object: obj(nil, true)}, true},
		{"a stranger does not", get, Ask{Principal: "eve", Key: "k", Object: obj(nil, true)}, false},
		{"anonymous lists through the bucket ACL", list, Ask{}, true},
		{"anonymous reads a public object", get, Ask{Key: "k", Object: obj(public, true)}, true},
		{"anonymous reads a public prefix by policy", get, Ask{Key: "pub/x", Object: obj(nil, true)}, true},
		{"deny beats the owner", get, Ask{Principal: "alice", Key: "secret/x", Object: obj(nil, true)}, false},
		{"deny beats a public object ACL", get, Ask{Key: "secret/x", Object: obj(public, true)}, false},
		{"a missing object: NoSuchKey for those who may list", get, Ask{Key: "gone", Object: obj(nil, false)}, true},
		{"the bucket ACL's WRITE grantee writes", put, Ask{Principal: "writer", Key: "k"}, true},
		{"anonymous does not write", put, Ask{Key: "k"}, false},
		{"a read grant does not write", put, Ask{Principal: "reader", Key: "k"}, false},
		{"the owner manages a policy denying it", setPolicy, Ask{Principal: "alice"}, true},
		{"a grantee does not", setPolicy, Ask{Principal: "reader"}, false},
	} {
		got, err := b.Decide(c.need, c.ask)
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
	// BucketOwnerEnforced turns ACLs off; IgnorePublicAcls the groups; RestrictPublicBuckets
	// a public policy for principals without a level.
	off := *b
	off.Ownership = "BucketOwnerEnforced"
	if ok, _ := off.Decide(list, Ask{}); ok {
		t.Error("ACLs count under BucketOwnerEnforced")
	}
	ign := *b
	ign.Block = &meta.PublicAccessBlock{IgnorePublicAcls: true, RestrictPublicBuckets: true}
	if ok, _ := ign.Decide(list, Ask{}); ok {
		t.Error("a public ACL counts under IgnorePublicAcls")
	}
	if ok, _ := ign.Decide(put, Ask{Principal: "writer", Key: "k"}); !ok {
		t.Error("IgnorePublicAcls dropped a user's grant")
	}
	if ok, _ := ign.Decide(get, Ask{Key: "pub/x", Object: obj(nil, true)}); ok {
		t.Error("a public policy counts for anonymous clients under RestrictPublicBuckets")
	}
	if ok, _ := (&Bucket{Name: "b", Exists: false, Owner: "alice"}).Decide(get, Ask{Principal: "alice", Key: "k"}); ok {
		t.Error("a bucket that does not exist allows something")
	}
}
