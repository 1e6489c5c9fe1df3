package progress

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// server reads each request's body under the rule (pausing between reads when asked, as a
// handler busy storing what arrived) and answers 408 when the rule cut it.
func server(t *testing.T, window time.Duration, minBytes int64, pause time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := Guard(w, r, window, minBytes)
		defer b.Stop()
		buf := make([]byte, 1000)
		var n int64
		for {
			k, err := r.Body.Read(buf)
			n += int64(k)
			if errors.Is(err, ErrTooSlow) {
				http.Error(w, err.Error(), http.StatusRequestTimeout)
				return
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			time.Sleep(pause)
		}
		io.WriteString(w, strings.Repeat("x", int(n%10)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTricklerIsCut(t *testing.T) {
	srv := server(t, 200*time.Millisecond, 1000, 0)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	go pw.Write([]byte("only ten b")) // then nothing more
	req, _ := http.NewRequest(http.MethodPut, srv.URL, pr)
	req.ContentLength = 1 << 20
	done := make(chan struct{})
	var resp *http.Response
	var err error
	go func() { resp, err = srv.Client().Do(req); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a client that stopped sending was not cut")
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
}

// A client that keeps up passes whatever the total time, and the handler's own pauses do not
// count against it; the next request on the kept-alive connection is not cut by the deadline.
func TestSteadyClientPasses(t *testing.T) {
	srv := server(t, 200*time.Millisecond, 1000, 100*time.Millisecond)
	c := srv.Client()
	for i := range 2 {
		body := bytes.Repeat([]byte("y"), 5000) // 5 reads, 500 ms of handler pauses
		resp, err := c.Post(srv.URL, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
		time.Sleep(300 * time.Millisecond) // longer than the window, between requests
	}
}
