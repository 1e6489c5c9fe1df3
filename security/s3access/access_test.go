package s3access

import (
	"errors"
	"strings"
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

func TestParsePolicy(t *testing.T) {
	mc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetBucketLocation","s3:ListBucket"],"Resource":["arn:aws:s3:::pub"]},{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::pub/*"]}]}`
	aws := `{"Version":"2012-10-17","Statement":[{"Sid":"PublicReadGetObject","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"}]}`
	for _, c := range []struct {
		name, doc string
		want      error // nil: accepted
		list      bool
	}{
		{"mc anonymous set download", mc, nil, true},
		{"AWS public read", aws, nil, false},
		{"not JSON", `{`, ErrMalformedPolicy, false},
		{"trailing data", aws + "{}", ErrMalformedPolicy, false},
		{"unknown field", strings.Replace(aws, `"Sid"`, `"Sidd"`, 1), ErrMalformedPolicy, false},
		{"bad version", strings.Replace(aws, "2012-10-17", "2020-01-01", 1), ErrMalformedPolicy, false},
		{"no statement", `{"Version":"2012-10-17","Statement":[]}`, ErrMalformedPolicy, false},
		{"bad effect", strings.Replace(aws, "Allow", "Maybe", 1), ErrMalformedPolicy, false},
		{"no principal", strings.Replace(aws, `"Principal":"*",`, "", 1), ErrMalformedPolicy, false},
		{"too large", `{"Version":"2012-10-17","Id":"` + strings.Repeat("x", MaxPolicySize) + `"}`, ErrMalformedPolicy, false},
		{"deny", strings.Replace(aws, "Allow", "Deny", 1), ErrUnsupportedPolicy, false},
		{"condition", strings.Replace(aws, `"Effect"`, `"Condition":{},"Effect"`, 1), ErrUnsupportedPolicy, false},
		{"a named principal", strings.Replace(aws, `"Principal":"*"`, `"Principal":{"AWS":"arn:aws:iam::1:root"}`, 1), ErrUnsupportedPolicy, false},
		{"two principals", strings.Replace(aws, `"Principal":"*"`, `"Principal":{"AWS":["*","arn:aws:iam::1:root"]}`, 1), ErrUnsupportedPolicy, false},
		{"put for anyone", strings.Replace(aws, "s3:GetObject", "s3:PutObject", 1), ErrUnsupportedPolicy, false},
		{"wildcard action", strings.Replace(aws, "s3:GetObject", "s3:*", 1), ErrUnsupportedPolicy, false},
		{"a prefix only", strings.Replace(aws, "pub/*", "pub/public/*", 1), ErrUnsupportedPolicy, false},
		{"another bucket", strings.ReplaceAll(aws, ":::pub", ":::other"), ErrUnsupportedPolicy, false},
		{"GetObject on the bucket", strings.Replace(aws, "pub/*", "pub", 1), ErrUnsupportedPolicy, false},
		{"list only", strings.Replace(strings.Replace(aws, "s3:GetObject", "s3:ListBucket", 1), "pub/*", "pub", 1), ErrUnsupportedPolicy, false},
	} {
		p, err := ParsePolicy("pub", []byte(c.doc))
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		case c.want == nil && (!p.GetObject || p.ListBucket != c.list || p.Document != c.doc):
			t.Errorf("%s: %+v", c.name, p)
		}
	}
}
