package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/s3/sigv4"
)

func TestToS3(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("complete upload u: %w", meta.ErrTooLarge), s3.CodeEntityTooLarge},
		{fmt.Errorf("put part 1 of u: %w", rpctypes.ErrRequestTooLarge), s3.CodeEntityTooLarge},
		{fmt.Errorf("bucket b: %w", meta.ErrNoSuchBucket), s3.CodeNoSuchBucket},
		{fmt.Errorf("upload u: %w", meta.ErrNoSuchUpload), s3.CodeNoSuchUpload},
		{errors.New("something else"), s3.CodeInternalError},
	} {
		if got := toS3(tc.err).Code; got != tc.code {
			t.Errorf("toS3(%v) = %s, want %s", tc.err, got, tc.code)
		}
	}
	// Every verifier error keeps its code and a client-error status: a presigned URL with a bad
	// parameter is never a 500.
	for _, code := range []string{sigv4.CodeAccessDenied, sigv4.CodeInvalidAccessKeyID, sigv4.CodeSignatureDoesNotMatch,
		sigv4.CodeAuthorizationHeaderMalformed, sigv4.CodeAuthorizationQueryParametersError, sigv4.CodeRequestTimeTooSkewed,
		sigv4.CodeXAmzContentSHA256Mismatch, sigv4.CodeInvalidArgument, sigv4.CodeIncompleteBody, sigv4.CodeBadDigest,
		sigv4.CodeMissingSecurityHeader, "SomeFutureCode"} {
		e := toS3(fmt.Errorf("verify: %w", &sigv4.Error{Code: code, Status: http.StatusBadRequest, Message: "m"}))
		if e.Code != code || e.Status < 400 || e.Status > 499 {
			t.Errorf("sigv4 %s: became %s (%d)", code, e.Code, e.Status)
		}
	}
	if e := toS3(meta.ErrPreconditionFailed); e.Code != s3.CodePreconditionFailed || e.Status != http.StatusPreconditionFailed {
		t.Errorf("ErrPreconditionFailed: %s (%d)", e.Code, e.Status)
	}
}
