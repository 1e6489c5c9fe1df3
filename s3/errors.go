// Package s3 holds the S3 wire-protocol pieces the coordinator's HTTP handlers
// use: error responses, XML bodies, ranges, preconditions, ETags, name rules,
// copy sources and request addressing. It knows nothing about storage.
package s3

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Error codes S3 clients act on. The HTTP status and default message of each
// come from ErrorFor.
const (
	CodeAccessDenied                 = "AccessDenied"
	CodeAuthorizationQueryParameters = "AuthorizationQueryParametersError"
	CodeAuthorizationHeaderMalformed = "AuthorizationHeaderMalformed"
	CodeBadDigest                    = "BadDigest"
	CodeBucketAlreadyExists          = "BucketAlreadyExists"
	CodeBucketAlreadyOwnedByYou      = "BucketAlreadyOwnedByYou"
	CodeBucketNotEmpty               = "BucketNotEmpty"
	CodeEntityTooLarge               = "EntityTooLarge"
	CodeEntityTooSmall               = "EntityTooSmall"
	CodeIncompleteBody               = "IncompleteBody"
	CodeInternalError                = "InternalError"
	CodeInvalidAccessKeyID           = "InvalidAccessKeyId"
	CodeInvalidArgument              = "InvalidArgument"
	CodeInvalidBucketName            = "InvalidBucketName"
	CodeInvalidBucketState           = "InvalidBucketState"
	CodeInvalidRetentionPeriod       = "InvalidRetentionPeriod"
	CodeNoSuchObjectLockConfig       = "NoSuchObjectLockConfiguration"
	CodeObjectLockConfigNotFound     = "ObjectLockConfigurationNotFoundError"
	CodeInvalidDigest                = "InvalidDigest"
	CodeInvalidLocationConstraint    = "InvalidLocationConstraint"
	CodeInvalidPart                  = "InvalidPart"
	CodeInvalidPartOrder             = "InvalidPartOrder"
	CodeInvalidRange                 = "InvalidRange"
	CodeInvalidRequest               = "InvalidRequest"
	CodeKeyTooLongError              = "KeyTooLongError"
	CodeMalformedPolicy              = "MalformedPolicy"
	CodeMalformedXML                 = "MalformedXML"
	CodeMetadataTooLarge             = "MetadataTooLarge"
	CodeMethodNotAllowed             = "MethodNotAllowed"
	CodeMissingContentLength         = "MissingContentLength"
	CodeMissingSecurityHeader        = "MissingSecurityHeader"
	CodeNoSuchBucket                 = "NoSuchBucket"
	CodeNoSuchBucketPolicy           = "NoSuchBucketPolicy"
	CodeNoSuchLifecycleConfiguration = "NoSuchLifecycleConfiguration"
	CodeNoSuchKey                    = "NoSuchKey"
	CodeNoSuchUpload                 = "NoSuchUpload"
	CodeNoSuchVersion                = "NoSuchVersion"
	CodeNotImplemented               = "NotImplemented"
	CodePreconditionFailed           = "PreconditionFailed"
	CodeRequestHeaderSectionTooLarge = "RequestHeaderSectionTooLarge"
	CodeRequestTimeout               = "RequestTimeout"
	CodeRequestTimeTooSkewed         = "RequestTimeTooSkewed"
	CodeServiceUnavailable           = "ServiceUnavailable"
	CodeSignatureDoesNotMatch        = "SignatureDoesNotMatch"
	CodeSlowDown                     = "SlowDown"
	CodeXAmzContentSHA256Mismatch    = "XAmzContentSHA256Mismatch"

	CodeInvalidBucketACLWithObjectOwnership = "InvalidBucketAclWithObjectOwnership"
	CodeNoSuchCORSConfiguration             = "NoSuchCORSConfiguration"
	CodeCORSForbidden                       = "AccessForbidden"
	CodeOwnershipControlsNotFound           = "OwnershipControlsNotFoundError"
	CodeNoSuchPublicAccessBlock             = "NoSuchPublicAccessBlockConfiguration"
	CodeNoSuchTagSet                        = "NoSuchTagSet"
	CodeInvalidPolicyDocument               = "InvalidPolicyDocument"
)

// Error is an S3 error response. Handlers return it (possibly wrapped) and
// WriteError turns it into the XML body; any other error becomes InternalError.
type Error struct {
	Code    string
	Status  int    // HTTP status
	Message string // shown to the client: never put internal details here
	// Optional extra elements S3 adds for some errors.
	BucketName string
	Key        string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "s3: " + e.Code
	}
	return "s3: " + e.Code + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, so callers can
// write errors.Is(err, s3.ErrorFor(s3.CodeNoSuchKey, "")).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// WithResource returns a copy of e naming the bucket and key it concerns.
func (e *Error) WithResource(bucket, key string) *Error {
	c := *e
	c.BucketName, c.Key = bucket, key
	return &c
}

// codeInfo is the table of known codes: status and the message AWS sends.
func codeInfo(code string) (status int, msg string, ok bool) {
	switch code {
	case CodeAccessDenied:
		return http.StatusForbidden, "Access Denied", true
	case CodeAuthorizationQueryParameters:
		return http.StatusBadRequest, "Error parsing the X-Amz-Credential parameter.", true
	case CodeAuthorizationHeaderMalformed:
		return http.StatusBadRequest, "The authorization header is malformed.", true
	case CodeBadDigest:
		return http.StatusBadRequest, "The Content-MD5 you specified did not match what we received.", true
	case CodeBucketAlreadyExists:
		return http.StatusConflict, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.", true
	case CodeBucketAlreadyOwnedByYou:
		return http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it.", true
	case CodeBucketNotEmpty:
		return http.StatusConflict, "The bucket you tried to delete is not empty", true
	case CodeEntityTooLarge:
		return http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size.", true
	case CodeEntityTooSmall:
		return http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size.", true
	case CodeIncompleteBody:
		return http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header.", true
	case CodeInternalError:
		return http.StatusInternalServerError, "We encountered an internal error. Please try again.", true
	case CodeInvalidAccessKeyID:
		return http.StatusForbidden, "The AWS Access Key Id you provided does not exist in our records.", true
	case CodeInvalidArgument:
		return http.StatusBadRequest, "Invalid Argument", true
	case CodeInvalidBucketName:
		return http.StatusBadRequest, "The specified bucket is not valid.", true
	case CodeInvalidBucketState:
		return http.StatusConflict, "The request is not valid with the current state of the bucket.", true
	case CodeInvalidRetentionPeriod:
		return http.StatusBadRequest, "The retention period must be a positive integer.", true
	case CodeNoSuchObjectLockConfig:
		return http.StatusNotFound, "The specified object does not have an ObjectLock configuration.", true
	case CodeObjectLockConfigNotFound:
		return http.StatusNotFound, "Object Lock configuration does not exist for this bucket.", true
	case CodeInvalidDigest:
		return http.StatusBadRequest, "The Content-MD5 you specified is not valid.", true
	case CodeInvalidLocationConstraint:
		return http.StatusBadRequest, "The specified location-constraint is not valid.", true
	case CodeInvalidPart:
		return http.StatusBadRequest, "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.", true
	case CodeInvalidPartOrder:
		return http.StatusBadRequest, "The list of parts was not in ascending order. The parts list must be specified in order by part number.", true
	case CodeInvalidTag:
		return http.StatusBadRequest, "The tag provided was not a valid tag.", true
	case CodeInvalidRange:
		return http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable", true
	case CodeInvalidRequest:
		return http.StatusBadRequest, "Invalid Request", true
	case CodeKeyTooLongError:
		return http.StatusBadRequest, "Your key is too long", true
	case CodeMalformedPolicy:
		return http.StatusBadRequest, "Policies must be valid JSON and the first byte must be '{'", true
	case CodeMalformedXML:
		return http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema.", true
	case CodeMetadataTooLarge:
		return http.StatusBadRequest, "Your metadata headers exceed the maximum allowed metadata size.", true
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed, "The specified method is not allowed against this resource.", true
	case CodeMissingContentLength:
		return http.StatusLengthRequired, "You must provide the Content-Length HTTP header.", true
	case CodeMissingSecurityHeader:
		return http.StatusBadRequest, "Your request is missing a required header.", true
	case CodeNoSuchBucket:
		return http.StatusNotFound, "The specified bucket does not exist", true
	case CodeNoSuchBucketPolicy:
		return http.StatusNotFound, "The bucket policy does not exist", true
	case CodeNoSuchLifecycleConfiguration:
		return http.StatusNotFound, "The lifecycle configuration does not exist", true
	case CodeNoSuchKey:
		return http.StatusNotFound, "The specified key does not exist.", true
	case CodeNoSuchUpload:
		return http.StatusNotFound, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.", true
	case CodeNoSuchVersion:
		return http.StatusNotFound, "The specified version does not exist.", true
	case CodeNotImplemented:
		return http.StatusNotImplemented, "A header you provided implies functionality that is not implemented.", true
	case CodePreconditionFailed:
		return http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold", true
	case CodeRequestHeaderSectionTooLarge:
		return http.StatusBadRequest, "Your request header section exceeds the maximum allowed size.", true
	case CodeRequestTimeout:
		return http.StatusBadRequest, "Your socket connection to the server was not read from or written to within the timeout period.", true
	case CodeRequestTimeTooSkewed:
		return http.StatusForbidden, "The difference between the request time and the current time is too large.", true
	case CodeServiceUnavailable:
		return http.StatusServiceUnavailable, "Service is unable to handle request.", true
	case CodeSignatureDoesNotMatch:
		return http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your key and signing method.", true
	case CodeSlowDown:
		return http.StatusServiceUnavailable, "Please reduce your request rate.", true
	case CodeMalformedACLError:
		return http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema.", true
	case CodeUnresolvableGrantByEmailAddress:
		return http.StatusBadRequest, "The e-mail address you provided does not match any account on record.", true
	case CodeAccessControlListNotSupported:
		return http.StatusBadRequest, "The bucket does not allow ACLs", true
	case CodeInvalidBucketACLWithObjectOwnership:
		return http.StatusBadRequest, "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting", true
	case CodeNoSuchCORSConfiguration:
		return http.StatusNotFound, "The CORS configuration does not exist", true
	case CodeCORSForbidden:
		return http.StatusForbidden, "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.", true
	case CodeOwnershipControlsNotFound:
		return http.StatusNotFound, "The bucket ownership controls were not found", true
	case CodeNoSuchPublicAccessBlock:
		return http.StatusNotFound, "The public access block configuration was not found", true
	case CodeNoSuchTagSet:
		return http.StatusNotFound, "The TagSet does not exist", true
	case CodeInvalidPolicyDocument:
		return http.StatusBadRequest, "The content of the form does not meet the conditions specified in the policy document.", true
	case CodeXAmzContentSHA256Mismatch:
		return http.StatusBadRequest, "The provided 'x-amz-content-sha256' header does not match what was computed.", true
	}
	return 0, "", false
}

// ErrorFor returns a new Error for code with its S3 status. An empty msg takes
// S3's standard message for the code. An unknown code yields InternalError (500)
// with the standard message: a typo must not leak msg or invent a status.
func ErrorFor(code, msg string) *Error {
	status, std, ok := codeInfo(code)
	if !ok {
		status, std, _ = codeInfo(CodeInternalError)
		return &Error{Code: CodeInternalError, Status: status, Message: std}
	}
	if msg == "" {
		msg = std
	}
	return &Error{Code: code, Status: status, Message: msg}
}

// errorBody is the XML S3 sends for an error. It has no namespace, as in AWS.
type errorBody struct {
	XMLName    xml.Name `xml:"Error"`
	Code       string   `xml:"Code"`
	Message    string   `xml:"Message"`
	BucketName string   `xml:"BucketName,omitempty"`
	Key        string   `xml:"Key,omitempty"`
	Resource   string   `xml:"Resource"`
	RequestID  string   `xml:"RequestId"`
}

// WriteError writes err as an S3 error response. Errors that are not *Error
// (after errors.As) become a generic InternalError so internals never reach
// the client. HEAD responses carry the status only, as S3 does, since a HEAD
// response cannot have a body. requestID, when set, also goes into the
// x-amz-request-id header unless the caller already set it.
func WriteError(w http.ResponseWriter, r *http.Request, err error, requestID string) {
	var e *Error
	if !errors.As(err, &e) || e == nil {
		e = ErrorFor(CodeInternalError, "")
	}
	status := e.Status
	if status < 100 || status > 999 {
		// A hand-built Error with no status: the code's own, else 500.
		status = ErrorFor(e.Code, "").Status
	}
	h := w.Header()
	if requestID != "" && h.Get("X-Amz-Request-Id") == "" {
		h.Set("X-Amz-Request-Id", requestID)
	}
	// Object headers set before the failure must not describe the error body; the one exception
	// is a 416's "bytes */<size>", which tells the client the object's size (RFC 9110).
	for _, k := range []string{"Content-Length", "Content-Range", "Content-Encoding", "Content-Md5", "Etag", "Last-Modified"} {
		if k == "Content-Range" && e.Code == CodeInvalidRange && strings.HasPrefix(h.Get(k), "bytes */") {
			continue
		}
		h.Del(k)
	}
	if r != nil && r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	body := errorBody{
		Code:       e.Code,
		Message:    e.Message,
		BucketName: e.BucketName,
		Key:        e.Key,
		RequestID:  requestID,
	}
	if r != nil && r.URL != nil {
		body.Resource = r.URL.Path
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	// Marshal cannot fail on this struct of strings.
	b, _ := xml.Marshal(body)
	buf.Write(b)
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
