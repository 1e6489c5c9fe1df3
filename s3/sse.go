package s3

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"strings"
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
	sseKMSNotImplemented  = "SSE-KMS (there is no KMS in hanode; use SSE-S3, AES256, or SSE-C)"
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

// ParseSSE reads x-amz-server-side-encryption of a write: "" (not asked) or SSEAlgorithmAES256
// (SSE-S3). SSE-KMS is NotImplemented (there is no KMS); anything else InvalidArgument. The
// KMS-only headers are refused with it; a bucket key disabled is no request at all.
func ParseSSE(h http.Header) (string, error) {
	v := strings.TrimSpace(h.Get(HeaderSSE))
	if h.Get(headerSSEKMSKeyID) != "" || h.Get(headerSSEKMSContext) != "" {
		return "", notImplemented(sseKMSNotImplemented)
	}
	if b := strings.TrimSpace(h.Get(headerSSEBucketKey)); b != "" && !strings.EqualFold(b, "false") {
		return "", notImplemented("S3 Bucket Keys (they serve SSE-KMS)")
	}
	switch {
	case v == "", v == SSEAlgorithmAES256:
		return v, nil
	case strings.HasPrefix(v, "aws:kms"):
		return "", notImplemented(sseKMSNotImplemented)
	}
	return "", ErrorFor(CodeInvalidArgument, "The encryption method specified is not supported.")
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

// DefaultAlgorithm returns the algorithm a PutBucketEncryption body sets: SSEAlgorithmAES256
// (SSE-KMS is NotImplemented, anything else MalformedXML or InvalidArgument, as AWS answers).
func (c *ServerSideEncryptionConfiguration) DefaultAlgorithm() (string, error) {
	if len(c.Rules) != 1 || c.Rules[0].Default == nil {
		return "", ErrorFor(CodeMalformedXML, "an encryption configuration has exactly one rule with ApplyServerSideEncryptionByDefault")
	}
	r := c.Rules[0]
	switch a := r.Default.SSEAlgorithm; {
	case strings.HasPrefix(a, "aws:kms"):
		return "", notImplemented(sseKMSNotImplemented)
	case a != SSEAlgorithmAES256:
		return "", ErrorFor(CodeMalformedXML, "SSEAlgorithm must be AES256")
	case r.Default.KMSMasterKeyID != "":
		return "", ErrorFor(CodeInvalidArgument, "a KMSMasterKeyID is only for aws:kms")
	case r.BucketKeyEnabled != nil && *r.BucketKeyEnabled:
		return "", notImplemented("S3 Bucket Keys (they serve SSE-KMS)")
	}
	return SSEAlgorithmAES256, nil
}
