// Command backend is the upstream of bench/proxy.sh: a minimal HTTP/1.1 server, so that the
// proxies under test, not the backends, are what the benchmark measures. It answers
// /readyz (the health check hanode's proxy sends), /1k and /64k (bodies of 1 KiB and 64 KiB);
// every response names the backend in X-Hanode-Node, as a coordinator does.
package main

import (
	"bytes"
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18081", "address to listen on")
	name := flag.String("name", "b1", "backend name (X-Hanode-Node)")
	flag.Parse()
	bodies := map[string][]byte{
		"/1k":     bytes.Repeat([]byte("a"), 1<<10),
		"/64k":    bytes.Repeat([]byte("b"), 64<<10),
		"/readyz": []byte("ok\n"),
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		hd := w.Header()
		hd["Content-Type"] = []string{"application/octet-stream"}
		hd["Content-Length"] = []string{strconv.Itoa(len(b))}
		hd["X-Hanode-Node"] = []string{*name}
		_, _ = w.Write(b)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	log.Fatal(srv.ListenAndServe())
}
