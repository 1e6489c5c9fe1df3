package service

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/pki"
)

// TestServeProtocols: with the TLS configuration every role gets (pki.Bundle.ServerConfig), the
// server still speaks HTTP/2 to clients that offer it and HTTP/1.1 to the others, now that it
// serves on its own TLS listener (tlscork) instead of ServeTLS's.
func TestServeProtocols(t *testing.T) {
	b, err := pki.EnsureSelfSigned(t.TempDir(), "service", pki.Identity{Machine: "m1", Roles: []string{config.RoleDatanode},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer("test", "127.0.0.1:0", b.ServerConfig(), slog.New(slog.DiscardHandler), nil)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() { s.HTTP.Close() })
	for _, tc := range []struct {
		name  string
		h2    bool
		major int
	}{{"HTTP/2 offered", true, 2}, {"HTTP/1.1 only", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: b.ClientConfig(""), ForceAttemptHTTP2: tc.h2}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + s.Listener.Addr().String() + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok\n" || resp.ProtoMajor != tc.major {
				t.Fatalf("/healthz: %s %d %q, want HTTP/%d 200 ok", resp.Proto, resp.StatusCode, body, tc.major)
			}
		})
	}
}
