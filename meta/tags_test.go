package meta

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/hanode/hanode/internal/etcdtest"
)

func TestSetTags(t *testing.T) {
	s := New(etcdtest.Start(t, "127.0.55.4"))
	ctx := context.Background()
	if err := s.SetTags(ctx, "c", "k", nil); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("tags in a missing bucket: %v", err)
	}
	if err := s.CreateBucket(ctx, Bucket{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTags(ctx, "c", "k", map[string]string{"a": "b"}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("tags of a missing key: %v", err)
	}
	if _, err := condWrite(t, s, "k", "e1", Condition{}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.GetObject(ctx, "c", "k")
	if err := s.SetTags(ctx, "c", "k", map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	after, err := s.GetObject(ctx, "c", "k")
	if err != nil || !reflect.DeepEqual(after.Tags, map[string]string{"a": "b"}) {
		t.Fatalf("tags: %v %+v", err, after)
	}
	after.Tags = nil
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("setting tags changed more than the tags:\n%+v\n%+v", after, before)
	}
	if err := s.SetTags(ctx, "c", "k", nil); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.GetObject(ctx, "c", "k"); o.Tags != nil {
		t.Fatalf("tags after removing them: %v", o.Tags)
	}
}
