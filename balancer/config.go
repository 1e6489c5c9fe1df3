package balancer

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero Config fields.
const (
	DefaultSessionIdle         = 5 * time.Minute
	DefaultPinTTL              = 24 * time.Hour
	DefaultMaxSessions         = 1_000_000
	DefaultHealthPath          = "/readyz"
	DefaultHealthInterval      = time.Second
	DefaultHealthTimeout       = time.Second
	DefaultFall                = 2
	DefaultRise                = 2
	DefaultMaxRetries          = 2
	DefaultRetryBudget         = 10 * time.Second
	DefaultDialTimeout         = 2 * time.Second
	DefaultMaxIdleConnsPerHost = 256
	DefaultIdleConnTimeout     = 90 * time.Second
)

// Names of the pin cookie and header. The header serves clients without a
// cookie jar (SDKs): they read it from a response and send it back.
const (
	PinCookie = "hanode_affinity"
	PinHeader = "Hanode-Affinity"
)

// Upstream is one coordinator. ID is the stable node name (sessions hash and
// pin to it, so it must not change when the node is re-addressed); URL is
// its base URL (scheme http or https, host[:port], no path); Weight <= 0
// means 1.
type Upstream struct {
	ID     string
	URL    *url.URL
	Weight float64
}

// Config configures a Proxy. The zero value of every field selects the
// documented default.
type Config struct {
	// AffinityHeader, when set (e.g. "X-Session-Id"), is a request header
	// whose value keys the session when the request carries no valid pin.
	AffinityHeader string
	// TrustedProxies are the peers (load balancers in front of this proxy)
	// whose X-Forwarded-For and X-Forwarded-Proto/Host are believed. The
	// same list should be given to Listen for the PROXY protocol.
	TrustedProxies []netip.Prefix

	// SessionIdle is how long a session stays open (counted by the
	// balancer) without requests. Default 5m.
	SessionIdle time.Duration
	// PinTTL is how long a pin is honoured after it was issued (default 24h): an older pin is
	// treated as no pin, and a pin past half of it is re-issued, so an active session keeps
	// its upstream while a copied or leaked pin stops working.
	PinTTL time.Duration
	// MaxSessions bounds the session table; see sessionTable for the
	// eviction policy. Default 1e6.
	MaxSessions int
	// LoadFactor is the bounded-loads factor c (> 1); 0 means 1.25.
	LoadFactor float64
	// SlowStart is the balancer's ramp for new and re-admitted upstreams;
	// 0 means balancer.DefaultSlowStart, negative disables it.
	SlowStart time.Duration

	// HealthPath is the readiness endpoint checked on every upstream.
	// Default "/readyz". A 2xx answer is healthy, any other answer is "not
	// ready" (the coordinator is draining), no answer is a failure.
	HealthPath string
	// HealthInterval and HealthTimeout time the active checks (1s, 1s).
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// Fall consecutive failed checks eject a healthy upstream; Rise
	// consecutive successful ones re-admit it. Default 2 and 2.
	Fall, Rise int

	// MaxRetries bounds the retries of one request (default 2; negative
	// disables retries). RetryBudget (default 10s) is the time, counted
	// from the first attempt's dial, after which no retry starts.
	MaxRetries  int
	RetryBudget time.Duration

	// Upstream transport tuning. Defaults: 2s, 256, 90s.
	DialTimeout         time.Duration
	MaxIdleConnsPerHost int
	IdleConnTimeout     time.Duration
	// UpstreamTLS is the client TLS configuration for https upstreams
	// (root CAs, client certificate for mTLS). Nil means system defaults.
	UpstreamTLS *tls.Config

	// Registerer receives the metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger receives operational events; nil means slog.Default().
	Logger *slog.Logger
	// AccessLog, when set, receives one Info record per request.
	AccessLog *slog.Logger

	// now is the clock (tests); nil means time.Now.
	now func() time.Time
}

func (c *Config) applyDefaults() error {
	def := func(d *time.Duration, name string, v time.Duration) error {
		switch {
		case *d == 0:
			*d = v
		case *d < 0:
			return fmt.Errorf("proxy: config: %s must not be negative, got %v", name, *d)
		}
		return nil
	}
	for _, f := range []struct {
		p    *time.Duration
		name string
		v    time.Duration
	}{
		{&c.SessionIdle, "SessionIdle", DefaultSessionIdle},
		{&c.PinTTL, "PinTTL", DefaultPinTTL},
		{&c.HealthInterval, "HealthInterval", DefaultHealthInterval},
		{&c.HealthTimeout, "HealthTimeout", DefaultHealthTimeout},
		{&c.RetryBudget, "RetryBudget", DefaultRetryBudget},
		{&c.DialTimeout, "DialTimeout", DefaultDialTimeout},
		{&c.IdleConnTimeout, "IdleConnTimeout", DefaultIdleConnTimeout},
	} {
		if err := def(f.p, f.name, f.v); err != nil {
			return err
		}
	}
	defInt := func(p *int, name string, v int) error {
		switch {
		case *p == 0:
			*p = v
		case *p < 0:
			return fmt.Errorf("proxy: config: %s must not be negative, got %d", name, *p)
		}
		return nil
	}
	for _, f := range []struct {
		p    *int
		name string
		v    int
	}{
		{&c.MaxSessions, "MaxSessions", DefaultMaxSessions},
		{&c.Fall, "Fall", DefaultFall},
		{&c.Rise, "Rise", DefaultRise},
		{&c.MaxIdleConnsPerHost, "MaxIdleConnsPerHost", DefaultMaxIdleConnsPerHost},
	} {
		if err := defInt(f.p, f.name, f.v); err != nil {
			return err
		}
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.LoadFactor != 0 && (!(c.LoadFactor > 1) || math.IsInf(c.LoadFactor, 0)) {
		return fmt.Errorf("proxy: config: LoadFactor must be > 1 (or 0 for the default), got %v", c.LoadFactor)
	}
	if c.HealthPath == "" {
		c.HealthPath = DefaultHealthPath
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		return fmt.Errorf("proxy: config: HealthPath %q must start with /", c.HealthPath)
	}
	if h := c.AffinityHeader; h != "" {
		if !validHeaderName(h) {
			return fmt.Errorf("proxy: config: AffinityHeader %q is not a valid header name", h)
		}
		if http.CanonicalHeaderKey(h) == PinHeader || http.CanonicalHeaderKey(h) == "Cookie" {
			return fmt.Errorf("proxy: config: AffinityHeader %q is reserved", h)
		}
	}
	for i, pf := range c.TrustedProxies {
		if !pf.IsValid() {
			return fmt.Errorf("proxy: config: TrustedProxies[%d] is not a valid prefix", i)
		}
		c.TrustedProxies[i] = pf.Masked()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}
