package meta

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestACLRecords(t *testing.T) {
	o := sampleObject(1)
	o.ACL = &ACL{Owner: "bob", Grants: []Grant{{Grantee: "bob", Permission: "FULL_CONTROL"}, {Grantee: GroupAllUsers, Permission: "READ"}}}
	if got, err := DecodeObject(EncodeObject(o)); err != nil || !reflect.DeepEqual(got, o) {
		t.Fatalf("object with an ACL: %v\n got %+v\nwant %+v", err, got, o)
	}
	u := &Upload{Bucket: "b", Key: "k", ID: "id", ACL: &ACL{Grants: []Grant{{Grantee: GroupAuthenticatedUsers, Permission: "READ"}}}}
	if got, err := DecodeUpload(EncodeUpload(u)); err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("upload with an ACL: %v %+v", err, got)
	}
	// A record without an ACL keeps the bytes it had before ACLs existed.
	plain := sampleObject(1)
	if len(EncodeObject(plain)) >= len(EncodeObject(o)) {
		t.Error("an object without an ACL grew")
	}

	s, b := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: b}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutObject(ctx, b, "k", sampleObject(1), "", 0); err != nil {
		t.Fatal(err)
	}
	want := &ACL{Grants: []Grant{{Grantee: GroupAllUsers, Permission: "READ"}}}
	if err := s.SetObjectACL(ctx, b, "k", func(cur *ACL) (*ACL, error) {
		if cur != nil {
			t.Errorf("a new object's ACL is %+v, want none", cur)
		}
		return want, nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetObject(ctx, b, "k")
	if err != nil || !reflect.DeepEqual(got.ACL, want) || got.ETag != sampleObject(1).ETag {
		t.Fatalf("after SetObjectACL: %+v %v", got, err)
	}
	refused := errors.New("refused")
	if err := s.SetObjectACL(ctx, b, "k", func(*ACL) (*ACL, error) { return nil, refused }); !errors.Is(err, refused) {
		t.Fatalf("a refusing change: %v", err)
	}
	if err := s.SetObjectACL(ctx, b, "missing", func(*ACL) (*ACL, error) { return nil, nil }); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("missing object: %v", err)
	}
	if err := s.UpdateBucket(ctx, b, func(bk *Bucket) error { bk.Ownership = "ObjectWriter"; bk.ACL = want; return nil }); err != nil {
		t.Fatal(err)
	}
	if bk, err := s.GetBucket(ctx, b); err != nil || bk.Ownership != "ObjectWriter" || !reflect.DeepEqual(bk.ACL, want) {
		t.Fatalf("after UpdateBucket: %+v %v", bk, err)
	}
	if err := s.UpdateBucket(ctx, "nobucket", func(*Bucket) error { return nil }); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("UpdateBucket of a missing bucket: %v", err)
	}
}
