package pki

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// TestServerConfigRefusesRevoked: a server config of a bundle refuses, in the handshake, a
// client certificate of a removed machine issued before the removal, and takes one issued
// after it and any other machine's.
func TestServerConfigRefusesRevoked(t *testing.T) {
	dir := t.TempDir()
	b, err := EnsureSelfSigned(dir, "lab", Identity{Machine: "m1", Roles: []string{"controller"}}, DefaultCAValidity, DefaultNodeValidity)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issue := func(machine string, at time.Time) tls.Certificate {
		c, k, err := ca.Issue(Identity{Machine: machine, Roles: []string{"datanode"}}, time.Hour, at)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	old, fresh, other := issue("m9", now.Add(-time.Minute)), issue("m9", now.Add(time.Minute)), issue("m8", now.Add(-time.Minute))
	b.SetRevocations(NewRevocations(map[string]time.Time{"m9": now}))
	handshake := func(cert tls.Certificate) error {
		cc, sc := net.Pipe()
		defer cc.Close()
		defer sc.Close()
		srv := tls.Server(sc, b.ServerConfig())
		done := make(chan error, 1)
		go func() { done <- srv.Handshake(); sc.Close() }()
		cli := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, // the server side is under test
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
		_ = cli.Handshake()
		go func() { _, _ = io.Copy(io.Discard, cc) }() // take the server's alert, if any
		return <-done
	}
	for _, tc := range []struct {
		name    string
		cert    tls.Certificate
		refused bool
	}{{"issued before the removal", old, true}, {"issued after it", fresh, false}, {"another machine", other, false}} {
		if err := handshake(tc.cert); (err != nil) != tc.refused {
			t.Errorf("%s: handshake error %v, want refused %v", tc.name, err, tc.refused)
		}
	}
}
