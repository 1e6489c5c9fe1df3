package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/internal/faults"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3/sigv4"
)

// testCluster is a coordinator in front of real datanode stores (each its own "machine") and
// a real etcd, all in this process. The S3 side is plain HTTP, so minio-go signs with the
// streaming (aws-chunked) payload mode that SDKs use without TLS.
type testCluster struct {
	t      testing.TB
	etcd   *clientv3.Client
	coord  *Coordinator
	s3     *httptest.Server
	nodes  map[string]*testNode
	access string
	secret string
	users  sync.Map // access key -> secret of users made by addUser
	cancel context.CancelFunc
}

type testNode struct {
	machine string
	dir     string
	store   *datanode.Store
	fz      *faults.Freezer // freezes the datanode as SIGSTOP would
	srv     *httptest.Server
	reg     *cluster.Registrar
}

type clusterOpts struct {
	machines  int
	replicas  int
	chunkSize int64
	inlineMax int64 // Options.InlineMax (default 0: every object in chunks)
	minFree   int64
	etcdHost  string
	// wrapKV, when set, wraps the coordinator's etcd KV (the test keeps a clean client).
	wrapKV    func(clientv3.KV) clientv3.KV
	domains   []string
	memory    int64            // write-buffer budget (default 64 MiB)
	body      time.Duration    // BodyWindow (default the coordinator's)
	datanodes *datanode.Client // default: short deadlines for tests
}

func newTestCluster(t testing.TB, o clusterOpts) *testCluster {
	t.Helper()
	if o.chunkSize == 0 {
		o.chunkSize = 256 << 10
	}
	cli := etcdtest.Start(t, o.etcdHost)
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testCluster{t: t, etcd: cli, nodes: map[string]*testNode{}, access: "AKTEST", secret: "secret-key-123", cancel: cancel}
	t.Cleanup(cancel)
	// The key's public index record, as s3users writes it: coordinators know a key by it. The
	// harness's key is a root user (it may do everything); addUser makes others.
	if _, err := cli.Put(ctx, meta.UserPrefix+tc.access, `{"access_key":"`+tc.access+`","root":true}`); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= o.machines; i++ {
		tc.addNode(ctx, "m"+string(rune('0'+i)), o.minFree)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("HANODE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	lookup := func(_ context.Context, ak string) (string, error) {
		if ak == tc.access {
			return tc.secret, nil
		}
		if sk, ok := tc.users.Load(ak); ok {
			return sk.(string), nil
		}
		return "", sigv4.ErrUnknownAccessKey
	}
	coordCli := cli
	if o.wrapKV != nil {
		cc, err := clientv3.New(clientv3.Config{Endpoints: cli.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		cc.KV = o.wrapKV(cc.KV)
		coordCli = cc
	}
	if o.memory == 0 {
		o.memory = 64 << 20
	}
	if o.datanodes == nil {
		o.datanodes = &datanode.Client{HTTP: &http.Client{}, HeaderTimeout: 2 * time.Second, TransferBase: 2 * time.Second}
	}
	c, err := New(Options{
		Name: "m1", Etcd: coordCli, Datanodes: o.datanodes, Lookup: lookup, BodyWindow: o.body,
		ChunkSize: o.chunkSize, InlineMax: o.inlineMax, Replicas: o.replicas, Memory: o.memory, GCGrace: 0, WriteTimeout: time.Minute, Log: log, Domains: o.domains,
	})
	if err != nil {
		t.Fatal(err)
	}
	tc.coord = c
	go c.Run(ctx)
	tc.s3 = httptest.NewServer(c.Handler())
	t.Cleanup(tc.s3.Close)
	tc.waitLive(o.machines)
	return tc
}

func (tc *testCluster) addNode(ctx context.Context, machine string, minFree int64) {
	t := tc.t
	dir := t.TempDir()
	st, err := datanode.Open(datanode.Options{Dir: dir, MinFreeBytes: minFree})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fz := faults.NewFreezer(datanode.Handler(st))
	srv := httptest.NewServer(fz)
	t.Cleanup(srv.Close)
	t.Cleanup(fz.Thaw) // first: handlers waiting on a freeze return before the server closes
	reg, err := cluster.Register(ctx, tc.etcd, cluster.Registration{Machine: machine, Role: "datanode", Address: srv.URL, Free: 100 << 30}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	tc.nodes[machine] = &testNode{machine: machine, dir: dir, store: st, fz: fz, srv: srv, reg: reg}
}

// waitLive waits until the coordinator sees n writable datanodes.
func (tc *testCluster) waitLive(n int) {
	tc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if live, ok := tc.coord.nodes.count(); ok && live == n {
			return
		}
		if time.Now().After(deadline) {
			live, _ := tc.coord.nodes.count()
			tc.t.Fatalf("coordinator sees %d datanodes, want %d", live, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops a datanode's server without deregistering it: the coordinator still believes it
// is live (as for the 3 s before its lease expires after a kill -9) and must route around it.
func (tc *testCluster) kill(machine string) {
	n := tc.nodes[machine]
	n.srv.CloseClientConnections()
	n.srv.Close()
}

func (tc *testCluster) client(access, secret string) *minio.Client {
	tc.t.Helper()
	u, _ := url.Parse(tc.s3.URL)
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Secure: false})
	if err != nil {
		tc.t.Fatal(err)
	}
	return mc
}

func (tc *testCluster) minio() *minio.Client { return tc.client(tc.access, tc.secret) }

// chunkFile is where a datanode keeps a chunk (layout of datanode.Store: <dir>/<id[:2]>/<id>).
func (n *testNode) chunkFile(id string) string { return filepath.Join(n.dir, id[:2], id) }

// object returns the stored record of bucket/key.
func (tc *testCluster) object(bucket, key string) *meta.Object {
	tc.t.Helper()
	o, err := meta.New(tc.etcd).GetObject(context.Background(), bucket, key)
	if err != nil {
		tc.t.Fatal(err)
	}
	return o
}

// chunkCount counts chunk files on every datanode.
func (tc *testCluster) chunkCount() int {
	n := 0
	for _, nd := range tc.nodes {
		infos, err := nd.store.List(context.Background(), "", 100000)
		if err != nil && !errors.Is(err, context.Canceled) {
			tc.t.Fatal(err)
		}
		n += len(infos)
	}
	return n
}
