package balancer

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkH1RoundTrip measures the own forwarding path alone: a 1 KiB GET on a kept-alive
// upstream connection, the response read to its end (which returns the connection to the
// pool), against net/http's Transport doing the same.
func BenchmarkH1RoundTrip(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	be := startBackend(b, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, payload)
	})
	p := newProxy(b, Config{}, be)
	tg := upByID(p, "a").target.Load()
	buf := make([]byte, 4096)
	for _, tc := range []struct {
		name string
		rt   func(*http.Request) (*http.Response, error)
	}{
		{"h1", func(r *http.Request) (*http.Response, error) { return tg.h1.roundTrip(r, nil, nil) }},
		{"http.Transport", tg.tr.RoundTrip},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, "http://"+be.addr+"/bkt/obj", nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				resp, err := tc.rt(req)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					m, err := resp.Body.Read(buf[n:])
					n += m
					if err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n != len(payload) {
					b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
				}
			}
		})
	}
}
