package etcdembed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver"
	etcderrors "go.etcd.io/etcd/server/v3/etcdserver/errors"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hanode/hanode/meta"
)

const (
	corruptCheckTime = 5 * time.Minute
	promoteInterval  = 1 * time.Second
	probeInterval    = 2 * time.Second
	probeTimeout     = 1 * time.Second
	warnInterval     = 5 * time.Second
)

// Member is a running embedded etcd member.
type Member struct {
	cfg   Config
	log   *slog.Logger
	zl    *zap.Logger
	etcd  *embed.Etcd
	tls   *tls.Config
	names map[string]string // normalized peer URL -> name, for members that have not published yet

	// joinedAsLearner covers the window after a fresh join in which the
	// local membership (built from the initial-cluster string) still says
	// "voter" until the AddLearner entry is applied.
	joinedAsLearner bool

	ctx    context.Context // cancelled by Close; bounds background work
	cancel context.CancelFunc
	closed atomic.Bool
	once   sync.Once
	wg     sync.WaitGroup
	errc   chan error

	mu          sync.Mutex
	probed      bool
	unreachable []Peer // from the last peer probe
}

// Start starts the member and returns once its listeners are up. It does
// not wait for quorum: use Ready/ReadyNotify. ctx bounds only the startup
// work (lost-data probe, join/rejoin membership calls).
func Start(ctx context.Context, cfg Config) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "etcd", "member", cfg.Name)

	tlsInfo := transport.TLSInfo{
		CertFile:       cfg.TLS.CertFile,
		KeyFile:        cfg.TLS.KeyFile,
		TrustedCAFile:  cfg.TLS.CAFile,
		ClientCertAuth: true,
	}
	tlsCfg, err := tlsInfo.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS files (ca %s, cert %s, key %s): %w", cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile, err)
	}

	mk, err := readMarker(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if mk != nil && (mk.ClusterToken != cfg.ClusterToken || mk.Name != cfg.Name) {
		return nil, fmt.Errorf("data dir %s belongs to cluster %q member %q, not cluster %q member %q",
			cfg.Dir, mk.ClusterToken, mk.Name, cfg.ClusterToken, cfg.Name)
	}

	zl, err := newZapLogger(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("etcd member %s: build zap logger: %w", cfg.Name, err)
	}

	ec, err := embedConfig(cfg, tlsInfo, zl)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, p := range cfg.InitialCluster {
		names[normURL(p.PeerURL)] = p.Name
	}
	m := &Member{cfg: cfg, log: log, zl: zl, tls: tlsCfg, names: names, errc: make(chan error, 1)}

	hasData := wal.Exist(filepath.Join(cfg.Dir, "member", "wal"))
	switch {
	case hasData && cfg.Rejoin:
		return nil, fmt.Errorf("controller %s: Rejoin is only for a member whose data was lost, but data dir %s holds member data; start without --rejoin", cfg.Name, cfg.Dir)
	case hasData:
		// etcd ignores the initial cluster for an initialized member; set
		// self only so that embed's validation is satisfied.
		ec.ClusterState = embed.ClusterStateFlagExisting
		ec.InitialCluster = cfg.Name + "=" + cfg.PeerURL
		log.Info("restarting etcd member from existing data", "dir", cfg.Dir)
	case cfg.Rejoin:
		endpoints, err := m.rejoinEndpoints(ctx)
		if err != nil {
			return nil, err
		}
		if err := m.removeStale(ctx, endpoints); err != nil {
			return nil, err
		}
		if err := m.join(ctx, endpoints, ec); err != nil {
			return nil, err
		}
	case len(cfg.Join) > 0:
		if err := m.join(ctx, cfg.Join, ec); err != nil {
			return nil, err
		}
	default:
		if err := m.checkLostData(ctx); err != nil {
			return nil, err
		}
		ec.ClusterState = embed.ClusterStateFlagNew
		ec.InitialCluster = initialClusterString(cfg.InitialCluster)
		log.Info("bootstrapping new etcd member", "dir", cfg.Dir, "initial_cluster", ec.InitialCluster)
	}

	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir %s: %w", cfg.Dir, err)
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s (dir %s): %w", cfg.Name, cfg.Dir, err)
	}
	m.etcd = e
	// Written only after etcd accepted the dir, so a failed first start with
	// a wrong token does not pin the dir to that token.
	if mk == nil {
		if err := writeMarker(cfg.Dir, marker{ClusterToken: cfg.ClusterToken, Name: cfg.Name, Created: time.Now().UTC()}); err != nil {
			e.Close()
			return nil, err
		}
	}

	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(3)
	go m.watchErrors()
	go m.promoteLoop()
	go m.probeLoop()
	return m, nil
}

// ClientKeepAlive is how often hanode's etcd clients ping their member over gRPC, and how long
// they wait for the answer before dropping the connection.
const ClientKeepAlive = time.Second

// embedConfig maps Config onto etcd's embed.Config. ClusterState and
// InitialCluster are filled in by Start.
func embedConfig(cfg Config, tlsInfo transport.TLSInfo, zl *zap.Logger) (*embed.Config, error) {
	mustURL := func(s string) url.URL { u, _ := url.Parse(s); return *u } // validated already
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{mustURL(cfg.ListenClientURL)}
	ec.AdvertiseClientUrls = []url.URL{mustURL(cfg.ClientURL)}
	ec.ListenPeerUrls = []url.URL{mustURL(cfg.ListenPeerURL)}
	ec.AdvertisePeerUrls = []url.URL{mustURL(cfg.PeerURL)}
	// etcd's HTTP endpoints (/health, /metrics, /version, /debug/vars) get a listener of their
	// own on a loopback port nobody is told about, with the client URL's TLS and client
	// certificate check, which leaves the client URL to gRPC alone: etcd then
	// serves it with gRPC's own server. Sharing one TLS port, it would hand every call through
	// net/http's HTTP/2 server to gRPC's ServeHTTP: without that, the members use 6-20 % less
	// CPU per S3 request (docs/benchmarks.md). hanode reads none of those endpoints.
	ec.ListenClientHttpUrls = []url.URL{{Scheme: "https", Host: "127.0.0.1:0"}}
	ec.ListenMetricsUrls = nil
	ec.InitialClusterToken = cfg.ClusterToken
	ec.ClientTLSInfo = tlsInfo
	ec.PeerTLSInfo = tlsInfo
	ec.TickMs = uint(cfg.HeartbeatInterval / time.Millisecond)
	ec.ElectionMs = uint(cfg.ElectionTimeout / time.Millisecond)
	ec.QuotaBackendBytes = cfg.QuotaBackendBytes
	// An object's record lists its chunks (~63 bytes each) in one value, and replacing an object
	// writes the new record and the old one's garbage record in one transaction: 8 MiB carries
	// a 512 GiB object at the default 8 MiB chunk size (etcd's default 1.5 MiB, under 100 GiB).
	// The metadata store checks its transactions against the same limit before sending them.
	ec.MaxRequestBytes = meta.MaxRequestBytes
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = cfg.AutoCompactionRetention
	ec.CorruptCheckTime = corruptCheckTime
	// Clients ping every second (internal/service) so that a frozen member's connection is
	// dropped within about two seconds and their calls move to a live member; etcd's default
	// would answer such pings with GOAWAY (too many pings).
	ec.GRPCKeepAliveMinTime = ClientKeepAlive / 2
	ec.PreVote = true
	ec.StrictReconfigCheck = true
	ec.EnableGRPCGateway = false
	ec.Metrics = "basic"
	ec.Logger = "zap"
	ec.LogLevel = "warn"
	ec.LogOutputs = []string{"stderr"}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)
	// NewConfig returns a fresh gate per config, so this mutates no shared state.
	if err := ec.ServerFeatureGate.(featuregate.MutableFeatureGate).Set("InitialCorruptCheck=true,CompactHashCheck=true"); err != nil {
		return nil, fmt.Errorf("etcd feature gates: %w", err)
	}
	return ec, nil
}

// newZapLogger builds etcd's logger: JSON on stderr at warn, because etcd
// is very chatty at info.
func newZapLogger(name string) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zapcore.WarnLevel)
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	// Stack traces help etcd's developers, not an operator reading the log.
	zc.DisableStacktrace = true
	lg, err := zc.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietShutdown{c} }))
	if err != nil {
		return nil, err
	}
	return lg.With(zap.String("component", "etcd"), zap.String("member", name)), nil
}

// quietShutdown drops the errors etcd logs for every listener and server it closes on a clean
// stop ("http: Server closed", "use of closed network connection"), which would otherwise end
// each graceful shutdown with error lines.
type quietShutdown struct{ zapcore.Core }

func (q quietShutdown) With(fields []zapcore.Field) zapcore.Core {
	return quietShutdown{q.Core.With(fields)}
}

func (q quietShutdown) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if q.Enabled(e.Level) {
		return ce.AddCore(e, q)
	}
	return ce
}

// benign tells etcd warnings about settings hanode makes on purpose: one port for HTTP and gRPC,
// and etcd's simple auth tokens (etcd auth is unused; clients authenticate with certificates).
func benign(msg string) bool {
	switch msg {
	case "Running http and grpc server on single port. This is not recommended for production.",
		"simple token is not cryptographically signed":
		return true
	}
	return false
}

func (q quietShutdown) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if benign(e.Message) {
		return nil
	}
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && (errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed)) {
			return nil
		}
	}
	return q.Core.Write(e, fields)
}

func initialClusterString(peers []Peer) string {
	parts := make([]string, 0, len(peers))
	for _, p := range peers {
		parts = append(parts, p.Name+"="+p.PeerURL)
	}
	return strings.Join(parts, ",")
}

// Ready returns nil when this member has applied its publish and the
// cluster has a leader; otherwise an error explaining what is missing.
func (m *Member) Ready() error {
	if m.closed.Load() {
		return errors.New("etcd member closed")
	}
	s := m.etcd.Server
	select {
	case <-s.StopNotify():
		return errors.New("etcd server stopped")
	default:
	}
	lead := s.Lead()
	if lead == 0 {
		return m.noQuorumErr("")
	}
	if lead != uint64(s.MemberID()) {
		// A partitioned follower keeps its old leader (pre-vote does not
		// reset it), so also trust our own reachability probe.
		if p, ok := m.unreachablePeer(lead); ok {
			return m.noQuorumErr(fmt.Sprintf("leader %s (%s) unreachable", p.Name, p.PeerURL))
		}
	}
	select {
	case <-s.ReadyNotify():
	default:
		return fmt.Errorf("catching up: leader %x elected, this member has not published itself yet", lead)
	}
	if s.IsLearner() {
		return errors.New("learner, catching up (waiting to be promoted to a voting member)")
	}
	return nil
}

func (m *Member) noQuorumErr(detail string) error {
	m.mu.Lock()
	probed, un := m.probed, append([]Peer(nil), m.unreachable...)
	m.mu.Unlock()
	if len(un) == 0 {
		if detail != "" {
			return fmt.Errorf("no quorum: %s", detail)
		}
		if !probed {
			return errors.New("no quorum: no raft leader yet (peers not probed yet)")
		}
		return errors.New("no quorum: no raft leader yet (all peers reachable, election in progress)")
	}
	return fmt.Errorf("no quorum: cannot reach peers %s", formatPeers(un))
}

func formatPeers(ps []Peer) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprintf("%s (%s)", p.Name, p.PeerURL)
	}
	return strings.Join(s, ", ")
}

func (m *Member) unreachablePeer(id uint64) (Peer, bool) {
	mem := m.etcd.Server.Cluster().Member(typesID(id))
	if mem == nil || len(mem.PeerURLs) == 0 {
		return Peer{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.unreachable {
		for _, u := range mem.PeerURLs {
			if normURL(u) == normURL(p.PeerURL) {
				return p, true
			}
		}
	}
	return Peer{}, false
}

// ReadyNotify is closed once this member has published itself to the
// cluster (etcd's ReadyNotify). It does not track later quorum loss.
func (m *Member) ReadyNotify() <-chan struct{} { return m.etcd.Server.ReadyNotify() }

// IsLearner reports whether this member is a non-voting learner.
func (m *Member) IsLearner() bool {
	s := m.etcd.Server
	select {
	case <-s.ReadyNotify():
	default:
		if m.joinedAsLearner {
			return true
		}
	}
	return s.IsLearner()
}

// ID is this member's raft ID.
func (m *Member) ID() uint64 { return uint64(m.etcd.Server.MemberID()) }

// Server exposes the etcd server for leader checks.
func (m *Member) Server() *etcdserver.EtcdServer { return m.etcd.Server }

// Err delivers at most one fatal error of the running member; it is closed
// after Close returns.
func (m *Member) Err() <-chan error { return m.errc }

// Close stops the member gracefully (a leader first hands leadership over)
// and waits for it. Idempotent; concurrent callers wait for the first.
func (m *Member) Close() {
	m.once.Do(func() {
		m.closed.Store(true)
		m.cancel()
		m.etcd.Close()
		m.wg.Wait()
		_ = m.zl.Sync()
		close(m.errc)
		m.log.Info("etcd member stopped")
	})
}

func (m *Member) fatal(err error) {
	m.log.Error("etcd member failed", "err", err)
	select {
	case m.errc <- err:
	default:
	}
}

func (m *Member) watchErrors() {
	defer m.wg.Done()
	select {
	case err, ok := <-m.etcd.Err():
		if ok && err != nil && !m.closed.Load() {
			m.fatal(fmt.Errorf("etcd member %s: %w", m.cfg.Name, err))
		}
	case <-m.etcd.Server.StopNotify():
		if !m.closed.Load() {
			m.fatal(fmt.Errorf("etcd member %s: server stopped unexpectedly (removed from the cluster or fatal raft error)", m.cfg.Name))
		}
	case <-m.ctx.Done():
	}
}

// promoteLoop asks for promotion while this member is a learner. The leader
// refuses ("learner not in sync") until the learner has caught up, so retry.
// It runs on every start, so a member restarted as a learner still gets
// promoted.
func (m *Member) promoteLoop() {
	defer m.wg.Done()
	s := m.etcd.Server
	t := time.NewTicker(promoteInterval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-s.StopNotify():
			return
		case <-t.C:
		}
		select {
		case <-s.ReadyNotify():
		default:
			continue // membership not caught up yet; IsLearner may be stale
		}
		if !s.IsLearner() {
			return // voters never turn back into learners
		}
		if m.cfg.noPromote {
			continue
		}
		ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
		err := m.promoteViaLeader(ctx)
		cancel()
		switch {
		case err == nil:
			m.log.Info("promoted from learner to voting member")
			return
		case errors.Is(err, etcderrors.ErrLearnerNotReady), errors.Is(err, rpctypes.ErrMemberLearnerNotReady), errors.Is(err, errNoLeaderYet):
			m.log.Debug("learner not caught up yet, will retry promotion")
		case m.ctx.Err() != nil:
			return
		default:
			if time.Since(lastWarn) >= warnInterval {
				lastWarn = time.Now()
				m.log.Warn("learner promotion failed, retrying", "err", err)
			}
		}
	}
}

// errNoLeaderYet: the learner does not know the leader yet.
var errNoLeaderYet = errors.New("no etcd leader known yet")

// promoteViaLeader asks the Raft leader, as a client with this machine's certificate, to promote
// this learner. Not the server's own PromoteMember: with etcd's authentication on, promotion
// needs a root user, which etcd takes from the client certificate of a gRPC call, and neither
// an in-process call nor the learner's forwarding to the leader over the peer port carries one.
// Only the leader can tell whether the learner caught up, so it is asked directly.
func (m *Member) promoteViaLeader(ctx context.Context) error {
	s := m.etcd.Server
	lead := s.Leader()
	if lead == 0 {
		return errNoLeaderYet
	}
	lm := s.Cluster().Member(lead)
	if lm == nil || len(lm.ClientURLs) == 0 {
		return errNoLeaderYet
	}
	cli, err := m.newClient(ctx, lm.ClientURLs)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.MemberPromote(ctx, uint64(s.MemberID())); err != nil {
		return fmt.Errorf("promote via the leader %s (%s): %w", lm.Name, strings.Join(lm.ClientURLs, ","), err)
	}
	return nil
}

// probeLoop periodically checks which peers answer on their peer URL, so
// Ready can name them and we can log them while there is no quorum.
func (m *Member) probeLoop() {
	defer m.wg.Done()
	var lastWarn time.Time
	for first := true; ; first = false {
		if !first {
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(probeInterval):
			}
		}
		un := m.probePeers()
		m.mu.Lock()
		m.probed, m.unreachable = true, un
		m.mu.Unlock()
		if len(un) > 0 && m.Ready() != nil && time.Since(lastWarn) >= warnInterval {
			lastWarn = time.Now()
			m.log.Warn("etcd member not ready, cannot reach peers", "peers", formatPeers(un), "ready", m.Ready().Error())
		}
	}
}

func (m *Member) probePeers() []Peer {
	s := m.etcd.Server
	self := s.MemberID()
	var peers []Peer
	for _, mem := range s.Cluster().Members() {
		if mem.ID == self || len(mem.PeerURLs) == 0 {
			continue
		}
		name := mem.Name
		if name == "" {
			name = m.names[normURL(mem.PeerURLs[0])]
		}
		if name == "" {
			name = mem.ID.String()
		}
		peers = append(peers, Peer{Name: name, PeerURL: mem.PeerURLs[0]})
	}
	hc := m.httpClient()
	defer hc.CloseIdleConnections()
	ok := make([]bool, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(m.ctx, probeTimeout)
			defer cancel()
			ok[i] = reachable(ctx, hc, p.PeerURL)
		}()
	}
	wg.Wait()
	var un []Peer
	for i, p := range peers {
		if !ok[i] {
			un = append(un, p)
		}
	}
	sort.Slice(un, func(i, j int) bool { return un[i].Name < un[j].Name })
	return un
}
