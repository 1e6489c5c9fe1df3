package balancer

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkProxy measures parallel 1 KiB GETs through the proxy to one
// backend, over keep-alive connections on both sides.
func BenchmarkProxy(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	be := startBackend(b, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, payload)
	})
	p := newProxy(b, Config{}, be)
	ts := serve(b, p)
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(ts.URL + "/bkt/obj")
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != int64(len(payload)) {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}
