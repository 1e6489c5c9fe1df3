package s3access

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	mc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetBucketLocation","s3:ListBucket"],"Resource":["arn:aws:s3:::pub"]},{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::pub/*"]}]}`
	aws := `{"Version":"2012-10-17","Statement":[{"Sid":"PublicReadGetObject","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"}]}`
	for _, c := range []struct {
		name, doc string
		want      error // nil: accepted
	}{
		{"mc anonymous set download", mc, nil},
		{"AWS public read", aws, nil},
		{"one statement, not a list", strings.Replace(strings.Replace(aws, `"Statement":[`, `"Statement":`, 1), "}]}", "}}", 1), nil},
		{"deny", strings.Replace(aws, "Allow", "Deny", 1), nil},
		{"condition", strings.Replace(aws, `"Effect"`, `"Condition":{"StringLike":{"s3:prefix":["a/*"]},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}},"Effect"`, 1), nil},
		{"a user", strings.Replace(aws, `"Principal":"*"`, `"Principal":{"AWS":"arn:aws:iam:::user/alice"}`, 1), nil},
		{"any bucket", strings.Replace(aws, "pub/*", "*/*", 1), nil},
		{"wildcard action", strings.Replace(aws, "s3:GetObject", "s3:*", 1), nil},
		{"not JSON", `{`, ErrMalformedPolicy},
		{"trailing data", aws + "{}", ErrMalformedPolicy},
		{"unknown field", strings.Replace(aws, `"Sid"`, `"Sidd"`, 1), ErrMalformedPolicy},
		{"bad version", strings.Replace(aws, "2012-10-17", "2020-01-01", 1), ErrMalformedPolicy},
		{"no statement", `{"Version":"2012-10-17","Statement":[]}`, ErrMalformedPolicy},
		{"bad effect", strings.Replace(aws, "Allow", "Maybe", 1), ErrMalformedPolicy},
		{"no principal", strings.Replace(aws, `"Principal":"*",`, "", 1), ErrMalformedPolicy},
		{"another bucket", strings.ReplaceAll(aws, ":::pub", ":::other"), ErrMalformedPolicy},
		{"not an S3 resource", strings.ReplaceAll(aws, "arn:aws:s3:::pub/*", "arn:aws:sqs:::q"), ErrMalformedPolicy},
		{"bad action", strings.Replace(aws, "s3:GetObject", "GetObject", 1), ErrMalformedPolicy},
		{"NotPrincipal with Allow", strings.Replace(aws, `"Principal"`, `"NotPrincipal"`, 1), ErrMalformedPolicy},
		{"bad address", strings.Replace(aws, `"Effect"`, `"Condition":{"IpAddress":{"aws:SourceIp":"nope"}},"Effect"`, 1), ErrMalformedPolicy},
		{"too large", `{"Version":"2012-10-17","Id":"` + strings.Repeat("x", MaxPolicySize) + `"}`, ErrMalformedPolicy},
		{"an account", strings.Replace(aws, `"Principal":"*"`, `"Principal":{"AWS":"arn:aws:iam::1:root"}`, 1), ErrUnsupportedPolicy},
		{"a service", strings.Replace(aws, `"Principal":"*"`, `"Principal":{"Service":"logging.s3.amazonaws.com"}`, 1), ErrUnsupportedPolicy},
		{"NotPrincipal with Deny", strings.Replace(strings.Replace(aws, `"Principal"`, `"NotPrincipal"`, 1), "Allow", "Deny", 1), ErrUnsupportedPolicy},
		{"unknown operator", strings.Replace(aws, `"Effect"`, `"Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}},"Effect"`, 1), ErrUnsupportedPolicy},
		{"unknown key", strings.Replace(aws, `"Effect"`, `"Condition":{"StringEquals":{"aws:SourceVpc":"v"}},"Effect"`, 1), ErrUnsupportedPolicy},
		{"set operator", strings.Replace(aws, `"Effect"`, `"Condition":{"ForAnyValue:StringEquals":{"s3:prefix":"v"}},"Effect"`, 1), ErrUnsupportedPolicy},
	} {
		p, err := ParsePolicy("pub", []byte(c.doc))
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		case c.want == nil && p.Document != c.doc:
			t.Errorf("%s: document not kept", c.name)
		}
	}
}

func TestEvaluatePolicy(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[
	 {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/*"},
	 {"Effect":"Allow","Principal":{"AWS":["bob"]},"Action":"s3:Put*","Resource":"arn:aws:s3:::b/*"},
	 {"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringNotEquals":{"s3:x-amz-acl":"private"}}},
	 {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":"public/*"},"IpAddress":{"aws:SourceIp":["10.1.0.0/16","192.0.2.7"]}}},
	 {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/secret*"},
	 {"Effect":"Allow","Principal":"*","Action":"s3:GetObjectTagging","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"s3:ExistingObjectTag/security":"public"},"NumericLessThanEquals":{"s3:max-keys":"10"}}},
	 {"Effect":"Allow","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*","Condition":{"Null":{"s3:x-amz-acl":"true"}}}
	]}`
	p, err := ParsePolicy("b", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	vals := func(m map[string]string) func(string) ([]string, bool, error) {
		return func(k string) ([]string, bool, error) {
			v, ok := m[k]
			if !ok {
				return nil, false, nil
			}
			return []string{v}, true, nil
		}
	}
	for _, c := range []struct {
		name, who, action, resource string
		values                      map[string]string
		want                        Effect
	}{
		{"anonymous read of public", "", "s3:GetObject", "arn:aws:s3:::b/public/x", nil, Allowed},
		{"anonymous read elsewhere", "", "s3:GetObject", "arn:aws:s3:::b/private/x", nil, NoEffect},
		{"deny beats allow", "", "s3:GetObject", "arn:aws:s3:::b/public/secret.txt", nil, Denied},
		{"bob puts private", "bob", "s3:PutObject", "arn:aws:s3:::b/k", map[string]string{"s3:x-amz-acl": "private"}, Allowed},
		{"bob puts public: denied", "bob", "s3:PutObject", "arn:aws:s3:::b/k", map[string]string{"s3:x-amz-acl": "public-read"}, Denied},
		{"bob puts no acl: StringNotEquals on a missing key holds", "bob", "s3:PutObject", "arn:aws:s3:::b/k", nil, Denied},
		{"alice is not bob", "alice", "s3:PutObjectTagging", "arn:aws:s3:::b/k", nil, NoEffect},
		{"action case", "bob", "S3:PUTOBJECTTAGGING", "arn:aws:s3:::b/k", nil, Allowed},
		{"list from the network", "", "s3:ListBucket", "arn:aws:s3:::b", map[string]string{"s3:prefix": "public/a", "aws:sourceip": "10.1.2.3"}, Allowed},
		{"list from one address", "", "s3:ListBucket", "arn:aws:s3:::b", map[string]string{"s3:prefix": "public/a", "aws:sourceip": "192.0.2.7"}, Allowed},
		{"list from elsewhere", "", "s3:ListBucket", "arn:aws:s3:::b", map[string]string{"s3:prefix": "public/a", "aws:sourceip": "10.2.0.1"}, NoEffect},
		{"list another prefix", "", "s3:ListBucket", "arn:aws:s3:::b", map[string]string{"s3:prefix": "private/", "aws:sourceip": "10.1.2.3"}, NoEffect},
		{"list without prefix", "", "s3:ListBucket", "arn:aws:s3:::b", map[string]string{"aws:sourceip": "10.1.2.3"}, NoEffect},
		{"tag condition", "", "s3:GetObjectTagging", "arn:aws:s3:::b/k", map[string]string{"s3:existingobjecttag/security": "public", "s3:max-keys": "5"}, Allowed},
		{"tag condition fails", "", "s3:GetObjectTagging", "arn:aws:s3:::b/k", map[string]string{"s3:existingobjecttag/security": "secret", "s3:max-keys": "5"}, NoEffect},
		{"numeric fails", "", "s3:GetObjectTagging", "arn:aws:s3:::b/k", map[string]string{"s3:existingobjecttag/security": "public", "s3:max-keys": "50"}, NoEffect},
		{"null true holds", "", "s3:DeleteObject", "arn:aws:s3:::b/k", nil, Allowed},
		{"null true fails", "", "s3:DeleteObject", "arn:aws:s3:::b/k", map[string]string{"s3:x-amz-acl": "private"}, NoEffect},
	} {
		got, err := p.Evaluate(&Request{Principal: c.who, Action: c.action, Resource: c.resource, Value: vals(c.values)})
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
	if !p.Public() {
		t.Error("a policy letting anyone read public/* is not public")
	}
	narrow, _ := ParsePolicy("b", []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`))
	if narrow.Public() {
		t.Error("a policy for one network is public")
	}
}

func TestWildcard(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"a?c", "abc", true}, {"a?c", "ac", false}, {"*c", "abc", true},
		{"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"", "", true}, {"", "a", false}, {"b/*", "b/", true},
	} {
		if got := Wildcard(c.p, c.s); got != c.want {
			t.Errorf("Wildcard(%q, %q) = %v", c.p, c.s, got)
		}
	}
}
