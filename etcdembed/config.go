// Package etcdembed owns the lifecycle of the etcd member embedded in the
// hanode controller role: first bootstrap, restart from existing data, joining
// a running cluster as a learner, and recovery of a member whose data was lost.
// All etcd traffic (client and peer) is mutual TLS with one node certificate.
package etcdembed

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Start for zero-valued Config fields.
const (
	DefaultHeartbeatInterval       = 100 * time.Millisecond
	DefaultElectionTimeout         = 1000 * time.Millisecond
	DefaultQuotaBackendBytes       = int64(8) << 30
	DefaultAutoCompactionRetention = "10m"

	// etcd rejects election timeouts above 50s.
	maxElectionTimeout = 50 * time.Second
)

// Peer is one entry of the static bootstrap list.
type Peer struct {
	Name    string // member name, e.g. "m1"
	PeerURL string // e.g. "https://127.0.10.1:2380"
}

// TLSFiles are PEM files used for both the client and the peer side of etcd.
// The certificate must carry ExtKeyUsage ServerAuth and ClientAuth.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Config describes the embedded member.
type Config struct {
	Name            string // member name, unique in the cluster
	Dir             string // member data dir (created 0700)
	ClientURL       string // advertised client URL, https://ip:2379
	PeerURL         string // advertised peer URL, https://ip:2380
	ListenClientURL string // bind; empty = ClientURL
	ListenPeerURL   string // bind; empty = PeerURL
	// InitialCluster is the static bootstrap list including self; used only
	// when Dir holds no member data.
	InitialCluster []Peer
	// Join lists client URLs of a running cluster: with an empty Dir, join
	// it as a learner instead of bootstrapping.
	Join []string
	// Rejoin is for recovery when this member's data was lost: remove its
	// stale member entry (matched by name or peer URL) via the other peers,
	// then join as a learner. Only valid with an empty Dir.
	Rejoin bool
	// ClusterToken is the initial-cluster-token and the identity of the
	// cluster this Dir belongs to.
	ClusterToken string
	TLS          TLSFiles

	HeartbeatInterval       time.Duration // default 100ms
	ElectionTimeout         time.Duration // default 1000ms
	QuotaBackendBytes       int64         // default 8 GiB
	AutoCompactionRetention string        // periodic mode, default "10m"
	Logger                  *slog.Logger  // default slog.Default()

	// noPromote disables the learner promotion loop; tests use it to
	// leave a member a learner across a restart.
	noPromote bool
}

// withDefaults returns a copy with zero fields filled in.
func (c Config) withDefaults() Config {
	if c.ListenClientURL == "" {
		c.ListenClientURL = c.ClientURL
	}
	if c.ListenPeerURL == "" {
		c.ListenPeerURL = c.PeerURL
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if c.AutoCompactionRetention == "" {
		c.AutoCompactionRetention = DefaultAutoCompactionRetention
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration without touching the disk. Zero values
// of fields that have a default are accepted.
func (c *Config) Validate() error {
	d := c.withDefaults()
	if err := validateName("Name", d.Name); err != nil {
		return err
	}
	if strings.TrimSpace(d.Dir) == "" {
		return errors.New("etcd config: Dir must not be empty")
	}
	for _, f := range []struct{ field, val string }{
		{"ClientURL", d.ClientURL},
		{"PeerURL", d.PeerURL},
		{"ListenClientURL", d.ListenClientURL},
		{"ListenPeerURL", d.ListenPeerURL},
	} {
		if err := validateURL(f.field, f.val); err != nil {
			return err
		}
	}
	if d.ClusterToken == "" {
		return errors.New("etcd config: ClusterToken must not be empty")
	}
	if strings.ContainsAny(d.ClusterToken, " \t\n") {
		return fmt.Errorf("etcd config: ClusterToken %q must not contain whitespace", d.ClusterToken)
	}

	names := map[string]bool{}
	urls := map[string]bool{}
	self := false
	for i, p := range d.InitialCluster {
		field := fmt.Sprintf("InitialCluster[%d]", i)
		if err := validateName(field+".Name", p.Name); err != nil {
			return err
		}
		if err := validateURL(field+".PeerURL", p.PeerURL); err != nil {
			return err
		}
		if names[p.Name] {
			return fmt.Errorf("etcd config: %s.Name %q appears twice in InitialCluster", field, p.Name)
		}
		if urls[normURL(p.PeerURL)] {
			return fmt.Errorf("etcd config: %s.PeerURL %q appears twice in InitialCluster", field, p.PeerURL)
		}
		names[p.Name] = true
		urls[normURL(p.PeerURL)] = true
		switch {
		case p.Name == d.Name && normURL(p.PeerURL) == normURL(d.PeerURL):
			self = true
		case p.Name == d.Name:
			return fmt.Errorf("etcd config: %s has this member's name %q but PeerURL %q, not PeerURL %q", field, p.Name, p.PeerURL, d.PeerURL)
		case normURL(p.PeerURL) == normURL(d.PeerURL):
			return fmt.Errorf("etcd config: %s has this member's PeerURL %q but name %q, not Name %q", field, p.PeerURL, p.Name, d.Name)
		}
	}
	for i, u := range d.Join {
		if err := validateURL(fmt.Sprintf("Join[%d]", i), u); err != nil {
			return err
		}
	}
	if !self && len(d.Join) == 0 && !d.Rejoin {
		return fmt.Errorf("etcd config: InitialCluster must contain this member {%q, %q} unless Join or Rejoin is set", d.Name, d.PeerURL)
	}
	if d.Rejoin && len(d.Join) == 0 && len(d.InitialCluster)-boolInt(self) == 0 {
		return errors.New("etcd config: Rejoin needs Join or other InitialCluster peers to reach the running cluster")
	}

	if d.HeartbeatInterval < time.Millisecond {
		return fmt.Errorf("etcd config: HeartbeatInterval %v must be at least 1ms", d.HeartbeatInterval)
	}
	if d.ElectionTimeout < 5*d.HeartbeatInterval {
		return fmt.Errorf("etcd config: ElectionTimeout %v must be at least 5*HeartbeatInterval (%v)", d.ElectionTimeout, 5*d.HeartbeatInterval)
	}
	if d.ElectionTimeout > maxElectionTimeout {
		return fmt.Errorf("etcd config: ElectionTimeout %v must be at most %v", d.ElectionTimeout, maxElectionTimeout)
	}
	if d.HeartbeatInterval%time.Millisecond != 0 || d.ElectionTimeout%time.Millisecond != 0 {
		return fmt.Errorf("etcd config: HeartbeatInterval %v and ElectionTimeout %v must be whole milliseconds", d.HeartbeatInterval, d.ElectionTimeout)
	}
	if d.QuotaBackendBytes < 0 {
		return fmt.Errorf("etcd config: QuotaBackendBytes %d must not be negative (0 = default 8 GiB)", d.QuotaBackendBytes)
	}
	if err := validateRetention(d.AutoCompactionRetention); err != nil {
		return err
	}
	if d.TLS.CAFile == "" || d.TLS.CertFile == "" || d.TLS.KeyFile == "" {
		return errors.New("etcd config: TLS.CAFile, TLS.CertFile and TLS.KeyFile must all be set (etcd traffic is mutual TLS)")
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validateName rejects characters that would break etcd's
// "name=url,name=url" initial-cluster syntax.
func validateName(field, name string) error {
	if name == "" {
		return fmt.Errorf("etcd config: %s must not be empty", field)
	}
	if strings.ContainsAny(name, "=, \t\n") {
		return fmt.Errorf("etcd config: %s %q must not contain '=', ',' or whitespace", field, name)
	}
	return nil
}

func validateURL(field, raw string) error {
	if raw == "" {
		return fmt.Errorf("etcd config: %s must not be empty (want https://host:port)", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("etcd config: %s %q: %w", field, raw, err)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("etcd config: %s %q must use https (etcd traffic is mutual TLS)", field, raw)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("etcd config: %s %q must be https://host:port without path, query or user", field, raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return fmt.Errorf("etcd config: %s %q must be https://host:port", field, raw)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("etcd config: %s %q has invalid port %q", field, raw, port)
	}
	return nil
}

// validateRetention mirrors etcd's periodic retention parsing (integer hours
// or a Go duration) but insists on a positive value: compaction must be on.
func validateRetention(r string) error {
	var d time.Duration
	if h, err := strconv.Atoi(r); err == nil {
		d = time.Duration(h) * time.Hour
	} else {
		d, err = time.ParseDuration(r)
		if err != nil {
			return fmt.Errorf("etcd config: AutoCompactionRetention %q must be a duration like \"10m\" or integer hours", r)
		}
	}
	if d <= 0 {
		return fmt.Errorf("etcd config: AutoCompactionRetention %q must be positive (auto-compaction is required)", r)
	}
	return nil
}

// normURL makes URLs comparable: etcd reports peer URLs as configured, but a
// trailing slash or host case must not make the same member look different.
func normURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}
