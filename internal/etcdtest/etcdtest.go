// Package etcdtest starts a real single-member etcd inside a test process, for the unit tests of
// packages that keep state in etcd. Each test package passes a loopback address of its own
// (127.0.x.y, default ports), so packages tested in parallel never collide.
package etcdtest

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Start runs the member on host until the test ends and returns a client of it. It is plaintext
// because it never leaves the test process.
func Start(t testing.TB, host string) *clientv3.Client {
	t.Helper()
	cli, stop, err := start(t.TempDir(), host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return cli
}

// Run is Start for code that has no testing.TB, such as an Example: it returns a client and a
// stop function that closes the client and the member and removes the member's data.
func Run(host string) (cli *clientv3.Client, stop func(), err error) {
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, nil, err
	}
	cli, stopMember, err := start(dir, host)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return cli, func() { stopMember(); os.RemoveAll(dir) }, nil
}

// start runs the member on host with its data in dir.
func start(dir, host string) (*clientv3.Client, func(), error) {
	cfg := embed.NewConfig()
	cfg.Name = "t"
	cfg.Dir = dir
	cu, _ := url.Parse("http://" + host + ":2379")
	pu, _ := url.Parse("http://" + host + ":2380")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = "t=" + pu.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.MaxRequestBytes = 8 << 20 // as etcdembed configures the controllers' members
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("start etcd on %s: %w", host, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		e.Close()
		return nil, nil, errors.New("etcd not ready after 20s")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		MaxCallSendMsgSize: 10 << 20}) // as the roles' clients, for the largest transactions
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return cli, func() { cli.Close(); e.Close() }, nil
}
