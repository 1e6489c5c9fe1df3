package coordinator

import (
	"net/http"

	"github.com/hanode/hanode/s3"
)

// objectTagging serves GetObjectTagging, PutObjectTagging and DeleteObjectTagging. Tags live in
// the object's record; changing them rewrites the record only (meta.Store.SetTags).
func (c *Coordinator) objectTagging(rq *request) error {
	ctx := rq.r.Context()
	version, err := versionID(rq)
	if err != nil {
		return err
	}
	if version != "" {
		rq.w.Header().Set("X-Amz-Version-Id", version)
	}
	switch rq.r.Method {
	case http.MethodGet:
		obj, err := c.meta.GetObject(ctx, rq.bucket, rq.key)
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
		if err := c.meta.SetTags(ctx, rq.bucket, rq.key, tags); err != nil {
			return err
		}
		rq.w.WriteHeader(http.StatusOK)
		return nil
	default:
		if err := c.meta.SetTags(ctx, rq.bucket, rq.key, nil); err != nil {
			return err
		}
		rq.w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
