// Package adminclient talks to the controllers' admin API. It holds every controller's address
// and fails over: a connection error or a 5xx answer from one controller moves on to the next,
// so operations commands work while any controller is up.
package adminclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hanode/hanode/cluster"
)

// Client is a failover client of the admin API.
type Client struct {
	endpoints  []string
	http       *http.Client
	credential string
}

// New returns a client for the given controller base URLs (https://host:8900). The caller is
// authenticated by the client certificate in tlsCfg, or else by credential (a bearer
// credential, hnc_...), when not empty.
func New(endpoints []string, tlsCfg *tls.Config, credential string) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("no controller addresses: set --controllers or HANODE_CONTROLLERS")
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, ResponseHeaderTimeout: 5 * time.Second, MaxIdleConnsPerHost: 2}
	return &Client{endpoints: endpoints, http: &http.Client{Transport: tr}, credential: credential}, nil
}

// APIError is a non-2xx answer that failover could not get past.
type APIError struct {
	Endpoint string
	Status   int
	Message  string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %d %s: %s", e.Endpoint, e.Status, http.StatusText(e.Status), e.Message)
}

// Get fetches path from the first controller that answers with a non-5xx status and decodes
// the JSON body into out. It returns the controller that answered.
func (c *Client) Get(ctx context.Context, path string, out any) (string, error) {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// Do sends a request with an optional JSON body. Reads fail over to the next controller on a
// connection error or a 5xx answer; writes only when the connection could not be made, so that
// a write is never sent twice.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (string, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return "", fmt.Errorf("encode request: %w", err)
		}
	}
	var errs []error
	for _, ep := range c.endpoints {
		base := strings.TrimSuffix(ep, "/")
		err := c.doOne(ctx, method, base+path, payload, out)
		if err == nil {
			return base, nil
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && (apiErr.Status < 500 || method != http.MethodGet) {
			return base, err
		}
		var opErr *net.OpError
		if method != http.MethodGet && !(errors.As(err, &opErr) && opErr.Op == "dial") {
			return base, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("no controller answered %s %s: %w", method, path, errors.Join(errs...))
}

func (c *Client) doOne(ctx context.Context, method, url string, payload []byte, out any) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var reqBody io.Reader
	if payload != nil {
		reqBody = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(rctx, method, url, reqBody)
	if err != nil {
		return fmt.Errorf("request %s: %w", url, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.credential != "" {
		req.Header.Set("Authorization", "Bearer "+c.credential)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &APIError{Endpoint: url, Status: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", url, err)
	}
	return nil
}

// Leader returns the active master.
func (c *Client) Leader(ctx context.Context) (*cluster.LeaderInfo, error) {
	var l cluster.LeaderInfo
	if _, err := c.Get(ctx, "/v1/cluster/leader", &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Status returns the cluster status as one controller sees it.
func (c *Client) Status(ctx context.Context) (*cluster.Status, error) {
	var s cluster.Status
	if _, err := c.Get(ctx, "/v1/cluster/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}
