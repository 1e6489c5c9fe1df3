package coordinator

import (
	"net/http"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

// objectTagging serves GetObjectTagging, PutObjectTagging and DeleteObjectTagging. Tags live in
// the object's record; changing them rewrites the record only (meta.Store.SetTags).
func (c *Coordinator) objectTagging(rq *request) error {
	ctx := rq.r.Context()
	version := versionID(rq)
	if version != "" {
		rq.w.Header().Set("X-Amz-Version-Id", version)
	}
	setTags := func(tags map[string]string) error {
		return c.meta.UpdateVersion(ctx, rq.bucket, rq.key, version, func(o *meta.Object) error { o.Tags = tags; return nil })
	}
	switch rq.r.Method {
	case http.MethodGet:
		obj, err := c.namedVersion(rq)
		if err != nil {
			return err
		}
		if err := rq.recheckObject(obj); err != nil {
			return err
		}
		return s3.WriteXML(rq.w, http.StatusOK, s3.NewTaggingResult(obj.Tags))
	case http.MethodPut:
		body, err := rq.auth.Body(rq.r)
		if err != nil {
			return err
		}
		var t s3.Tagging
		if err := s3.DecodeXML(body, 64<<10, &t); err != nil {
			return err
		}
		tags, err := t.Tags()
		if err != nil {
			return err
		}
		if err := setTags(tags); err != nil {
			return err
		}
		rq.w.WriteHeader(http.StatusOK)
		return nil
	default:
		if err := setTags(nil); err != nil {
			return err
		}
		rq.w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
