package coordinator

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

func (c *Coordinator) upload(rq *request) (*meta.Upload, error) {
	if _, err := c.meta.GetBucket(rq.r.Context(), rq.bucket); err != nil {
		return nil, err
	}
	return c.meta.GetUpload(rq.r.Context(), rq.bucket, rq.key, rq.query("uploadId"))
}

func (c *Coordinator) createUpload(rq *request) error {
	headers, err := objectHeaders(rq.r.Header)
	if err != nil {
		return err
	}
	tags, err := s3.ParseTaggingHeader(rq.r.Header.Get("X-Amz-Tagging"))
	if err != nil {
		return err
	}
	if err := c.uploadLock(rq, headers); err != nil {
		return err
	}
	algo, fullObject, err := s3.UploadChecksumAlgorithm(rq.r.Header)
	if err != nil {
		return err
	}
	acl, err := c.objectACL(rq)
	if err != nil {
		return err
	}
	_, defaultSSE, err := c.writeSettings(rq.r.Context(), rq.bucket) // before a data key is made for it
	if err != nil {
		return err
	}
	enc, err := c.sseForWrite(rq.r.Context(), rq.r.Header, defaultSSE)
	if err != nil {
		return err
	}
	u := &meta.Upload{Bucket: rq.bucket, Key: rq.key, ID: meta.NewUploadID(), Initiated: time.Now().UTC(), Headers: headers, Tags: tags, SSE: enc.record(), ACL: acl, ChecksumAlgorithm: algo, ChecksumFullObject: fullObject}
	if err := c.meta.CreateUpload(rq.r.Context(), u); err != nil {
		return err
	}
	enc.respond(rq.w.Header())
	if algo != "" {
		rq.w.Header().Set("X-Amz-Checksum-Algorithm", strings.ToUpper(algo))
		rq.w.Header().Set("X-Amz-Checksum-Type", uploadChecksumType(u))
	}
	return s3.WriteXML(rq.w, http.StatusOK, s3.InitiateMultipartUploadResult{Bucket: rq.bucket, Key: rq.key, UploadID: u.ID})
}

func (c *Coordinator) uploadPart(rq *request, copy bool) error {
	ctx := rq.r.Context()
	num, err := strconv.Atoi(rq.query("partNumber"))
	if err != nil || num < 1 || num > meta.MaxPartNumber {
		return s3.ErrorFor(s3.CodeInvalidArgument, "partNumber must be an integer from 1 to 10000")
	}
	u, err := c.upload(rq)
	if err != nil {
		return err
	}
	replicas, err := c.replicasFor(ctx, rq.bucket)
	if err != nil {
		return err
	}
	enc, err := c.partSealer(ctx, rq.r.Header, u)
	if err != nil {
		return err
	}
	var w *written
	var writeID string
	if copy {
		if u.ChecksumAlgorithm != "" {
			return s3.ErrorFor(s3.CodeNotImplemented, "UploadPartCopy into an upload with an additional checksum is not implemented by hanode")
		}
		src, off, n, err := c.copySource(rq)
		if err != nil {
			return err
		}
		srcKey, _, err := c.objectKey(ctx, rq.r.Header, src.SSE, true, true)
		if err != nil {
			return err
		}
		if err := c.checkCapacity(replicas); err != nil {
			return err
		}
		if w, writeID, err = c.copyData(ctx, rq, src, srcKey, off, n, replicas, enc, false); err != nil {
			return err
		}
	} else if w, writeID, err = c.writeBody(rq, replicas, "a part may be at most 5 GiB", enc, false, u.ChecksumAlgorithm); err != nil {
		return err
	}
	p := &meta.Part{Number: num, Size: w.size, ETag: enc.etag(w.md5), Modified: time.Now().UTC(), Chunks: w.chunks}
	if u.ChecksumAlgorithm != "" {
		p.Checksum = w.checksum.Value // computed by writeBody whether or not the request sent it
	}
	// PutPart settles a failed commit itself: no abort here (see meta/commit.go).
	if err := c.meta.PutPart(ctx, u, p, writeID, c.o.GCGrace); err != nil {
		return err
	}
	enc.respond(rq.w.Header())
	if copy {
		return s3.WriteXML(rq.w, http.StatusOK, s3.CopyPartResult{LastModified: s3.Timestamp{Time: p.Modified}, ETag: s3.QuoteETag(p.ETag)})
	}
	if w.checksum.Algorithm != "" {
		rq.w.Header().Set(w.checksum.Header(), w.checksum.Value)
	}
	rq.w.Header().Set("ETag", s3.QuoteETag(p.ETag))
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (c *Coordinator) completeUpload(rq *request) error {
	ctx := rq.r.Context()
	u, err := c.upload(rq)
	if errors.Is(err, meta.ErrNoSuchUpload) {
		return c.completedUpload(rq, err)
	}
	if err != nil {
		return err
	}
	// Completing an SSE-C upload takes its key, as every part did (Ceph and the s3-tests
	// suite require it; only the key's holder makes the object).
	cust, err := uploadCustomerKey(rq.r.Header, u)
	if err != nil {
		return err
	}
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	var req s3.CompleteMultipartUpload
	if err := s3.DecodeXML(body, s3.MaxXMLBodySize, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	parts, rev, err := c.meta.AllParts(ctx, u.ID)
	if err != nil {
		return err
	}
	byNum := make(map[int]*meta.Part, len(parts))
	for _, p := range parts {
		byNum[p.Number] = p
	}
	obj := &meta.Object{Modified: time.Now().UTC(), Headers: u.Headers, Tags: u.Tags, SSE: u.SSE, ACL: u.ACL}
	obj.Lock, obj.Headers = completedLock(u.Headers)
	md5s := make([][]byte, 0, len(req.Parts))
	used := make(map[int]bool, len(req.Parts))
	for i, cp := range req.Parts {
		p := byNum[cp.PartNumber]
		if p == nil || !s3.ETagsEqual(cp.ETag, p.ETag) {
			return s3.ErrorFor(s3.CodeInvalidPart, fmt.Sprintf("part %d was not uploaded or its ETag does not match", cp.PartNumber))
		}
		if u.ChecksumAlgorithm != "" {
			if v := *cp.Field(u.ChecksumAlgorithm); v != "" && v != p.Checksum {
				return s3.ErrorFor(s3.CodeInvalidPart, fmt.Sprintf("part %d's checksum does not match", cp.PartNumber))
			}
			obj.PartChecksums = append(obj.PartChecksums, p.Checksum)
		}
		if i < len(req.Parts)-1 && p.Size < minPartSize {
			return s3.ErrorFor(s3.CodeEntityTooSmall, fmt.Sprintf("part %d is %d bytes; every part but the last must be at least 5 MiB", cp.PartNumber, p.Size))
		}
		sum, err := hex.DecodeString(p.ETag)
		if err != nil {
			return fmt.Errorf("part %d of %s: stored ETag %q: %w", p.Number, u.ID, p.ETag, err)
		}
		md5s = append(md5s, sum)
		used[p.Number] = true
		obj.Size += p.Size
		obj.Parts = append(obj.Parts, p.Size)
		obj.Chunks = append(obj.Chunks, p.Chunks...)
	}
	var unused []meta.Chunk
	for _, p := range parts {
		if !used[p.Number] {
			unused = append(unused, p.Chunks...)
		}
	}
	obj.ETag = s3.UnquoteETag(s3.MultipartETag(md5s))
	if err := completedChecksum(rq.r.Header, u, obj); err != nil {
		return err
	}
	if err := c.meta.CompleteUploadIf(ctx, u, obj, unused, rev, c.o.GCGrace, writeCondition(rq.r.Header)); err != nil {
		return err
	}
	respondSSE(rq.w.Header(), obj.SSE, cust)
	setVersionHeader(rq.w.Header(), obj)
	c.setExpiration(rq, rq.key, obj)
	return s3.WriteXML(rq.w, http.StatusOK, completeResult(rq, obj))
}

// uploadChecksumType is the checksum type of u's object.
func uploadChecksumType(u *meta.Upload) string {
	if u.ChecksumFullObject {
		return "FULL_OBJECT"
	}
	return "COMPOSITE"
}

// completedChecksum gives a completed upload's object its checksum, when the upload has an
// algorithm: the composite checksum of its parts or the CRC of the whole object, computed from
// the parts'; and checks the one the request names, if any.
func completedChecksum(h http.Header, u *meta.Upload, obj *meta.Object) error {
	if u.ChecksumAlgorithm == "" {
		return nil
	}
	if slices.Contains(obj.PartChecksums, "") { // a part stored before checksums of parts were kept
		return s3.ErrorFor(s3.CodeInvalidPart, "a part of the upload has no "+u.ChecksumAlgorithm+" checksum; upload it again")
	}
	sum, err := s3.CompositeChecksum(u.ChecksumAlgorithm, obj.PartChecksums)
	if u.ChecksumFullObject {
		sum, err = s3.FullObjectChecksum(u.ChecksumAlgorithm, obj.PartChecksums, obj.Parts)
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", u.ID, err)
	}
	name := "X-Amz-Checksum-" + u.ChecksumAlgorithm
	if v := strings.TrimSpace(h.Get(name)); v != "" && v != sum {
		return s3.ErrorFor(s3.CodeBadDigest, "The "+strings.ToLower(name)+" you specified did not match the calculated checksum.")
	}
	obj.Checksum = u.ChecksumAlgorithm + ":" + sum
	return nil
}

// completeResult is CompleteMultipartUpload's answer for the object it made.
func completeResult(rq *request, obj *meta.Object) s3.CompleteMultipartUploadResult {
	out := s3.CompleteMultipartUploadResult{Location: "/" + rq.bucket + "/" + rq.key, Bucket: rq.bucket, Key: rq.key, ETag: s3.QuoteETag(obj.ETag)}
	if algo, v, ok := strings.Cut(obj.Checksum, ":"); ok && len(obj.PartChecksums) > 0 {
		if f := out.Field(algo); f != nil {
			*f, out.ChecksumType = v, s3.ChecksumType(v)
		}
	}
	return out
}

// completedUpload answers a completion of an upload that is gone: when the key's object was
// made by that upload, the completion already succeeded (an SDK retrying a completion whose
// answer it lost) and S3 answers it again with the object; otherwise the upload is unknown.
func (c *Coordinator) completedUpload(rq *request, noUpload error) error {
	obj, err := c.meta.GetObject(rq.r.Context(), rq.bucket, rq.key)
	if errors.Is(err, meta.ErrNoSuchKey) {
		return noUpload
	}
	if err != nil {
		return err
	}
	if obj.Upload != rq.query("uploadId") {
		return noUpload
	}
	return s3.WriteXML(rq.w, http.StatusOK, completeResult(rq, obj))
}

func (c *Coordinator) abortUpload(rq *request) error {
	u, err := c.upload(rq)
	if err != nil {
		return err
	}
	switch err := c.meta.AbortUpload(rq.r.Context(), u); {
	case errors.Is(err, meta.ErrPartsPending):
		c.log.Warn("aborted upload's parts not all deleted; the active master finishes", "upload", u.ID, "err", err)
	case err != nil:
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Coordinator) listParts(rq *request) error {
	u, err := c.upload(rq)
	if err != nil {
		return err
	}
	marker, maxParts := 0, 1000
	if v := rq.query("part-number-marker"); v != "" {
		if marker, err = strconv.Atoi(v); err != nil || marker < 0 {
			return s3.ErrorFor(s3.CodeInvalidArgument, "part-number-marker must be a non-negative integer")
		}
	}
	if v := rq.query("max-parts"); v != "" {
		if maxParts, err = strconv.Atoi(v); err != nil || maxParts < 0 {
			return s3.ErrorFor(s3.CodeInvalidArgument, "max-parts must be a non-negative integer")
		}
		maxParts = min(maxParts, 1000)
	}
	parts, more, err := c.meta.ListParts(rq.r.Context(), u.ID, marker, maxParts)
	if err != nil {
		return err
	}
	owner := &s3.Owner{ID: rq.auth.AccessKey, DisplayName: rq.auth.AccessKey}
	if rq.access != nil { // the owner the object will have (its ACL's, chosen at creation)
		id := rq.access.ObjectOwner(u.ACL)
		owner = &s3.Owner{ID: id, DisplayName: id}
	}
	res := s3.ListPartsResult{Bucket: rq.bucket, Key: rq.key, UploadID: u.ID, Initiator: owner, Owner: owner, StorageClass: "STANDARD",
		PartNumberMarker: marker, MaxParts: maxParts, IsTruncated: more}
	if u.ChecksumAlgorithm != "" {
		res.ChecksumAlgorithm, res.ChecksumType = strings.ToUpper(u.ChecksumAlgorithm), uploadChecksumType(u)
	}
	for _, p := range parts {
		lp := s3.Part{PartNumber: p.Number, LastModified: s3.Timestamp{Time: p.Modified}, ETag: s3.QuoteETag(p.ETag), Size: p.Size}
		if f := lp.Field(u.ChecksumAlgorithm); f != nil {
			*f = p.Checksum
		}
		res.Parts = append(res.Parts, lp)
		res.NextPartNumberMarker = p.Number
	}
	return s3.WriteXML(rq.w, http.StatusOK, res)
}

func (c *Coordinator) listUploads(rq *request) error {
	q := rq.r.URL.Query()
	maxUploads := 1000
	if v := q.Get("max-uploads"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3.ErrorFor(s3.CodeInvalidArgument, "max-uploads must be a non-negative integer")
		}
		maxUploads = min(n, 1000)
	}
	ups, more, err := c.meta.ListUploads(rq.r.Context(), rq.bucket, q.Get("prefix"), q.Get("key-marker"), q.Get("upload-id-marker"), maxUploads)
	if err != nil {
		return err
	}
	owner := &s3.Owner{ID: rq.auth.AccessKey, DisplayName: rq.auth.AccessKey}
	res := s3.ListMultipartUploadsResult{Bucket: rq.bucket, KeyMarker: q.Get("key-marker"), UploadIDMarker: q.Get("upload-id-marker"),
		Prefix: q.Get("prefix"), MaxUploads: maxUploads, IsTruncated: more}
	for _, u := range ups {
		res.Uploads = append(res.Uploads, s3.Upload{Key: u.Key, UploadID: u.ID, Initiator: owner, Owner: owner, StorageClass: "STANDARD", Initiated: s3.Timestamp{Time: u.Initiated}})
		res.NextKeyMarker, res.NextUploadIDMarker = u.Key, u.ID
	}
	return s3.WriteXML(rq.w, http.StatusOK, res)
}
