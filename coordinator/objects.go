package coordinator

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hanode/hanode/internal/tlscork"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

// storedHeaders are the request headers kept with an object and returned on reads.
var storedHeaders = []string{"Content-Type", "Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires"}

// objectHeaders collects what a PUT (or CreateMultipartUpload) stores with the object.
func objectHeaders(h http.Header) (map[string]string, error) {
	md, err := s3.UserMetadata(h)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(md)+2)
	for k, v := range md {
		out["x-amz-meta-"+k] = v
	}
	for _, k := range storedHeaders {
		if v := h.Get(k); v != "" {
			out[strings.ToLower(k)] = v
		}
	}
	// aws-chunked is a transfer detail of the upload, not the object's encoding; any other
	// value is kept as sent ("deflate, gzip" stays so).
	if ce := out["content-encoding"]; ce != "" && strings.Contains(strings.ToLower(ce), "aws-chunked") {
		var keep []string
		for _, p := range strings.Split(ce, ",") {
			if p = strings.TrimSpace(p); p != "" && !strings.EqualFold(p, "aws-chunked") {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			delete(out, "content-encoding")
		} else {
			out["content-encoding"] = strings.Join(keep, ", ")
		}
	}
	return out, nil
}

// bodySize is the object's size: the decoded length of an aws-chunked body, else the
// request's Content-Length (required, as in S3).
func bodySize(r *http.Request) (int64, error) {
	if v := r.Header.Get("X-Amz-Decoded-Content-Length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-decoded-content-length is not a valid length")
		}
		return n, nil
	}
	if r.ContentLength < 0 {
		return 0, s3.ErrorFor(s3.CodeMissingContentLength, "")
	}
	return r.ContentLength, nil
}

// replicasFor returns the replication factor for new objects in bucket (and checks it exists).
func (c *Coordinator) replicasFor(ctx context.Context, bucket string) (int, error) {
	b, err := c.meta.GetBucket(ctx, bucket)
	if err != nil {
		return 0, err
	}
	if b.Replicas > 0 {
		return b.Replicas, nil
	}
	return c.o.Replicas, nil
}

// checkCapacity refuses a write up front, before reading its body, when there are fewer live
// datanodes on distinct machines than replicas.
func (c *Coordinator) checkCapacity(replicas int) error {
	live, _ := c.nodes.count()
	if live < replicas {
		return fmt.Errorf("%w: %d datanodes on distinct machines are live and writable, %d replicas are required", errUnavailable, live, replicas)
	}
	return nil
}

// writeData stores size bytes of body as the chunks of a new write, under an intent that is
// refreshed while the write runs. On failure the intent becomes garbage at once.
//
// The intent is written while the first chunks are already on their way (saving an etcd round
// trip per small object) and the write cannot commit before it is in etcd. A coordinator killed
// in that window can leave chunks no intent names: a leak of at most two chunks, never a
// visible effect, which nothing reclaims yet (an orphan sweep of the datanodes would).
func (c *Coordinator) writeData(ctx context.Context, bucket, key string, body io.Reader, size int64, replicas int, enc *sealer) (*written, string, error) {
	in := meta.Intent{ID: meta.NewWriteID(), Bucket: bucket, Key: key, Writer: c.o.Name}
	begun := make(chan error, 1)
	go func() { begun <- c.meta.BeginWrite(ctx, in) }()
	tctx, stopTouch := context.WithCancel(ctx)
	go c.touch(tctx, in)
	w, err := c.writeChunks(ctx, body, size, replicas, in.ID, enc)
	stopTouch()
	if berr := <-begun; err == nil && berr != nil {
		err = berr
	}
	if err != nil {
		c.abort(in.ID)
		return nil, "", err
	}
	c.metrics.bytesIn.Add(float64(size))
	return w, in.ID, nil
}

// touch refreshes a long write's intent every third of the write timeout.
func (c *Coordinator) touch(ctx context.Context, in meta.Intent) {
	t := time.NewTicker(c.o.WriteTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.meta.TouchWrite(ctx, in); err != nil && ctx.Err() == nil {
				c.log.Warn("refreshing a write intent", "write", in.ID, "err", err)
			}
		}
	}
}

// abort hands the chunks of a failed write whose commit was never sent to the collector.
func (c *Coordinator) abort(writeID string) {
	if writeID == "" { // an inline write: nothing was stored (inline.go)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.meta.AbortWrite(ctx, writeID, nil); err != nil {
		c.log.Warn("abandoning a failed write; the collector will find it when its intent expires", "write", writeID, "err", err)
	}
}

// writeBody stores a request's body (PutObject, UploadPart) as a new write: it checks the
// size limit and Content-MD5, refuses up front without enough datanodes, and verifies the MD5
// of what arrived. On success the write awaits its commit under the returned id. A whole
// object (not a part) small enough is kept inline (inline.go): no datanode is needed, and the
// id is "" (its commit needs no intent).
//
// sumAlgo, when given, is the additional checksum the write must have (a part of an upload
// created with one): it is computed whether or not the request sends it, and a request that
// sends another is refused.
func (c *Coordinator) writeBody(rq *request, replicas int, tooLarge string, enc *sealer, whole bool, sumAlgo string) (*written, string, error) {
	r := rq.r
	size, err := bodySize(r)
	if err != nil {
		return nil, "", err
	}
	if size > maxPutSize {
		return nil, "", s3.ErrorFor(s3.CodeEntityTooLarge, tooLarge)
	}
	var wantMD5 []byte
	if vs, ok := r.Header["Content-Md5"]; ok { // present but empty is InvalidDigest, as in S3
		if wantMD5, err = s3.ContentMD5(vs[0]); err != nil {
			return nil, "", err
		}
	}
	ck, err := s3.RequestChecksum(r.Header)
	if err != nil {
		return nil, "", err
	}
	algo := ck.Algorithm
	if sumAlgo != "" {
		if algo != "" && algo != sumAlgo {
			return nil, "", s3.ErrorFor(s3.CodeInvalidRequest, "Checksum Type mismatch occurred, expected checksum Type: "+sumAlgo+", actual checksum Type: "+algo)
		}
		algo = sumAlgo
	}
	inline := whole && c.inlines(size)
	if !inline {
		if err := c.checkCapacity(replicas); err != nil {
			return nil, "", err
		}
	}
	var body io.Reader
	if body, err = rq.auth.Body(r); err != nil {
		return nil, "", err
	}
	var sum hash.Hash
	if algo != "" {
		sum = s3.NewChecksum(algo)
		body = io.TeeReader(body, sum)
	}
	var w *written
	var writeID string
	if inline {
		w, err = c.writeInline(r.Context(), body, size, enc)
	} else {
		w, writeID, err = c.writeData(r.Context(), rq.bucket, rq.key, body, size, replicas, enc)
	}
	if err != nil {
		return nil, "", err
	}
	if wantMD5 != nil && !bytes.Equal(wantMD5, w.md5) {
		c.abort(writeID)
		return nil, "", s3.ErrorFor(s3.CodeBadDigest, "the Content-MD5 you specified did not match what was received")
	}
	if ck.Algorithm != "" && !ck.Matches(sum.Sum(nil)) {
		c.abort(writeID)
		return nil, "", s3.ErrorFor(s3.CodeBadDigest, "The x-amz-checksum-"+ck.Algorithm+" you specified did not match the calculated checksum.")
	}
	if ck.Algorithm == "" && sum != nil {
		ck = s3.Checksum{Algorithm: algo, Value: base64.StdEncoding.EncodeToString(sum.Sum(nil))}
	}
	w.checksum = ck
	return w, writeID, nil
}

func (c *Coordinator) putObject(rq *request) error {
	ctx := rq.r.Context()
	headers, err := objectHeaders(rq.r.Header)
	if err != nil {
		return err
	}
	tags, err := s3.ParseTaggingHeader(rq.r.Header.Get("X-Amz-Tagging"))
	if err != nil {
		return err
	}
	acl, err := c.objectACL(rq)
	if err != nil {
		return err
	}
	replicas, defaultSSE, prior, err := c.writeState(ctx, rq.bucket, rq.key)
	if err != nil {
		return err
	}
	lock, err := c.requestLock(rq)
	if err != nil {
		return err
	}
	enc, err := c.sseForWrite(ctx, rq.r.Header, defaultSSE)
	if err != nil {
		return err
	}
	w, writeID, err := c.writeBody(rq, replicas, "a single PUT may carry at most 5 GiB; use a multipart upload", enc, true, "")
	if err != nil {
		return err
	}
	obj := &meta.Object{Size: w.size, Modified: time.Now().UTC(), ETag: enc.etag(w.md5), Headers: headers, Chunks: w.chunks, Inline: w.inline, Tags: tags, SSE: enc.record(), Lock: lock, ACL: acl}
	if w.checksum.Algorithm != "" {
		obj.Checksum = w.checksum.Algorithm + ":" + w.checksum.Value
	}
	// PutObject settles a failed commit itself: no abort here (see meta/commit.go).
	if err := c.meta.PutObjectAfter(ctx, rq.bucket, rq.key, obj, writeID, c.o.GCGrace, writeCondition(rq.r.Header), prior); err != nil {
		return err
	}
	if w.checksum.Algorithm != "" {
		rq.w.Header().Set(w.checksum.Header(), w.checksum.Value)
	}
	enc.respond(rq.w.Header())
	setVersionHeader(rq.w.Header(), obj)
	c.setExpiration(rq, rq.key, obj)
	rq.w.Header().Set("ETag", s3.QuoteETag(obj.ETag))
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

// writeCondition is the condition of a conditional write (PutObject, CopyObject,
// CompleteMultipartUpload): If-Match and If-None-Match on the object the key holds, checked in
// the commit's transaction (meta.Condition).
func writeCondition(h http.Header) meta.Condition {
	return meta.Condition{IfMatch: s3.ETagList(h, "If-Match"), IfNoneMatch: s3.ETagList(h, "If-None-Match")}
}

// lazyWriter sends the response header with the first body byte, so that a read failing
// before any byte still gets a proper S3 error instead of a cut stream.
type lazyWriter struct {
	w       http.ResponseWriter
	out     io.Writer // the body's writer: w, or w corked per write (tlscork)
	status  int
	started bool
	n       int64
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.WriteHeader(l.status)
	}
	n, err := l.out.Write(p)
	l.n += int64(n)
	return n, err
}

func (c *Coordinator) getObject(rq *request) error {
	ctx, r := rq.r.Context(), rq.r
	h := rq.w.Header()
	obj, err := c.readVersion(rq)
	if err != nil {
		return err
	}
	if err := rq.recheckObject(obj); err != nil {
		return err
	}
	if err := readRequestSSE(r.Header); err != nil {
		return err
	}
	if st := s3.CheckPreconditions(r.Header, obj.ETag, obj.Modified); st != 0 {
		if st == http.StatusNotModified {
			h.Set("ETag", s3.QuoteETag(obj.ETag))
			h.Set("Last-Modified", obj.Modified.Format(http.TimeFormat))
			rq.w.WriteHeader(st)
			return nil
		}
		return s3.ErrorFor(s3.CodePreconditionFailed, "")
	}
	off, n := int64(0), obj.Size
	status := http.StatusOK
	if pn := rq.query("partNumber"); pn != "" {
		off, n, err = partRange(obj, pn)
		if err != nil {
			return err
		}
		if len(obj.Parts) > 0 {
			h.Set("X-Amz-Mp-Parts-Count", strconv.Itoa(len(obj.Parts)))
		}
		status = http.StatusPartialContent
		h.Set("Content-Range", s3.ContentRange(off, n, obj.Size))
	} else if rh := r.Header.Get("Range"); rh != "" {
		o, l, err := s3.ParseRange(rh, obj.Size)
		switch {
		case errors.Is(err, s3.ErrRangeIgnored):
		case err != nil:
			h.Set("Content-Range", s3.ContentRangeUnsatisfied(obj.Size))
			return err
		default:
			off, n, status = o, l, http.StatusPartialContent
			h.Set("Content-Range", s3.ContentRange(off, n, obj.Size))
		}
	}
	// The key is checked once the request is known to be for bytes that exist (a part number
	// out of range is InvalidPart whatever the key).
	key, cust, err := c.objectKey(ctx, r.Header, obj.SSE, false, r.Method != http.MethodHead)
	if err != nil {
		return err
	}
	respondSSE(h, obj.SSE, cust)
	for k, v := range obj.Headers {
		if strings.HasPrefix(k, s3.MetaHeaderPrefix) {
			h[k] = []string{v} // lower case, as S3 sends it (SDKs keep the name's case)
		} else {
			h.Set(k, v)
		}
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "binary/octet-stream")
	}
	// Presigned URLs may override response headers.
	for _, o := range []string{"Content-Type", "Content-Language", "Expires", "Cache-Control", "Content-Disposition", "Content-Encoding"} {
		if v := rq.query("response-" + strings.ToLower(o)); v != "" {
			h.Set(o, v)
		}
	}
	h.Set("ETag", s3.QuoteETag(obj.ETag))
	h.Set("Last-Modified", obj.Modified.Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	lockHeaders(h, obj.Lock)
	if versionID(rq) == "" { // the current version: a lifecycle rule may expire it
		c.setExpiration(rq, rq.key, obj)
	}
	if len(obj.Tags) > 0 {
		h.Set("X-Amz-Tagging-Count", strconv.Itoa(len(obj.Tags)))
	}
	// The stored checksum describes the whole object: sent when asked for, on a whole read; a
	// part of a multipart object read by partNumber has its own.
	if algo, v, ok := strings.Cut(obj.Checksum, ":"); ok && strings.EqualFold(r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") {
		typ := s3.ChecksumType(v)
		if pn, _ := strconv.Atoi(rq.query("partNumber")); pn > 0 && pn <= len(obj.PartChecksums) {
			v = obj.PartChecksums[pn-1]
		} else if status != http.StatusOK {
			v = ""
		}
		if v != "" {
			h.Set(s3.Checksum{Algorithm: algo, Value: v}.Header(), v)
			h.Set("X-Amz-Checksum-Type", typ)
		}
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if r.Method == http.MethodHead {
		rq.w.WriteHeader(status)
		return nil
	}
	lw := &lazyWriter{w: rq.w, out: tlscork.Writer(rq.w, r), status: status}
	ref := objectRef{rq.bucket, rq.key, versionID(rq)}
	if obj.Version != "" { // the version read, wherever a newer write moves its record meanwhile
		ref.version = obj.VersionID()
	}
	err = c.readObject(ctx, lw, ref, obj, key, off, n)
	c.metrics.bytesOut.Add(float64(lw.n))
	if err == nil {
		if !lw.started {
			rq.w.WriteHeader(status)
		}
		return nil
	}
	var cw *clientWriteError
	if errors.As(err, &cw) || ctx.Err() != nil {
		return nil // the client went away; nothing to tell it
	}
	if errors.Is(err, errInlineCorrupt) {
		return err // 500: the record is damaged; no replica to try
	}
	if !lw.started {
		return fmt.Errorf("%w: %v", errUnavailable, err)
	}
	// Bytes were sent: cut the connection so the client sees a failed read, never a short
	// object that looks complete.
	c.log.Error("object read failed mid-stream", "bucket", rq.bucket, "key", rq.key, "request", rq.id, "err", err)
	panic(http.ErrAbortHandler)
}

// partRange is the byte range of part pn (1-based) of obj; a plain object has one part.
func partRange(obj *meta.Object, pn string) (int64, int64, error) {
	n, err := strconv.Atoi(pn)
	if err != nil || n < 1 || n > meta.MaxPartNumber {
		return 0, 0, s3.ErrorFor(s3.CodeInvalidArgument, "partNumber must be an integer from 1 to 10000")
	}
	if len(obj.Parts) == 0 {
		if n != 1 {
			return 0, 0, s3.ErrorFor(s3.CodeInvalidPart, "the object has one part")
		}
		return 0, obj.Size, nil
	}
	if n > len(obj.Parts) {
		return 0, 0, s3.ErrorFor(s3.CodeInvalidPart, fmt.Sprintf("the object has %d parts", len(obj.Parts)))
	}
	var off int64
	for _, p := range obj.Parts[:n-1] {
		off += p
	}
	return off, obj.Parts[n-1], nil
}

// copySource reads and checks the x-amz-copy-source object of a copy request, and the byte
// range to copy.
func (c *Coordinator) copySource(rq *request) (*meta.Object, int64, int64, error) {
	h := rq.r.Header
	sb, sk, version, err := s3.ParseCopySource(h.Get("X-Amz-Copy-Source"))
	if err != nil {
		return nil, 0, 0, err
	}
	src, err := c.meta.GetObjectVersion(rq.r.Context(), sb, sk, version)
	switch {
	case errors.Is(err, meta.ErrDeleteMarker) || err == nil && src.DeleteMarker:
		// A delete marker is no source (AWS: 400 InvalidRequest).
		return nil, 0, 0, s3.ErrorFor(s3.CodeInvalidRequest, "the source version is a delete marker")
	case err != nil:
		return nil, 0, 0, err
	}
	if src.Version != "" {
		rq.w.Header().Set("X-Amz-Copy-Source-Version-Id", src.VersionID())
	}
	if err := s3.CheckCopySourcePreconditions(h, src.ETag, src.Modified); err != nil {
		return nil, 0, 0, err
	}
	off, n := int64(0), src.Size
	if v := h.Get("X-Amz-Copy-Source-Range"); v != "" {
		if off, n, err = s3.ParseCopySourceRange(v, src.Size); err != nil {
			return nil, 0, 0, err
		}
	}
	if sb == rq.bucket && sk == rq.key && version == "" && rq.op == "CopyObject" && !strings.EqualFold(h.Get("X-Amz-Metadata-Directive"), "REPLACE") && !sseRequested(h) {
		return nil, 0, 0, s3.ErrorFor(s3.CodeInvalidRequest, "this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata")
	}
	if n > maxPutSize {
		return nil, 0, 0, s3.ErrorFor(s3.CodeInvalidRequest, "the source is larger than 5 GiB; copy it with UploadPartCopy")
	}
	return src, off, n, nil
}

// copyData streams bytes [off, off+n) of src (opened with srcKey when encrypted) into a new
// write (sealed by enc when given); with whole (CopyObject, not UploadPartCopy) one small
// enough is kept inline (inline.go), with no write id.
func (c *Coordinator) copyData(ctx context.Context, rq *request, src *meta.Object, srcKey []byte, off, n int64, replicas int, enc *sealer, whole bool) (*written, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(c.readObject(ctx, pw, copySourceRef(rq), src, srcKey, off, n)) }()
	var w *written
	var id string
	var err error
	if whole && c.inlines(n) {
		w, err = c.writeInline(ctx, pr, n, enc)
	} else {
		w, id, err = c.writeData(ctx, rq.bucket, rq.key, pr, n, replicas, enc)
	}
	pr.CloseWithError(errors.New("copy ended"))
	return w, id, err
}

func (c *Coordinator) copyObject(rq *request) error {
	ctx := rq.r.Context()
	acl, err := c.objectACL(rq) // a copy gets the ACL its request asks for, never the source's
	if err != nil {
		return err
	}
	src, off, n, err := c.copySource(rq)
	if err != nil {
		return err
	}
	headers := src.Headers
	if strings.EqualFold(rq.r.Header.Get("X-Amz-Metadata-Directive"), "REPLACE") {
		if headers, err = objectHeaders(rq.r.Header); err != nil {
			return err
		}
	}
	tags := src.Tags
	if strings.EqualFold(rq.r.Header.Get("X-Amz-Tagging-Directive"), "REPLACE") {
		if tags, err = s3.ParseTaggingHeader(rq.r.Header.Get("X-Amz-Tagging")); err != nil {
			return err
		}
	}
	replicas, defaultSSE, prior, err := c.writeState(ctx, rq.bucket, rq.key)
	if err != nil {
		return err
	}
	srcKey, _, err := c.objectKey(ctx, rq.r.Header, src.SSE, true, true)
	if err != nil {
		return err
	}
	enc, err := c.sseForWrite(ctx, rq.r.Header, defaultSSE)
	if err != nil {
		return err
	}
	lock, err := c.requestLock(rq)
	if err != nil {
		return err
	}
	if !c.inlines(n) {
		if err := c.checkCapacity(replicas); err != nil {
			return err
		}
	}
	w, writeID, err := c.copyData(ctx, rq, src, srcKey, off, n, replicas, enc, true)
	if err != nil {
		return err
	}
	obj := &meta.Object{Size: n, Modified: time.Now().UTC(), ETag: enc.etag(w.md5), Headers: headers, Chunks: w.chunks, Inline: w.inline, Tags: tags, SSE: enc.record(), Lock: lock, ACL: acl}
	if _, v, _ := strings.Cut(src.Checksum, ":"); n == src.Size && s3.ChecksumType(v) == "FULL_OBJECT" {
		obj.Checksum = src.Checksum // the same bytes (a multipart source's composite one is not the copy's)
	}
	// PutObject settles a failed commit itself: no abort here (see meta/commit.go).
	if err := c.meta.PutObjectAfter(ctx, rq.bucket, rq.key, obj, writeID, c.o.GCGrace, writeCondition(rq.r.Header), prior); err != nil {
		return err
	}
	enc.respond(rq.w.Header())
	setVersionHeader(rq.w.Header(), obj)
	c.setExpiration(rq, rq.key, obj)
	return s3.WriteXML(rq.w, http.StatusOK, s3.CopyObjectResult{LastModified: s3.Timestamp{Time: obj.Modified}, ETag: s3.QuoteETag(obj.ETag)})
}
