package s3access

import (
	"errors"
	"testing"
)

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}`), "", "s3:GetObject", "arn:aws:s3:::b/k", "10.0.0.1")
	f.Add([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":{"AWS":["alice","arn:aws:iam:::user/bob"]},"Action":["s3:*"],"Resource":"arn:aws:s3:::b","Condition":{"IpAddressIfExists":{"aws:SourceIp":["10.0.0.0/8"]},"StringLike":{"s3:prefix":"a*"},"Null":{"s3:x-amz-acl":"true"},"NumericLessThan":{"s3:max-keys":"5"}}}}`), "alice", "s3:ListBucket", "arn:aws:s3:::b", "10.1.1.1")
	f.Add([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotPrincipal":"*","Action":"s3:GetObject","Resource":"*"}]}`), "", "", "", "")
	f.Fuzz(func(t *testing.T, doc []byte, who, action, resource, ip string) {
		p, err := ParsePolicy("b", doc)
		if err != nil {
			if !errors.Is(err, ErrMalformedPolicy) && !errors.Is(err, ErrUnsupportedPolicy) {
				t.Fatalf("ParsePolicy: %v is neither malformed nor unsupported", err)
			}
			return
		}
		if p.Document != string(doc) || len(p.Statements) == 0 {
			t.Fatalf("accepted without its document or statements: %+v", p)
		}
		// A stored policy is parsed again when it is loaded: it must still parse.
		if _, err := ParsePolicy("b", []byte(p.Document)); err != nil {
			t.Fatalf("an accepted policy does not parse again: %v", err)
		}
		values := func(k string) ([]string, bool, error) {
			if k == "aws:sourceip" {
				return []string{ip}, true, nil
			}
			return nil, false, nil
		}
		if _, err := p.Evaluate(&Request{Principal: who, Action: action, Resource: resource, Value: values}); err != nil {
			t.Fatalf("Evaluate: %v", err)
		}
		p.Public()
	})
}
