package sigv4

import (
	"errors"
	"net/http"
)

// ErrUnknownAccessKey is what a Lookup wraps when the access key does not
// exist; Verify turns it into InvalidAccessKeyId.
var ErrUnknownAccessKey = errors.New("sigv4: unknown access key")

// ErrAnonymous is wrapped by the AccessDenied *Error Verify returns for a
// request that carries no authentication at all, so a caller that serves
// public resources can tell "anonymous" from "bad signature" with errors.Is.
var ErrAnonymous = errors.New("sigv4: request is not signed")

// Error is an S3-style error: Code is the S3 error code (for the XML error
// body), Status the HTTP status to answer with.
type Error struct {
	Code    string
	Status  int
	Message string

	err error // underlying cause, if any (for errors.Is / logging)
}

func (e *Error) Error() string {
	if e.err != nil {
		return "sigv4: " + e.Code + ": " + e.Message + ": " + e.err.Error()
	}
	return "sigv4: " + e.Code + ": " + e.Message
}

// Unwrap returns the cause, e.g. the Lookup error or ErrAnonymous.
func (e *Error) Unwrap() error { return e.err }

// S3 error codes used by this package.
const (
	CodeAccessDenied                      = "AccessDenied"
	CodeInvalidAccessKeyID                = "InvalidAccessKeyId"
	CodeSignatureDoesNotMatch             = "SignatureDoesNotMatch"
	CodeAuthorizationHeaderMalformed      = "AuthorizationHeaderMalformed"
	CodeAuthorizationQueryParametersError = "AuthorizationQueryParametersError"
	CodeRequestTimeTooSkewed              = "RequestTimeTooSkewed"
	CodeXAmzContentSHA256Mismatch         = "XAmzContentSHA256Mismatch"
	CodeInvalidArgument                   = "InvalidArgument"
	CodeIncompleteBody                    = "IncompleteBody"
	CodeBadDigest                         = "BadDigest"
	CodeMissingSecurityHeader             = "MissingSecurityHeader"
	CodeInternalError                     = "InternalError"
)

// status maps a code to its HTTP status (a switch rather than a map so there
// is no package-level mutable state).
func status(code string) int {
	switch code {
	case CodeAccessDenied, CodeInvalidAccessKeyID, CodeSignatureDoesNotMatch, CodeRequestTimeTooSkewed:
		return http.StatusForbidden
	case CodeInternalError:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

func newError(code, msg string) *Error {
	return &Error{Code: code, Status: status(code), Message: msg}
}

func wrapError(code, msg string, err error) *Error {
	return &Error{Code: code, Status: status(code), Message: msg, err: err}
}
