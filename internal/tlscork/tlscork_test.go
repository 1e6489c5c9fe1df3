package tlscork

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/pki"
)

// countingListener counts the writes to the sockets of the connections it accepts.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) { c.n.Add(1); return c.Conn.Write(p) }

// bundle is a cluster CA and a node certificate for 127.0.0.1, as every role has (security/pki).
func bundle(t testing.TB) *pki.Bundle {
	t.Helper()
	b, err := pki.EnsureSelfSigned(t.TempDir(), "tlscork", pki.Identity{Machine: "m1", Roles: []string{config.RoleDatanode},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve runs handler over Listener on a loopback port; it returns the base URL, a client that
// trusts the server, and the counter of socket writes.
func serve(t testing.TB, handler http.HandlerFunc, protos ...string) (string, *http.Client, *atomic.Int64) {
	t.Helper()
	b := bundle(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := &http.Server{Handler: handler, ConnContext: ConnContext, ReadHeaderTimeout: 5 * time.Second}
	cfg := b.ServerConfig()
	cfg.NextProtos = append(protos, "http/1.1")
	go srv.Serve(Listener(cl, cfg))
	t.Cleanup(func() { srv.Close() })
	tr := &http.Transport{TLSClientConfig: b.ClientConfig(""), ForceAttemptHTTP2: len(protos) > 0}
	t.Cleanup(tr.CloseIdleConnections)
	return "https://" + ln.Addr().String(), &http.Client{Transport: tr, Timeout: 10 * time.Second}, &cl.writes
}

// body is 1 MiB of a pattern whose every 16-byte piece differs, so a reordering shows.
func body() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i/16) ^ byte(i)
	}
	return b
}

// TestWriterJoinsRecords: a 1 MiB response written in 64 KiB pieces arrives byte for byte, and
// through Writer its 64 TLS records take one socket write per piece instead of one each.
func TestWriterJoinsRecords(t *testing.T) {
	want := body()
	for _, tc := range []struct {
		name      string
		corked    bool
		maxWrites int64 // socket writes for the body, beyond the handshake's
		minWrites int64
	}{
		{"through Writer", true, 20, 16},
		{"straight to the ResponseWriter", false, 1 << 20, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, client, writes := serve(t, func(w http.ResponseWriter, r *http.Request) {
				var out io.Writer = w
				if tc.corked {
					out = Writer(w, r)
				}
				for p := want; len(p) > 0; p = p[64<<10:] {
					if _, err := out.Write(p[:64<<10]); err != nil {
						t.Errorf("write: %v", err)
						return
					}
				}
			})
			// A first request completes the handshake (and warms the connection).
			if resp, err := client.Get(url + "/warm"); err != nil {
				t.Fatal(err)
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			before := writes.Load()
			resp, err := client.Get(url + "/")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("body: %d bytes, equal %v, err %v", len(got), bytes.Equal(got, want), err)
			}
			if n := writes.Load() - before; n < tc.minWrites || n > tc.maxWrites {
				t.Fatalf("%d socket writes for a 1 MiB response in 64 KiB writes, want %d to %d", n, tc.minWrites, tc.maxWrites)
			}
		})
	}
}

// TestWriterHTTP2: an HTTP/2 connection carries other streams' frames, so Writer leaves it as
// it is.
func TestWriterHTTP2(t *testing.T) {
	passed := make(chan bool, 1)
	url, client, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_, corked := Writer(w, r).(*writer)
		passed <- r.ProtoMajor == 2 && !corked
	}, "h2")
	resp, err := client.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !<-passed {
		t.Fatal("Writer corks an HTTP/2 connection (or the request was not HTTP/2)")
	}
}

// TestDialTLS: a 1 MiB request body sent through a transport dialling with DialTLS arrives byte
// for byte, the server's certificate checked against the dialled host, and the transport's 256
// KiB writes take one socket write each instead of one per 16 KiB record.
func TestDialTLS(t *testing.T) {
	want := body()
	got := make(chan []byte, 1)
	url, plain, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	})
	cfg := plain.Transport.(*http.Transport).TLSClientConfig
	var writes atomic.Int64
	d := &net.Dialer{Timeout: 2 * time.Second}
	counting := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, n: &writes}, nil
	}
	tr := &http.Transport{DialTLSContext: dialTLS(counting, cfg, 2*time.Second), WriteBufferSize: 256 << 10}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Post(url+"/", "application/octet-stream", bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the server got %d bytes, equal %v", len(b), bytes.Equal(b, want))
	}
	// The handshake takes a few writes, the request's headers one, the body four or five.
	if n := writes.Load(); n > 16 {
		t.Fatalf("%d socket writes for a 1 MiB request body in 256 KiB writes, want at most 16 (64 records)", n)
	}

	// A server whose certificate does not name the dialled host is refused.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "https://"))
	if _, err := client.Get("https://localhost:" + port + "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a certificate for 127.0.0.1 accepted for localhost: %v", err)
	}
}
