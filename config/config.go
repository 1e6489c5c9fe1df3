// Package config holds hanode's configuration: one flat set of keys, each settable from a YAML
// file, a HANODE_* environment variable and a command-line flag, with precedence
// flag > environment > file > default, and a record of where each effective value came from.
//
// A key's name is the same everywhere: the YAML key, the flag (--data-dir) and, upper-cased
// with dashes as underscores, the environment variable (HANODE_DATA_DIR).
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Role names. RoleAll expands to every role.
const (
	RoleController  = "controller"
	RoleDatanode    = "datanode"
	RoleCoordinator = "coordinator"
	RoleProxy       = "proxy"
	RoleAgent       = "agent"
	RoleAll         = "all"
)

// AllRoles is every role in start order: the controller first (it hosts etcd), the proxy last
// (it fronts the others). Shutdown runs in reverse.
var AllRoles = []string{RoleController, RoleAgent, RoleDatanode, RoleCoordinator, RoleProxy}

// DefaultFile is read when it exists and no --config is given.
const DefaultFile = "/etc/hanode/hanode.yaml"

// Config is the effective configuration. The struct tags are the single source of a key's name
// (yaml and kong's name), its flag help and its default.
type Config struct {
	Role        []string `yaml:"role" name:"role" sep:"," placeholder:"ROLES" help:"Roles to run, comma-separated: controller, datanode, coordinator, proxy, agent, or all." default:"all"`
	Name        string   `yaml:"name" name:"name" help:"This machine's name, unique in the cluster." default:"(hostname)"`
	Address     string   `yaml:"address" name:"address" help:"Address other machines reach this one at (IP or DNS name)." default:"127.0.0.1"`
	BindAddress string   `yaml:"bind-address" name:"bind-address" help:"Address to listen on." default:"(address)"`
	DataDir     string   `yaml:"data-dir" name:"data-dir" help:"Data directory, one subfolder per role." default:"./hanode-data"`
	ClusterName string   `yaml:"cluster-name" name:"cluster-name" help:"Cluster name; a data dir belongs to one cluster." default:"hanode"`

	InitialCluster []string      `yaml:"initial-cluster" name:"initial-cluster" sep:"," placeholder:"NAME=URL,..." help:"Controllers that bootstrap the cluster, as name=https://host:2380." default:"(this machine)"`
	Join           []string      `yaml:"join" name:"join" sep:"," placeholder:"URL,..." help:"etcd client URLs of a running cluster for a new controller to join as a learner." default:""`
	Rejoin         bool          `yaml:"rejoin" name:"rejoin" help:"Recovery: this controller lost its data; replace its old member entry and join again." default:"false"`
	EtcdEndpoints  []string      `yaml:"etcd-endpoints" name:"etcd-endpoints" sep:"," placeholder:"URL,..." help:"etcd client URLs for non-controller roles." default:"(from initial-cluster)"`
	Controllers    []string      `yaml:"controllers" name:"controllers" sep:"," placeholder:"URL,..." help:"Controller admin API URLs for operations commands." default:"(this machine)"`
	Server         string        `yaml:"server" name:"server" placeholder:"URL" help:"A controller's admin URL (https://host:8900) to join the cluster through on first start." default:""`
	Token          string        `yaml:"token" name:"token" secret:"true" help:"Join token (K10...::id.secret) used with --server on first start." default:""`
	Credential     string        `yaml:"credential" name:"credential" secret:"true" help:"Admin API bearer credential (hnc_...) for operations commands." default:""`
	CertValidity   time.Duration `yaml:"cert-validity" name:"cert-validity" help:"Lifetime of machine certificates the controllers issue." default:"8760h"`
	CACert         string        `yaml:"ca-cert" name:"ca-cert" help:"Cluster CA certificate for clients." default:"(data-dir/pki/ca.crt)"`

	EtcdClientPort int `yaml:"etcd-client-port" name:"etcd-client-port" help:"etcd client port." default:"2379"`
	EtcdPeerPort   int `yaml:"etcd-peer-port" name:"etcd-peer-port" help:"etcd peer port." default:"2380"`
	AdminPort      int `yaml:"admin-port" name:"admin-port" help:"Controller admin API port." default:"8900"`
	AgentPort      int `yaml:"agent-port" name:"agent-port" help:"Agent API port." default:"8901"`
	DatanodePort   int `yaml:"datanode-port" name:"datanode-port" help:"Datanode chunk API port." default:"8911"`
	S3Port         int `yaml:"s3-port" name:"s3-port" help:"Coordinator S3 API port." default:"9000"`
	ProxyHTTPSPort int `yaml:"proxy-https-port" name:"proxy-https-port" help:"Proxy HTTPS port." default:"8443"`
	ProxyHTTPPort  int `yaml:"proxy-http-port" name:"proxy-http-port" help:"Proxy HTTP port (redirects to HTTPS)." default:"8080"`

	ProxyUpstreams      []string      `yaml:"proxy-upstreams" name:"proxy-upstreams" sep:"," placeholder:"ID=URL,..." help:"Proxy: a fixed upstream list (id=https://host:port) instead of the coordinators registered in etcd." default:""`
	ProxyNames          []string      `yaml:"proxy-names" name:"proxy-names" sep:"," placeholder:"NAME,..." help:"Proxy: the DNS names and IPs clients reach it at; it gets a certificate for each." default:"(address and name)"`
	ProxyCertFile       string        `yaml:"proxy-cert-file" name:"proxy-cert-file" help:"Proxy: PEM certificate chain to serve instead of managed certificates (with proxy-key-file)." default:""`
	ProxyKeyFile        string        `yaml:"proxy-key-file" name:"proxy-key-file" help:"Proxy: PEM private key of proxy-cert-file." default:""`
	ProxyACMEDirectory  string        `yaml:"proxy-acme-directory" name:"proxy-acme-directory" placeholder:"URL" help:"Proxy: ACME directory to get the proxy-names certificates from (default: the cluster CA signs them)." default:""`
	ProxyACMEEmail      string        `yaml:"proxy-acme-email" name:"proxy-acme-email" help:"Proxy: contact e-mail of the ACME account." default:""`
	ProxyTrusted        []string      `yaml:"proxy-trusted" name:"proxy-trusted" sep:"," placeholder:"CIDR,..." help:"Proxy: load balancers in front of it whose X-Forwarded-For and PROXY protocol headers are believed." default:""`
	ProxyAffinityHeader string        `yaml:"proxy-affinity-header" name:"proxy-affinity-header" help:"Proxy: request header that keys the session when a request carries no pin (default: the client address)." default:""`
	ProxyAccessLog      bool          `yaml:"proxy-access-log" name:"proxy-access-log" help:"Proxy: log one line per request." default:"false"`
	ProxyHealthInterval time.Duration `yaml:"proxy-health-interval" name:"proxy-health-interval" help:"Proxy: how often each upstream's /readyz is checked." default:"1s"`
	ProxyHealthTimeout  time.Duration `yaml:"proxy-health-timeout" name:"proxy-health-timeout" help:"Proxy: timeout of one upstream check." default:"1s"`
	ProxyHealthFall     int           `yaml:"proxy-health-fall" name:"proxy-health-fall" help:"Proxy: consecutive failed checks that eject an upstream." default:"2"`
	ProxyHealthRise     int           `yaml:"proxy-health-rise" name:"proxy-health-rise" help:"Proxy: consecutive good checks that re-admit an upstream." default:"2"`

	HeartbeatInterval  time.Duration `yaml:"heartbeat-interval" name:"heartbeat-interval" help:"etcd Raft heartbeat interval." default:"100ms"`
	ElectionTimeout    time.Duration `yaml:"election-timeout" name:"election-timeout" help:"etcd Raft election timeout." default:"1s"`
	LeaderTTL          time.Duration `yaml:"leader-ttl" name:"leader-ttl" help:"Session TTL of the active master and of role registrations." default:"3s"`
	LeaderProbe        time.Duration `yaml:"leader-probe" name:"leader-probe" help:"How often standby controllers probe the active master; 0 disables probing." default:"250ms"`
	EtcdQuotaBytes     int64         `yaml:"etcd-quota-bytes" name:"etcd-quota-bytes" help:"etcd backend quota in bytes." default:"8589934592"`
	EtcdCompactionKeep string        `yaml:"etcd-compaction-retention" name:"etcd-compaction-retention" help:"etcd periodic auto-compaction retention." default:"10m"`
	ShutdownTimeout    time.Duration `yaml:"shutdown-timeout" name:"shutdown-timeout" help:"How long each role may drain on SIGTERM." default:"10s"`

	Zone              string        `yaml:"zone" name:"zone" help:"This machine's zone or rack label; placement spreads replicas across zones." default:""`
	Replicas          int           `yaml:"replicas" name:"replicas" help:"Replication factor: each chunk is stored on this many distinct machines (a bucket may override it)." default:"2"`
	ChunkSize         int64         `yaml:"chunk-size" name:"chunk-size" help:"Objects are cut into chunks of this many bytes (64 KiB to 64 MiB)." default:"8388608"`
	InlineMax         Size          `yaml:"inline-max" name:"inline-max" help:"Objects of at most this many bytes written whole (PUT, POST, copy) are kept in their metadata record in etcd instead of chunks on datanodes (0: never; at most 64KiB)." default:"4KiB"`
	CoordinatorMemory int64         `yaml:"coordinator-memory" name:"coordinator-memory" help:"Bytes a coordinator may hold in write buffers; more concurrent writes wait." default:"536870912"`
	GCGrace           time.Duration `yaml:"gc-grace" name:"gc-grace" help:"How long chunks of deleted or overwritten objects are kept for reads already under way." default:"5m"`
	WriteTimeout      time.Duration `yaml:"write-timeout" name:"write-timeout" help:"A write whose intent has not been refreshed for this long is abandoned and its chunks collected." default:"1h"`
	RepairGrace       time.Duration `yaml:"repair-grace" name:"repair-grace" help:"A datanode silent this long is dead: its replicas are re-created elsewhere (a wiped or replaced store, a damaged replica and a drained machine need no wait)." default:"5m"`
	RepairRate        Size          `yaml:"repair-rate" name:"repair-rate" help:"Bytes per second one datanode may send or receive for repair, drain and rebalance." default:"100MiB"`
	Capacity          Size          `yaml:"capacity" name:"capacity" help:"Datanode: bytes its chunks may take (0: the whole filesystem); it reports the smaller of this and its filesystem's size, and placement and rebalance use that." default:"0"`
	RebalanceAuto     bool          `yaml:"rebalance-auto" name:"rebalance-auto" help:"The active master rebalances by itself when machines differ in used space by more than 10 points and nothing needs repair (a machine joined, say); off: only hanode rebalance apply moves data." default:"false"`
	ScrubInterval     time.Duration `yaml:"scrub-interval" name:"scrub-interval" help:"Every chunk on every datanode is verified against its checksums at least this often." default:"168h"`
	ScrubRate         Size          `yaml:"scrub-rate" name:"scrub-rate" help:"Bytes per second one datanode may read for scrubbing (client I/O first)." default:"50MiB"`
	MultipartExpiry   time.Duration `yaml:"multipart-expiry" name:"multipart-expiry" help:"A multipart upload neither completed nor aborted this long after it began is aborted and its parts collected." default:"168h"`
	S3Region          string        `yaml:"s3-region" name:"s3-region" help:"Region name in S3 signatures." default:"us-east-1"`
	S3Domains         []string      `yaml:"s3-domains" name:"s3-domains" sep:"," placeholder:"DOMAIN,..." help:"Domains for virtual-host style S3 requests (BUCKET.DOMAIN); path style always works." default:""`
	RootAccessKey     string        `yaml:"root-access-key" name:"root-access-key" help:"Access key of the S3 root user (default: from data-dir/credentials)." default:""`
	RootSecretKey     string        `yaml:"root-secret-key" name:"root-secret-key" secret:"true" help:"Secret key of the S3 root user." default:""`

	LogFormat string `yaml:"log-format" name:"log-format" help:"Log format: text or json." default:"text"`
	LogLevel  string `yaml:"log-level" name:"log-level" help:"Log level: debug, info, warn or error." default:"info"`
}

// Default returns the defaults with derived values left empty; Derive fills them.
func Default() *Config {
	c := &Config{}
	for _, k := range keys() {
		def := k.field.Tag.Get("default")
		if strings.HasPrefix(def, "(") { // derived later
			continue
		}
		if err := k.setString(c, def); err != nil {
			panic(fmt.Sprintf("config: bad default for %s: %v", k.name, err)) // programming error
		}
	}
	return c
}

// Derive fills the values whose default depends on other keys. It is idempotent.
func (c *Config) Derive() {
	if c.Name == "" {
		c.Name = hostname()
	}
	if c.BindAddress == "" {
		c.BindAddress = c.Address
	}
	if len(c.InitialCluster) == 0 && len(c.Join) == 0 && !c.Rejoin && c.Server == "" {
		c.InitialCluster = []string{c.Name + "=" + c.URL(c.Address, c.EtcdPeerPort)}
	}
	if len(c.EtcdEndpoints) == 0 {
		if c.Has(RoleController) {
			c.EtcdEndpoints = []string{c.URL(c.Address, c.EtcdClientPort)}
		} else {
			for _, p := range c.initialPeers() {
				if u, err := url.Parse(p.url); err == nil {
					c.EtcdEndpoints = append(c.EtcdEndpoints, c.URL(u.Hostname(), c.EtcdClientPort))
				}
			}
		}
	}
	if len(c.Controllers) == 0 {
		c.Controllers = []string{c.URL(c.Address, c.AdminPort)}
	}
	if c.CACert == "" {
		c.CACert = filepath.Join(c.DataDir, "pki", "ca.crt")
	}
}

// URL is https://host:port with IPv6 hosts bracketed.
func (c *Config) URL(host string, port int) string {
	return "https://" + net.JoinHostPort(host, fmt.Sprint(port))
}

// RolePort is the port of a role's own HTTPS listener (the controller's is the admin API).
func (c *Config) RolePort(role string) int {
	switch role {
	case RoleController:
		return c.AdminPort
	case RoleDatanode:
		return c.DatanodePort
	case RoleCoordinator:
		return c.S3Port
	case RoleProxy:
		return c.ProxyHTTPSPort
	default:
		return c.AgentPort
	}
}

// Listen is the bind address for port.
func (c *Config) Listen(port int) string {
	return net.JoinHostPort(c.BindAddress, fmt.Sprint(port))
}

// Roles returns the roles to run, "all" expanded, in start order.
func (c *Config) Roles() []string {
	var out []string
	for _, r := range AllRoles {
		if c.Has(r) {
			out = append(out, r)
		}
	}
	return out
}

// Has reports whether role r is configured (directly or through "all").
func (c *Config) Has(r string) bool {
	return slices.Contains(c.Role, r) || slices.Contains(c.Role, RoleAll)
}

// RoleDir is a role's own subfolder of the data dir.
func (c *Config) RoleDir(role string) string { return filepath.Join(c.DataDir, role) }

// PKIDir holds the CA certificate and this machine's certificate.
func (c *Config) PKIDir() string { return filepath.Join(c.DataDir, "pki") }

// Peer is one bootstrap controller.
type Peer struct{ Name, PeerURL string }

// Peers parses InitialCluster. Validate has already rejected malformed entries.
func (c *Config) Peers() []Peer {
	var out []Peer
	for _, p := range c.initialPeers() {
		out = append(out, Peer{Name: p.name, PeerURL: p.url})
	}
	return out
}

type peerEntry struct{ name, url string }

func (c *Config) initialPeers() []peerEntry {
	var out []peerEntry
	for _, e := range c.InitialCluster {
		name, u, _ := strings.Cut(strings.TrimSpace(e), "=")
		out = append(out, peerEntry{name, u})
	}
	return out
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// Check checks every key and returns the first problem as an error naming the key and what is
// allowed. Call it after Derive.
func (c *Config) Check() error {
	if len(c.Role) == 0 {
		return keyErr("role", "", "at least one of controller, datanode, coordinator, proxy, agent, all")
	}
	for _, r := range c.Role {
		if r != RoleAll && !slices.Contains(AllRoles, r) {
			return keyErr("role", r, "controller, datanode, coordinator, proxy, agent, all (comma-separated)")
		}
	}
	if !nameRE.MatchString(c.Name) {
		return keyErr("name", c.Name, "lower-case letters, digits, '-' and '.', 1-63 characters, starting and ending with a letter or digit")
	}
	if err := checkHost("address", c.Address); err != nil {
		return err
	}
	if c.BindAddress != "" && c.BindAddress != "0.0.0.0" && c.BindAddress != "::" {
		if err := checkHost("bind-address", c.BindAddress); err != nil {
			return err
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return keyErr("data-dir", c.DataDir, "a directory path")
	}
	if !nameRE.MatchString(c.ClusterName) {
		return keyErr("cluster-name", c.ClusterName, "lower-case letters, digits, '-' and '.'")
	}
	seen := map[string]bool{}
	for _, e := range c.InitialCluster {
		name, u, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok || !nameRE.MatchString(name) {
			return keyErr("initial-cluster", e, "name=https://host:port entries, comma-separated")
		}
		if err := checkURL("initial-cluster", u); err != nil {
			return err
		}
		if seen[name] {
			return keyErr("initial-cluster", e, "each controller name once")
		}
		seen[name] = true
	}
	if c.Has(RoleController) && len(c.Join) == 0 && !c.Rejoin && c.Server == "" && !seen[c.Name] {
		return keyErr("initial-cluster", strings.Join(c.InitialCluster, ","), fmt.Sprintf("a list that includes this controller %q", c.Name))
	}
	if c.Server != "" {
		if err := checkURL("server", c.Server); err != nil {
			return err
		}
	}
	if c.Token != "" && c.Server == "" {
		return keyErr("server", "", "a controller URL: token is set, and a token is only used to join through a server")
	}
	if c.CertValidity < time.Minute {
		return keyErr("cert-validity", c.CertValidity.String(), "a duration of at least 1m")
	}
	for _, list := range []struct {
		key  string
		urls []string
	}{{"join", c.Join}, {"etcd-endpoints", c.EtcdEndpoints}, {"controllers", c.Controllers}} {
		for _, u := range list.urls {
			if err := checkURL(list.key, u); err != nil {
				return err
			}
		}
	}
	ports := map[int]string{}
	for _, p := range []struct {
		key  string
		port int
	}{
		{"etcd-client-port", c.EtcdClientPort}, {"etcd-peer-port", c.EtcdPeerPort}, {"admin-port", c.AdminPort},
		{"agent-port", c.AgentPort}, {"datanode-port", c.DatanodePort}, {"s3-port", c.S3Port},
		{"proxy-https-port", c.ProxyHTTPSPort}, {"proxy-http-port", c.ProxyHTTPPort},
	} {
		if p.port < 1 || p.port > 65535 {
			return keyErr(p.key, fmt.Sprint(p.port), "a port from 1 to 65535")
		}
		if other, dup := ports[p.port]; dup {
			return keyErr(p.key, fmt.Sprint(p.port), "a port not already used by "+other)
		}
		ports[p.port] = p.key
	}
	if err := c.checkProxy(); err != nil {
		return err
	}
	if c.HeartbeatInterval < 10*time.Millisecond {
		return keyErr("heartbeat-interval", c.HeartbeatInterval.String(), "a duration of at least 10ms")
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		return keyErr("election-timeout", c.ElectionTimeout.String(), "at least 5 x heartbeat-interval ("+(5*c.HeartbeatInterval).String()+")")
	}
	if c.LeaderTTL < time.Second {
		return keyErr("leader-ttl", c.LeaderTTL.String(), "a duration of at least 1s")
	}
	if c.LeaderProbe < 0 {
		return keyErr("leader-probe", c.LeaderProbe.String(), "a duration >= 0")
	}
	if c.EtcdQuotaBytes < 64<<20 {
		return keyErr("etcd-quota-bytes", fmt.Sprint(c.EtcdQuotaBytes), "at least 67108864 (64 MiB)")
	}
	if _, err := time.ParseDuration(c.EtcdCompactionKeep); err != nil {
		return keyErr("etcd-compaction-retention", c.EtcdCompactionKeep, "a duration such as 10m or 1h")
	}
	if c.ShutdownTimeout <= 0 {
		return keyErr("shutdown-timeout", c.ShutdownTimeout.String(), "a positive duration")
	}
	if c.Zone != "" && !nameRE.MatchString(c.Zone) {
		return keyErr("zone", c.Zone, "lower-case letters, digits, '-' and '.'")
	}
	if c.Replicas < 1 || c.Replicas > 7 {
		return keyErr("replicas", fmt.Sprint(c.Replicas), "1 to 7")
	}
	if c.ChunkSize < 64<<10 || c.ChunkSize > 64<<20 {
		return keyErr("chunk-size", fmt.Sprint(c.ChunkSize), "65536 to 67108864 bytes")
	}
	if c.InlineMax < 0 || c.InlineMax > 64<<10 {
		return keyErr("inline-max", c.InlineMax.String(), "0 (never) to 64KiB")
	}
	if c.CoordinatorMemory < 2*c.ChunkSize {
		return keyErr("coordinator-memory", fmt.Sprint(c.CoordinatorMemory), fmt.Sprintf("at least two chunks (%d bytes)", 2*c.ChunkSize))
	}
	if c.GCGrace < 0 {
		return keyErr("gc-grace", c.GCGrace.String(), "a duration >= 0")
	}
	if c.WriteTimeout < time.Second {
		return keyErr("write-timeout", c.WriteTimeout.String(), "a duration of at least 1s")
	}
	if c.RepairGrace < time.Second {
		return keyErr("repair-grace", c.RepairGrace.String(), "a duration of at least 1s")
	}
	if c.RepairRate < 64<<10 {
		return keyErr("repair-rate", c.RepairRate.String(), "at least 64KiB (bytes per second)")
	}
	if c.Capacity != 0 && c.Capacity < 1<<20 {
		return keyErr("capacity", c.Capacity.String(), "0 (the filesystem's size) or at least 1MiB")
	}
	if c.ScrubInterval < time.Second {
		return keyErr("scrub-interval", c.ScrubInterval.String(), "a duration of at least 1s")
	}
	if c.ScrubRate < 64<<10 {
		return keyErr("scrub-rate", c.ScrubRate.String(), "at least 64KiB (bytes per second)")
	}
	if c.MultipartExpiry < time.Minute {
		return keyErr("multipart-expiry", c.MultipartExpiry.String(), "a duration of at least 1m")
	}
	if (c.RootAccessKey == "") != (c.RootSecretKey == "") {
		return keyErr("root-access-key", c.RootAccessKey, "set together with root-secret-key, or neither")
	}
	if c.RootAccessKey != "" && (len(c.RootAccessKey) < 3 || len(c.RootSecretKey) < 8) {
		return keyErr("root-secret-key", "(redacted)", "an access key of at least 3 and a secret key of at least 8 characters")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return keyErr("log-format", c.LogFormat, "text or json")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		return keyErr("log-level", c.LogLevel, "debug, info, warn or error")
	}
	return nil
}

// Warnings are problems that do not stop hanode but that an operator must hear about.
func (c *Config) Warnings() []string {
	var w []string
	if n := len(c.InitialCluster); c.Has(RoleController) && n > 1 && n%2 == 0 {
		w = append(w, fmt.Sprintf("initial-cluster has %d controllers, an even count: it tolerates the loss of %d, the same as %d controllers would; use an odd count", n, (n-1)/2, n-1))
	}
	return w
}

// KeyError is a bad configuration value; the CLI turns it into exit status 2.
type KeyError struct{ Key, Value, Allowed string }

func (e *KeyError) Error() string {
	return fmt.Sprintf("invalid value %q for %s: allowed: %s", e.Value, e.Key, e.Allowed)
}

func keyErr(key, value, allowed string) error {
	return &KeyError{Key: key, Value: value, Allowed: allowed}
}

func checkHost(key, h string) error {
	if h == "" || strings.ContainsAny(h, " /:") && net.ParseIP(h) == nil {
		return keyErr(key, h, "an IP address or host name")
	}
	return nil
}

func checkURL(key, s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return keyErr(key, s, "https://host:port URLs")
	}
	return nil
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "hanode"
	}
	h = strings.ToLower(strings.SplitN(h, ".", 2)[0])
	if !nameRE.MatchString(h) {
		return "hanode"
	}
	return h
}
