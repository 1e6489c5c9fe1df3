package coordinator

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/security/s3access"
)

// CORS: bucket configurations (Put/Get/DeleteBucketCors), the headers of requests with an
// Origin, and preflight OPTIONS requests, which browsers send unsigned.

func (c *Coordinator) putBucketCORS(rq *request) error {
	body, err := rq.auth.Body(rq.r)
	if err != nil {
		return err
	}
	cfg, err := s3.ParseCORS(body)
	if err != nil {
		return err
	}
	val, _ := json.Marshal(cfg)
	return c.bucketChanged(rq, http.StatusOK, s3access.New(c.o.Etcd).PutCORS(rq.r.Context(), rq.bucket, val))
}

func (c *Coordinator) getBucketCORS(rq *request) error {
	b, _, err := s3access.New(c.o.Etcd).Load(rq.r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if b.CORS == nil {
		return s3.ErrorFor(s3.CodeNoSuchCORSConfiguration, "")
	}
	out := *b.CORS
	out.Xmlns = s3.Namespace
	return s3.WriteXML(rq.w, http.StatusOK, out)
}

func (c *Coordinator) deleteBucketCORS(rq *request) error {
	return c.bucketChanged(rq, http.StatusNoContent, s3access.New(c.o.Etcd).DeleteCORS(rq.r.Context(), rq.bucket))
}

// corsHeaders adds the CORS headers of a request with an Origin to its response, whatever
// the response turns out to be (errors included, as S3 does). The method matched is the
// Access-Control-Request-Method when the request has one, else its own.
func corsHeaders(rq *request, b *s3access.Bucket) {
	origin := rq.r.Header.Get("Origin")
	if origin == "" || b.CORS == nil {
		return
	}
	method := rq.r.Header.Get("Access-Control-Request-Method")
	if method == "" {
		method = rq.r.Method
	}
	if rule := b.CORS.Match(origin, method, nil); rule != nil {
		s3.SetCORSHeaders(rq.w.Header(), rule, origin, false, nil)
	}
}

// preflight answers a CORS preflight (OPTIONS): 200 with the allowing rule's headers, 403
// when no rule of the bucket allows the origin, method and headers asked for, 400 when the
// request is not a preflight.
func (c *Coordinator) preflight(rq *request) error {
	rq.op = "PreflightCORS"
	origin, method := rq.r.Header.Get("Origin"), rq.r.Header.Get("Access-Control-Request-Method")
	if rq.bucket == "" || origin == "" || method == "" {
		return s3.ErrorFor(s3.CodeInvalidRequest, "a CORS preflight needs a bucket, Origin and Access-Control-Request-Method")
	}
	ctx := rq.r.Context()
	if !c.authz.cached(rq.bucket) && !missAllowed(c.keys.limit, ctx) {
		return errSlowDown()
	}
	b, err := c.authz.bucket(ctx, rq.bucket)
	if err != nil {
		return err
	}
	var requested []string
	if v := rq.r.Header.Get("Access-Control-Request-Headers"); v != "" {
		requested = strings.Split(v, ",")
	}
	if !b.Exists || b.CORS == nil {
		return s3.ErrorFor(s3.CodeCORSForbidden, "")
	}
	rule := b.CORS.Match(origin, method, requested)
	if rule == nil {
		return s3.ErrorFor(s3.CodeCORSForbidden, "")
	}
	s3.SetCORSHeaders(rq.w.Header(), rule, origin, true, requested)
	rq.w.WriteHeader(http.StatusOK)
	return nil
}
