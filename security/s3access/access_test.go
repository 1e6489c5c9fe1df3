package s3access

import (
	"testing"
)

func TestLevels(t *testing.T) {
	b := &Bucket{Name: "b", Exists: true, Owner: "alice", Grants: map[string]Level{"bob": Read, "carol": Write, "dave": Owner}}
	for _, c := range []struct {
		who  string
		root bool
		want Level
	}{
		{"alice", false, Owner}, {"bob", false, Read}, {"carol", false, Write}, {"dave", false, Owner},
		{"eve", false, None}, {"", false, None}, {"eve", true, Owner},
	} {
		if got := b.Level(c.who, c.root); got != c.want {
			t.Errorf("Level(%q, root=%v) = %v, want %v", c.who, c.root, got, c.want)
		}
	}
	if !b.Allows("carol", false, Read) || b.Allows("bob", false, Write) || b.Visible("eve", false) || !b.Visible("bob", false) {
		t.Error("Allows/Visible disagree with the levels")
	}
	// An ownerless bucket (made before owners) is root's: an empty access key owns nothing.
	legacy := &Bucket{Name: "l", Exists: true}
	if legacy.Level("", false) != None || legacy.Level("x", false) != None || legacy.Level("x", true) != Owner {
		t.Error("an ownerless bucket is not root's alone")
	}
	if (&Bucket{Exists: false, Owner: "alice"}).Level("alice", false) != None {
		t.Error("a bucket that does not exist grants its old owner something")
	}
	for _, s := range []string{"read", "WRITE", "Owner"} {
		if _, err := ParseLevel(s); err != nil {
			t.Errorf("ParseLevel(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "none", "admin", "rw"} {
		if _, err := ParseLevel(s); err == nil {
			t.Errorf("ParseLevel(%q) accepted", s)
		}
	}
	if BucketOfKey(GrantKey("photos", "bob")) != "photos" || BucketOfKey(PolicyKey("photos")) != "photos" {
		t.Error("BucketOfKey does not invert GrantKey/PolicyKey")
	}
}
