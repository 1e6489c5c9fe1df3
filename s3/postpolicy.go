package s3

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"strconv"
	"strings"
	"time"
)

// POST policies of browser uploads (POST object): a base64 JSON document with an expiration
// and conditions that every form field must meet.

// PostPolicy is a parsed POST policy.
type PostPolicy struct {
	Expiration time.Time
	Conditions []PostCondition
}

// PostCondition is one condition: eq or starts-with on a form field (Field in lower case,
// without the '$'), or content-length-range (Min, Max).
type PostCondition struct {
	Op       string
	Field    string
	Value    string
	Min, Max int64
}

// maxPostPolicy bounds the decoded document (AWS: 20 KiB).
const maxPostPolicy = 20 << 10

func badPolicy(msg string) error { return ErrorFor(CodeInvalidPolicyDocument, "Invalid Policy: "+msg) }

// ParsePostPolicy decodes and parses a base64 POST policy. A document that is not valid (not
// base64 or JSON, "expiration" or "conditions" missing — the names are case-sensitive —, an
// unknown or malformed condition) is InvalidPolicyDocument (400); an expired one AccessDenied.
func ParsePostPolicy(b64 string, now time.Time) (*PostPolicy, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) > maxPostPolicy {
		return nil, badPolicy("not a base64 JSON document of at most 20 KiB")
	}
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, badPolicy("not a JSON object")
	}
	var exp string
	if json.Unmarshal(doc["expiration"], &exp) != nil || exp == "" {
		return nil, badPolicy("Policy missing expiration.")
	}
	p := &PostPolicy{}
	for _, layout := range []string{"2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05Z"} {
		if t, err := time.Parse(layout, exp); err == nil {
			p.Expiration = t
			break
		}
	}
	if p.Expiration.IsZero() {
		return nil, badPolicy("Invalid 'expiration' value: '" + exp + "'")
	}
	var conds []json.RawMessage
	if c, ok := doc["conditions"]; !ok || json.Unmarshal(c, &conds) != nil {
		return nil, badPolicy("Policy missing conditions.")
	}
	for _, c := range conds {
		pc, err := parsePostCondition(c)
		if err != nil {
			return nil, err
		}
		p.Conditions = append(p.Conditions, pc...)
	}
	if !now.Before(p.Expiration) {
		return nil, ErrorFor(CodeAccessDenied, "Invalid according to Policy: Policy expired.")
	}
	return p, nil
}

func parsePostCondition(c json.RawMessage) ([]PostCondition, error) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(c, &obj) == nil {
		if len(obj) == 0 {
			return nil, badPolicy("an empty condition")
		}
		var out []PostCondition
		for k, v := range obj {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil, badPolicy("condition " + k + ": want a string")
			}
			out = append(out, PostCondition{Op: "eq", Field: strings.ToLower(strings.TrimPrefix(k, "$")), Value: s})
		}
		return out, nil
	}
	var arr []json.RawMessage
	if json.Unmarshal(c, &arr) != nil || len(arr) == 0 {
		return nil, badPolicy("a condition is an object or a list")
	}
	var op string
	if json.Unmarshal(arr[0], &op) != nil {
		return nil, badPolicy("a condition's operator is a string")
	}
	op = strings.ToLower(op)
	switch op {
	case "eq", "starts-with":
		var field, val string
		if len(arr) != 3 || json.Unmarshal(arr[1], &field) != nil || json.Unmarshal(arr[2], &val) != nil || !strings.HasPrefix(field, "$") {
			return nil, badPolicy(op + ": want [\"" + op + "\", \"$field\", \"value\"]")
		}
		return []PostCondition{{Op: op, Field: strings.ToLower(field[1:]), Value: val}}, nil
	case "content-length-range":
		if len(arr) != 3 {
			return nil, badPolicy("content-length-range: want a minimum and a maximum")
		}
		lo, err1 := jsonInt(arr[1])
		hi, err2 := jsonInt(arr[2])
		if err1 != nil || err2 != nil || lo < 0 || hi < lo {
			return nil, badPolicy("content-length-range: want 0 <= minimum <= maximum")
		}
		return []PostCondition{{Op: op, Min: lo, Max: hi}}, nil
	}
	return nil, badPolicy("unknown condition " + op)
}

func jsonInt(r json.RawMessage) (int64, error) {
	var s string
	if json.Unmarshal(r, &s) == nil {
		return strconv.ParseInt(s, 10, 64)
	}
	var n int64
	err := json.Unmarshal(r, &n)
	return n, err
}

// postExempt are the form fields no condition needs to cover.
var postExempt = map[string]bool{"policy": true, "signature": true, "awsaccesskeyid": true, "x-amz-signature": true, "file": true}

// Check verifies the form fields (names in lower case; "bucket" is the request's bucket)
// against the conditions: each condition holds, and every field but the signature's and
// x-ignore-* is named by a condition. A violation is AccessDenied, as in S3.
func (p *PostPolicy) Check(fields map[string]string) error {
	covered := map[string]bool{}
	for _, c := range p.Conditions {
		if c.Op == "content-length-range" {
			continue
		}
		covered[c.Field] = true
		v := fields[c.Field]
		ok := c.Op == "eq" && v == c.Value || c.Op == "starts-with" && strings.HasPrefix(v, c.Value)
		if c.Op == "starts-with" && c.Field == "content-type" && !ok {
			// A Content-Type condition applies to each of a comma-separated list of types.
			ok = true
			for _, t := range strings.Split(v, ",") {
				ok = ok && strings.HasPrefix(strings.TrimSpace(t), c.Value)
			}
		}
		if !ok {
			return ErrorFor(CodeAccessDenied, "Invalid according to Policy: Policy Condition failed: [\""+c.Op+"\", \"$"+c.Field+"\", \""+c.Value+"\"]")
		}
	}
	for f := range fields {
		// x-amz-checksum-* is verified against the file, as a PutObject's header is.
		if !covered[f] && !postExempt[f] && !strings.HasPrefix(f, "x-ignore-") && !strings.HasPrefix(f, "x-amz-checksum-") {
			return ErrorFor(CodeAccessDenied, "Invalid according to Policy: Extra input fields: "+f)
		}
	}
	return nil
}

// SizeRange returns the content-length-range condition (the last one), ok false if none.
func (p *PostPolicy) SizeRange() (lo, hi int64, ok bool) {
	for _, c := range p.Conditions {
		if c.Op == "content-length-range" {
			lo, hi, ok = c.Min, c.Max, true
		}
	}
	return lo, hi, ok
}

// PostResponse is the body of a POST upload answered with success_action_status 201.
type PostResponse struct {
	XMLName  xml.Name `xml:"PostResponse"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
}
