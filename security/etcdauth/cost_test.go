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
// Get and a Put of a key in its ranges, with client-certificate authentication, first with
// authentication off and then on, against one TLS member (as a controller runs it).
//
//	go test -run '^$' -bench AuthCost -benchtime 5000x ./security/etcdauth/
func BenchmarkAuthCost(b *testing.B) {
	dir := b.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	host := "127.0.100.23"
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
	defer e.Close()
	<-e.Server.ReadyNotify()
	client := func(bd *pki.Bundle) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.String()}, TLS: bd.ClientConfig(""), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		return cli
	}
	rc, dc := client(root), client(dn)
	defer rc.Close()
	defer dc.Close()
	ctx := context.Background()
	if err := Admit(ctx, rc, "dn", []string{"coordinator"}); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B) {
		key := keyspace.S3Objects + "bench/"
		b.Run("put", func(b *testing.B) {
			for i := range b.N {
				if _, err := dc.Put(ctx, key+strconv.Itoa(i%100), "v"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("get", func(b *testing.B) {
			for i := range b.N {
				if _, err := dc.Get(ctx, key+strconv.Itoa(i%100)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("auth-off", run)
	if on, err := Enable(ctx, rc, []string{"c1"}, nil); err != nil || !on {
		b.Fatalf("enable: %v %v", on, err)
	}
	b.Run("auth-on", run)
}
