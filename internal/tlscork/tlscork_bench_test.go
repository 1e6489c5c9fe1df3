package tlscork

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkResponse: a 1 MiB response in 64 KiB writes over loopback TLS, both ends in this
// process, with and without Writer.
func BenchmarkResponse(b *testing.B) {
	data := body()
	for _, corked := range []bool{false, true} {
		name := "plain"
		if corked {
			name = "corked"
		}
		b.Run(name, func(b *testing.B) {
			url, client, _ := serve(b, func(w http.ResponseWriter, r *http.Request) {
				var out io.Writer = w
				if corked {
					out = Writer(w, r)
				}
				for p := data; len(p) > 0; p = p[64<<10:] {
					if _, err := out.Write(p[:64<<10]); err != nil {
						return
					}
				}
			})
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, resp.Body, buf); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
