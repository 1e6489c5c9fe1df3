package etcdembed

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const readyTimeout = 20 * time.Second

func TestSingleMemberRestartKeepsData(t *testing.T) {
	tc := newTestCluster(t, 0, 1) // 127.0.77.1
	cfg := tc.cfg(1)

	m := tc.start(cfg)
	waitReady(t, readyTimeout, m)
	if m.IsLearner() {
		t.Fatal("single bootstrap member must not be a learner")
	}
	if m.ID() == 0 || m.Server().Leader() != m.Server().MemberID() {
		t.Fatalf("want self as leader, id %x leader %x", m.ID(), m.Server().Leader())
	}
	select {
	case <-m.ReadyNotify():
	default:
		t.Fatal("ReadyNotify not closed while Ready() == nil")
	}
	cli := tc.client(tc.clientURL(1))
	if _, err := cli.Put(ctxT(t), "k", "v1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	cli.Close()

	start := time.Now()
	m.Close()
	m.Close() // idempotent
	t.Logf("Close took %v", time.Since(start))
	if _, ok := <-m.Err(); ok {
		t.Fatal("Err() must be closed without error after a clean Close")
	}
	if m.Ready() == nil {
		t.Fatal("Ready() must fail after Close")
	}
	st, err := os.Stat(cfg.Dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, mode %v; want 0700", err, st.Mode().Perm())
	}
	mk, err := readMarker(cfg.Dir)
	if err != nil || mk == nil || mk.Name != "m1" || mk.ClusterToken != tc.token || mk.Created.IsZero() {
		t.Fatalf("marker: %+v, %v", mk, err)
	}

	// Restart from the same dir: "existing" semantics, even with a different
	// InitialCluster (etcd ignores it for an initialized member).
	cfg.InitialCluster = append(cfg.InitialCluster, Peer{Name: "ghost", PeerURL: "https://127.0.77.99:2380"})
	m2 := tc.start(cfg)
	waitReady(t, readyTimeout, m2)
	if m2.ID() != m.ID() {
		t.Fatalf("member ID changed across restart: %x -> %x", m.ID(), m2.ID())
	}
	cli = tc.client(tc.clientURL(1))
	resp, err := cli.Get(ctxT(t), "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("get after restart: %v %v", resp, err)
	}
}

// snapshotDir returns a comparable description of every file under dir.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %v", info.Mode(), info.ModTime().UnixNano())
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMarkerMismatchRefused(t *testing.T) {
	tc := newTestCluster(t, 4, 1) // 127.0.77.5
	cfg := tc.cfg(1)
	m := tc.start(cfg)
	waitReady(t, readyTimeout, m)
	m.Close()

	before := snapshotDir(t, cfg.Dir)

	other := cfg
	other.ClusterToken = "other"
	_, err := Start(ctxT(t), other)
	want := fmt.Sprintf(`data dir %s belongs to cluster %q member "m1", not cluster "other" member "m1"`, cfg.Dir, tc.token)
	if err == nil || err.Error() != want {
		t.Fatalf("token mismatch: got %v, want %q", err, want)
	}

	renamed := cfg
	renamed.Name = "m9"
	renamed.InitialCluster = []Peer{{Name: "m9", PeerURL: cfg.PeerURL}}
	_, err = Start(ctxT(t), renamed)
	if err == nil || !strings.Contains(err.Error(), `not cluster "`+tc.token+`" member "m9"`) {
		t.Fatalf("name mismatch: got %v", err)
	}

	after := snapshotDir(t, cfg.Dir)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("refused Start changed the data dir:\nbefore %v\nafter  %v", before, after)
	}

	// Validation failures must not create the dir either.
	bad := tc.cfg(1)
	bad.Dir = filepath.Join(t.TempDir(), "never")
	bad.PeerURL = "http://127.0.77.5:2380"
	if _, err := Start(ctxT(t), bad); err == nil || !strings.Contains(err.Error(), "PeerURL") {
		t.Fatalf("want PeerURL validation error, got %v", err)
	}
	if _, err := os.Stat(bad.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("validation failure created %s: %v", bad.Dir, err)
	}
}

func TestThreeMembersQuorum(t *testing.T) {
	tc := newTestCluster(t, 10, 3) // 127.0.77.11-13

	// One of three: Start returns promptly and Ready explains the missing quorum.
	t0 := time.Now()
	m1 := tc.start(tc.cfg(1))
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("Start blocked %v without quorum", d)
	}
	eventually(t, 10*time.Second, "no-quorum error naming m2 and m3", func() error {
		t1 := time.Now()
		err := m1.Ready()
		if d := time.Since(t1); d > 100*time.Millisecond {
			t.Fatalf("Ready() took %v", d)
		}
		if err == nil {
			t.Fatal("Ready() nil with 1 of 3 members")
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "no quorum: cannot reach peers ") ||
			!strings.Contains(msg, "m2 (https://127.0.77.12:2380)") || !strings.Contains(msg, "m3 (https://127.0.77.13:2380)") {
			return err
		}
		t.Logf("Ready() = %v", err)
		return nil
	})

	// Two of three form a quorum.
	m2 := tc.start(tc.cfg(2))
	waitReady(t, readyTimeout, m1, m2)

	// The third one joins the bootstrapped cluster; all agree on a leader.
	m3 := tc.start(tc.cfg(3))
	waitReady(t, readyTimeout, m3)
	ms := []*Member{m1, m2, m3}
	eventually(t, 10*time.Second, "common leader", func() error {
		lead := m1.Server().Lead()
		for _, m := range ms {
			if m.Ready() != nil || m.Server().Lead() != lead || lead == 0 {
				return fmt.Errorf("leaders %x %x %x", m1.Server().Lead(), m2.Server().Lead(), m3.Server().Lead())
			}
		}
		return nil
	})
	resp, err := tc.client(tc.clientURL(1)).MemberList(ctxT(t))
	if err != nil || len(resp.Members) != 3 {
		t.Fatalf("member list: %v %v", resp, err)
	}
	for _, mm := range resp.Members {
		if mm.IsLearner || len(mm.ClientURLs) == 0 {
			t.Fatalf("member %s: learner=%v clientURLs=%v", mm.Name, mm.IsLearner, mm.ClientURLs)
		}
	}
}

// memberState polls the member list for name and checks it is a started voter.
func votingMember(cli *clientv3.Client, name string) error {
	ctx, cancel := contextTimeout(3 * time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, mm := range resp.Members {
		if mm.Name == name {
			if mm.IsLearner {
				return fmt.Errorf("%s is still a learner", name)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not in member list (%d members)", name, len(resp.Members))
}

func TestLostDataRefusedThenRejoin(t *testing.T) {
	tc := newTestCluster(t, 20, 3) // 127.0.77.21-23
	m1, m2, m3 := tc.start(tc.cfg(1)), tc.start(tc.cfg(2)), tc.start(tc.cfg(3))
	waitReady(t, readyTimeout, m1, m2, m3)
	cli := tc.client(tc.clientURL(1), tc.clientURL(2))
	if _, err := cli.Put(ctxT(t), "before-loss", "x"); err != nil {
		t.Fatal(err)
	}
	oldID := m3.ID()

	m3.Close()
	if err := os.RemoveAll(tc.dir(3)); err != nil {
		t.Fatal(err)
	}

	_, err := Start(ctxT(t), tc.cfg(3))
	want := fmt.Sprintf("controller m3: data dir %s is empty but member m3 is already part of a running cluster; its data was lost. To recover, start it once with --rejoin (see docs/operations.md#lost-controller-data)", tc.dir(3))
	if err == nil || err.Error() != want {
		t.Fatalf("lost data: got %v\nwant %s", err, want)
	}
	if _, err := os.Stat(tc.dir(3)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused start created the dir: %v", err)
	}

	rc := tc.cfg(3)
	rc.Rejoin = true
	m3 = tc.start(rc)
	if m3.ID() == oldID {
		t.Fatal("rejoined member reused the removed member ID")
	}
	eventually(t, readyTimeout, "m3 promoted to voter", func() error { return votingMember(cli, "m3") })
	waitReady(t, readyTimeout, m3)
	if m3.IsLearner() {
		t.Fatal("m3 still reports learner")
	}
	resp, err := cli.MemberList(ctxT(t))
	if err != nil || len(resp.Members) != 3 {
		t.Fatalf("want 3 members after rejoin, got %v %v", resp, err)
	}

	// Data was replicated to the new m3: read from it alone, serializably.
	cli3 := tc.client(tc.clientURL(3))
	eventually(t, 10*time.Second, "key on m3", func() error {
		ctx, cancel := contextTimeout(2 * time.Second)
		defer cancel()
		g, err := cli3.Get(ctx, "before-loss", clientv3.WithSerializable())
		if err != nil {
			return err
		}
		if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "x" {
			return fmt.Errorf("got %v", g.Kvs)
		}
		return nil
	})

	// A second start with Rejoin on the now populated dir is refused.
	m3.Close()
	if _, err := Start(ctxT(t), rc); err == nil || !strings.Contains(err.Error(), "Rejoin") {
		t.Fatalf("Rejoin with data: got %v", err)
	}
}

func TestJoinAsLearnerIsPromoted(t *testing.T) {
	tc := newTestCluster(t, 30, 3) // 127.0.77.31-35
	m1, m2, m3 := tc.start(tc.cfg(1)), tc.start(tc.cfg(2)), tc.start(tc.cfg(3))
	waitReady(t, readyTimeout, m1, m2, m3)
	cli := tc.client(tc.clientURL(1), tc.clientURL(2), tc.clientURL(3))
	if _, err := cli.Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}

	c4 := tc.cfg(4)
	c4.InitialCluster = nil
	c4.Join = []string{tc.clientURL(1), tc.clientURL(2), tc.clientURL(3)}
	m4 := tc.start(c4)
	if !m4.IsLearner() {
		t.Fatal("a joining member must start as learner")
	}
	eventually(t, readyTimeout, "m4 promoted to voter", func() error { return votingMember(cli, "m4") })
	waitReady(t, readyTimeout, m4)
	if m4.IsLearner() {
		t.Fatal("m4 still reports learner")
	}
	cli4 := tc.client(tc.clientURL(4))
	g, err := cli4.Get(ctxT(t), "k")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v" {
		t.Fatalf("get via m4: %v %v", g, err)
	}

	// An unstarted learner entry with our peer URL (e.g. left by an
	// interrupted join) is reused, and a member restarted while still a
	// learner gets promoted by the restarted process.
	var id5 uint64
	eventually(t, readyTimeout, "add m5 learner by hand", func() error {
		ctx, cancel := contextTimeout(3 * time.Second)
		defer cancel()
		resp, err := cli.MemberAddAsLearner(ctx, []string{tc.peerURL(5)})
		if err != nil {
			return err
		}
		id5 = resp.Member.ID
		return nil
	})
	c5 := tc.cfg(5)
	c5.InitialCluster = nil
	c5.Join = []string{tc.clientURL(1)}
	c5.noPromote = true
	m5 := tc.start(c5)
	if m5.ID() != id5 {
		t.Fatalf("m5 did not reuse the unstarted entry: id %x, want %x", m5.ID(), id5)
	}
	eventually(t, readyTimeout, "m5 published as learner", func() error {
		err := m5.Ready()
		if err != nil && strings.HasPrefix(err.Error(), "learner") {
			return nil
		}
		return fmt.Errorf("Ready() = %v, want learner error", err)
	})
	if !m5.IsLearner() {
		t.Fatal("m5 must still be a learner")
	}
	m5.Close()
	c5.noPromote = false
	m5 = tc.start(c5) // existing data: Join is ignored
	if m5.ID() != id5 {
		t.Fatalf("m5 ID changed across restart: %x, want %x", m5.ID(), id5)
	}
	eventually(t, readyTimeout, "restarted m5 promoted to voter", func() error { return votingMember(cli, "m5") })
	waitReady(t, readyTimeout, m5)
}

func TestValidate(t *testing.T) {
	tf := TLSFiles{CAFile: "ca.pem", CertFile: "n.pem", KeyFile: "n-key.pem"}
	base := func() Config {
		return Config{
			Name:           "m1",
			Dir:            "/var/lib/hanode/etcd",
			ClientURL:      "https://10.0.0.1:2379",
			PeerURL:        "https://10.0.0.1:2380",
			InitialCluster: []Peer{{"m1", "https://10.0.0.1:2380"}, {"m2", "https://10.0.0.2:2380"}},
			ClusterToken:   "tok",
			TLS:            tf,
		}
	}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; empty = valid
	}{
		{"ok", func(*Config) {}, ""},
		{"ok join without self", func(c *Config) { c.InitialCluster = nil; c.Join = []string{"https://10.0.0.2:2379"} }, ""},
		{"ok rejoin via initial cluster", func(c *Config) { c.Rejoin = true }, ""},
		{"ok explicit timings", func(c *Config) {
			c.HeartbeatInterval = 50 * time.Millisecond
			c.ElectionTimeout = 250 * time.Millisecond
		}, ""},
		{"empty name", func(c *Config) { c.Name = "" }, "Name must not be empty"},
		{"name with comma", func(c *Config) { c.Name = "a,b" }, "Name \"a,b\""},
		{"empty dir", func(c *Config) { c.Dir = "" }, "Dir"},
		{"http client url", func(c *Config) { c.ClientURL = "http://10.0.0.1:2379" }, "ClientURL \"http://10.0.0.1:2379\" must use https"},
		{"no port", func(c *Config) { c.PeerURL = "https://10.0.0.1" }, "PeerURL"},
		{"bad port", func(c *Config) { c.PeerURL = "https://10.0.0.1:99999" }, "invalid port"},
		{"path in url", func(c *Config) { c.ClientURL = "https://10.0.0.1:2379/x" }, "without path"},
		{"bad listen url", func(c *Config) { c.ListenPeerURL = "tcp://0.0.0.0:2380" }, "ListenPeerURL"},
		{"self missing", func(c *Config) { c.InitialCluster = c.InitialCluster[1:] }, "InitialCluster must contain this member"},
		{"self wrong url", func(c *Config) { c.InitialCluster[0].PeerURL = "https://10.0.0.9:2380" }, "has this member's name"},
		{"duplicate name", func(c *Config) { c.InitialCluster[1].Name = "m1" }, "appears twice"},
		{"bad peer in cluster", func(c *Config) { c.InitialCluster[1].PeerURL = "10.0.0.2:2380" }, "InitialCluster[1].PeerURL"},
		{"bad join url", func(c *Config) { c.Join = []string{"10.0.0.2:2379"} }, "Join[0]"},
		{"rejoin alone", func(c *Config) { c.Rejoin = true; c.InitialCluster = c.InitialCluster[:1] }, "Rejoin needs"},
		{"no token", func(c *Config) { c.ClusterToken = "" }, "ClusterToken"},
		{"election too short", func(c *Config) { c.HeartbeatInterval = 300 * time.Millisecond }, "ElectionTimeout 1s must be at least 5*HeartbeatInterval"},
		{"election too long", func(c *Config) { c.ElectionTimeout = time.Minute }, "at most 50s"},
		{"negative quota", func(c *Config) { c.QuotaBackendBytes = -1 }, "QuotaBackendBytes"},
		{"bad retention", func(c *Config) { c.AutoCompactionRetention = "soon" }, "AutoCompactionRetention"},
		{"zero retention", func(c *Config) { c.AutoCompactionRetention = "0" }, "must be positive"},
		{"missing tls", func(c *Config) { c.TLS.KeyFile = "" }, "TLS.CAFile, TLS.CertFile and TLS.KeyFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
