package datanode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/hanode/hanode/internal/httprange"
	"github.com/hanode/hanode/internal/progress"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/internal/tlscork"
)

// HeaderSHA256 carries a chunk's hex SHA-256 on PUT (optional, checked) and
// on GET/HEAD responses.
const HeaderSHA256 = "X-Hanode-SHA256"

const (
	defaultListLimit = 1000
	maxListLimit     = 10000
	// A hung caller (a stopped coordinator) must not hold a stream for ever: a PUT body must
	// deliver putMinBytes within every putWindow, and each block of a GET must be taken
	// within getBlockTimeout (generous: a coordinator reads at its S3 client's pace).
	putWindow       = time.Minute
	putMinBytes     = 64 << 10
	getBlockTimeout = 5 * time.Minute
)

// ListResponse is the body of GET /v1/chunks. Next is the id to pass as
// after= for the following page, empty on the last page.
type ListResponse struct {
	Chunks []Info `json:"chunks"`
	Next   string `json:"next"`
}

// Handler serves the internal chunk API. TLS and caller authorisation are the
// caller's job.
//
//	PUT    /v1/chunks/{id}          Content-Length required (411), X-Hanode-SHA256 optional
//	                                → 201 new / 200 identical existed, JSON Info;
//	                                  400 bad id, checksum or short body; 409 exists;
//	                                  413 too large; 507 no space
//	GET    /v1/chunks/{id}          Range: bytes=a-b | a- | -n (single range) → 200/206;
//	                                  400 malformed or multi-range, 416 unsatisfiable
//	HEAD   /v1/chunks/{id}          headers only
//	DELETE /v1/chunks/{id}          204 / 404
//	GET    /v1/chunks?after=&limit= JSON ListResponse (limit default 1000, max 10000)
//	GET    /v1/usage                JSON Usage
//
// Errors are JSON {"error": "..."}. A corrupt block found before the
// response headers are sent gives 500; after, the response is aborted
// (http.ErrAbortHandler) so the client sees a failed read, never wrong bytes.
func Handler(s *Store) http.Handler { return NewHandler(s, nil) }

// NewHandler is Handler with a repair side (nil: none), which adds
//
//	POST   /v1/chunks/{id}/pull     JSON PullRequest: copy the chunk from a peer, keep it once
//	                                its SHA-256 matches → 201 / 200 (was there), JSON
//	                                PullResponse; 503 busy (ErrBusy); 502 the source failed
//	POST   /v1/have                 JSON [ids] → {"store", "have": [ids held]}
//
// and sends GETs marked with HeaderRepair under the repair rate.
func NewHandler(s *Store, rp *Repair) http.Handler {
	h := &handler{s: s, repair: rp}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chunks/{id}/pull", h.pull)
	mux.HandleFunc("POST /v1/have", h.have)
	mux.HandleFunc("PUT /v1/chunks/{id}", h.put)
	mux.HandleFunc("GET /v1/chunks/{id}", h.get) // also HEAD
	mux.HandleFunc("DELETE /v1/chunks/{id}", h.delete)
	mux.HandleFunc("GET /v1/chunks", h.list)
	mux.HandleFunc("GET /v1/usage", h.usage)
	return mux
}

type handler struct {
	s      *Store
	repair *Repair
}

// statusOf maps a Store error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadID), errors.Is(err, ErrChecksum), errors.Is(err, ErrSizeMismatch):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists):
		return http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, ErrBadRange), errors.Is(err, httprange.ErrUnsatisfiable):
		return http.StatusRequestedRangeNotSatisfiable
	case errors.Is(err, httprange.ErrSyntax):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	case errors.Is(err, progress.ErrTooSlow):
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

func writeErr(w http.ResponseWriter, status int, err error) {
	h := w.Header()
	h.Del("Content-Length")
	h.Del(HeaderSHA256)
	if status != http.StatusRequestedRangeNotSatisfiable {
		h.Del("Content-Range")
	}
	service.WriteJSON(w, status, map[string]string{"error": err.Error()})
}

func (h *handler) put(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if r.ContentLength < 0 {
		writeErr(w, http.StatusLengthRequired, fmt.Errorf("datanode: put chunk %q: Content-Length required", id))
		return
	}
	want := strings.ToLower(strings.TrimSpace(r.Header.Get(HeaderSHA256)))
	body := progress.Guard(w, r, putWindow, putMinBytes)
	defer body.Stop()
	info, existed, err := h.s.put(r.Context(), id, r.Body, r.ContentLength, want)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	service.WriteJSON(w, status, info)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rangeHdr := r.Header.Get("Range")
	partial := false
	resolve := func(size int64) (int64, int64, error) {
		if rangeHdr == "" {
			return 0, size, nil
		}
		off, n, err := httprange.Parse(rangeHdr, size)
		if err != nil {
			if errors.Is(err, httprange.ErrUnsatisfiable) {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			}
			return 0, 0, fmt.Errorf("datanode: chunk %q: %w", id, err)
		}
		partial = true
		return off, n, nil
	}
	setHeaders := func(info Info, off, n int64) {
		hd := w.Header()
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Accept-Ranges", "bytes")
		hd.Set(HeaderSHA256, info.SHA256)
		hd.Set("ETag", `"`+info.SHA256+`"`)
		hd.Set("Content-Length", strconv.FormatInt(n, 10))
		if partial {
			hd.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, info.Size))
		}
	}
	status := func() int {
		if partial {
			return http.StatusPartialContent
		}
		return http.StatusOK
	}

	if r.Method == http.MethodHead {
		info, err := h.s.Stat(id)
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		off, n, err := resolve(info.Size)
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		setHeaders(info, off, n)
		w.WriteHeader(status())
		return
	}

	rc, info, off, n, err := h.s.get(r.Context(), id, resolve)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	defer rc.Close()
	bp := h.s.getBuf()
	defer h.s.putBuf(bp)
	buf := *bp
	// Read (and so verify) the first block before committing to a status.
	k, err := io.ReadFull(rc, buf[:min(int64(len(buf)), n)])
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	setHeaders(info, off, n)
	w.WriteHeader(status())
	ctl := http.NewResponseController(w)
	defer ctl.SetWriteDeadline(time.Time{}) // the connection's next response must not inherit it
	out := tlscork.Writer(w, r)             // each verified block's records in one system call
	var lim *rate.Limiter
	if h.repair != nil && r.Header.Get(HeaderRepair) != "" {
		lim = h.repair.send
	}
	write := func(p []byte) error {
		if lim != nil {
			for q := p; len(q) > 0; q = q[min(len(q), repairPiece):] {
				if err := lim.WaitN(r.Context(), min(len(q), repairPiece)); err != nil {
					return err
				}
			}
		}
		_ = ctl.SetWriteDeadline(time.Now().Add(getBlockTimeout))
		_, err := out.Write(p)
		return err
	}
	if err := write(buf[:k]); err != nil {
		return // client gone
	}
	for {
		k, err := rc.Read(buf)
		if k > 0 {
			if werr := write(buf[:k]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			// Headers are out: abort the connection so the client sees a
			// truncated body rather than a clean end.
			panic(http.ErrAbortHandler)
		}
	}
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.s.Delete(r.PathValue("id")); err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := q.Get("after")
	if after != "" && !ValidID(after) {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("datanode: list after %q: %w", after, ErrBadID))
		return
	}
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("datanode: list: limit %q not in 1..%d", v, maxListLimit))
			return
		}
		limit = n
	}
	infos, err := h.s.List(r.Context(), after, limit+1)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	resp := ListResponse{Chunks: infos}
	if len(infos) > limit {
		resp.Chunks = infos[:limit]
		resp.Next = infos[limit-1].ID
	}
	if resp.Chunks == nil {
		resp.Chunks = []Info{}
	}
	service.WriteJSON(w, http.StatusOK, resp)
}

func (h *handler) usage(w http.ResponseWriter, r *http.Request) {
	u, err := h.s.Usage()
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	service.WriteJSON(w, http.StatusOK, u)
}
