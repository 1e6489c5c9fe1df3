// Package adminclient talks to the controllers' admin API. It holds every controller's address
// and fails over: a connection error or a 5xx answer from one controller moves on to the next,
// so operations commands work while any controller is up.
package adminclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hanode/hanode/cluster"
)

// Client is a failover client of the admin API.
type Client struct {
	endpoints []string
	http      *http.Client
}

// New returns a client for the given controller base URLs (https://host:8900).
func New(endpoints []string, tlsCfg *tls.Config) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("no controller addresses: set --controllers or HANODE_CONTROLLERS")
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, ResponseHeaderTimeout: 5 * time.Second, MaxIdleConnsPerHost: 2}
	return &Client{endpoints: endpoints, http: &http.Client{Transport: tr}}, nil
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
	var errs []error
	for _, ep := range c.endpoints {
		base := strings.TrimSuffix(ep, "/")
		err := c.getOne(ctx, base+path, out)
		if err == nil {
			return base, nil
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status < 500 {
			return base, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("no controller answered %s: %w", path, errors.Join(errs...))
}

func (c *Client) getOne(ctx context.Context, url string, out any) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", url, err)
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
