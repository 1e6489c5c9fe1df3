package coordinator

import (
	"net/http"
	"strings"

	"github.com/hanode/hanode/s3"
)

// Buckets are not versioned yet: every object has exactly one version, the "null" version AWS
// gives objects written while a bucket's versioning was never enabled. ListObjectVersions,
// versionId=null reads and deletes and DeleteObjects naming version "null" answer as AWS does
// for such a bucket, so version-aware clients (cleanup scripts, backup tools) work; any other
// version id does not exist.

// versionID checks a request's versionId parameter: absent or "null" name the object itself;
// any other id names a version that does not exist.
func versionID(rq *request) (string, error) {
	vs, ok := rq.r.URL.Query()["versionId"]
	if !ok {
		return "", nil
	}
	if len(vs) != 1 || vs[0] != s3.NullVersion {
		return "", s3.ErrorFor(s3.CodeNoSuchVersion, "")
	}
	return s3.NullVersion, nil
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
	case versionMarker != "" && versionMarker != s3.NullVersion:
		return s3.ErrorFor(s3.CodeInvalidArgument, "Invalid version id specified")
	}
	// Each key has one version, so the page after (key, any version) starts after the key; a
	// key marker that is one of this listing's common prefixes skips everything under it.
	afterIsPrefix := false
	if rest, ok := strings.CutPrefix(keyMarker, prefix); ok && delim != "" {
		i := strings.Index(rest, delim)
		afterIsPrefix = i >= 0 && i+len(delim) == len(rest)
	}
	res, err := c.meta.ListObjects(rq.r.Context(), rq.bucket, prefix, delim, keyMarker, afterIsPrefix, maxKeys)
	if err != nil {
		return err
	}
	out := s3.ListVersionsResult{Name: rq.bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIDMarker: versionMarker,
		MaxKeys: maxKeys, Delimiter: delim, EncodingType: enc, IsTruncated: res.Truncated}
	owner := &s3.Owner{ID: rq.auth.AccessKey, DisplayName: rq.auth.AccessKey}
	for _, e := range res.Objects {
		out.Versions = append(out.Versions, s3.ObjectVersion{Key: e.Key, VersionID: s3.NullVersion, IsLatest: true,
			LastModified: s3.Timestamp{Time: e.Object.Modified}, ETag: s3.QuoteETag(e.Object.ETag), Size: e.Object.Size,
			Owner: owner, StorageClass: "STANDARD"})
	}
	for _, p := range res.Prefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, s3.CommonPrefix{Prefix: p})
	}
	if res.Truncated {
		out.NextKeyMarker = res.Next
		if !res.NextIsPrefix {
			out.NextVersionIDMarker = s3.NullVersion
		}
	}
	out.URLEncodeKeys()
	return s3.WriteXML(rq.w, http.StatusOK, out)
}
