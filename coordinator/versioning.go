package coordinator

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/security/s3access"
)

// Bucket versioning (meta/versions.go holds the layout): PutBucketVersioning and
// GetBucketVersioning, version ids on reads, writes and deletes, delete markers and
// ListObjectVersions. A bucket whose versioning was never enabled answers as AWS does for one:
// every object is its null version.

// versionID is a request's versionId parameter, "" when absent; meta checks its form.
func versionID(rq *request) string { return rq.query("versionId") }

// versioningError maps the errors of versioned operations to S3 errors (nil: not one).
func versioningError(err error) *s3.Error {
	switch {
	case errors.Is(err, meta.ErrNoSuchVersion), errors.Is(err, meta.ErrInvalidVersion):
		// An id hanode cannot have made names no version here either.
		return s3.ErrorFor(s3.CodeNoSuchVersion, "")
	case errors.Is(err, meta.ErrDeleteMarker):
		return s3.ErrorFor(s3.CodeMethodNotAllowed, "")
	case errors.Is(err, meta.ErrLocked):
		return s3.ErrorFor(s3.CodeAccessDenied, "the object version is protected by object lock")
	}
	return nil
}

// setVersionHeader names the version a write made, when it made one: a write while
// versioning is suspended makes the null version, which S3 does not name.
// namedVersion reads the version a request on an object's subresource names (versionId, else
// the current one); a delete marker has none of them: 405 MethodNotAllowed, as S3 answers.
func (c *Coordinator) namedVersion(rq *request) (*meta.Object, error) {
	obj, err := c.meta.GetObjectVersion(rq.r.Context(), rq.bucket, rq.key, versionID(rq))
	if err != nil {
		return nil, err
	}
	if obj.DeleteMarker {
		return nil, s3.ErrorFor(s3.CodeMethodNotAllowed, "")
	}
	return obj, nil
}

func setVersionHeader(h http.Header, o *meta.Object) {
	if o.Version != "" && o.VersionID() != meta.NullVersion {
		h.Set("X-Amz-Version-Id", o.VersionID())
	}
}

func (c *Coordinator) putBucketVersioning(rq *request) error {
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	var v s3.VersioningConfiguration
	if err := s3.DecodeXML(body, 64<<10, &v); err != nil {
		return err
	}
	if v.Status != meta.VersioningEnabled && v.Status != meta.VersioningSuspended {
		return s3.ErrorFor(s3.CodeMalformedXML, "")
	}
	if v.MFADelete == "Enabled" {
		return s3.ErrorFor(s3.CodeNotImplemented, "MFA delete is not implemented by hanode")
	}
	err = c.meta.UpdateBucketConfig(rq.r.Context(), rq.bucket, func(cfg *meta.BucketConfig) error {
		if cfg.ObjectLock && v.Status != meta.VersioningEnabled {
			return s3.ErrorFor(s3.CodeInvalidBucketState, "versioning cannot be suspended on a bucket with object lock")
		}
		cfg.Versioning = v.Status
		return nil
	})
	if err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (c *Coordinator) getBucketVersioning(rq *request) error {
	cfg, err := c.meta.GetBucketConfig(rq.r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	return s3.WriteXML(rq.w, http.StatusOK, s3.VersioningConfiguration{Xmlns: s3.Namespace, Status: cfg.Versioning})
}

func (c *Coordinator) listVersions(rq *request) error {
	q := rq.r.URL.Query()
	enc, maxKeys, err := listingParams(q)
	if err != nil {
		return err
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	keyMarker, versionMarker := q.Get("key-marker"), q.Get("version-id-marker")
	switch {
	case versionMarker != "" && keyMarker == "":
		return s3.ErrorFor(s3.CodeInvalidArgument, "A version-id marker cannot be specified without a key marker.")
	case versionMarker != "" && !meta.ValidVersionID(versionMarker):
		return s3.ErrorFor(s3.CodeInvalidArgument, "Invalid version id specified")
	}
	// A key marker that is one of this listing's common prefixes skips everything under it.
	markerIsPrefix := false
	if rest, ok := strings.CutPrefix(keyMarker, prefix); ok && delim != "" && versionMarker == "" {
		i := strings.Index(rest, delim)
		markerIsPrefix = i >= 0 && i+len(delim) == len(rest)
	}
	res, err := c.meta.ListVersions(rq.r.Context(), rq.bucket, prefix, delim, keyMarker, versionMarker, markerIsPrefix, maxKeys)
	if err != nil {
		return err
	}
	out := s3.ListVersionsResult{Name: rq.bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIDMarker: versionMarker,
		MaxKeys: maxKeys, Delimiter: delim, EncodingType: enc, IsTruncated: res.Truncated}
	owner := rq.bucketOwner()
	for _, e := range res.Versions {
		if e.Object.DeleteMarker {
			out.Versions = append(out.Versions, s3.NewDeleteMarker(e.Key, e.Object.VersionID(), e.Latest, e.Object.Modified, owner))
			continue
		}
		out.Versions = append(out.Versions, s3.ObjectVersion{Key: e.Key, VersionID: e.Object.VersionID(), IsLatest: e.Latest,
			LastModified: s3.Timestamp{Time: e.Object.Modified}, ETag: s3.QuoteETag(e.Object.ETag), Size: &e.Object.Size,
			Owner: owner, StorageClass: "STANDARD"})
	}
	for _, p := range res.Prefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, s3.CommonPrefix{Prefix: p})
	}
	if res.Truncated {
		out.NextKeyMarker, out.NextVersionIDMarker = res.NextKey, res.NextVersion
	}
	out.URLEncodeKeys()
	return s3.WriteXML(rq.w, http.StatusOK, out)
}

// bypassGovernance reports whether a request asks to bypass GOVERNANCE retention and may: the
// header, from a user who controls the bucket (AWS's s3:BypassGovernanceRetention).
func (rq *request) bypassGovernance() bool {
	if !strings.EqualFold(rq.r.Header.Get("X-Amz-Bypass-Governance-Retention"), "true") || rq.auth == nil {
		return false
	}
	return rq.root || rq.access != nil && rq.access.Allows(rq.auth.AccessKey, rq.root, s3access.Owner)
}

func (c *Coordinator) deleteObject(rq *request) error {
	cond := meta.Condition{IfMatch: s3.ETagList(rq.r.Header, "If-Match")}
	res, err := c.meta.DeleteVersion(rq.r.Context(), rq.bucket, rq.key, meta.DeleteOptions{Version: versionID(rq), Cond: cond,
		BypassGovernance: rq.bypassGovernance(), Grace: c.o.GCGrace})
	if err != nil {
		return err
	}
	h := rq.w.Header()
	if res.VersionID != "" {
		h.Set("X-Amz-Version-Id", res.VersionID)
	}
	if res.DeleteMarker {
		h.Set("X-Amz-Delete-Marker", "true")
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Coordinator) deleteObjects(rq *request) error {
	ctx := rq.r.Context()
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	var del s3.Delete
	if err := s3.DecodeXML(body, s3.MaxXMLBodySize, &del); err != nil {
		return err
	}
	if err := del.Validate(); err != nil {
		return err
	}
	if _, err := c.meta.GetBucket(ctx, rq.bucket); err != nil {
		return err
	}
	bypass := rq.bypassGovernance()
	var res s3.DeleteResult
	for _, o := range del.Objects {
		err := s3.ValidObjectKey(o.Key)
		if err == nil && (o.LastModifiedTime != "" || o.Size != "") {
			err = s3.ErrorFor(s3.CodeNotImplemented, "conditional deletes on LastModifiedTime or Size are not implemented by hanode")
		}
		if err == nil { // a policy may deny some keys: each is decided on its own
			err = c.authorizeKey(rq, o.Key)
		}
		var r meta.DeleteResult
		if err == nil {
			var cond meta.Condition
			if o.ETag != "" {
				cond.IfMatch = []string{s3.UnquoteETag(o.ETag)}
			}
			r, err = c.meta.DeleteVersion(ctx, rq.bucket, o.Key, meta.DeleteOptions{Version: o.VersionID, Cond: cond, BypassGovernance: bypass, Grace: c.o.GCGrace})
		}
		if err != nil {
			e := toS3(err)
			res.Errors = append(res.Errors, s3.DeleteError{Key: o.Key, VersionID: o.VersionID, Code: e.Code, Message: e.Message})
			continue
		}
		if del.Quiet {
			continue
		}
		d := s3.Deleted{Key: o.Key, VersionID: o.VersionID, DeleteMarker: r.DeleteMarker}
		if r.DeleteMarker && o.VersionID == "" {
			d.DeleteMarkerVersionID = r.VersionID
		}
		res.Deleted = append(res.Deleted, d)
	}
	return s3.WriteXML(rq.w, http.StatusOK, res)
}

// readVersion reads the version a GET or HEAD asks for and names it in the response. A delete
// marker answers 405 when asked for by id and 404 when it is the latest version, both with
// x-amz-delete-marker, as S3 does.
func (c *Coordinator) readVersion(rq *request) (*meta.Object, error) {
	ctx, h, id := rq.r.Context(), rq.w.Header(), versionID(rq)
	obj, err := c.meta.GetObjectVersion(ctx, rq.bucket, rq.key, id)
	if errors.Is(err, meta.ErrNoSuchKey) && id == "" {
		if dm, vid, derr := c.meta.LatestIsDeleteMarker(ctx, rq.bucket, rq.key); derr == nil {
			h.Set("X-Amz-Delete-Marker", strconv.FormatBool(dm))
			if dm {
				h.Set("X-Amz-Version-Id", vid)
			}
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if obj.DeleteMarker {
		h.Set("X-Amz-Delete-Marker", "true")
		h.Set("X-Amz-Version-Id", obj.VersionID())
		return nil, s3.ErrorFor(s3.CodeMethodNotAllowed, "")
	}
	if obj.Version != "" || id != "" {
		h.Set("X-Amz-Version-Id", obj.VersionID())
	}
	return obj, nil
}
