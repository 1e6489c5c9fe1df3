package s3access

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// MaxPolicySize is the largest bucket policy accepted (AWS's limit: 20 KiB).
const MaxPolicySize = 20 << 10

// ErrMalformedPolicy is a policy that is not a valid policy document for its bucket.
var ErrMalformedPolicy = errors.New("malformed bucket policy")

// ErrUnsupportedPolicy is a valid policy that uses something hanode does not evaluate (an
// account or service principal, a condition operator or key it does not know): it is refused
// and never stored, so that nothing in a stored policy is silently ignored.
var ErrUnsupportedPolicy = errors.New("unsupported bucket policy")

// Policy is a bucket policy: its statements, evaluated for every request on the bucket
// (Evaluate), and the document as the client sent it, for GetBucketPolicy. Only the document
// is stored; Load parses it again.
type Policy struct {
	Document   string      `json:"document"`
	Statements []Statement `json:"-"`
}

// Statement is one parsed policy statement.
type Statement struct {
	Sid          string
	Deny         bool
	Principals   []string // "*" (anyone, anonymous included) or access keys
	Actions      []string // patterns: "s3:GetObject", "s3:Get*", "*"
	NotActions   []string
	Resources    []string // ARN patterns: "arn:aws:s3:::bucket/prefix*"
	NotResources []string
	Conditions   []Condition
}

// Condition is one operator applied to one key: Op(Key's values, Values).
type Condition struct {
	Op       string // the operator without IfExists: StringEquals, IpAddress, Null, ...
	IfExists bool
	Key      string // lower case
	Values   []string
	prefixes []netip.Prefix
}

// Effect is what a policy says about a request.
type Effect int

// Effects: no statement applies, an Allow applies (and no Deny), a Deny applies.
const (
	NoEffect Effect = iota
	Allowed
	Denied
)

// Request is what a policy is evaluated against.
type Request struct {
	Principal string // access key; "" anonymous
	Action    string // "s3:GetObject"
	Resource  string // "arn:aws:s3:::bucket" or "arn:aws:s3:::bucket/key"
	// Value returns the request's values for a condition key (lower case), false when the
	// request has none.
	Value func(key string) ([]string, bool, error)
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

type jsonStatement struct {
	Sid          string                         `json:"Sid"`
	Effect       string                         `json:"Effect"`
	Principal    json.RawMessage                `json:"Principal"`
	NotPrincipal json.RawMessage                `json:"NotPrincipal"`
	Action       strings1                       `json:"Action"`
	NotAction    strings1                       `json:"NotAction"`
	Resource     strings1                       `json:"Resource"`
	NotResource  strings1                       `json:"NotResource"`
	Condition    map[string]map[string]strings1 `json:"Condition"`
}

type jsonDocument struct {
	Version   string          `json:"Version"`
	ID        string          `json:"Id"`
	Statement json.RawMessage `json:"Statement"`
}

// The condition operators evaluated (each also with the IfExists suffix).
var conditionOps = map[string]bool{
	"StringEquals": true, "StringNotEquals": true, "StringEqualsIgnoreCase": true, "StringNotEqualsIgnoreCase": true,
	"StringLike": true, "StringNotLike": true,
	"NumericEquals": true, "NumericNotEquals": true, "NumericLessThan": true, "NumericLessThanEquals": true,
	"NumericGreaterThan": true, "NumericGreaterThanEquals": true,
	"Bool": true, "IpAddress": true, "NotIpAddress": true, "Null": true,
}

// conditionKeys are the condition keys a request supplies (Request.Value answers them); the
// prefixes name families of keys.
var (
	conditionKeys = map[string]bool{
		"aws:sourceip": true, "aws:securetransport": true, "aws:useragent": true, "aws:referer": true,
		"aws:username": true, "aws:userid": true, "aws:principaltype": true,
		"s3:prefix": true, "s3:delimiter": true, "s3:max-keys": true, "s3:x-amz-acl": true,
		"s3:x-amz-copy-source": true, "s3:x-amz-metadata-directive": true, "s3:x-amz-storage-class": true,
		"s3:x-amz-server-side-encryption": true, "s3:x-amz-server-side-encryption-aws-kms-key-id": true,
		"s3:x-amz-server-side-encryption-customer-algorithm": true,
		"s3:x-amz-content-sha256":                            true, "s3:signatureversion": true, "s3:authtype": true,
	}
	conditionKeyPrefixes = []string{"s3:existingobjecttag/", "s3:requestobjecttag/", "s3:x-amz-grant-"}
)

func knownConditionKey(k string) bool {
	if conditionKeys[k] {
		return true
	}
	for _, p := range conditionKeyPrefixes {
		if strings.HasPrefix(k, p) && len(k) > len(p) {
			return true
		}
	}
	return false
}

var actionRE = regexp.MustCompile(`^(\*|s3:[A-Za-z*?]+)$`)

// ParsePolicy parses a bucket policy for bucket. ErrMalformedPolicy: not a valid policy
// document (JSON, Version, Effect, Principal, Action and Resource present, resources are S3
// ARNs). ErrUnsupportedPolicy: valid, but using what hanode does not evaluate — principals
// other than "*" and users (named by their access keys), NotPrincipal, condition operators or
// keys not listed in docs/security.md.
func ParsePolicy(bucket string, doc []byte) (*Policy, error) {
	if len(doc) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformedPolicy, len(doc), MaxPolicySize)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	var d jsonDocument
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPolicy, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the policy document", ErrMalformedPolicy)
	}
	if d.Version != "2012-10-17" && d.Version != "2008-10-17" {
		return nil, fmt.Errorf("%w: Version %q: want 2012-10-17", ErrMalformedPolicy, d.Version)
	}
	var sts []jsonStatement
	if len(d.Statement) > 0 && d.Statement[0] == '{' {
		var one jsonStatement
		sts = []jsonStatement{one}
		if err := strictUnmarshal(d.Statement, &sts[0]); err != nil {
			return nil, fmt.Errorf("%w: Statement: %v", ErrMalformedPolicy, err)
		}
	} else if err := strictUnmarshal(d.Statement, &sts); err != nil {
		return nil, fmt.Errorf("%w: Statement: %v", ErrMalformedPolicy, err)
	}
	if len(sts) == 0 {
		return nil, fmt.Errorf("%w: no Statement", ErrMalformedPolicy)
	}
	p := &Policy{Document: string(doc)}
	for i, js := range sts {
		st, err := parseStatement(bucket, js)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i, err)
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func parseStatement(bucket string, js jsonStatement) (Statement, error) {
	st := Statement{Sid: js.Sid, Deny: js.Effect == "Deny", Actions: js.Action, NotActions: js.NotAction,
		Resources: js.Resource, NotResources: js.NotResource}
	switch {
	case js.Effect != "Allow" && js.Effect != "Deny":
		return st, fmt.Errorf("%w: Effect %q", ErrMalformedPolicy, js.Effect)
	case js.NotPrincipal != nil && !st.Deny:
		return st, fmt.Errorf("%w: NotPrincipal with Allow", ErrMalformedPolicy)
	case js.NotPrincipal != nil:
		return st, fmt.Errorf("%w: NotPrincipal is not implemented", ErrUnsupportedPolicy)
	case js.Principal == nil:
		return st, fmt.Errorf("%w: no Principal", ErrMalformedPolicy)
	case (len(js.Action) == 0) == (len(js.NotAction) == 0):
		return st, fmt.Errorf("%w: want Action or NotAction", ErrMalformedPolicy)
	case (len(js.Resource) == 0) == (len(js.NotResource) == 0):
		return st, fmt.Errorf("%w: want Resource or NotResource", ErrMalformedPolicy)
	}
	var err error
	if st.Principals, err = parsePrincipal(js.Principal); err != nil {
		return st, err
	}
	for _, a := range append(append([]string{}, js.Action...), js.NotAction...) {
		if !actionRE.MatchString(a) {
			return st, fmt.Errorf("%w: Action %q: want s3:<action> (wildcards allowed)", ErrMalformedPolicy, a)
		}
	}
	for _, r := range append(append([]string{}, js.Resource...), js.NotResource...) {
		if r == "*" {
			continue
		}
		rest, ok := strings.CutPrefix(r, "arn:aws:s3:::")
		if !ok {
			return st, fmt.Errorf("%w: Resource %q: want arn:aws:s3:::bucket[/key]", ErrMalformedPolicy, r)
		}
		// A bucket's policy speaks of that bucket (as AWS checks: "Policy has invalid resource").
		if b, _, _ := strings.Cut(rest, "/"); !Wildcard(b, bucket) {
			return st, fmt.Errorf("%w: Resource %q is not in the bucket %s", ErrMalformedPolicy, r, bucket)
		}
	}
	for op, block := range js.Condition {
		base, ifExists := strings.CutSuffix(op, "IfExists")
		if strings.HasPrefix(base, "ForAnyValue:") || strings.HasPrefix(base, "ForAllValues:") || !conditionOps[base] {
			return st, fmt.Errorf("%w: the condition operator %s is not implemented", ErrUnsupportedPolicy, op)
		}
		for key, vals := range block {
			k := strings.ToLower(key)
			if !knownConditionKey(k) {
				return st, fmt.Errorf("%w: the condition key %s is not implemented", ErrUnsupportedPolicy, key)
			}
			c := Condition{Op: base, IfExists: ifExists, Key: k, Values: vals}
			switch {
			case base == "IpAddress" || base == "NotIpAddress":
				for _, v := range vals {
					pfx, err := netip.ParsePrefix(v)
					if err != nil {
						a, aerr := netip.ParseAddr(v)
						if aerr != nil {
							return st, fmt.Errorf("%w: %s %s: %q is not an address or CIDR block", ErrMalformedPolicy, op, key, v)
						}
						pfx = netip.PrefixFrom(a, a.BitLen())
					}
					c.prefixes = append(c.prefixes, pfx.Masked())
				}
			case strings.HasPrefix(base, "Numeric"):
				for _, v := range vals {
					if _, err := strconv.ParseFloat(v, 64); err != nil {
						return st, fmt.Errorf("%w: %s %s: %q is not a number", ErrMalformedPolicy, op, key, v)
					}
				}
			case base == "Bool" || base == "Null":
				for _, v := range vals {
					if v != "true" && v != "false" {
						return st, fmt.Errorf("%w: %s %s: %q is not true or false", ErrMalformedPolicy, op, key, v)
					}
				}
			}
			st.Conditions = append(st.Conditions, c)
		}
	}
	return st, nil
}

// parsePrincipal accepts "*", {"AWS": ...} and {"CanonicalUser": ...} naming "*" or users:
// an access key, or an IAM user ARN whose name is the access key.
func parsePrincipal(raw json.RawMessage) ([]string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "*" {
			return nil, fmt.Errorf("%w: Principal %q: want \"*\" or {\"AWS\": ...}", ErrMalformedPolicy, s)
		}
		return []string{"*"}, nil
	}
	var m map[string]strings1
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: Principal: %v", ErrMalformedPolicy, err)
	}
	var out []string
	for kind, names := range m {
		if kind != "AWS" && kind != "CanonicalUser" {
			return nil, fmt.Errorf("%w: %s principals are not implemented", ErrUnsupportedPolicy, kind)
		}
		for _, n := range names {
			switch {
			case n == "*":
			case strings.HasPrefix(n, "arn:aws:iam::"):
				rest := n[len("arn:aws:iam::"):]
				_, user, ok := strings.Cut(rest, ":user/")
				if !ok || user == "" || strings.ContainsAny(user, "/*?") {
					return nil, fmt.Errorf("%w: Principal %q: hanode has users (arn:aws:iam:::user/ACCESS_KEY), not accounts or roles", ErrUnsupportedPolicy, n)
				}
				n = user
			case strings.ContainsAny(n, ":/*?") || n == "":
				return nil, fmt.Errorf("%w: Principal %q", ErrMalformedPolicy, n)
			}
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: an empty Principal", ErrMalformedPolicy)
	}
	return out, nil
}

// Public reports whether the policy allows anyone (anonymous clients included) something
// without a condition that narrows who: an Allow statement for Principal "*" with no
// aws:SourceIp condition (what S3's policy status and public access block call public).
func (p *Policy) Public() bool {
	for _, st := range p.Statements {
		if st.Deny || !matchesPrincipal(st.Principals, "") {
			continue
		}
		narrowed := false
		for _, c := range st.Conditions {
			if c.Key == "aws:sourceip" || c.Key == "aws:username" || c.Key == "aws:userid" {
				narrowed = true
			}
		}
		if !narrowed {
			return true
		}
	}
	return false
}

// Evaluate returns what the policy says about r: Denied when a Deny statement applies,
// Allowed when an Allow statement does and no Deny, else NoEffect. An error is one of
// r.Value's (reading the object for s3:ExistingObjectTag).
func (p *Policy) Evaluate(r *Request) (Effect, error) {
	eff := NoEffect
	for _, st := range p.Statements {
		if eff == Allowed && !st.Deny {
			continue // nothing more to learn from another Allow
		}
		ok, err := st.applies(r)
		if err != nil {
			return NoEffect, err
		}
		if !ok {
			continue
		}
		if st.Deny {
			return Denied, nil
		}
		eff = Allowed
	}
	return eff, nil
}

func (st *Statement) applies(r *Request) (bool, error) {
	if !matchesPrincipal(st.Principals, r.Principal) {
		return false, nil
	}
	if len(st.Actions) > 0 && !matchAny(st.Actions, r.Action, true) || len(st.NotActions) > 0 && matchAny(st.NotActions, r.Action, true) {
		return false, nil
	}
	if len(st.Resources) > 0 && !matchAny(st.Resources, r.Resource, false) || len(st.NotResources) > 0 && matchAny(st.NotResources, r.Resource, false) {
		return false, nil
	}
	for i := range st.Conditions {
		ok, err := st.Conditions[i].holds(r)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func matchesPrincipal(ps []string, who string) bool {
	for _, p := range ps {
		if p == "*" || (who != "" && p == who) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			if Wildcard(strings.ToLower(p), strings.ToLower(s)) {
				return true
			}
		} else if Wildcard(p, s) {
			return true
		}
	}
	return false
}

// Wildcard matches s against pattern, where '*' is any run of characters and '?' any one.
func Wildcard(pattern, s string) bool {
	px, sx := 0, 0
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && (pattern[px] == '?' || pattern[px] == s[sx]):
			px++
			sx++
		case px < len(pattern) && pattern[px] == '*':
			star, mark = px, sx
			px++
		case star >= 0:
			px = star + 1
			mark++
			sx = mark
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

func (c *Condition) holds(r *Request) (bool, error) {
	vals, present := []string(nil), false
	if r.Value != nil {
		var err error
		if vals, present, err = r.Value(c.Key); err != nil {
			return false, err
		}
	}
	if c.Op == "Null" {
		// "true": the key must be absent; "false": present.
		for _, v := range c.Values {
			if (v == "true") == !present {
				return true, nil
			}
		}
		return false, nil
	}
	negated := strings.Contains(c.Op, "Not")
	if !present {
		return c.IfExists || negated, nil
	}
	any := false
	for _, have := range vals {
		if c.matchOne(have) {
			any = true
			break
		}
	}
	if negated {
		return !any, nil
	}
	return any, nil
}

// matchOne reports whether one request value matches any of the condition's values (for a
// negated operator: matches in the positive sense; holds negates).
func (c *Condition) matchOne(have string) bool {
	switch c.Op {
	case "IpAddress", "NotIpAddress":
		a, err := netip.ParseAddr(have)
		if err != nil {
			return false
		}
		a = a.Unmap()
		for _, p := range c.prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, want := range c.Values {
		switch c.Op {
		case "StringEquals", "StringNotEquals", "Bool":
			if have == want {
				return true
			}
		case "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase":
			if strings.EqualFold(have, want) {
				return true
			}
		case "StringLike", "StringNotLike":
			if Wildcard(want, have) {
				return true
			}
		default: // Numeric*
			h, err1 := strconv.ParseFloat(have, 64)
			w, err2 := strconv.ParseFloat(want, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			switch c.Op {
			case "NumericEquals", "NumericNotEquals":
				if h == w {
					return true
				}
			case "NumericLessThan":
				if h < w {
					return true
				}
			case "NumericLessThanEquals":
				if h <= w {
					return true
				}
			case "NumericGreaterThan":
				if h > w {
					return true
				}
			case "NumericGreaterThanEquals":
				if h >= w {
					return true
				}
			}
		}
	}
	return false
}
