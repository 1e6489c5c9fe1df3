package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hanode/hanode/internal/progress"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/s3/sigv4"
	"github.com/hanode/hanode/security/s3access"
)

// Limits of the S3 API, as AWS documents them.
const (
	maxPutSize     = 5 << 30  // single PUT and each part
	minPartSize    = 5 << 20  // every part but the last
	maxHeaderBytes = 16 << 10 // request header section we accept (AWS: 8 KiB of user headers)
	defaultMaxKeys = 1000
)

// request is one S3 request being served.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	id     string
	bucket string
	key    string
	op     string
	auth   *sigv4.Auth // an anonymous request's has no AccessKey
	root   bool        // the access key is a root user
	access *s3access.Bucket
	status int
	// objectGate, when set, is what the object's ACL must still allow when the handler reads
	// the record it serves (the object's ACL is what allowed the request).
	objectGate func(*meta.ACL) bool
}

func (rq *request) query(name string) string { return rq.r.URL.Query().Get(name) }
func (rq *request) has(name string) bool     { _, ok := rq.r.URL.Query()[name]; return ok }

// only reports whether the query is exactly the subresource name (?name or ?name=).
func (rq *request) only(name string) bool {
	q := rq.r.URL.Query()
	return len(q) == 1 && len(q[name]) == 1 && q[name][0] == ""
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// statusWriter records the status for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (c *Coordinator) serveS3(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	r = r.WithContext(withSource(r.Context(), clientSource(r)))
	rq := &request{w: sw, r: r, id: newRequestID()}
	h := sw.Header()
	h.Set("X-Hanode-Node", c.o.Name)
	h.Set("X-Amz-Request-Id", rq.id)
	h.Set("Server", "hanode")
	defer func() {
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		c.metrics.requests.WithLabelValues(rq.op, strconv.Itoa(code)).Inc()
		c.metrics.duration.WithLabelValues(rq.op).Observe(time.Since(start).Seconds())
	}()
	rq.op = "unknown"
	if r.ContentLength != 0 {
		// A client that stops sending its body releases what it holds (write buffers).
		body := progress.Guard(sw, r, c.o.BodyWindow, c.o.BodyMinBytes)
		defer body.Stop()
	}
	if err := c.route(rq); err != nil {
		c.fail(rq, err)
	}
}

// fail writes err as an S3 error. Internal errors are logged with the request id (which the
// client sees) and never described to the client.
func (c *Coordinator) fail(rq *request, err error) {
	e := toS3(err)
	if e.Code == s3.CodeInternalError || e.Code == s3.CodeServiceUnavailable {
		c.log.Warn("s3 request failed", "op", rq.op, "bucket", rq.bucket, "key", rq.key, "request", rq.id, "err", err)
	}
	s3.WriteError(rq.w, rq.r, e.WithResource(rq.bucket, rq.key), rq.id)
}

// toS3 maps any error of the data path to an S3 error.
func toS3(err error) *s3.Error {
	var se *s3.Error
	if errors.As(err, &se) {
		return se
	}
	var ve *sigv4.Error
	if errors.As(err, &ve) {
		if e := s3.ErrorFor(ve.Code, ve.Message); e.Code == ve.Code {
			return e
		}
		// A code the s3 table does not know keeps the verifier's status: a client error
		// must never become a 500.
		return &s3.Error{Code: ve.Code, Status: ve.Status, Message: ve.Message}
	}
	if e := versioningError(err); e != nil {
		return e
	}
	switch {
	case errors.Is(err, meta.ErrNoSuchBucket):
		return s3.ErrorFor(s3.CodeNoSuchBucket, "")
	case errors.Is(err, meta.ErrPreconditionFailed):
		return s3.ErrorFor(s3.CodePreconditionFailed, "")
	case errors.Is(err, meta.ErrNoSuchKey):
		return s3.ErrorFor(s3.CodeNoSuchKey, "")
	case errors.Is(err, meta.ErrNoSuchUpload):
		return s3.ErrorFor(s3.CodeNoSuchUpload, "")
	case errors.Is(err, meta.ErrBucketExists):
		return s3.ErrorFor(s3.CodeBucketAlreadyOwnedByYou, "")
	case errors.Is(err, meta.ErrBucketNotEmpty):
		return s3.ErrorFor(s3.CodeBucketNotEmpty, "")
	case errors.Is(err, errIncomplete):
		return s3.ErrorFor(s3.CodeIncompleteBody, err.Error())
	case errors.Is(err, progress.ErrTooSlow):
		return s3.ErrorFor(s3.CodeRequestTimeout, "")
	case errors.Is(err, errUnavailable):
		return s3.ErrorFor(s3.CodeServiceUnavailable, err.Error())
	case errors.Is(err, meta.ErrTooLarge), errors.Is(err, rpctypes.ErrRequestTooLarge):
		return s3.ErrorFor(s3.CodeEntityTooLarge, "the object's metadata would exceed what one etcd request holds: it lists too many chunks "+
			"(about 512 GiB at the default 8 MiB chunk size), or it replaces an object that does (delete that first); an upload that cannot complete can be aborted")
	case errors.Is(err, meta.ErrCommitUnknown):
		return s3.ErrorFor(s3.CodeServiceUnavailable, "the metadata commit was interrupted and its outcome could not be established; retry the request")
	case errors.Is(err, meta.ErrIntentLost), errors.Is(err, meta.ErrConflict):
		return s3.ErrorFor(s3.CodeServiceUnavailable, "the write was interrupted by a concurrent change; retry it")
	case isUnavailable(err):
		return s3.ErrorFor(s3.CodeServiceUnavailable, "cluster metadata (etcd) is unavailable; retry shortly")
	}
	return s3.ErrorFor(s3.CodeInternalError, "")
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) {
		return true
	}
	if s, ok := status.FromError(errors.Unwrap(err)); ok && (s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded) {
		return true
	}
	s, ok := status.FromError(err)
	return ok && (s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded)
}

// route authenticates the request, picks its handler by method, bucket, key and subresource,
// authorizes it (security/s3access: deny by default) and runs it.
func (c *Coordinator) route(rq *request) error {
	r := rq.r
	if headerBytes(r.Header) > maxHeaderBytes {
		return s3.ErrorFor(s3.CodeRequestHeaderSectionTooLarge, "")
	}
	bucket, key, err := s3.ParseRequest(r, c.o.Domains)
	if err != nil {
		return err
	}
	rq.bucket, rq.key = bucket, key
	if r.Method == http.MethodOptions {
		return c.preflight(rq)
	}
	if r.Method == http.MethodPost && key == "" && strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "multipart/form-data") {
		// A browser upload (POST policy) carries its signature in the form, not in headers.
		return c.postObject(rq)
	}
	auth, err := c.verifier.Verify(r)
	anonymous := errors.Is(err, sigv4.ErrAnonymous)
	if err != nil && !anonymous {
		return err
	}
	if anonymous {
		// What an anonymous request may do is what its bucket's ACL or policy allows anyone.
		auth = &sigv4.Auth{PayloadHash: sigv4.UnsignedPayload}
	}
	rq.auth = auth
	h, err := c.dispatch(rq)
	if err != nil {
		if anonymous { // an anonymous client learns nothing about what is implemented
			c.refuseAnonymous(rq, "operation")
			return s3.ErrorFor(s3.CodeAccessDenied, "")
		}
		return err
	}
	if err := c.authorize(rq); err != nil {
		return err
	}
	return h(rq)
}

// dispatch picks the handler of the request and names its operation (rq.op).
func (c *Coordinator) dispatch(rq *request) (func(*request) error, error) {
	r, bucket, key := rq.r, rq.bucket, rq.key
	m := r.Method
	q := r.URL.Query()
	switch {
	case bucket == "":
		if m == http.MethodGet {
			rq.op = "ListBuckets"
			return c.listBuckets, nil
		}
	case key == "":
		if err := s3.ValidBucketName(bucket); err != nil && m != http.MethodGet && m != http.MethodHead {
			return nil, err
		}
		if sub := s3.UnservedSubresource(q, bucketParams...); sub != "" {
			return nil, unserved(rq, sub)
		}
		switch {
		case m == http.MethodPut && noParams(q):
			rq.op = "CreateBucket"
			if err := s3.CheckHeaders(r.Header, s3.OpCreateBucket); err != nil {
				return nil, err
			}
			return c.createBucket, nil
		case m == http.MethodPut && rq.only("policy"):
			rq.op = "PutBucketPolicy"
			return c.putBucketPolicy, nil
		case m == http.MethodGet && rq.only("policy"):
			rq.op = "GetBucketPolicy"
			return c.getBucketPolicy, nil
		case m == http.MethodGet && rq.only("policyStatus"):
			rq.op = "GetBucketPolicyStatus"
			return c.getPolicyStatus, nil
		case m == http.MethodDelete && rq.only("policy"):
			rq.op = "DeleteBucketPolicy"
			return c.deleteBucketPolicy, nil
		case rq.only("cors") && (m == http.MethodGet || m == http.MethodPut || m == http.MethodDelete):
			rq.op = map[string]string{http.MethodGet: "GetBucketCors", http.MethodPut: "PutBucketCors", http.MethodDelete: "DeleteBucketCors"}[m]
			return map[string]func(*request) error{http.MethodGet: c.getBucketCORS, http.MethodPut: c.putBucketCORS, http.MethodDelete: c.deleteBucketCORS}[m], nil
		case rq.only("publicAccessBlock") && (m == http.MethodGet || m == http.MethodPut || m == http.MethodDelete):
			rq.op = map[string]string{http.MethodGet: "GetPublicAccessBlock", http.MethodPut: "PutPublicAccessBlock", http.MethodDelete: "DeletePublicAccessBlock"}[m]
			return c.publicAccessBlock, nil
		case rq.only("ownershipControls") && (m == http.MethodGet || m == http.MethodPut || m == http.MethodDelete):
			rq.op = map[string]string{http.MethodGet: "GetBucketOwnershipControls", http.MethodPut: "PutBucketOwnershipControls", http.MethodDelete: "DeleteBucketOwnershipControls"}[m]
			return c.ownershipControls, nil
		case rq.only("tagging") && (m == http.MethodGet || m == http.MethodPut || m == http.MethodDelete):
			rq.op = map[string]string{http.MethodGet: "GetBucketTagging", http.MethodPut: "PutBucketTagging", http.MethodDelete: "DeleteBucketTagging"}[m]
			return c.bucketTagging, nil
		case (m == http.MethodGet || m == http.MethodPut) && rq.only("acl"):
			rq.op = map[string]string{http.MethodGet: "GetBucketAcl", http.MethodPut: "PutBucketAcl"}[m]
			if m == http.MethodGet {
				return c.getBucketACL, nil
			}
			return c.putBucketACL, nil
		case rq.only("encryption") && (m == http.MethodPut || m == http.MethodGet || m == http.MethodDelete):
			rq.op = map[string]string{http.MethodPut: "PutBucketEncryption", http.MethodGet: "GetBucketEncryption", http.MethodDelete: "DeleteBucketEncryption"}[m]
			return map[string]func(*request) error{http.MethodPut: c.putBucketEncryption, http.MethodGet: c.getBucketEncryption, http.MethodDelete: c.deleteBucketEncryption}[m], nil
		case m == http.MethodHead:
			rq.op = "HeadBucket"
			return c.headBucket, nil
		case m == http.MethodDelete && noParams(q):
			rq.op = "DeleteBucket"
			return c.deleteBucket, nil
		case m == http.MethodPost && rq.has("delete"):
			rq.op = "DeleteObjects"
			return c.deleteObjects, nil
		case m == http.MethodGet && rq.has("location"):
			rq.op = "GetBucketLocation"
			return c.bucketLocation, nil
		case m == http.MethodGet && rq.has("versioning"):
			rq.op = "GetBucketVersioning"
			return c.getBucketVersioning, nil
		case m == http.MethodPut && rq.has("versioning"):
			rq.op = "PutBucketVersioning"
			return c.putBucketVersioning, nil
		case rq.has("lifecycle") && (m == http.MethodGet || m == http.MethodPut || m == http.MethodDelete):
			rq.op = map[string]string{http.MethodGet: "GetBucketLifecycleConfiguration", http.MethodPut: "PutBucketLifecycleConfiguration", http.MethodDelete: "DeleteBucketLifecycle"}[m]
			return c.bucketLifecycle, nil
		case rq.has("object-lock") && (m == http.MethodGet || m == http.MethodPut):
			rq.op = map[string]string{http.MethodGet: "GetObjectLockConfiguration", http.MethodPut: "PutObjectLockConfiguration"}[m]
			return c.objectLockConfiguration, nil
		case m == http.MethodGet && rq.has("uploads"):
			rq.op = "ListMultipartUploads"
			return c.listUploads, nil
		case m == http.MethodGet && rq.has("versions"):
			rq.op = "ListObjectVersions"
			return c.listVersions, nil
		case m == http.MethodGet && rq.query("list-type") == "2":
			rq.op = "ListObjectsV2"
			return func(rq *request) error { return c.listObjects(rq, true) }, nil
		case m == http.MethodGet && !hasSubresource(q):
			rq.op = "ListObjects"
			return func(rq *request) error { return c.listObjects(rq, false) }, nil
		}
	default:
		if err := s3.ValidObjectKey(key); err != nil {
			return nil, err
		}
		if sub := s3.UnservedSubresource(q, objectParams...); sub != "" {
			return nil, unserved(rq, sub)
		}
		upload := rq.query("uploadId")
		switch {
		case m == http.MethodPut && upload != "" && r.Header.Get("X-Amz-Copy-Source") != "":
			rq.op = "UploadPartCopy"
			if err := s3.CheckHeaders(r.Header, s3.OpWritePart); err != nil {
				return nil, err
			}
			return func(rq *request) error { return c.uploadPart(rq, true) }, nil
		case m == http.MethodPut && upload != "":
			rq.op = "UploadPart"
			if err := s3.CheckHeaders(r.Header, s3.OpWritePart); err != nil {
				return nil, err
			}
			return func(rq *request) error { return c.uploadPart(rq, false) }, nil
		case m == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
			rq.op = "CopyObject"
			if err := s3.CheckHeaders(r.Header, s3.OpWriteObject); err != nil {
				return nil, err
			}
			return c.copyObject, nil
		case m == http.MethodPut && !hasSubresource(q):
			rq.op = "PutObject"
			if err := s3.CheckHeaders(r.Header, s3.OpWriteObject); err != nil {
				return nil, err
			}
			return c.putObject, nil
		case rq.has("retention") && (m == http.MethodGet || m == http.MethodPut):
			rq.op = map[string]string{http.MethodGet: "GetObjectRetention", http.MethodPut: "PutObjectRetention"}[m]
			return c.objectRetention, nil
		case rq.has("legal-hold") && (m == http.MethodGet || m == http.MethodPut):
			rq.op = map[string]string{http.MethodGet: "GetObjectLegalHold", http.MethodPut: "PutObjectLegalHold"}[m]
			return c.objectLegalHold, nil
		case rq.has("tagging") && (m == http.MethodGet || m == http.MethodPut || m == http.MethodDelete):
			rq.op = map[string]string{http.MethodGet: "GetObjectTagging", http.MethodPut: "PutObjectTagging", http.MethodDelete: "DeleteObjectTagging"}[m]
			return c.objectTagging, nil
		case m == http.MethodGet && rq.has("attributes"):
			rq.op = "GetObjectAttributes"
			return c.getObjectAttributes, nil
		case (m == http.MethodGet || m == http.MethodPut) && rq.has("acl"):
			rq.op = map[string]string{http.MethodGet: "GetObjectAcl", http.MethodPut: "PutObjectAcl"}[m]
			if m == http.MethodGet {
				return c.getObjectACL, nil
			}
			return c.putObjectACL, nil
		case m == http.MethodGet && upload != "":
			rq.op = "ListParts"
			return c.listParts, nil
		case (m == http.MethodGet || m == http.MethodHead) && !hasSubresource(q):
			rq.op = "GetObject"
			if m == http.MethodHead {
				rq.op = "HeadObject"
			}
			if err := s3.CheckHeaders(r.Header, s3.OpReadObject); err != nil {
				return nil, err
			}
			return c.getObject, nil
		case m == http.MethodDelete && upload != "":
			rq.op = "AbortMultipartUpload"
			return c.abortUpload, nil
		case m == http.MethodDelete && !hasSubresource(q):
			rq.op = "DeleteObject"
			return c.deleteObject, nil
		case m == http.MethodPost && rq.has("uploads"):
			rq.op = "CreateMultipartUpload"
			if err := s3.CheckHeaders(r.Header, s3.OpWriteObject); err != nil {
				return nil, err
			}
			return c.createUpload, nil
		case m == http.MethodPost && upload != "":
			rq.op = "CompleteMultipartUpload"
			return c.completeUpload, nil
		}
	}
	return nil, s3.ErrorFor(s3.CodeNotImplemented, "this request ("+m+" with query "+strconv.Quote(r.URL.RawQuery)+") is not implemented by hanode")
}

// The query parameters each level serves: its subresources and the parameters S3 defines for
// its operations. Any other subresource is refused (s3.UnservedSubresource).
var (
	bucketParams = []string{"location", "versioning", "uploads", "versions", "delete", "policy", "policyStatus", "acl", "cors", "publicAccessBlock", "ownershipControls", "tagging", "encryption", "object-lock", "lifecycle",
		"prefix", "delimiter", "marker", "max-keys", "encoding-type", "list-type", "continuation-token", "start-after",
		"fetch-owner", "key-marker", "upload-id-marker", "max-uploads", "version-id-marker"}
	objectParams = []string{"uploads", "uploadId", "partNumber", "versionId", "max-parts", "part-number-marker", "tagging", "acl", "attributes", "retention", "legal-hold"}
)

// noParams reports a query with no parameter but those of a presigned URL's signature.
func noParams(q url.Values) bool {
	for k := range q {
		if !strings.HasPrefix(k, "X-Amz-") && k != "x-id" {
			return false
		}
	}
	return true
}

// unserved refuses a subresource hanode does not serve.
func unserved(rq *request, sub string) error {
	rq.op = "Unsupported"
	return s3.ErrorFor(s3.CodeNotImplemented, "the ?"+sub+" subresource ("+rq.r.Method+") is not implemented by hanode")
}

// hasSubresource reports a subresource that some operation serves but a plain object or
// bucket operation must not be mistaken for (PUT ?uploads is not a PutObject).
func hasSubresource(q url.Values) bool {
	for _, s := range []string{"uploads", "delete", "location", "versioning", "versions", "tagging", "acl", "cors", "publicAccessBlock", "ownershipControls", "policyStatus", "attributes", "encryption", "object-lock", "retention", "legal-hold", "lifecycle"} {
		if _, ok := q[s]; ok {
			return true
		}
	}
	return false
}

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// --- buckets

func (c *Coordinator) listBuckets(rq *request) error {
	ctx := rq.r.Context()
	bs, err := c.meta.ListBuckets(ctx)
	if err != nil {
		return err
	}
	var granted map[string]bool
	if !rq.root {
		if granted, err = s3access.New(c.o.Etcd).GrantedBuckets(ctx, rq.auth.AccessKey); err != nil {
			return err
		}
	}
	q := rq.r.URL.Query()
	maxBuckets := 10000
	if v := q.Get("max-buckets"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return s3.ErrorFor(s3.CodeInvalidArgument, "max-buckets must be 1 to 10000")
		}
		maxBuckets = n
	}
	after := ""
	if tok := q.Get("continuation-token"); tok != "" {
		a, _, err := decodeToken(tok)
		if err != nil {
			return err
		}
		after = a
	}
	prefix := q.Get("prefix")
	res := s3.ListAllMyBucketsResult{Owner: s3.Owner{ID: rq.auth.AccessKey, DisplayName: rq.auth.AccessKey}, Prefix: prefix}
	for _, b := range bs { // by name
		if b.Name <= after || !strings.HasPrefix(b.Name, prefix) {
			continue
		}
		if rq.root || (b.Owner != "" && b.Owner == rq.auth.AccessKey) || granted[b.Name] {
			if len(res.Buckets) == maxBuckets {
				res.ContinuationToken = encodeToken(res.Buckets[len(res.Buckets)-1].Name, false)
				break
			}
			res.Buckets = append(res.Buckets, s3.Bucket{Name: b.Name, CreationDate: s3.Timestamp{Time: b.Created}})
		}
	}
	return s3.WriteXML(rq.w, http.StatusOK, res)
}

func (c *Coordinator) createBucket(rq *request) error {
	b := meta.Bucket{Name: rq.bucket, Created: time.Now().UTC(), Owner: rq.auth.AccessKey}
	acl, err := c.bucketACLFor(rq)
	if err != nil {
		return err
	}
	b.ACL = acl
	if o := rq.r.Header.Get("X-Amz-Object-Ownership"); o != "" {
		b.Ownership = o
		if o == "BucketOwnerEnforced" && acl != nil {
			return s3.ErrorFor(s3.CodeInvalidBucketACLWithObjectOwnership, "")
		}
	}
	if v := rq.r.Header.Get("X-Hanode-Replicas"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 7 {
			return s3.ErrorFor(s3.CodeInvalidArgument, "x-hanode-replicas must be 1 to 7")
		}
		b.Replicas = n
	}
	if rq.r.ContentLength != 0 {
		body, err := rq.auth.Body(rq.r)
		if err != nil {
			return err
		}
		var cfg s3.CreateBucketConfiguration
		if err := s3.DecodeXML(body, 64<<10, &cfg); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if cfg.LocationConstraint != "" && cfg.LocationConstraint != c.o.Region {
			return s3.ErrorFor(s3.CodeInvalidLocationConstraint, "this cluster's region is "+c.o.Region)
		}
	}
	if err := c.createBucketRecord(rq, b); err != nil {
		if errors.Is(err, meta.ErrBucketExists) {
			// Someone else's bucket is BucketAlreadyExists; the caller's own is OwnedByYou.
			cur, lerr := c.authz.bucket(rq.r.Context(), rq.bucket)
			if lerr == nil && cur.Exists && cur.Owner != rq.auth.AccessKey && (cur.Owner != "" || !rq.root) {
				return s3.ErrorFor(s3.CodeBucketAlreadyExists, "")
			}
			if c.o.Region == "us-east-1" {
				if same, gerr := c.recreatesAsIs(rq, b); gerr != nil {
					return gerr
				} else if same {
					// AWS in us-east-1: re-creating one's own bucket is 200 OK (for legacy
					// compatibility) and leaves its contents; answered only when the request
					// asks for the settings the bucket has, so that nothing asked is ignored.
					rq.w.Header().Set("Location", "/"+rq.bucket)
					rq.w.WriteHeader(http.StatusOK)
					return nil
				}
			}
		}
		return err
	}
	rq.w.Header().Set("Location", "/"+rq.bucket)
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// recreatesAsIs reports whether a CreateBucket of an existing bucket (want, as the request
// asks for it) names the caller's own bucket with the settings it already has: the default ACL
// (AWS resets the ACL of a re-created bucket to the request's; hanode does not change it, so
// it answers 200 only when there is nothing to reset), the same object ownership, replication
// and object lock. Anything else keeps BucketAlreadyOwnedByYou.
func (c *Coordinator) recreatesAsIs(rq *request, want meta.Bucket) (bool, error) {
	have, err := c.meta.GetBucket(rq.r.Context(), rq.bucket)
	if errors.Is(err, meta.ErrNoSuchBucket) {
		return false, nil // deleted meanwhile: BucketAlreadyOwnedByYou as the create saw it
	}
	if err != nil {
		return false, err
	}
	lock := strings.TrimSpace(rq.r.Header.Get("X-Amz-Bucket-Object-Lock-Enabled"))
	owned := have.Owner == rq.auth.AccessKey || have.Owner == "" && rq.root
	return owned && have.ACL == nil && want.ACL == nil && have.Ownership == want.Ownership &&
		(want.Replicas == 0 || want.Replicas == have.Replicas) && (lock == "" || strings.EqualFold(lock, "false")), nil
}

func (c *Coordinator) headBucket(rq *request) error {
	if _, err := c.meta.GetBucket(rq.r.Context(), rq.bucket); err != nil {
		return err
	}
	rq.w.Header().Set("X-Amz-Bucket-Region", c.o.Region)
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// deleteBucket deletes an empty bucket. Multipart uploads in progress do not keep a bucket
// that holds no object (as in S3): they are aborted first, and only once the bucket is seen
// without objects, so that a refused delete aborts nothing.
func (c *Coordinator) deleteBucket(rq *request) error {
	ctx := rq.r.Context()
	// Any version or delete marker keeps a bucket (ListVersions reads both kinds).
	res, err := c.meta.ListVersions(ctx, rq.bucket, "", "", "", "", false, 1)
	if err != nil {
		return err
	}
	if len(res.Versions) > 0 {
		return s3.ErrorFor(s3.CodeBucketNotEmpty, "")
	}
	for {
		ups, _, err := c.meta.ListUploads(ctx, rq.bucket, "", "", "", defaultMaxKeys)
		if err != nil {
			return err
		}
		if len(ups) == 0 {
			break
		}
		for _, u := range ups {
			switch err := c.meta.AbortUpload(ctx, u); {
			case errors.Is(err, meta.ErrPartsPending), errors.Is(err, meta.ErrNoSuchUpload):
			case err != nil:
				return err
			}
		}
	}
	if err := c.meta.DeleteBucket(ctx, rq.bucket); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Coordinator) bucketLocation(rq *request) error {
	if _, err := c.meta.GetBucket(rq.r.Context(), rq.bucket); err != nil {
		return err
	}
	loc := c.o.Region
	if loc == "us-east-1" {
		loc = "" // S3 answers an empty constraint for us-east-1
	}
	return s3.WriteXML(rq.w, http.StatusOK, s3.LocationConstraint{Location: loc})
}

// --- listing

// listingParams reads the parameters every listing shares: encoding-type and max-keys (capped
// at defaultMaxKeys).
func listingParams(q url.Values) (enc string, maxKeys int, err error) {
	if enc, err = s3.ParseEncodingType(q.Get("encoding-type")); err != nil {
		return "", 0, err
	}
	maxKeys = defaultMaxKeys
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return "", 0, s3.ErrorFor(s3.CodeInvalidArgument, "max-keys must be a non-negative integer")
		}
		maxKeys = min(n, defaultMaxKeys)
	}
	return enc, maxKeys, nil
}

func (c *Coordinator) listObjects(rq *request, v2 bool) error {
	q := rq.r.URL.Query()
	enc, maxKeys, err := listingParams(q)
	if err != nil {
		return err
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	after, afterIsPrefix := "", false
	if v2 {
		after = q.Get("start-after")
		if tok := q.Get("continuation-token"); tok != "" {
			after, afterIsPrefix, err = decodeToken(tok)
			if err != nil {
				return err
			}
		}
	} else {
		after = q.Get("marker")
		// A marker that is one of this listing's common prefixes (a NextMarker returned for
		// one: the prefix, then the first delimiter, at the end) continues after everything
		// under it; any other marker, the prefix itself included, is a key.
		if rest, ok := strings.CutPrefix(after, prefix); ok && delim != "" {
			i := strings.Index(rest, delim)
			afterIsPrefix = i >= 0 && i+len(delim) == len(rest)
		}
	}
	res, err := c.meta.ListObjects(rq.r.Context(), rq.bucket, prefix, delim, after, afterIsPrefix, maxKeys)
	if err != nil {
		return err
	}
	var contents []s3.Object
	for _, e := range res.Objects {
		o := s3.Object{Key: e.Key, LastModified: s3.Timestamp{Time: e.Object.Modified}, ETag: s3.QuoteETag(e.Object.ETag), Size: e.Object.Size, StorageClass: "STANDARD"}
		if !v2 || q.Get("fetch-owner") == "true" {
			o.Owner = rq.bucketOwner()
		}
		contents = append(contents, o)
	}
	var cps []s3.CommonPrefix
	for _, p := range res.Prefixes {
		cps = append(cps, s3.CommonPrefix{Prefix: p})
	}
	if v2 {
		out := s3.ListBucketResult{Name: rq.bucket, Prefix: prefix, StartAfter: q.Get("start-after"), ContinuationToken: echo(q, "continuation-token"),
			KeyCount: len(contents) + len(cps), MaxKeys: maxKeys, Delimiter: delim, EncodingType: enc, IsTruncated: res.Truncated,
			Contents: contents, CommonPrefixes: cps}
		if res.Truncated {
			out.NextContinuationToken = encodeToken(res.Next, res.NextIsPrefix)
		}
		out.URLEncodeKeys()
		return s3.WriteXML(rq.w, http.StatusOK, out)
	}
	out := s3.ListBucketResultV1{Name: rq.bucket, Prefix: prefix, Marker: q.Get("marker"), MaxKeys: maxKeys, Delimiter: delim,
		EncodingType: enc, IsTruncated: res.Truncated, Contents: contents, CommonPrefixes: cps}
	if res.Truncated {
		out.NextMarker = res.Next
	}
	out.URLEncodeKeys()
	return s3.WriteXML(rq.w, http.StatusOK, out)
}

// echo returns a query parameter to repeat in a response, nil when the request had none: a
// parameter sent empty is echoed empty (SDKs compare it).
func echo(q url.Values, name string) *string {
	if vs, ok := q[name]; ok && len(vs) > 0 {
		return &vs[0]
	}
	return nil
}

// Continuation tokens are opaque to clients: the last key (or common prefix) returned.
func encodeToken(after string, isPrefix bool) string {
	kind := "k"
	if isPrefix {
		kind = "p"
	}
	return kind + hex.EncodeToString([]byte(after))
}

func decodeToken(tok string) (string, bool, error) {
	if len(tok) < 1 || (tok[0] != 'k' && tok[0] != 'p') {
		return "", false, s3.ErrorFor(s3.CodeInvalidArgument, "the continuation token is not valid")
	}
	b, err := hex.DecodeString(tok[1:])
	if err != nil || len(b) > meta.MaxObjectKey {
		return "", false, s3.ErrorFor(s3.CodeInvalidArgument, "the continuation token is not valid")
	}
	return string(b), tok[0] == 'p', nil
}
