package s3

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/hanode/hanode/internal/keyspace"
)

// Server-side encryption request headers.
const (
	HeaderSSE             = "X-Amz-Server-Side-Encryption"
	HeaderSSECAlgorithm   = "X-Amz-Server-Side-Encryption-Customer-Algorithm"
	HeaderSSECKey         = "X-Amz-Server-Side-Encryption-Customer-Key"
	HeaderSSECKeyMD5      = "X-Amz-Server-Side-Encryption-Customer-Key-Md5"
	HeaderCopySSECPrefix  = "X-Amz-Copy-Source-"
	SSEAlgorithmAES256    = "AES256"
	sseCustomerKeyBytes   = 32
	headerSSEBucketKey    = "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"
	headerSSEKMSKeyID     = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
	headerSSEKMSContext   = "X-Amz-Server-Side-Encryption-Context"
	sseCustomerKeyMessage = "The secret key was invalid for the specified algorithm."
)

// SSECustomer is an SSE-C key given with a request: the key (32 bytes) and its base64 MD5 as
// the client sent it (echoed in responses).
type SSECustomer struct {
	Key    []byte
	KeyMD5 string
}

// ParseSSECustomer reads the SSE-C headers of a request (the copy source's, with copySource),
// nil when there are none. All three must be there, the algorithm AES256, the key 32 bytes of
// base64 and the MD5 that of the key, as AWS requires; else InvalidArgument (400).
func ParseSSECustomer(h http.Header, copySource bool) (*SSECustomer, error) {
	name := func(n string) string {
		if copySource {
			return HeaderCopySSECPrefix + strings.TrimPrefix(n, "X-Amz-")
		}
		return n
	}
	algo, key, sum := h.Values(name(HeaderSSECAlgorithm)), h.Values(name(HeaderSSECKey)), h.Values(name(HeaderSSECKeyMD5))
	if len(algo) == 0 && len(key) == 0 && len(sum) == 0 {
		return nil, nil
	}
	switch {
	case len(algo) == 0:
		return nil, ErrorFor(CodeInvalidArgument, "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.")
	case strings.TrimSpace(algo[0]) != SSEAlgorithmAES256:
		return nil, ErrorFor(CodeInvalidArgument, "The encryption algorithm specified is not valid: only AES256 is (SSE-C).")
	case len(key) == 0:
		return nil, ErrorFor(CodeInvalidArgument, "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.")
	case len(sum) == 0:
		return nil, ErrorFor(CodeInvalidArgument, "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.")
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key[0]))
	if err != nil || len(k) != sseCustomerKeyBytes {
		return nil, ErrorFor(CodeInvalidArgument, sseCustomerKeyMessage)
	}
	want, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sum[0]))
	got := md5.Sum(k)
	if err != nil || subtle.ConstantTimeCompare(want, got[:]) != 1 {
		return nil, ErrorFor(CodeInvalidArgument, "The calculated MD5 hash of the key did not match the hash that was provided.")
	}
	return &SSECustomer{Key: k, KeyMD5: base64.StdEncoding.EncodeToString(got[:])}, nil
}

// SSERequest is what the encryption headers of a write ask for.
type SSERequest struct {
	// Algorithm is "" (not asked), SSEAlgorithmAES256 (SSE-S3) or SSEAlgorithmKMS.
	Algorithm string
	// KMSKeyID (SSE-KMS) is the KMS key named by x-amz-server-side-encryption-aws-kms-key-id
	// ("" when not named: the bucket's default key is used, if it has one).
	KMSKeyID string
	// KMSContext (SSE-KMS) is x-amz-server-side-encryption-context as sent (base64 of a JSON
	// object of strings), "" for none.
	KMSContext string
}

// SSEAlgorithmKMS is SSE-KMS's x-amz-server-side-encryption.
const SSEAlgorithmKMS = "aws:kms"

// Exported names of the SSE-KMS headers (responses carry them).
const (
	HeaderSSEKMSKeyID   = headerSSEKMSKeyID
	HeaderSSEKMSContext = headerSSEKMSContext
)

// maxKMSContext bounds x-amz-server-side-encryption-context (AWS KMS allows 8 KiB of context).
const maxKMSContext = 8 << 10

// ParseSSE reads the encryption headers of a write: x-amz-server-side-encryption "" (not
// asked), AES256 (SSE-S3) or aws:kms (SSE-KMS, with the key id and encryption context
// headers, both optional). A key id or context without aws:kms, a malformed context or
// another algorithm is InvalidArgument, as AWS answers; aws:kms:dsse and S3 Bucket Keys are
// NotImplemented (a bucket key disabled is no request at all).
func ParseSSE(h http.Header) (SSERequest, error) {
	v := strings.TrimSpace(h.Get(HeaderSSE))
	if b := strings.TrimSpace(h.Get(headerSSEBucketKey)); b != "" && !strings.EqualFold(b, "false") {
		return SSERequest{}, notImplemented("S3 Bucket Keys")
	}
	keyID, encCtx := strings.TrimSpace(h.Get(headerSSEKMSKeyID)), strings.TrimSpace(h.Get(headerSSEKMSContext))
	switch {
	case v == SSEAlgorithmKMS:
		id, err := ParseKMSKeyID(keyID, true)
		if err != nil {
			return SSERequest{}, err
		}
		if err := checkKMSContext(encCtx); err != nil {
			return SSERequest{}, err
		}
		return SSERequest{Algorithm: v, KMSKeyID: id, KMSContext: encCtx}, nil
	case keyID != "" || encCtx != "":
		return SSERequest{}, ErrorFor(CodeInvalidArgument, "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms")
	case v == "", v == SSEAlgorithmAES256:
		return SSERequest{Algorithm: v}, nil
	case strings.HasPrefix(v, SSEAlgorithmKMS):
		return SSERequest{}, notImplemented("the encryption method " + v)
	}
	return SSERequest{}, ErrorFor(CodeInvalidArgument, "The encryption method specified is not supported.")
}

// ParseKMSKeyID returns the name of the built-in KMS's key that id (a request's key id, or a
// bucket's KMSMasterKeyID) names: the name itself, or a KMS key ARN ending in key/NAME. ""
// is no key (allowed when optional). A name no KMS key can have answers KMS.NotFoundException,
// as AWS does for a key it does not know.
func ParseKMSKeyID(id string, optional bool) (string, error) {
	if id == "" && optional {
		return "", nil
	}
	name := id
	if strings.HasPrefix(id, "arn:aws:kms:") {
		if i := strings.LastIndex(id, ":key/"); i >= 0 {
			name = id[i+len(":key/"):]
		}
	}
	if !keyspace.ValidKMSKeyName(name) {
		return "", ErrKMSNotFound(id)
	}
	return name, nil
}

// checkKMSContext checks an x-amz-server-side-encryption-context: base64 of a JSON object
// whose values are strings, as AWS requires.
func checkKMSContext(v string) error {
	if v == "" {
		return nil
	}
	bad := ErrorFor(CodeInvalidArgument, "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map")
	if len(v) > maxKMSContext {
		return bad
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !utf8.Valid(raw) {
		return bad
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return bad
	}
	return nil
}

// ErrKMSNotFound is AWS's answer for a KMS key it does not know.
func ErrKMSNotFound(id string) error {
	return &Error{Code: "KMS.NotFoundException", Status: http.StatusBadRequest, Message: "Invalid keyId " + id}
}

// ErrKMSDisabled is AWS's answer for a disabled KMS key.
func ErrKMSDisabled(id string) error {
	return &Error{Code: "KMS.DisabledException", Status: http.StatusBadRequest, Message: "The KMS key " + id + " is disabled."}
}

// ServerSideEncryptionConfiguration is the body of PutBucketEncryption and GetBucketEncryption.
type ServerSideEncryptionConfiguration struct {
	XMLName xml.Name            `xml:"ServerSideEncryptionConfiguration"`
	Xmlns   string              `xml:"xmlns,attr,omitempty"`
	Rules   []ServerSideEncRule `xml:"Rule"`
}

// ServerSideEncRule is one rule of a bucket's encryption configuration.
type ServerSideEncRule struct {
	Default          *ServerSideEncDefault `xml:"ApplyServerSideEncryptionByDefault"`
	BucketKeyEnabled *bool                 `xml:"BucketKeyEnabled,omitempty"`
}

// ServerSideEncDefault is the encryption a bucket applies to objects written without one.
type ServerSideEncDefault struct {
	SSEAlgorithm   string `xml:"SSEAlgorithm"`
	KMSMasterKeyID string `xml:"KMSMasterKeyID,omitempty"`
}

// DefaultAlgorithm returns the encryption a PutBucketEncryption body sets: SSEAlgorithmAES256,
// or SSEAlgorithmKMS with its KMSMasterKeyID's key name (required: hanode has no AWS managed
// key). Anything else is MalformedXML or InvalidArgument, as AWS answers; S3 Bucket Keys are
// NotImplemented.
func (c *ServerSideEncryptionConfiguration) DefaultAlgorithm() (algo, kmsKeyID string, err error) {
	if len(c.Rules) != 1 || c.Rules[0].Default == nil {
		return "", "", ErrorFor(CodeMalformedXML, "an encryption configuration has exactly one rule with ApplyServerSideEncryptionByDefault")
	}
	r := c.Rules[0]
	if r.BucketKeyEnabled != nil && *r.BucketKeyEnabled {
		return "", "", notImplemented("S3 Bucket Keys")
	}
	switch a := r.Default.SSEAlgorithm; {
	case a == SSEAlgorithmKMS:
		if strings.TrimSpace(r.Default.KMSMasterKeyID) == "" {
			return "", "", ErrorFor(CodeInvalidArgument, "aws:kms needs a KMSMasterKeyID: hanode has no AWS managed key (create one with hanode kms create)")
		}
		id, err := ParseKMSKeyID(strings.TrimSpace(r.Default.KMSMasterKeyID), false)
		if err != nil {
			return "", "", err
		}
		return a, id, nil
	case strings.HasPrefix(a, SSEAlgorithmKMS):
		return "", "", notImplemented("the encryption method " + a)
	case a != SSEAlgorithmAES256:
		return "", "", ErrorFor(CodeMalformedXML, "SSEAlgorithm must be AES256 or aws:kms")
	case r.Default.KMSMasterKeyID != "":
		return "", "", ErrorFor(CodeInvalidArgument, "a KMSMasterKeyID is only for aws:kms")
	}
	return SSEAlgorithmAES256, "", nil
}
