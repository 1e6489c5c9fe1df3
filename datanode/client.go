package datanode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrServer is a datanode's 500 answer other than a corrupt chunk (an I/O error, say).
var ErrServer = errors.New("datanode internal error")

// Client calls datanodes' chunk API on behalf of a coordinator or controller. It maps the API's
// statuses back to the store's errors (ErrNotFound, ErrExists, ErrChecksum, ErrNoSpace, ...), so
// callers handle a remote datanode as they would a local Store.
type Client struct {
	// HTTP carries the caller's cluster certificate (the API accepts coordinators and controllers).
	HTTP *http.Client
}

// Put streams size bytes of r as chunk id to the datanode at base (https://host:8911); wantSHA256,
// if set, is checked by the datanode before it keeps the chunk.
func (c *Client) Put(ctx context.Context, base, id string, r io.Reader, size int64, wantSHA256 string) (Info, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, chunkURL(base, id), r)
	if err != nil {
		return Info{}, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	if wantSHA256 != "" {
		req.Header.Set(HeaderSHA256, wantSHA256)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Info{}, fmt.Errorf("put chunk %s to %s: %w", id, base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return Info{}, fmt.Errorf("put chunk %s to %s: %w", id, base, statusErr(resp))
	}
	var info Info
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&info); err != nil {
		return Info{}, fmt.Errorf("put chunk %s to %s: decode answer: %w", id, base, err)
	}
	return info, nil
}

// Get reads [off, off+n) of chunk id (n < 0: to the end). The body fails rather than return a
// byte the datanode could not verify: a corruption found mid-stream aborts the response.
func (c *Client) Get(ctx context.Context, base, id string, off, n int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, chunkURL(base, id), nil)
	if err != nil {
		return nil, err
	}
	if off > 0 || n >= 0 {
		rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
		if n >= 0 {
			if n == 0 {
				return io.NopCloser(strings.NewReader("")), nil
			}
			rng += strconv.FormatInt(off+n-1, 10)
		}
		req.Header.Set("Range", rng)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get chunk %s from %s: %w", id, base, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		defer resp.Body.Close()
		return nil, fmt.Errorf("get chunk %s from %s: %w", id, base, statusErr(resp))
	}
	return resp.Body, nil
}

// Delete removes chunk id from the datanode at base.
func (c *Client) Delete(ctx context.Context, base, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, chunkURL(base, id), nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("delete chunk %s on %s: %w", id, base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("delete chunk %s on %s: %w", id, base, statusErr(resp))
	}
	return nil
}

func chunkURL(base, id string) string {
	return strings.TrimSuffix(base, "/") + "/v1/chunks/" + url.PathEscape(id)
}

// statusErr turns an error answer into the store error it stands for, keeping the message.
func statusErr(resp *http.Response) error {
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	var base error
	switch resp.StatusCode {
	case http.StatusNotFound:
		base = ErrNotFound
	case http.StatusConflict:
		base = ErrExists
	case http.StatusInsufficientStorage:
		base = ErrNoSpace
	case http.StatusRequestEntityTooLarge:
		base = ErrTooLarge
	case http.StatusRequestedRangeNotSatisfiable:
		base = ErrBadRange
	case http.StatusInternalServerError:
		base = ErrServer
		if strings.Contains(body.Error, ErrCorrupt.Error()) {
			base = ErrCorrupt
		}
	case http.StatusBadRequest:
		switch {
		case strings.Contains(body.Error, ErrChecksum.Error()):
			base = ErrChecksum
		case strings.Contains(body.Error, ErrBadID.Error()):
			base = ErrBadID
		}
	}
	msg := fmt.Sprintf("%d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), body.Error)
	if base == nil {
		return errors.New(msg)
	}
	return fmt.Errorf("%w (%s)", base, msg)
}

// List returns up to limit chunks with ids after `after`, in id order, and the id to continue
// from (empty on the last page).
func (c *Client) List(ctx context.Context, base, after string, limit int) ([]Info, string, error) {
	q := url.Values{"after": {after}, "limit": {strconv.Itoa(limit)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/chunks?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("list chunks on %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("list chunks on %s: %w", base, statusErr(resp))
	}
	var lr ListResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&lr); err != nil {
		return nil, "", fmt.Errorf("list chunks on %s: decode answer: %w", base, err)
	}
	return lr.Chunks, lr.Next, nil
}
