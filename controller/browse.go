package controller

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/meta"
)

// maxBrowsePage bounds one page of GET /v1/buckets/{bucket}/objects.
const maxBrowsePage = 1000

func (c *Role) handleBuckets(w http.ResponseWriter, r *http.Request) {
	list, err := meta.New(c.cli).ListBuckets(r.Context())
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	out := adminapi.Buckets{Buckets: make([]adminapi.BucketInfo, 0, len(list))}
	for _, b := range list {
		out.Buckets = append(out.Buckets, adminapi.BucketInfo{Name: b.Name, Created: b.Created, Replicas: b.Replicas})
	}
	service.WriteJSON(w, http.StatusOK, out)
}

// handleObjects lists one page of a bucket, delimited by "/": ?prefix=, ?after= (and
// after_prefix=true when after is a common prefix), ?limit= (1 to 1000, default 100).
func (c *Role) handleObjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bucket, prefix, after := r.PathValue("bucket"), q.Get("prefix"), q.Get("after")
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxBrowsePage {
			service.WriteError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want 1 to %d", s, maxBrowsePage))
			return
		}
		limit = n
	}
	res, err := meta.New(c.cli).ListObjects(r.Context(), bucket, prefix, "/", after, q.Get("after_prefix") == "true", limit)
	switch {
	case errors.Is(err, meta.ErrNoSuchBucket):
		service.WriteError(w, http.StatusNotFound, err)
		return
	case err != nil:
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	out := adminapi.Objects{Bucket: bucket, Prefix: prefix, Prefixes: res.Prefixes, Objects: make([]adminapi.ObjectInfo, 0, len(res.Objects)), Truncated: res.Truncated}
	if out.Prefixes == nil {
		out.Prefixes = []string{}
	}
	if res.Truncated {
		out.Next, out.NextIsPrefix = res.Next, res.NextIsPrefix
	}
	for _, e := range res.Objects {
		out.Objects = append(out.Objects, adminapi.ObjectInfo{Key: e.Key, Size: e.Object.Size, Modified: e.Object.Modified, ETag: e.Object.ETag, Chunks: len(e.Object.Chunks), Inline: e.Object.Inline != nil})
	}
	service.WriteJSON(w, http.StatusOK, out)
}
