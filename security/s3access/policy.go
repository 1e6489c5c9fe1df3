package s3access

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// MaxPolicySize is the largest bucket policy accepted (AWS's limit: 20 KiB).
const MaxPolicySize = 20 << 10

// ErrMalformedPolicy is a policy that is not a valid policy document for its bucket.
var ErrMalformedPolicy = errors.New("malformed bucket policy")

// ErrUnsupportedPolicy is a valid policy that grants or denies something other than public
// read, which hanode does not implement (and never stores, so that nothing is silently ignored).
var ErrUnsupportedPolicy = errors.New("unsupported bucket policy")

// Policy is a bucket policy hanode implements: what anonymous clients may do. The document is
// kept as the client sent it, for GetBucketPolicy.
type Policy struct {
	GetObject         bool   `json:"get_object,omitempty"`
	ListBucket        bool   `json:"list_bucket,omitempty"`
	GetBucketLocation bool   `json:"get_bucket_location,omitempty"`
	Document          string `json:"document"`
}

// strings1 is a policy field that is a string or a list of strings.
type strings1 []string

func (s *strings1) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*s = many
	return nil
}

// principal is "*" or {"AWS": "*"} / {"AWS": ["*"]}.
type principal struct{ anyone bool }

func (p *principal) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		p.anyone = s == "*"
		return nil
	}
	var m map[string]strings1
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("principal: %w", err)
	}
	aws, ok := m["AWS"]
	p.anyone = ok && len(m) == 1 && len(aws) == 1 && aws[0] == "*"
	return nil
}

type statement struct {
	Sid          string          `json:"Sid"`
	Effect       string          `json:"Effect"`
	Principal    *principal      `json:"Principal"`
	Action       strings1        `json:"Action"`
	Resource     strings1        `json:"Resource"`
	Condition    json.RawMessage `json:"Condition"`
	NotPrincipal json.RawMessage `json:"NotPrincipal"`
	NotAction    json.RawMessage `json:"NotAction"`
	NotResource  json.RawMessage `json:"NotResource"`
}

type document struct {
	Version   string      `json:"Version"`
	ID        string      `json:"Id"`
	Statement []statement `json:"Statement"`
}

// ParsePolicy accepts the public-read policy of bucket as MinIO (`mc anonymous set download`)
// and AWS write it: statements with Effect Allow and Principal "*" (or {"AWS": "*"}) granting
// s3:GetObject on arn:aws:s3:::BUCKET/*, and optionally s3:ListBucket and
// s3:GetBucketLocation on arn:aws:s3:::BUCKET. Anything else is refused: ErrMalformedPolicy
// for a document that is not a policy for this bucket, ErrUnsupportedPolicy for a valid one
// that says something else (Deny, conditions, other principals, actions or resources).
func ParsePolicy(bucket string, doc []byte) (*Policy, error) {
	if len(doc) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformedPolicy, len(doc), MaxPolicySize)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	var d document
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPolicy, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the policy document", ErrMalformedPolicy)
	}
	if d.Version != "2012-10-17" && d.Version != "2008-10-17" {
		return nil, fmt.Errorf("%w: Version %q: want 2012-10-17", ErrMalformedPolicy, d.Version)
	}
	if len(d.Statement) == 0 {
		return nil, fmt.Errorf("%w: no Statement", ErrMalformedPolicy)
	}
	objects, bucketARN := "arn:aws:s3:::"+bucket+"/*", "arn:aws:s3:::"+bucket
	p := &Policy{Document: string(doc)}
	for i, st := range d.Statement {
		switch {
		case st.Effect != "Allow" && st.Effect != "Deny":
			return nil, fmt.Errorf("%w: statement %d: Effect %q", ErrMalformedPolicy, i, st.Effect)
		case st.Principal == nil || len(st.Action) == 0 || len(st.Resource) == 0:
			return nil, fmt.Errorf("%w: statement %d needs Principal, Action and Resource", ErrMalformedPolicy, i)
		case st.Effect == "Deny":
			return nil, fmt.Errorf("%w: statement %d: only Allow statements are implemented", ErrUnsupportedPolicy, i)
		case st.Condition != nil || st.NotPrincipal != nil || st.NotAction != nil || st.NotResource != nil:
			return nil, fmt.Errorf("%w: statement %d: Condition, NotPrincipal, NotAction and NotResource are not implemented", ErrUnsupportedPolicy, i)
		case !st.Principal.anyone:
			return nil, fmt.Errorf("%w: statement %d: only the Principal \"*\" (anonymous public read) is implemented; grant users access with hanode user grant", ErrUnsupportedPolicy, i)
		}
		for _, r := range st.Resource {
			if r != objects && r != bucketARN {
				return nil, fmt.Errorf("%w: statement %d: Resource %q: want %s or %s", ErrUnsupportedPolicy, i, r, bucketARN, objects)
			}
		}
		for _, a := range st.Action {
			var want string
			switch a {
			case "s3:GetObject":
				p.GetObject, want = true, objects
			case "s3:ListBucket":
				p.ListBucket, want = true, bucketARN
			case "s3:GetBucketLocation":
				p.GetBucketLocation, want = true, bucketARN
			default:
				return nil, fmt.Errorf("%w: statement %d: Action %q: only s3:GetObject, s3:ListBucket and s3:GetBucketLocation are implemented", ErrUnsupportedPolicy, i, a)
			}
			if !slices.Contains(st.Resource, want) {
				return nil, fmt.Errorf("%w: statement %d: %s needs the Resource %s", ErrUnsupportedPolicy, i, a, want)
			}
		}
	}
	if !p.GetObject {
		return nil, fmt.Errorf("%w: a public-read policy grants s3:GetObject on %s", ErrUnsupportedPolicy, objects)
	}
	return p, nil
}
