package balancer

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"slices"
	"time"
)

// NewServer returns an http.Server for the proxy's listeners, hardened for
// untrusted clients:
//
//   - ReadHeaderTimeout 10s: a slow-loris client that trickles its headers is
//     cut off. There is no ReadTimeout or WriteTimeout, since object uploads
//     and downloads may legitimately take hours; every connection has its own
//     goroutine, so a slow body only costs that client.
//   - IdleTimeout 120s, MaxHeaderBytes 64 KiB (larger requests get 431).
//   - HTTP/1.1 and, over TLS, HTTP/2 (NextProtos h2, http/1.1), with a
//     write-stall timeout on HTTP/2 connections.
//   - ErrorLog goes to slog at debug level: TLS handshake noise from
//     scanners must not flood the log.
//
// tlsCfg may be nil for a plain listener; it is cloned. Serve TLS with
// srv.ServeTLS(ln, "", "") (certificates in tlsCfg) or
// srv.Serve(tls.NewListener(ln, srv.TLSConfig)).
func NewServer(h http.Handler, tlsCfg *tls.Config) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true) // only effective over TLS; no cleartext h2c
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		Protocols:         &protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 250,
			WriteByteTimeout:     2 * time.Minute,
		},
		ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug),
	}
	if tlsCfg != nil {
		c := tlsCfg.Clone()
		if c.MinVersion == 0 {
			c.MinVersion = tls.VersionTLS12
		}
		for _, proto := range []string{"h2", "http/1.1"} {
			if !slices.Contains(c.NextProtos, proto) {
				c.NextProtos = append(c.NextProtos, proto)
			}
		}
		srv.TLSConfig = c
	}
	return srv
}
