// Package client is an S3 client with high availability built in: it is given every
// coordinator's address, sends each operation to the current one and, when that one cannot be
// reached or answers 5xx (ServiceUnavailable, SlowDown, InternalError), fails over to the next
// and retries, with exponential backoff and jitter once every endpoint has been tried.
//
// A silent endpoint (a partitioned or frozen machine) costs little: a read (GET, HEAD, LIST)
// that has no answer after HedgeDelay is sent to the next endpoint too, and the first answer
// wins; every other operation is sent only to an endpoint this client has reached, so the first
// one on an endpoint not yet reached (or one that failed since) is preceded by a connection
// race (TCP and TLS handshakes, raced like reads) that finds an endpoint answering. The
// endpoint that answered stays current for the next operations.
//
// Only what is safe to repeat is retried: GET, HEAD, LIST and DELETE, and a PUT of a whole
// object from a source that can be read again (an io.ReaderAt or io.Seeker, such as a file),
// since an S3 PUT replaces the object atomically. A PUT from a plain stream is retried only if
// none of its bytes were consumed yet. A GET that breaks mid-body resumes at the byte it
// reached, on the next endpoint, and fails if the object's ETag changed meanwhile.
//
// Underneath there is one minio-go client per endpoint with minio-go's own retries disabled
// (minio.Options.MaxRetries = 1, a per-client setting: no package-level state is touched), so
// that every retry is a failover decision made here.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Defaults of Config's zero values.
const (
	DefaultPartSize              = 16 << 20
	DefaultBaseBackoff           = 100 * time.Millisecond
	DefaultMaxBackoff            = 5 * time.Second
	DefaultCooldown              = 30 * time.Second
	DefaultDialTimeout           = 2 * time.Second
	DefaultHedgeDelay            = 300 * time.Millisecond
	DefaultResponseHeaderTimeout = 2 * time.Minute
	DefaultRegion                = "us-east-1"
)

// Config configures a Client.
type Config struct {
	// Endpoints are the S3 endpoints in order of preference: host:port (HTTPS) or
	// https://host:port (http:// for plain HTTP).
	Endpoints []string
	// AccessKey and SecretKey sign requests (SigV4); SessionToken is optional.
	AccessKey, SecretKey, SessionToken string
	// Region in signatures; default us-east-1. Setting it spares minio-go a bucket-location
	// lookup per bucket.
	Region string
	// TLS is the client TLS configuration (e.g. RootCAs holding the cluster CA); nil uses the
	// system roots.
	TLS *tls.Config
	// MaxRetries is how many times a failed operation that is safe to repeat is tried again,
	// on the next endpoint first. 0 means the default, 2×len(Endpoints)+1 (every endpoint at
	// least twice); negative means never.
	MaxRetries int
	// BaseBackoff and MaxBackoff bound the wait before a new round over endpoints already
	// tried: base×2^round, capped, with jitter. Moving to an endpoint not yet tried in this
	// operation does not wait.
	BaseBackoff, MaxBackoff time.Duration
	// Cooldown is how long an endpoint that failed stays behind the others.
	Cooldown time.Duration
	// DialTimeout bounds connecting to an endpoint and, separately, the TLS handshake (an
	// unreachable host fails over after it).
	DialTimeout time.Duration
	// HedgeDelay is how long a read (GET, HEAD, LIST) waits for an endpoint's answer before it
	// is sent to the next endpoint too; the first answer wins. Negative: reads are not raced.
	HedgeDelay time.Duration
	// ResponseHeaderTimeout bounds the wait for an answer once a request is sent (a hung
	// coordinator fails over after it).
	ResponseHeaderTimeout time.Duration
	// MaxIdleConnsPerHost keeps connections for concurrent use; default 64.
	MaxIdleConnsPerHost int
	// OnAttempt, when set, is called after every attempt of every operation, from the
	// goroutine that called the operation: which endpoint it went to and how it ended. A
	// connection that failed in the race before a write is reported as a failed attempt of
	// the write; a raced read that lost to another endpoint ends with ErrOutpaced.
	OnAttempt func(Attempt)
}

// Attempt is one try of one operation on one endpoint.
type Attempt struct {
	Op       string // e.g. "put", "get", "stat"
	Bucket   string
	Key      string
	Endpoint string // the endpoint's URL, https://host:port
	N        int    // 0 for the first attempt of the operation
	Err      error  // nil: this endpoint served the operation
	Retry    bool   // the operation goes on with another attempt
}

// Client is safe for concurrent use.
type Client struct {
	cfg        Config
	maxRetries int
	mu         sync.Mutex
	order      []*endpoint // preference: the current endpoint first, failed ones at the back
}

type endpoint struct {
	url       string
	host      string // host:port
	https     bool
	mc        *minio.Client
	core      minio.Core
	tr        *http.Transport
	downUntil time.Time // guarded by Client.mu
	reached   bool      // guarded by Client.mu: it answered since it last failed
}

// ErrOutpaced ends a raced attempt that was still waiting when another endpoint answered.
var ErrOutpaced = errors.New("another endpoint answered first")

// New builds a client. It does not contact the endpoints.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("s3 client: no endpoints")
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.HedgeDelay == 0 {
		cfg.HedgeDelay = DefaultHedgeDelay
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if cfg.MaxIdleConnsPerHost <= 0 {
		cfg.MaxIdleConnsPerHost = 64
	}
	c := &Client{cfg: cfg, maxRetries: cfg.MaxRetries}
	switch {
	case cfg.MaxRetries == 0:
		c.maxRetries = 2*len(cfg.Endpoints) + 1
	case cfg.MaxRetries < 0:
		c.maxRetries = 0
	}
	seen := map[string]bool{}
	for _, raw := range cfg.Endpoints {
		u, err := ParseEndpoint(raw)
		if err != nil {
			return nil, err
		}
		if seen[u.String()] {
			continue
		}
		seen[u.String()] = true
		ep, err := c.newEndpoint(u)
		if err != nil {
			return nil, err
		}
		c.order = append(c.order, ep)
	}
	return c, nil
}

// ParseEndpoint accepts host:port (HTTPS) or an http(s)://host:port URL without a path.
func ParseEndpoint(raw string) (*url.URL, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("s3 endpoint %q: want host:port or https://host:port", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func (c *Client) newEndpoint(u *url.URL) (*endpoint, error) {
	var tlsCfg *tls.Config
	if c.cfg.TLS != nil {
		tlsCfg = c.cfg.TLS.Clone()
	}
	// No proxy from the environment: endpoints are cluster-internal addresses.
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: c.cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   c.cfg.DialTimeout,
		ResponseHeaderTimeout: c.cfg.ResponseHeaderTimeout,
		MaxIdleConns:          c.cfg.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   c.cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// S3 bodies are mostly incompressible; transparent gzip would also hide lengths.
		DisableCompression: true,
	}
	mc, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(c.cfg.AccessKey, c.cfg.SecretKey, c.cfg.SessionToken),
		Secure:       u.Scheme == "https",
		Transport:    tr,
		Region:       c.cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1, // one attempt: failover and retries are this package's
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", u, err)
	}
	return &endpoint{url: u.String(), host: u.Host, https: u.Scheme == "https", mc: mc, core: minio.Core{Client: mc}, tr: tr}, nil
}

// connect makes a TCP connection to ep and, for HTTPS, completes the TLS handshake, each within
// the dial timeout, then closes it: the endpoint answers.
func (c *Client) connect(ctx context.Context, ep *endpoint) error {
	conn, err := (&net.Dialer{Timeout: c.cfg.DialTimeout}).DialContext(ctx, "tcp", ep.host)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !ep.https {
		return nil
	}
	cfg := &tls.Config{}
	if c.cfg.TLS != nil {
		cfg = c.cfg.TLS.Clone()
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(ep.host)
		if err != nil {
			host = ep.host
		}
		cfg.ServerName = host
	}
	hctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	return tls.Client(conn, cfg).HandshakeContext(hctx)
}

// Endpoints returns the endpoints in the current order of preference: the one operations go
// to first, then the others; endpoints that failed recently are at the back.
func (c *Client) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.order))
	for i, ep := range c.order {
		out[i] = ep.url
	}
	return out
}

// Current is the endpoint the next operation goes to first.
func (c *Client) Current() string {
	return c.pick(nil).url
}

// Close releases idle connections.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range c.order {
		ep.tr.CloseIdleConnections()
	}
}

// pick returns the preferred endpoint not in tried: healthy ones first, in order, then those
// cooling down; nil when every endpoint has been tried.
func (c *Client) pick(tried map[*endpoint]bool) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var cooling *endpoint
	for _, e := range c.order {
		if tried[e] {
			continue
		}
		if now.Before(e.downUntil) {
			if cooling == nil {
				cooling = e
			}
			continue
		}
		return e
	}
	return cooling
}

// wasReached reports whether ep answered since it last failed.
func (c *Client) wasReached(ep *endpoint) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ep.reached
}

// markDown puts ep at the back for a cool-down.
func (c *Client) markDown(ep *endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep.downUntil = time.Now().Add(c.cfg.Cooldown)
	ep.reached = false
	for i, e := range c.order {
		if e == ep {
			c.order = append(append(c.order[:i:i], c.order[i+1:]...), ep)
			break
		}
	}
}

// markUp ends ep's cool-down. It stays where it is: the current endpoint is kept while it
// works, so clients do not flap back to an endpoint that just recovered.
func (c *Client) markUp(ep *endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep.downUntil = time.Time{}
	ep.reached = true
}

// op names one operation for errors and OnAttempt.
type op struct {
	name, bucket, key string
	// idempotent: the operation may be repeated after a failure.
	idempotent bool
	// canRetry, when set, is asked after a failure whether repeating is still safe (a stream
	// whose bytes were consumed is not).
	canRetry func() bool
	// read: the operation is a GET, HEAD or LIST, raced between endpoints (HedgeDelay).
	read bool
	// probe: a connection race, whose successes are not reported and which tries each
	// endpoint at most once.
	probe bool
}

func (o op) target() string {
	switch {
	case o.bucket == "":
		return ""
	case o.key == "":
		return " s3://" + o.bucket
	default:
		return " s3://" + o.bucket + "/" + o.key
	}
}

// do runs fn like run, for operations whose results fn keeps itself.
func (c *Client) do(ctx context.Context, o op, fn func(ctx context.Context, ep *endpoint) error) (*endpoint, error) {
	_, ep, release, err := run(c, ctx, o, func(ctx context.Context, ep *endpoint) (struct{}, error) {
		return struct{}{}, fn(ctx, ep)
	}, nil)
	if release != nil {
		release()
	}
	return ep, err
}

// attempt is one call of fn on one endpoint.
type attempt[T any] struct {
	n      int
	ep     *endpoint
	v      T
	err    error
	cancel context.CancelFunc
}

// run runs fn on one endpoint after another until it succeeds, fails in a way that another
// endpoint would not fix, or may not be repeated. A read (o.read) that has no answer after
// HedgeDelay also starts on the next endpoint not yet tried; the first success wins, and the
// attempts still running are cancelled (a success among them goes to discard) and, if they
// started before the winner, put at the back. Any other operation is sent to an endpoint that
// this client has not reached yet only after a connection race (probe) has found one that
// answers. run returns the winner's value and endpoint, and release, which ends the context the
// value lives in (a streamed body): call it when done with the value.
func run[T any](c *Client, ctx context.Context, o op, fn func(ctx context.Context, ep *endpoint) (T, error), discard func(T)) (v T, served *endpoint, release context.CancelFunc, err error) {
	limit := c.maxRetries + 1 // attempts
	if o.probe {
		limit = len(c.order)
	} else if !o.read {
		if first := c.pick(nil); !c.wasReached(first) && len(c.order) > 1 {
			c.probe(ctx, o)
		}
	}
	hedge := o.read && c.cfg.HedgeDelay > 0
	results := make(chan attempt[T], limit)
	running := map[int]attempt[T]{}
	tried := map[*endpoint]bool{}
	round, n := 0, 0
	launch := func(ep *endpoint) {
		actx, cancel := context.WithCancel(ctx)
		a := attempt[T]{n: n, ep: ep, cancel: cancel}
		n++
		tried[ep] = true
		running[a.n] = a
		go func() {
			a.v, a.err = fn(actx, ep)
			results <- a
		}()
	}
	// next starts an attempt on the next endpoint not yet tried; with newRound it starts a new
	// round, after a backoff, when every endpoint has been tried.
	next := func(newRound bool) (bool, error) {
		ep := c.pick(tried)
		if ep == nil {
			if !newRound || o.probe {
				return false, nil
			}
			round++
			if err := sleep(ctx, c.backoff(round)); err != nil {
				return false, err
			}
			clear(tried)
			ep = c.pick(tried)
		}
		launch(ep)
		return true, nil
	}
	var timer *time.Timer
	var hedgeC <-chan time.Time
	rearm := func() {
		if !hedge {
			return
		}
		if timer == nil {
			timer = time.NewTimer(c.cfg.HedgeDelay)
			hedgeC = timer.C
			return
		}
		timer.Reset(c.cfg.HedgeDelay)
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	next(false)
	rearm()
	for {
		var r attempt[T]
		select {
		case <-hedgeC:
			if n < limit {
				if ok, _ := next(false); ok {
					rearm()
				}
			}
			continue
		case r = <-results:
		}
		delete(running, r.n)
		if r.err == nil {
			c.markUp(r.ep)
			if !o.probe {
				c.report(o, r.ep, r.n, nil, false)
			}
			for _, a := range running {
				a.cancel()
				if a.n < r.n {
					c.markDown(a.ep) // it had longer and did not answer
				}
				c.report(o, a.ep, a.n, ErrOutpaced, false)
			}
			if len(running) > 0 {
				go drain(results, len(running), discard)
			}
			return r.v, r.ep, r.cancel, nil
		}
		r.cancel()
		fault := endpointFault(ctx, r.err)
		if fault {
			c.markDown(r.ep)
		}
		retry := fault && o.idempotent && n < limit && (o.canRetry == nil || o.canRetry())
		c.report(o, r.ep, r.n, r.err, retry || (fault && len(running) > 0))
		if !fault || (!retry && len(running) == 0) {
			for _, a := range running {
				a.cancel()
				c.report(o, a.ep, a.n, ErrOutpaced, false)
			}
			if len(running) > 0 {
				go drain(results, len(running), discard)
			}
			if n == 1 {
				return v, r.ep, nil, fmt.Errorf("%s%s via %s: %w", o.name, o.target(), r.ep.url, r.err)
			}
			return v, r.ep, nil, fmt.Errorf("%s%s: gave up after %d attempts, last via %s: %w", o.name, o.target(), n, r.ep.url, r.err)
		}
		if retry {
			// With attempts still running, only an endpoint not yet tried is worth starting;
			// a new round waits until they have failed too.
			ok, err := next(len(running) == 0)
			if err != nil {
				return v, r.ep, nil, fmt.Errorf("%s%s: %w", o.name, o.target(), err)
			}
			if ok {
				rearm()
			}
		}
	}
}

// drain receives the results of k cancelled attempts, discarding their values.
func drain[T any](results <-chan attempt[T], k int, discard func(T)) {
	for ; k > 0; k-- {
		a := <-results
		if a.err == nil && discard != nil {
			discard(a.v)
		}
		a.cancel()
	}
}

// probe races connections to the endpoints (TCP and TLS handshakes, no request) like a read,
// so that the endpoints that do not answer go to the back and the one that answers first
// becomes current. When none answers, the operation finds out for itself.
func (c *Client) probe(ctx context.Context, o op) {
	p := op{name: o.name, bucket: o.bucket, key: o.key, idempotent: true, read: true, probe: true}
	_, _, release, _ := run(c, ctx, p, func(ctx context.Context, ep *endpoint) (struct{}, error) {
		return struct{}{}, c.connect(ctx, ep)
	}, nil)
	if release != nil {
		release()
	}
}

func (c *Client) report(o op, ep *endpoint, n int, err error, retry bool) {
	if c.cfg.OnAttempt != nil {
		c.cfg.OnAttempt(Attempt{Op: o.name, Bucket: o.bucket, Key: o.key, Endpoint: ep.url, N: n, Err: err, Retry: retry})
	}
}

// backoff is base×2^(round-1) capped at the maximum, with "equal jitter" (half fixed, half
// random) so that clients that failed together do not come back together.
func (c *Client) backoff(round int) time.Duration {
	d := c.cfg.MaxBackoff
	if round-1 < 30 {
		d = min(c.cfg.BaseBackoff<<(round-1), c.cfg.MaxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryableCodes are S3 error codes that say "this endpoint, now" rather than "this request".
var retryableCodes = map[string]bool{
	"ServiceUnavailable": true, "SlowDown": true, "InternalError": true, "RequestTimeout": true,
	"Throttling": true, "ThrottlingException": true, "RequestThrottled": true, "XMinioServerNotInitialized": true,
}

// endpointFault reports whether err is the endpoint's fault (it is unreachable, broke the
// connection, or answered 5xx), so that another endpoint may well succeed.
func endpointFault(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false // the caller gave up
	}
	var src *SourceError
	if errors.As(err, &src) {
		return false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.StatusCode != 0 || er.Code != "") {
		return er.StatusCode >= 500 || retryableCodes[er.Code]
	}
	// A certificate the CA does not vouch for, or plain HTTP on an HTTPS port, is
	// configuration: every endpoint will say the same.
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalid) || errors.As(err, &verify) ||
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return false
	}
	var urlErr *url.Error
	var netErr net.Error
	return errors.As(err, &urlErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// SourceError is a failure to read the caller's data for an upload: no endpoint is to blame
// and no retry helps.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "read the data to upload: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

func sourceErr(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &SourceError{Err: err}
}
