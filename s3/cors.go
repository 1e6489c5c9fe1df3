package s3

import (
	"encoding/xml"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// CORSConfiguration is a bucket's CORS configuration (PutBucketCors, GetBucketCors).
type CORSConfiguration struct {
	XMLName xml.Name   `xml:"CORSConfiguration" json:"-"`
	Xmlns   string     `xml:"xmlns,attr,omitempty" json:"-"`
	Rules   []CORSRule `xml:"CORSRule" json:"rules"`
}

// CORSRule is one rule of a CORS configuration.
type CORSRule struct {
	ID             string   `xml:"ID,omitempty" json:"id,omitempty"`
	AllowedHeaders []string `xml:"AllowedHeader,omitempty" json:"allowed_headers,omitempty"`
	AllowedMethods []string `xml:"AllowedMethod" json:"allowed_methods"`
	AllowedOrigins []string `xml:"AllowedOrigin" json:"allowed_origins"`
	ExposeHeaders  []string `xml:"ExposeHeader,omitempty" json:"expose_headers,omitempty"`
	MaxAgeSeconds  *int     `xml:"MaxAgeSeconds,omitempty" json:"max_age_seconds,omitempty"`
}

var corsMethods = map[string]bool{"GET": true, "PUT": true, "POST": true, "DELETE": true, "HEAD": true}

// maxCORSRules is AWS's limit.
const maxCORSRules = 100

// ParseCORS reads and validates a PutBucketCors body: 1 to 100 rules, each with origins and
// methods (GET, PUT, POST, DELETE, HEAD), at most one '*' in an origin or allowed header.
func ParseCORS(body io.Reader) (*CORSConfiguration, error) {
	var c CORSConfiguration
	if err := DecodeXML(body, 64<<10, &c); err != nil {
		return nil, err
	}
	if len(c.Rules) == 0 || len(c.Rules) > maxCORSRules {
		return nil, ErrorFor(CodeMalformedXML, "a CORS configuration holds 1 to 100 rules")
	}
	for _, r := range c.Rules {
		if len(r.AllowedMethods) == 0 || len(r.AllowedOrigins) == 0 {
			return nil, ErrorFor(CodeMalformedXML, "a CORS rule needs AllowedMethod and AllowedOrigin")
		}
		for _, m := range r.AllowedMethods {
			if !corsMethods[m] {
				return nil, ErrorFor(CodeInvalidRequest, "Found unsupported HTTP method in CORS config. Unsupported method is "+m)
			}
		}
		for _, o := range append(append([]string{}, r.AllowedOrigins...), r.AllowedHeaders...) {
			if strings.Count(o, "*") > 1 {
				return nil, ErrorFor(CodeInvalidRequest, "AllowedOrigin and AllowedHeader may contain at most one wildcard: "+o)
			}
		}
		if r.MaxAgeSeconds != nil && *r.MaxAgeSeconds < 0 {
			return nil, ErrorFor(CodeMalformedXML, "MaxAgeSeconds must not be negative")
		}
	}
	return &c, nil
}

// matchOne matches s against a pattern with at most one '*', case-insensitively when fold.
func matchOne(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	before, after, star := strings.Cut(pattern, "*")
	if !star {
		return pattern == s
	}
	return len(s) >= len(before)+len(after) && strings.HasPrefix(s, before) && strings.HasSuffix(s, after)
}

// Match returns the first rule allowing origin, method and every one of headers (the
// Access-Control-Request-Headers of a preflight), nil when none does.
func (c *CORSConfiguration) Match(origin, method string, headers []string) *CORSRule {
	for i := range c.Rules {
		r := &c.Rules[i]
		if !anyMatch(r.AllowedOrigins, origin, false) || !contains(r.AllowedMethods, method) {
			continue
		}
		ok := true
		for _, h := range headers {
			if h = strings.TrimSpace(h); h != "" && !anyMatch(r.AllowedHeaders, h, true) {
				ok = false
				break
			}
		}
		if ok {
			return r
		}
	}
	return nil
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if matchOne(p, s, fold) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// SetCORSHeaders writes the CORS response headers of rule for a request from origin:
// Access-Control-Allow-Origin ("*" when the rule allows any origin), -Allow-Methods,
// -Expose-Headers and, for a preflight, -Allow-Headers (the requested ones) and -Max-Age.
func SetCORSHeaders(h http.Header, rule *CORSRule, origin string, preflight bool, requested []string) {
	allow := origin
	if contains(rule.AllowedOrigins, "*") {
		allow = "*"
	}
	h.Set("Access-Control-Allow-Origin", allow)
	h.Set("Access-Control-Allow-Methods", strings.Join(rule.AllowedMethods, ", "))
	if allow != "*" {
		h.Add("Vary", "Origin")
	}
	if len(rule.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(rule.ExposeHeaders, ", "))
	}
	if preflight {
		var hs []string
		for _, r := range requested {
			if r = strings.TrimSpace(r); r != "" {
				hs = append(hs, r)
			}
		}
		if len(hs) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(hs, ", "))
		}
		if rule.MaxAgeSeconds != nil {
			h.Set("Access-Control-Max-Age", strconv.Itoa(*rule.MaxAgeSeconds))
		}
	}
}
