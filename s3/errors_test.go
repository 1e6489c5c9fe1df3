package s3

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestErrorForStatuses(t *testing.T) {
	for _, tc := range []struct {
		code   string
		status int
	}{
		{CodeAccessDenied, 403},
		{CodeBadDigest, 400},
		{CodeBucketAlreadyExists, 409},
		{CodeBucketAlreadyOwnedByYou, 409},
		{CodeBucketNotEmpty, 409},
		{CodeEntityTooLarge, 400},
		{CodeEntityTooSmall, 400},
		{CodeIncompleteBody, 400},
		{CodeInternalError, 500},
		{CodeInvalidAccessKeyID, 403},
		{CodeInvalidArgument, 400},
		{CodeInvalidBucketName, 400},
		{CodeInvalidDigest, 400},
		{CodeInvalidPart, 400},
		{CodeInvalidPartOrder, 400},
		{CodeInvalidRange, 416},
		{CodeInvalidRequest, 400},
		{CodeKeyTooLongError, 400},
		{CodeMalformedXML, 400},
		{CodeMetadataTooLarge, 400},
		{CodeMethodNotAllowed, 405},
		{CodeMissingContentLength, 411},
		{CodeNoSuchBucket, 404},
		{CodeNoSuchKey, 404},
		{CodeNoSuchUpload, 404},
		{CodeNotImplemented, 501},
		{CodePreconditionFailed, 412},
		{CodeRequestHeaderSectionTooLarge, 400},
		{CodeRequestTimeout, 400},
		{CodeServiceUnavailable, 503},
		{CodeSignatureDoesNotMatch, 403},
		{CodeSlowDown, 503},
		{CodeXAmzContentSHA256Mismatch, 400},
		{CodeAuthorizationHeaderMalformed, 400},
		{CodeRequestTimeTooSkewed, 403},
	} {
		e := ErrorFor(tc.code, "")
		if e.Code != tc.code || e.Status != tc.status || e.Message == "" {
			t.Errorf("ErrorFor(%q) = %+v, want status %d and a message", tc.code, e, tc.status)
		}
		if e2 := ErrorFor(tc.code, "custom"); e2.Message != "custom" {
			t.Errorf("ErrorFor(%q, custom).Message = %q", tc.code, e2.Message)
		}
	}
}

func TestErrorForUnknown(t *testing.T) {
	e := ErrorFor("NoSuchThing", "secret detail")
	if e.Code != CodeInternalError || e.Status != 500 || e.Message == "secret detail" {
		t.Fatalf("unknown code: %+v", e)
	}
}

func TestErrorIs(t *testing.T) {
	err := fmt.Errorf("get: %w", ErrorFor(CodeNoSuchKey, "x"))
	if !errors.Is(err, ErrorFor(CodeNoSuchKey, "")) {
		t.Error("errors.Is by code failed")
	}
	if errors.Is(err, ErrorFor(CodeNoSuchBucket, "")) {
		t.Error("errors.Is matched a different code")
	}
	w := ErrorFor(CodeNoSuchKey, "").WithResource("b", "k")
	if w.BucketName != "b" || w.Key != "k" || w.Code != CodeNoSuchKey {
		t.Errorf("WithResource: %+v", w)
	}
}

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name       string
		method     string
		err        error
		wantStatus int
		wantBody   string
	}{
		{
			name:       "s3 error",
			method:     http.MethodGet,
			err:        ErrorFor(CodeNoSuchKey, ""),
			wantStatus: 404,
			wantBody: `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>` +
				`<Resource>/bucket/a b&amp;c</Resource><RequestId>REQ1</RequestId></Error>`,
		},
		{
			name:       "wrapped with resource",
			method:     http.MethodPut,
			err:        fmt.Errorf("ctx: %w", ErrorFor(CodeNoSuchBucket, "").WithResource("bucket", "")),
			wantStatus: 404,
			wantBody: `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>` +
				`<BucketName>bucket</BucketName><Resource>/bucket/a b&amp;c</Resource><RequestId>REQ1</RequestId></Error>`,
		},
		{
			name:       "internal error is not leaked",
			method:     http.MethodGet,
			err:        errors.New("open /var/lib/hanode/secret: permission denied"),
			wantStatus: 500,
			wantBody: `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message>` +
				`<Resource>/bucket/a b&amp;c</Resource><RequestId>REQ1</RequestId></Error>`,
		},
		{
			name:       "nil error",
			method:     http.MethodGet,
			err:        nil,
			wantStatus: 500,
			wantBody: `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message>` +
				`<Resource>/bucket/a b&amp;c</Resource><RequestId>REQ1</RequestId></Error>`,
		},
		{
			name:       "HEAD has no body",
			method:     http.MethodHead,
			err:        ErrorFor(CodeNoSuchKey, ""),
			wantStatus: 404,
		},
		{
			name:       "hand-built error without status",
			method:     http.MethodGet,
			err:        &Error{Code: CodeSlowDown, Message: "slow"},
			wantStatus: 503,
			wantBody: `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<Error><Code>SlowDown</Code><Message>slow</Message>` +
				`<Resource>/bucket/a b&amp;c</Resource><RequestId>REQ1</RequestId></Error>`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/bucket/a%20b&c", nil)
			w := httptest.NewRecorder()
			w.Header().Set("ETag", `"stale"`)
			w.Header().Set("Content-Length", "12345")
			WriteError(w, r, tc.err, "REQ1")
			if w.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d", w.Code, tc.wantStatus)
			}
			if got := w.Body.String(); got != tc.wantBody {
				t.Errorf("body:\n got %s\nwant %s", got, tc.wantBody)
			}
			if got := w.Header().Get("X-Amz-Request-Id"); got != "REQ1" {
				t.Errorf("x-amz-request-id = %q", got)
			}
			if w.Header().Get("ETag") != "" {
				t.Error("stale ETag kept on an error response")
			}
			if tc.method != http.MethodHead {
				if ct := w.Header().Get("Content-Type"); ct != "application/xml" {
					t.Errorf("Content-Type = %q", ct)
				}
				if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(len(tc.wantBody)) {
					t.Errorf("Content-Length = %q, body %d", cl, len(tc.wantBody))
				}
			} else if w.Header().Get("Content-Length") != "" {
				t.Error("HEAD error kept a Content-Length")
			}
		})
	}
}

func TestWriteErrorKeepsUnsatisfiedRange(t *testing.T) {
	for _, tc := range []struct {
		code, set, want string
	}{
		{CodeInvalidRange, ContentRangeUnsatisfied(42), "bytes */42"},
		{CodeInvalidRange, "bytes 0-9/42", ""}, // a stale object header still goes
		{CodeNoSuchKey, "bytes */42", ""},
	} {
		w := httptest.NewRecorder()
		w.Header().Set("Content-Range", tc.set)
		WriteError(w, httptest.NewRequest("GET", "/b/k", nil), ErrorFor(tc.code, ""), "r1")
		if got := w.Header().Get("Content-Range"); got != tc.want {
			t.Errorf("%s with Content-Range %q: kept %q, want %q", tc.code, tc.set, got, tc.want)
		}
	}
}
