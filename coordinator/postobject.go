package coordinator

import (
	"bytes"
	"crypto/subtle"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/s3/sigv4"
)

// Browser uploads (POST object): a multipart/form-data request whose fields name the key and
// the object's headers, signed (when it is not anonymous) by a POST policy whose conditions
// every field must meet. The file is the last field read; fields after it are ignored.

const (
	maxPostFields   = 64 << 10 // the form fields before the file, together
	postMemoryLimit = 1 << 20  // a file up to this size is held in memory, a larger one spooled to a temporary file
)

// postFormHeaders maps form fields to the request headers of the equivalent PutObject.
var postFormHeaders = map[string]string{
	"acl": "X-Amz-Acl", "content-type": "Content-Type", "cache-control": "Cache-Control",
	"content-disposition": "Content-Disposition", "content-encoding": "Content-Encoding", "expires": "Expires",
}

// postSignatureFields are the form fields of the signature, not headers of the object.
var postSignatureFields = map[string]bool{"x-amz-signature": true, "x-amz-credential": true, "x-amz-algorithm": true, "x-amz-date": true, "x-amz-security-token": true}

func (c *Coordinator) postObject(rq *request) error {
	rq.op = "PostObject"
	ctx := rq.r.Context()
	if err := s3.ValidBucketName(rq.bucket); err != nil {
		return err
	}
	mr, err := rq.r.MultipartReader()
	if err != nil {
		return s3.ErrorFor(s3.CodeInvalidArgument, "a POST upload is a multipart/form-data body")
	}
	fields := map[string]string{}
	var (
		file     *multipart.Part
		filename string
		total    int
	)
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s3.ErrorFor(s3.CodeInvalidArgument, "the multipart/form-data body is malformed")
		}
		name := strings.ToLower(p.FormName())
		if name == "file" {
			file, filename = p, p.FileName()
			break
		}
		v, err := io.ReadAll(io.LimitReader(p, int64(maxPostFields-total+1)))
		if err != nil {
			return s3.ErrorFor(s3.CodeIncompleteBody, "")
		}
		if total += len(v); total > maxPostFields {
			return s3.ErrorFor(s3.CodeInvalidArgument, "the form fields exceed 64 KiB")
		}
		fields[name] = string(v)
	}
	if file == nil {
		return s3.ErrorFor(s3.CodeInvalidArgument, "POST requires exactly one file upload per request.")
	}
	key := strings.ReplaceAll(fields["key"], "${filename}", filename)
	if key == "" {
		return s3.ErrorFor(s3.CodeInvalidArgument, "Bucket POST must contain a field named 'key'.")
	}
	if err := s3.ValidObjectKey(key); err != nil {
		return err
	}
	fields["key"] = key // conditions speak of the key stored
	fields["bucket"] = rq.bucket
	accessKey, lo, hi, err := c.postAuth(rq, fields)
	if err != nil {
		return err
	}
	h := http.Header{}
	for f, v := range fields {
		switch {
		case postFormHeaders[f] != "":
			h.Set(postFormHeaders[f], v)
		case strings.HasPrefix(f, "x-amz-") && !postSignatureFields[f]:
			h.Set(f, v)
		}
	}
	if err := s3.CheckHeaders(h, s3.OpWriteObject); err != nil {
		return err
	}
	var tags map[string]string
	if t, ok := fields["tagging"]; ok {
		var tg s3.Tagging
		if err := xml.Unmarshal([]byte(t), &tg); err != nil {
			return s3.ErrorFor(s3.CodeMalformedXML, "the tagging field is not a Tagging document")
		}
		if tags, err = tg.Tags(); err != nil {
			return err
		}
	}
	// The rest is a PutObject of the form's key with the form's headers, by its signer.
	rq.r = rq.r.Clone(ctx)
	rq.r.Header = h
	rq.key = key
	rq.auth = &sigv4.Auth{AccessKey: accessKey, PayloadHash: sigv4.UnsignedPayload}
	if err := c.authorize(rq); err != nil {
		return err
	}
	headers, err := objectHeaders(h)
	if err != nil {
		return err
	}
	acl, err := c.objectACL(rq)
	if err != nil {
		return err
	}
	ck, err := s3.RequestChecksum(h)
	if err != nil {
		return err
	}
	var src io.Reader = file
	var sum hash.Hash
	if ck.Algorithm != "" {
		sum = s3.NewChecksum(ck.Algorithm)
		src = io.TeeReader(file, sum)
	}
	body, size, cleanup, err := spool(src, hi)
	if err != nil {
		return err
	}
	defer cleanup()
	if sum != nil && !ck.Matches(sum.Sum(nil)) {
		return s3.ErrorFor(s3.CodeBadDigest, "The x-amz-checksum-"+ck.Algorithm+" you specified did not match the calculated checksum.")
	}
	if size < lo {
		return s3.ErrorFor(s3.CodeEntityTooSmall, "Your proposed upload is smaller than the minimum allowed size")
	}
	replicas, defaultSSE, prior, err := c.writeState(ctx, rq.bucket, key)
	if err != nil {
		return err
	}
	if !c.inlines(size) {
		if err := c.checkCapacity(replicas); err != nil {
			return err
		}
	}
	// Encryption fields (x-amz-server-side-encryption*) are read as a PutObject's headers.
	enc, err := c.sseForWrite(ctx, h, defaultSSE)
	if err != nil {
		return err
	}
	w, writeID, err := c.store(ctx, rq.bucket, key, body, size, replicas, enc)
	if err != nil {
		return err
	}
	obj := &meta.Object{Size: size, Modified: time.Now().UTC(), ETag: enc.etag(w.md5), Headers: headers, Chunks: w.chunks, Inline: w.inline, Tags: tags, SSE: enc.record(), ACL: acl}
	if ck.Algorithm != "" {
		obj.Checksum = ck.Algorithm + ":" + ck.Value
	}
	if err := c.meta.PutObjectAfter(ctx, rq.bucket, key, obj, writeID, c.o.GCGrace, meta.Condition{}, prior); err != nil {
		return err
	}
	enc.respond(rq.w.Header())
	return postResponse(rq, fields, obj.ETag)
}

// postAuth checks a form's signature and POST policy and returns the signer ("" for an
// anonymous form, which has neither) and the policy's content-length-range (0 and 5 GiB
// when it has none).
func (c *Coordinator) postAuth(rq *request, fields map[string]string) (accessKey string, lo, hi int64, err error) {
	ctx := rq.r.Context()
	lo, hi = 0, maxPutSize
	policy, signed := fields["policy"]
	if !signed {
		if fields["signature"] != "" || fields["x-amz-signature"] != "" || fields["awsaccesskeyid"] != "" {
			return "", 0, 0, s3.ErrorFor(s3.CodeInvalidArgument, "a signed POST upload needs its policy")
		}
		return "", lo, hi, nil
	}
	var want func(secret string) string
	var given string
	switch {
	case fields["x-amz-signature"] != "":
		if fields["x-amz-algorithm"] != "AWS4-HMAC-SHA256" {
			return "", 0, 0, s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-algorithm must be AWS4-HMAC-SHA256")
		}
		ak, _, ok := sigv4.PostSignatureV4("", fields["x-amz-credential"], policy)
		if !ok {
			return "", 0, 0, s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-credential must be ACCESS_KEY/DATE/REGION/s3/aws4_request")
		}
		accessKey, given = ak, fields["x-amz-signature"]
		want = func(secret string) string {
			_, sig, _ := sigv4.PostSignatureV4(secret, fields["x-amz-credential"], policy)
			return sig
		}
	case fields["signature"] != "" && fields["awsaccesskeyid"] != "":
		accessKey, given = fields["awsaccesskeyid"], fields["signature"]
		want = func(secret string) string { return sigv4.PostSignatureV2(secret, policy) }
	default:
		return "", 0, 0, s3.ErrorFor(s3.CodeInvalidArgument, "a POST policy needs a signature: x-amz-signature with x-amz-credential, or signature with AWSAccessKeyId")
	}
	secret, err := c.keys.lookup(ctx, accessKey)
	if errors.Is(err, sigv4.ErrUnknownAccessKey) {
		return "", 0, 0, s3.ErrorFor(s3.CodeInvalidAccessKeyID, "")
	}
	if err != nil {
		return "", 0, 0, err
	}
	if subtle.ConstantTimeCompare([]byte(want(secret)), []byte(given)) != 1 {
		return "", 0, 0, s3.ErrorFor(s3.CodeSignatureDoesNotMatch, "")
	}
	pp, err := s3.ParsePostPolicy(policy, time.Now())
	if err != nil {
		return "", 0, 0, err
	}
	if err := pp.Check(fields); err != nil {
		return "", 0, 0, err
	}
	if l, h, ok := pp.SizeRange(); ok {
		lo, hi = l, min(h, maxPutSize)
	}
	return accessKey, lo, hi, nil
}

// spool reads the file of a form, at most limit bytes (more is EntityTooLarge): in memory
// when small, else into a temporary file removed by cleanup.
func spool(file io.Reader, limit int64) (io.Reader, int64, func(), error) {
	var mem bytes.Buffer
	n, err := io.Copy(&mem, io.LimitReader(file, min(limit+1, postMemoryLimit+1)))
	if err != nil {
		return nil, 0, nil, s3.ErrorFor(s3.CodeIncompleteBody, "")
	}
	if n > limit {
		return nil, 0, nil, s3.ErrorFor(s3.CodeEntityTooLarge, "")
	}
	if n <= postMemoryLimit {
		return bytes.NewReader(mem.Bytes()), n, func() {}, nil
	}
	f, err := os.CreateTemp("", "hanode-post-*")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("spool a POST upload: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := f.Write(mem.Bytes()); err != nil {
		cleanup()
		return nil, 0, nil, fmt.Errorf("spool a POST upload: %w", err)
	}
	m, err := io.Copy(f, io.LimitReader(file, limit+1-n))
	if err != nil {
		cleanup()
		return nil, 0, nil, s3.ErrorFor(s3.CodeIncompleteBody, "")
	}
	if n+m > limit {
		cleanup()
		return nil, 0, nil, s3.ErrorFor(s3.CodeEntityTooLarge, "")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, 0, nil, fmt.Errorf("spool a POST upload: %w", err)
	}
	return f, n + m, cleanup, nil
}

// postResponse answers a stored POST upload as its form asks: a redirect to
// success_action_redirect, or the success_action_status 200 or 201 (with a PostResponse), else
// 204.
func postResponse(rq *request, fields map[string]string, etag string) error {
	h := rq.w.Header()
	h.Set("ETag", s3.QuoteETag(etag))
	loc := "/" + rq.bucket + "/" + s3.URLEncodeName(rq.key)
	h.Set("Location", loc)
	if redirect := fields["success_action_redirect"]; redirect != "" {
		if u, err := url.Parse(redirect); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			q := "bucket=" + url.QueryEscape(rq.bucket) + "&key=" + url.QueryEscape(rq.key) + "&etag=" + url.QueryEscape(s3.QuoteETag(etag))
			if u.RawQuery != "" {
				q = u.RawQuery + "&" + q
			}
			u.RawQuery = q
			h.Set("Location", u.String())
			rq.w.WriteHeader(http.StatusSeeOther)
			return nil
		}
	}
	switch fields["success_action_status"] {
	case "200":
		rq.w.WriteHeader(http.StatusOK)
		return nil
	case "201":
		return s3.WriteXML(rq.w, http.StatusCreated, s3.PostResponse{Location: loc, Bucket: rq.bucket, Key: rq.key, ETag: s3.QuoteETag(etag)})
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}
