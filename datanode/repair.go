package datanode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/hanode/hanode/internal/service"
)

// HeaderRepair marks a GET as a repair transfer (a peer datanode pulling a replica): the source
// sends it under its repair rate, so client reads keep the disk and the network first.
const HeaderRepair = "X-Hanode-Repair"

// ErrBusy: the datanode already runs as many repair streams as it allows; try later.
var ErrBusy = errors.New("datanode busy with repair streams")

// ErrSource: the source named in a pull did not deliver the chunk (unreachable, missing,
// damaged); the pulling datanode stored nothing.
var ErrSource = errors.New("repair source failed")

// Default repair bounds of a datanode.
const (
	DefaultRepairRate    = 100 << 20 // bytes per second, each direction
	DefaultRepairStreams = 4
	repairPiece          = 64 << 10 // bytes taken from the rate limiter at a time
)

// Repair is a datanode's share of re-replication: it pulls chunks from peers when the active
// master asks (POST /v1/chunks/{id}/pull), verifies their SHA-256 before keeping them, and
// throttles what it receives and what it sends for repair to Rate bytes per second each, with
// at most Streams pulls at once.
type Repair struct {
	peers   *Client
	recv    *rate.Limiter
	send    *rate.Limiter
	streams chan struct{}
}

// RepairOptions configure Repair; zero values take the defaults.
type RepairOptions struct {
	// Peers is a client of other datanodes' chunk API carrying this machine's certificate.
	Peers   *Client
	Rate    int64
	Streams int
}

// NewRepair returns a datanode's repair side.
func NewRepair(o RepairOptions) *Repair {
	if o.Rate <= 0 {
		o.Rate = DefaultRepairRate
	}
	if o.Streams <= 0 {
		o.Streams = DefaultRepairStreams
	}
	burst := int(min(o.Rate, 1<<20))
	burst = max(burst, repairPiece)
	return &Repair{
		peers:   o.Peers,
		recv:    rate.NewLimiter(rate.Limit(o.Rate), burst),
		send:    rate.NewLimiter(rate.Limit(o.Rate), burst),
		streams: make(chan struct{}, o.Streams),
	}
}

// PullRequest is the body of POST /v1/chunks/{id}/pull.
type PullRequest struct {
	Source string `json:"source"` // chunk API base URL of a datanode holding a healthy replica
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex; required: nothing is kept unless the content matches
}

// PullResponse answers a pull: the stored chunk, and whether it was there already.
type PullResponse struct {
	Info    Info `json:"info"`
	Existed bool `json:"existed"`
}

// limitedReader takes bytes from a rate limiter as it reads.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if len(p) > repairPiece {
		p = p[:repairPiece]
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if werr := l.lim.WaitN(l.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// pull serves POST /v1/chunks/{id}/pull.
func (h *handler) pull(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if h.repair == nil || h.repair.peers == nil {
		writeErr(w, http.StatusNotImplemented, errors.New("datanode: this datanode does not pull chunks"))
		return
	}
	var req PullRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("datanode: pull %q: decode request: %w", id, err))
		return
	}
	if req.Source == "" || req.Size < 0 || len(req.SHA256) != 64 {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("datanode: pull %q: source, size and sha256 (64 hex digits) are required", id))
		return
	}
	select {
	case h.repair.streams <- struct{}{}:
		defer func() { <-h.repair.streams }()
	default:
		writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("datanode: pull %q: %w", id, ErrBusy))
		return
	}
	// Already here with the same content (a pull whose answer was lost): nothing to copy, once
	// all of it verifies. A damaged copy is not referenced here (the master pulls only to
	// machines its record does not name), so it is replaced.
	if info, err := h.s.Stat(id); err == nil && info.Size == req.Size && info.SHA256 == strings.ToLower(req.SHA256) {
		verr := h.s.Verify(id)
		if verr == nil {
			service.WriteJSON(w, http.StatusOK, PullResponse{Info: info, Existed: true})
			return
		}
		if errors.Is(verr, ErrCorrupt) {
			_ = h.s.Delete(id)
		}
	}
	body, err := h.repair.peers.Read(r.Context(), req.Source, id, 0, -1, ReadOptions{Idle: 30 * time.Second, Repair: true})
	if err != nil {
		writeErr(w, http.StatusBadGateway, fmt.Errorf("datanode: pull %q from %s: %w: %w", id, req.Source, ErrSource, err))
		return
	}
	defer body.Close()
	src := &sourceReader{r: &limitedReader{ctx: r.Context(), r: body, lim: h.repair.recv}}
	info, existed, err := h.s.put(r.Context(), id, src, req.Size, strings.ToLower(req.SHA256))
	if err != nil {
		status := statusOf(err)
		if src.err != nil && !errors.Is(err, ErrChecksum) {
			status, err = http.StatusBadGateway, fmt.Errorf("datanode: pull %q from %s: %w: %w", id, req.Source, ErrSource, err)
		}
		writeErr(w, status, err)
		return
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	service.WriteJSON(w, status, PullResponse{Info: info, Existed: existed})
}

// sourceReader remembers a read error of the source, to tell a failed source from a failure here.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// have serves POST /v1/have: which of the listed chunk ids this store holds.
func (h *handler) have(w http.ResponseWriter, r *http.Request) {
	var ids []string
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<22)).Decode(&ids); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("datanode: have: decode request: %w", err))
		return
	}
	if len(ids) > maxHave {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("datanode: have: %d ids, at most %d", len(ids), maxHave))
		return
	}
	out := h.s.Have(ids)
	if out == nil {
		out = []string{}
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"store": h.s.Identity(), "have": out})
}

// maxHave bounds the ids of one have request.
const maxHave = 10000

// Pull asks the datanode at base to copy chunk id from the datanode at source and keep it once
// its SHA-256 matches. timeout bounds the whole call. It returns whether the chunk was already
// there. ErrBusy: the target runs its maximum of repair streams; ErrSource: the source failed.
func (c *Client) Pull(ctx context.Context, base, id, source string, size int64, sha256 string, timeout time.Duration) (PullResponse, error) {
	cctx, cancel := withDeadline(ctx, timeout, "no answer to the pull")
	defer cancel()
	body, _ := json.Marshal(PullRequest{Source: source, Size: size, SHA256: sha256})
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, chunkURL(base, id)+"/pull", strings.NewReader(string(body)))
	if err != nil {
		return PullResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return PullResponse{}, fmt.Errorf("pull chunk %s to %s from %s: %w", id, base, source, callErr(ctx, cctx, err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
	case http.StatusServiceUnavailable:
		return PullResponse{}, fmt.Errorf("pull chunk %s to %s: %w (%w)", id, base, ErrBusy, statusErr(resp))
	case http.StatusBadGateway:
		return PullResponse{}, fmt.Errorf("pull chunk %s to %s: %w (%w)", id, base, ErrSource, statusErr(resp))
	default:
		return PullResponse{}, fmt.Errorf("pull chunk %s to %s from %s: %w", id, base, source, statusErr(resp))
	}
	var pr PullResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&pr); err != nil {
		return PullResponse{}, fmt.Errorf("pull chunk %s to %s: decode answer: %w", id, base, callErr(ctx, cctx, err))
	}
	return pr, nil
}

// Have asks the datanode at base which of ids it holds, and its store identity.
func (c *Client) Have(ctx context.Context, base string, ids []string) (map[string]bool, string, error) {
	cctx, cancel := withDeadline(ctx, c.headerTimeout()+c.TransferTimeout(0), "no full answer")
	defer cancel()
	body, _ := json.Marshal(ids)
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/v1/have", strings.NewReader(string(body)))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("ask %s which chunks it has: %w", base, callErr(ctx, cctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("ask %s which chunks it has: %w", base, statusErr(resp))
	}
	var ans struct {
		Store string   `json:"store"`
		Have  []string `json:"have"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<24)).Decode(&ans); err != nil {
		return nil, "", fmt.Errorf("ask %s which chunks it has: decode answer: %w", base, callErr(ctx, cctx, err))
	}
	out := make(map[string]bool, len(ans.Have))
	for _, id := range ans.Have {
		out[id] = true
	}
	return out, ans.Store, nil
}
