// Package adminapi is the controllers' admin API as its callers see it: the wire types and a
// client. The client holds every controller's address, starts with the one that answered
// last, and fails over without waiting on a silent one:
//
//   - A read (GET) that has no answer after HedgeDelay is sent to the next controller too, and
//     the first answer wins (the others are cancelled). A connection error or a 5xx answer moves
//     on at once. When every controller failed so (say, each answered 503 while a new active
//     master is being elected), the read is tried again after a backoff, Rounds times in all.
//   - A write is sent to one controller at a time and moves on only when the request could not
//     have reached it (no connection was made: refused, unreachable, or no TCP or TLS handshake
//     within DialTimeout), so that a write is never sent twice. A silent controller costs a
//     write at most DialTimeout.
//
// Every call is bounded by Timeout when its context has no deadline, and every request to one
// controller by AttemptTimeout. One Client holds one transport: share it (it is safe for
// concurrent use) instead of making one per call.
package adminapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options' zero values.
const (
	DefaultHedgeDelay     = 250 * time.Millisecond
	DefaultDialTimeout    = time.Second
	DefaultAttemptTimeout = 10 * time.Second
	DefaultTimeout        = 30 * time.Second
	DefaultRounds         = 3
	DefaultBackoff        = 250 * time.Millisecond
)

// Options configure a Client; zero values take the defaults.
type Options struct {
	// Endpoints are the controllers' base URLs (https://host:8900), in order of preference.
	Endpoints []string
	// TLS is the client configuration; the caller is authenticated by its client certificate,
	// or else by Credential (a bearer credential, hnc_...) when not empty.
	TLS        *tls.Config
	Credential string
	// HedgeDelay is how long a read waits for a controller before asking the next one too.
	HedgeDelay time.Duration
	// DialTimeout bounds the TCP connect and, separately, the TLS handshake to a controller.
	DialTimeout time.Duration
	// AttemptTimeout bounds one request to one controller, answer included.
	AttemptTimeout time.Duration
	// Timeout bounds a whole call whose context has no deadline.
	Timeout time.Duration
	// Rounds is how many times a read goes over the controllers when each one fails; Backoff
	// the wait before the second round, doubled for each next one (with jitter).
	Rounds  int
	Backoff time.Duration
}

// Client is a failover client of the admin API, safe for concurrent use.
type Client struct {
	o    Options
	http *http.Client

	mu        sync.Mutex
	endpoints []string // preference order: the controller that answered last first
}

// New returns a client for the given controller base URLs (https://host:8900). The caller is
// authenticated by the client certificate in tlsCfg, or else by credential (a bearer
// credential, hnc_...), when not empty.
func New(endpoints []string, tlsCfg *tls.Config, credential string) (*Client, error) {
	return NewWithOptions(Options{Endpoints: endpoints, TLS: tlsCfg, Credential: credential})
}

// NewWithOptions returns a client configured by o.
func NewWithOptions(o Options) (*Client, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("no controller addresses: set --controllers or HANODE_CONTROLLERS")
	}
	c := newClient(o)
	c.SetEndpoints(o.Endpoints)
	return c, nil
}

// NewEmpty returns a client without endpoints, for a caller that learns the controllers later
// (SetEndpoints); calls fail until it does.
func NewEmpty(o Options) *Client { return newClient(o) }

func newClient(o Options) *Client {
	if o.HedgeDelay <= 0 {
		o.HedgeDelay = DefaultHedgeDelay
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Rounds <= 0 {
		o.Rounds = DefaultRounds
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	tr := &http.Transport{
		// No proxy from the environment: controllers are cluster-internal addresses.
		DialContext:           (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       o.TLS,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.AttemptTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &Client{o: o, http: &http.Client{Transport: tr}}
}

// SetEndpoints replaces the controllers' base URLs. The one that answered last stays first
// when it is still in the list.
func (c *Client) SetEndpoints(endpoints []string) {
	var eps []string
	for _, ep := range endpoints {
		if ep = strings.TrimSuffix(strings.TrimSpace(ep), "/"); ep != "" && !slices.Contains(eps, ep) {
			eps = append(eps, ep)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.endpoints) > 0 {
		if i := slices.Index(eps, c.endpoints[0]); i > 0 {
			eps = slices.Insert(slices.Delete(eps, i, i+1), 0, c.endpoints[0])
		}
	}
	c.endpoints = eps
}

// Endpoints returns the controllers in the order the next call tries them.
func (c *Client) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.endpoints)
}

// answered moves ep to the front: the next call starts with it.
func (c *Client) answered(ep string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.endpoints, ep); i > 0 {
		c.endpoints = slices.Insert(slices.Delete(c.endpoints, i, i+1), 0, ep)
	}
}

// CloseIdleConnections closes the transport's idle connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

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

// Do sends a request with an optional JSON body and decodes a 2xx answer's JSON into out (when
// not nil). Reads are raced between controllers, writes fail over only before they were sent
// (see the package documentation). It returns the controller that answered.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (string, error) {
	return c.do(ctx, method, path, body, out, method == http.MethodGet)
}

// DoIdempotent is Do for a request that may be repeated whatever its method (signing a CSR
// again only signs it again): it is raced and fails over like a read.
func (c *Client) DoIdempotent(ctx context.Context, method, path string, body, out any) (string, error) {
	return c.do(ctx, method, path, body, out, true)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any, raced bool) (string, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return "", fmt.Errorf("encode request: %w", err)
		}
	}
	eps := c.Endpoints()
	if len(eps) == 0 {
		return "", fmt.Errorf("%s %s: no controller is known", method, path)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.o.Timeout)
		defer cancel()
	}
	var ep string
	var data []byte
	var err error
	if raced {
		for round := 1; ; round++ {
			ep, data, err = c.race(ctx, eps, method, path, payload)
			if err == nil || final(err) || round >= c.o.Rounds {
				break
			}
			d := c.o.Backoff << (round - 1)
			if !sleep(ctx, d/2+rand.N(d/2+1)) {
				break
			}
			eps = c.Endpoints()
		}
	} else {
		ep, data, err = c.inTurn(ctx, eps, method, path, payload)
	}
	if err == nil || final(err) {
		c.answered(ep)
	}
	if err != nil {
		return ep, err
	}
	if out == nil {
		return ep, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return ep, fmt.Errorf("decode answer of %s%s: %w", ep, path, err)
	}
	return ep, nil
}

// sleep waits d unless ctx ends first; it reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// final reports whether err is an answer that another controller would repeat: a 4xx.
func final(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status < 500
}

// race sends a read (or an idempotent request) to eps[0], to the next controller too whenever HedgeDelay passes without an
// answer or an attempt fails, and returns the first 2xx (or 4xx) answer.
func (c *Client) race(ctx context.Context, eps []string, method, path string, payload []byte) (string, []byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the attempts still running lose
	type result struct {
		i    int
		data []byte
		err  error
	}
	results := make(chan result, len(eps))
	next, running := 0, 0
	launch := func() {
		i := next
		next++
		running++
		go func() {
			data, _, err := c.doOne(ctx, method, eps[i]+path, payload)
			results <- result{i, data, err}
		}()
	}
	launch()
	hedge := time.NewTimer(c.o.HedgeDelay)
	defer hedge.Stop()
	var errs []error
	for running > 0 {
		select {
		case r := <-results:
			running--
			if r.err == nil || final(r.err) {
				return eps[r.i], r.data, r.err
			}
			errs = append(errs, r.err)
			if next < len(eps) && ctx.Err() == nil {
				launch()
				hedge.Reset(c.o.HedgeDelay)
			}
		case <-hedge.C:
			if next < len(eps) {
				launch()
				hedge.Reset(c.o.HedgeDelay)
			}
		}
	}
	return "", nil, fmt.Errorf("no controller answered %s %s: %w", method, path, errors.Join(errs...))
}

// inTurn sends a write to one controller after another while the request could not be sent.
func (c *Client) inTurn(ctx context.Context, eps []string, method, path string, payload []byte) (string, []byte, error) {
	var errs []error
	for _, ep := range eps {
		data, sent, err := c.doOne(ctx, method, ep+path, payload)
		if err == nil || sent || final(err) {
			return ep, data, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", nil, fmt.Errorf("no controller could be reached for %s %s: %w", method, path, errors.Join(errs...))
}

// doOne sends one request; sent reports whether it may have reached the controller (a
// connection was made for it).
func (c *Client) doOne(ctx context.Context, method, url string, payload []byte) (data []byte, sent bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, c.o.AttemptTimeout)
	defer cancel()
	var gotConn atomic.Bool
	rctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }})
	var reqBody io.Reader
	if payload != nil {
		reqBody = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(rctx, method, url, reqBody)
	if err != nil {
		return nil, false, fmt.Errorf("request %s: %w", url, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.o.Credential != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Credential)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, gotConn.Load(), err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, true, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, true, &APIError{Endpoint: url, Status: resp.StatusCode, Message: msg}
	}
	return body, true, nil
}

// Leader returns the active master.
func (c *Client) Leader(ctx context.Context) (*LeaderInfo, error) {
	var l LeaderInfo
	if _, err := c.Get(ctx, "/v1/cluster/leader", &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Status returns the cluster status as one controller sees it.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if _, err := c.Get(ctx, "/v1/cluster/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}
