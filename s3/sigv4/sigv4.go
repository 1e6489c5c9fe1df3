// Package sigv4 verifies AWS Signature Version 4 on incoming S3 requests.
//
// Verify authenticates a request from its Authorization header or from
// presigned query parameters without reading the body; Auth.Body then wraps
// the body according to the x-amz-content-sha256 payload mode so the caller
// reads the decoded object bytes and gets an *Error instead of io.EOF if the
// payload turns out not to match what was signed. Callers must therefore
// only commit the data once Read has returned io.EOF.
//
// Deviations from / additions to the original brief:
//   - A Verifier with an empty Region accepts any region in the credential
//     scope (the scope is still part of the signature).
//   - ErrAnonymous is wrapped by the AccessDenied error for requests without
//     any authentication, so a server with public resources can detect them.
//   - *Error wraps its cause (Unwrap), e.g. the Lookup error.
//   - Every x-amz-* request header must be signed (as S3 requires),
//     otherwise AccessDenied; "host" must always be signed.
//   - Body verifies trailing checksums only. x-amz-checksum-* request
//     headers and Content-MD5 are left to the caller, who knows whether they
//     describe the body (PutObject) or something else (e.g. the full-object
//     checksum on CompleteMultipartUpload).
//   - Session tokens (X-Amz-Security-Token) are signed but not interpreted.
//   - Malformed aws-chunked framing is reported as IncompleteBody.
//   - SignedHeaders may not name a header twice (malformed-auth error).
//
// Memory: signed chunks are held (at most 16 MiB, growing only with bytes
// actually received) until their signature checks out, so a caller never
// sees unverified bytes of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body.
// Unsigned chunks and non-chunked bodies stream through, so for those only
// the final Read result vouches for the data.
//
// The canonical query is sorted by encoded name, then encoded value, as AWS
// documents; clients that keep duplicate keys in insertion order (minio-go)
// or sort decoded non-ASCII names differently would not verify, which S3's
// own parameters never trigger.
package sigv4

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Payload modes (values of x-amz-content-sha256).
const (
	UnsignedPayload                 = "UNSIGNED-PAYLOAD"
	StreamingSignedPayload          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingSignedPayloadTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	StreamingUnsignedPayloadTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// DefaultMaxSkew is the clock skew allowed when Verifier.MaxSkew is zero.
const DefaultMaxSkew = 15 * time.Minute

// maxPresignExpires is S3's one-week limit on X-Amz-Expires.
const maxPresignExpires = 7 * 24 * 60 * 60

// Lookup returns the secret key for an access key, or an error wrapping
// ErrUnknownAccessKey.
type Lookup func(ctx context.Context, accessKey string) (secret string, err error)

// Verifier checks SigV4 signatures. Its fields are read-only after setup,
// so one Verifier may be shared by all requests.
type Verifier struct {
	Lookup  Lookup
	Region  string           // e.g. "us-east-1"; empty accepts any region
	MaxSkew time.Duration    // 0 means DefaultMaxSkew
	Now     func() time.Time // nil means time.Now
}

// Auth is the result of a successful Verify.
type Auth struct {
	AccessKey   string
	Presigned   bool
	PayloadHash string // x-amz-content-sha256 (UNSIGNED-PAYLOAD for presigned)

	// Needed to verify aws-chunked chunk and trailer signatures.
	key     []byte
	seed    string // hex request signature: first link of the chunk chain
	scope   string
	amzDate string
}

// credential is a parsed Credential / X-Amz-Credential value.
type credential struct {
	accessKey, date, region, service string
}

func (c credential) scope() string {
	return c.date + "/" + c.region + "/" + c.service + "/" + scopeTerminator
}

// authParams is what both auth styles boil down to.
type authParams struct {
	cred          credential
	signedHeaders []string
	signature     []byte // decoded from hex

	// presigned only
	amzDate     string
	expires     int64
	payloadHash string // X-Amz-Content-Sha256 query parameter, if any
}

// Verify checks the request's signature (Authorization header, or presigned
// query X-Amz-Algorithm=...). It returns the authenticated Auth, or an
// *Error. It does not read the body.
func (v *Verifier) Verify(r *http.Request) (*Auth, error) {
	query, queryErr := parseQuery(r.URL.RawQuery)
	presigned := false
	for _, p := range query {
		switch p.key {
		case "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature":
			presigned = true
		}
	}
	authz := r.Header.Values("Authorization")

	var (
		p        authParams
		err      error
		malCode  string
		amzDate  string
		reqTime  time.Time
		payload  string
		now      = v.now()
		maxSkew  = v.MaxSkew
		authHdrs = len(authz) > 0
	)
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}

	switch {
	case authHdrs && presigned:
		return nil, newError(CodeInvalidArgument, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified")
	case authHdrs:
		malCode = CodeAuthorizationHeaderMalformed
		if len(authz) > 1 {
			return nil, newError(malCode, "multiple Authorization headers")
		}
		if p, err = parseAuthorization(authz[0]); err != nil {
			return nil, err
		}
		if amzDate, reqTime, err = headerDate(r); err != nil {
			return nil, err
		}
		if d := now.Sub(reqTime); d > maxSkew || d < -maxSkew {
			return nil, newError(CodeRequestTimeTooSkewed, "The difference between the request time and the current time is too large.")
		}
		payload = r.Header.Get("X-Amz-Content-Sha256")
		if payload == "" {
			return nil, newError(CodeMissingSecurityHeader, "missing required header x-amz-content-sha256")
		}
	case presigned:
		malCode = CodeAuthorizationQueryParametersError
		if queryErr != nil {
			return nil, wrapError(malCode, "malformed query string", queryErr)
		}
		if p, err = parsePresign(query); err != nil {
			return nil, err
		}
		amzDate = p.amzDate
		reqTime, _ = time.Parse(amzDateFormat, amzDate) // validated by parsePresign
		if now.After(reqTime.Add(time.Duration(p.expires) * time.Second)) {
			return nil, newError(CodeAccessDenied, "Request has expired")
		}
		if reqTime.After(now.Add(maxSkew)) {
			return nil, newError(CodeAccessDenied, "Request is not valid yet")
		}
		switch {
		case p.payloadHash != "":
			payload = p.payloadHash
		case contains(p.signedHeaders, "x-amz-content-sha256"):
			payload = r.Header.Get("X-Amz-Content-Sha256")
		default:
			payload = UnsignedPayload
		}
	default:
		return nil, wrapError(CodeAccessDenied, "Access Denied", ErrAnonymous)
	}

	if p.cred.date != amzDate[:8] {
		return nil, newError(malCode, "Invalid credential date. Date is not the same as X-Amz-Date.")
	}
	if p.cred.service != serviceS3 {
		return nil, newError(malCode, "Credential should be scoped to correct service: 's3'.")
	}
	if v.Region != "" && p.cred.region != v.Region {
		return nil, newError(malCode, "the region '"+p.cred.region+"' is wrong; expecting '"+v.Region+"'")
	}
	if !validPayloadHash(payload) {
		return nil, newError(CodeInvalidArgument, "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid sha256 value.")
	}
	if err := checkSignedHeaders(r, p.signedHeaders, malCode); err != nil {
		return nil, err
	}
	if queryErr != nil {
		return nil, wrapError(CodeInvalidArgument, "malformed query string", queryErr)
	}

	if v.Lookup == nil {
		return nil, newError(CodeInternalError, "sigv4: Verifier.Lookup is nil")
	}
	secret, err := v.Lookup(r.Context(), p.cred.accessKey)
	if err != nil {
		if errors.Is(err, ErrUnknownAccessKey) {
			return nil, wrapError(CodeInvalidAccessKeyID, "The AWS Access Key Id you provided does not exist in our records.", err)
		}
		return nil, wrapError(CodeInternalError, "credential lookup failed", err)
	}

	scope := p.cred.scope()
	key := signingKey(secret, p.cred.date, p.cred.region)
	canon := canonicalRequest(r, query, presigned, p.signedHeaders, payload)
	want := hmacSHA256(key, stringToSign(amzDate, scope, canon))
	if !hmac.Equal(want, p.signature) {
		return nil, newError(CodeSignatureDoesNotMatch, "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	}
	return &Auth{
		AccessKey:   p.cred.accessKey,
		Presigned:   presigned,
		PayloadHash: payload,
		key:         key,
		seed:        hex.EncodeToString(want),
		scope:       scope,
		amzDate:     amzDate,
	}, nil
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// headerDate returns the request time from x-amz-date, falling back to the
// Date header only when x-amz-date is absent.
func headerDate(r *http.Request) (string, time.Time, error) {
	if s := r.Header.Get("X-Amz-Date"); s != "" {
		t, err := time.Parse(amzDateFormat, s)
		if err != nil || len(s) != len(amzDateFormat) {
			return "", time.Time{}, wrapError(CodeAccessDenied, "AWS authentication requires a valid Date or x-amz-date header", err)
		}
		return s, t, nil
	}
	if s := r.Header.Get("Date"); s != "" {
		t, err := http.ParseTime(s)
		if err != nil {
			return "", time.Time{}, wrapError(CodeAccessDenied, "AWS authentication requires a valid Date or x-amz-date header", err)
		}
		t = t.UTC()
		return t.Format(amzDateFormat), t, nil
	}
	return "", time.Time{}, newError(CodeAccessDenied, "AWS authentication requires a valid Date or x-amz-date header")
}

// checkSignedHeaders enforces S3's rules: host is signed, and so is every
// x-amz-* header present (otherwise they could be added by anyone replaying
// the request).
func checkSignedHeaders(r *http.Request, signed []string, malCode string) error {
	set := make(map[string]bool, len(signed))
	for _, h := range signed {
		set[h] = true
	}
	if !set["host"] {
		return newError(malCode, "SignedHeaders must include host")
	}
	var unsigned []string
	for name := range r.Header {
		l := strings.ToLower(name)
		if strings.HasPrefix(l, "x-amz-") && !set[l] {
			unsigned = append(unsigned, l)
		}
	}
	if len(unsigned) > 0 {
		return newError(CodeAccessDenied, "There were headers present in the request which were not signed: "+strings.Join(unsigned, ", "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func validPayloadHash(s string) bool {
	switch s {
	case UnsignedPayload, StreamingSignedPayload, StreamingSignedPayloadTrailer, StreamingUnsignedPayloadTrailer:
		return true
	}
	return len(s) == 64 && isHex(s)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// parseAuthorization parses
//
//	AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// Commas may or may not be followed by spaces (minio-go streaming omits them).
func parseAuthorization(h string) (authParams, error) {
	const mal = CodeAuthorizationHeaderMalformed
	var p authParams
	rest, ok := strings.CutPrefix(h, algorithm)
	if !ok {
		return p, newError(CodeInvalidArgument, "Unsupported Authorization Type")
	}
	if rest == "" || rest[0] != ' ' {
		return p, newError(CodeInvalidArgument, "Unsupported Authorization Type")
	}
	var haveCred, haveSH, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return p, newError(mal, "the authorization header is malformed; expected Credential, SignedHeaders and Signature")
		}
		var err error
		switch k {
		case "Credential":
			if haveCred {
				return p, newError(mal, "duplicate Credential")
			}
			haveCred = true
			p.cred, err = parseCredential(val, mal)
		case "SignedHeaders":
			if haveSH {
				return p, newError(mal, "duplicate SignedHeaders")
			}
			haveSH = true
			p.signedHeaders, err = parseSignedHeaders(val, mal)
		case "Signature":
			if haveSig {
				return p, newError(mal, "duplicate Signature")
			}
			haveSig = true
			p.signature, err = parseSignature(val, mal)
		default:
			return p, newError(mal, "unknown authorization header component "+strconv.Quote(k))
		}
		if err != nil {
			return p, err
		}
	}
	if !haveCred || !haveSH || !haveSig {
		return p, newError(mal, "the authorization header is malformed; expected Credential, SignedHeaders and Signature")
	}
	return p, nil
}

// parsePresign extracts the presigned-URL parameters from the decoded query.
func parsePresign(query []queryParam) (authParams, error) {
	const mal = CodeAuthorizationQueryParametersError
	var p authParams
	var vals [7]string
	var seen [7]bool
	names := [7]string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Content-Sha256"}
	for _, q := range query {
		for i, n := range names {
			if q.key == n {
				if seen[i] {
					return p, newError(mal, "duplicate query parameter "+n)
				}
				seen[i], vals[i] = true, q.value
			}
		}
	}
	for i := 0; i < 6; i++ {
		if !seen[i] {
			return p, newError(mal, "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
		}
	}
	if vals[0] != algorithm {
		return p, newError(mal, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
	}
	var err error
	if p.cred, err = parseCredential(vals[1], mal); err != nil {
		return p, err
	}
	if _, err := time.Parse(amzDateFormat, vals[2]); err != nil || len(vals[2]) != len(amzDateFormat) {
		return p, newError(mal, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
	}
	p.amzDate = vals[2]
	exp, err := strconv.ParseInt(vals[3], 10, 64)
	switch {
	case err != nil:
		return p, newError(mal, "X-Amz-Expires should be a number")
	// A URL valid for no time, or for longer than S3 allows, is refused as AWS does (and as
	// ceph/s3-tests checks): 403, the URL does not grant access.
	case exp < 1:
		return p, newError(CodeAccessDenied, "Request has expired")
	case exp > maxPresignExpires:
		return p, newError(CodeAccessDenied, "X-Amz-Expires must be less than a week (in seconds) that is 604800")
	}
	p.expires = exp
	if p.signedHeaders, err = parseSignedHeaders(vals[4], mal); err != nil {
		return p, err
	}
	if p.signature, err = parseSignature(vals[5], mal); err != nil {
		return p, err
	}
	if seen[6] {
		if vals[6] == "" {
			return p, newError(mal, "X-Amz-Content-Sha256 must not be empty")
		}
		p.payloadHash = vals[6]
	}
	return p, nil
}

// parseCredential parses AK/yyyymmdd/region/service/aws4_request. The access
// key is everything before the last four components.
func parseCredential(s, mal string) (credential, error) {
	var c credential
	parts := strings.Split(s, "/")
	n := len(parts)
	if n < 5 || parts[n-1] != scopeTerminator {
		return c, newError(mal, "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
	}
	c.accessKey = strings.Join(parts[:n-4], "/")
	c.date, c.region, c.service = parts[n-4], parts[n-3], parts[n-2]
	if c.accessKey == "" || c.region == "" || c.service == "" {
		return c, newError(mal, "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
	}
	if _, err := time.Parse(scopeDateFormat, c.date); err != nil || len(c.date) != 8 {
		return c, newError(mal, "Error parsing the X-Amz-Credential parameter; incorrect date format. This date in the credential must be in the format \"yyyyMMdd\".")
	}
	return c, nil
}

// parseSignedHeaders parses "host;x-amz-date". Names must be lower-case
// tokens; the order is kept as sent since the client signed in that order.
// Duplicates are refused: each would copy the header's value into the
// canonical request again, an easy way to make us do unbounded work.
func parseSignedHeaders(s, mal string) ([]string, error) {
	if s == "" {
		return nil, newError(mal, "SignedHeaders is empty")
	}
	hs := strings.Split(s, ";")
	seen := make(map[string]bool, len(hs))
	for _, h := range hs {
		if h == "" {
			return nil, newError(mal, "SignedHeaders contains an empty header name")
		}
		if seen[h] {
			return nil, newError(mal, "SignedHeaders contains "+strconv.Quote(h)+" twice")
		}
		seen[h] = true
		for i := 0; i < len(h); i++ {
			c := h[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
				return nil, newError(mal, "SignedHeaders contains an invalid header name "+strconv.Quote(h))
			}
		}
	}
	return hs, nil
}

func parseSignature(s, mal string) ([]byte, error) {
	if len(s) != 64 {
		return nil, newError(mal, "Signature must be 64 hex characters")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, newError(mal, "Signature must be 64 hex characters")
	}
	return b, nil
}
