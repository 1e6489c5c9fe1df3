package etcdauth

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/security/pki"
)

// BenchmarkAuthCost measures what etcd's authentication costs a machine that is not root: a
// Get and a Put of a key in its ranges, with client-certificate authentication, against two TLS
// members (as a controller runs one), one with authentication off and one with it on. The
// operations alternate between the two, so that the load of a shared machine weighs on both
// alike; each reports its mean in off-ns/op and on-ns/op.
//
//	go test -run '^$' -bench AuthCost -benchtime 5000x ./security/etcdauth/
func BenchmarkAuthCost(b *testing.B) {
	off := startTLSMember(b, "127.0.100.23")
	on := startTLSMember(b, "127.0.100.24")
	ctx := context.Background()
	if ok, err := Enable(ctx, on.root, []string{"c1"}, nil); err != nil || !ok {
		b.Fatalf("enable: %v %v", ok, err)
	}
	key := keyspace.S3Objects + "bench/"
	for _, op := range []struct {
		name string
		do   func(cli *clientv3.Client, i int) error
	}{
		{"put", func(cli *clientv3.Client, i int) error {
			_, err := cli.Put(ctx, key+strconv.Itoa(i%100), "v")
			return err
		}},
		{"get", func(cli *clientv3.Client, i int) error {
			_, err := cli.Get(ctx, key+strconv.Itoa(i%100))
			return err
		}},
	} {
		b.Run(op.name, func(b *testing.B) {
			var took [2]time.Duration
			for i := range b.N {
				for j, m := range []*tlsMember{off, on} {
					t0 := time.Now()
					if err := op.do(m.machine, i); err != nil {
						b.Fatal(err)
					}
					took[j] += time.Since(t0)
				}
			}
			b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N), "off-ns/op")
			b.ReportMetric(float64(took[1].Nanoseconds())/float64(b.N), "on-ns/op")
		})
	}
}

// tlsMember is a one-member etcd with client-certificate authentication, a client of its
// controller c1 (etcd root once authentication is on) and one of machine dn, a coordinator.
type tlsMember struct {
	root, machine *clientv3.Client
}

func startTLSMember(b *testing.B, host string) *tlsMember {
	dir := b.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	if _, err := pki.EnsureSelfSigned(pkiDir, "bench", pki.Identity{Machine: "c1", Roles: []string{"controller"}, IPs: []net.IP{net.ParseIP(host)}}, time.Hour, time.Hour); err != nil {
		b.Fatal(err)
	}
	ca, err := pki.LoadCA(pkiDir)
	if err != nil {
		b.Fatal(err)
	}
	dnDir := filepath.Join(dir, "dn")
	c, k, err := ca.Issue(pki.Identity{Machine: "dn", Roles: []string{"coordinator"}}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if err := pki.WriteCACert(dnDir, ca.CertPEM); err != nil {
		b.Fatal(err)
	}
	if err := pki.WriteNode(dnDir, c, k); err != nil {
		b.Fatal(err)
	}
	root, err := pki.LoadBundle(pkiDir)
	if err != nil {
		b.Fatal(err)
	}
	dn, err := pki.LoadBundle(dnDir)
	if err != nil {
		b.Fatal(err)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "c1", filepath.Join(dir, "etcd")
	cu, _ := url.Parse("https://" + host + ":2379")
	pu, _ := url.Parse("http://" + host + ":2380")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = "c1=" + pu.String()
	cfg.ClientTLSInfo = transport.TLSInfo{CertFile: root.CertFile(), KeyFile: root.KeyFile(), TrustedCAFile: root.CAFile(), ClientCertAuth: true}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	<-e.Server.ReadyNotify()
	client := func(bd *pki.Bundle) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.String()}, TLS: bd.ClientConfig(""), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cli.Close() })
		return cli
	}
	m := &tlsMember{root: client(root), machine: client(dn)}
	if err := Admit(context.Background(), m.root, "dn", []string{"coordinator"}); err != nil {
		b.Fatal(err)
	}
	return m
}
