package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	amzDateFormat   = "20060102T150405Z"
	scopeDateFormat = "20060102"
	serviceS3       = "s3"
	scopeTerminator = "aws4_request"
	emptySHA256     = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// signingKey derives the per-day, per-region key. Not cached: it is four
// HMACs, cheap next to the canonical request, and caching would mean keeping
// secrets around.
func signingKey(secret, date, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, serviceS3)
	return hmacSHA256(k, scopeTerminator)
}

// uriEncode applies the SigV4 encoding: unreserved characters are kept,
// every other byte becomes %XX with upper-case hex (so space is %20, never +).
func uriEncode(s string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

// queryParam is one decoded key=value pair of the raw query.
type queryParam struct{ key, value string }

var errBadQuery = errors.New("malformed query string escape")

// parseQuery splits a raw query into decoded pairs in wire order. Unlike
// url.ParseQuery it keeps ';' as data and reports duplicates to the caller
// (order and multiplicity matter for signing). Pairs that fail to decode
// are skipped and the first such failure is returned alongside the rest, so
// that callers can still tell whether the request looked presigned.
func parseQuery(raw string) ([]queryParam, error) {
	var out []queryParam
	var firstErr error
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		// '+' means space here, as every S3 client and server treats it.
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			if firstErr == nil {
				firstErr = errBadQuery
			}
			continue
		}
		out = append(out, queryParam{dk, dv})
	}
	return out, firstErr
}

// canonicalQuery re-encodes the pairs with SigV4 rules and sorts them by
// key, then value. X-Amz-Signature is dropped for presigned requests.
func canonicalQuery(params []queryParam, presigned bool) string {
	enc := make([]queryParam, 0, len(params))
	for _, p := range params {
		if presigned && p.key == "X-Amz-Signature" {
			continue
		}
		enc = append(enc, queryParam{uriEncode(p.key), uriEncode(p.value)})
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i].key != enc[j].key {
			return enc[i].key < enc[j].key
		}
		return enc[i].value < enc[j].value
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// canonicalURI is the path exactly as escaped by the client: S3 neither
// normalises nor double-encodes it.
func canonicalURI(r *http.Request) string {
	if p := r.URL.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// headerValue returns the canonical (trimmed, space-collapsed, comma-joined)
// value of a signed header. Go moves some headers out of r.Header, so those
// are taken from the request fields instead.
func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		if r.Host != "" {
			return r.Host
		}
		return r.URL.Host
	case "content-length":
		vals = r.Header.Values(name)
		if len(vals) == 0 && r.ContentLength >= 0 {
			return strconv.FormatInt(r.ContentLength, 10)
		}
	case "transfer-encoding":
		vals = r.Header.Values(name)
		if len(vals) == 0 {
			vals = r.TransferEncoding
		}
	default:
		vals = r.Header.Values(name)
	}
	if len(vals) == 1 {
		return trimAll(vals[0])
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = trimAll(v)
	}
	return strings.Join(out, ",")
}

// trimAll trims and collapses runs of whitespace to a single space, like
// the reference SDKs (botocore, minio-go) do.
func trimAll(s string) string {
	if !strings.ContainsAny(s, " \t\r\n\v\f") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// canonicalRequest builds the SigV4 canonical request.
func canonicalRequest(r *http.Request, query []queryParam, presigned bool, signedHeaders []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(query, presigned))
	b.WriteByte('\n')
	for _, h := range signedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(headerValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

func stringToSign(amzDate, scope, canonical string) string {
	return algorithm + "\n" + amzDate + "\n" + scope + "\n" + hexSHA256([]byte(canonical))
}
