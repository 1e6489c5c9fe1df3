package balancer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A slowly streamed response reaches the client piece by piece: the second
// piece is only produced after the client has received the first.
func TestStreamingFlush(t *testing.T) {
	release := make(chan struct{})
	b := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		// A known length: the ReverseProxy would flush chunked responses
		// anyway; this checks FlushInterval covers the rest.
		w.Header().Set("Content-Length", "13")
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "second\n")
	})
	p := newProxy(t, Config{}, b)
	ts := serve(t, p)

	resp, err := sourceClient(t, 0).Get(ts.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() {
		l, _ := br.ReadString('\n')
		got <- l
	}()
	select {
	case l := <-got:
		if l != "first\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("first piece not delivered before the response ended: proxy buffers")
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// pattern is a deterministic, non-repeating-ish byte stream.
type pattern struct{ n, i int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.i >= p.n {
		return 0, io.EOF
	}
	k := int64(len(b))
	if rem := p.n - p.i; rem < k {
		k = rem
	}
	for j := range k {
		x := p.i + j
		b[j] = byte(x ^ x>>8 ^ x>>16)
	}
	p.i += k
	return int(k), nil
}

func patternSum(n int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, &pattern{n: n})
	return hex.EncodeToString(h.Sum(nil))
}

// 64 MiB each way, streamed through the 32 KiB copy buffers.
func TestLargeBodies(t *testing.T) {
	const size = 64 << 20
	b := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Length", strconv.Itoa(size))
			_, _ = io.Copy(w, &pattern{n: size})
		case http.MethodPut:
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Sum", hex.EncodeToString(h.Sum(nil)))
			w.Header().Set("X-Len", strconv.FormatInt(n, 10))
		}
	})
	p := newProxy(t, Config{}, b)
	ts := serve(t, p)
	cl := sourceClient(t, 0)
	want := patternSum(size)

	resp, err := cl.Get(ts.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("GET: %d bytes, err %v, sum match %v", n, err, hex.EncodeToString(h.Sum(nil)) == want)
	}

	req, _ := http.NewRequest(http.MethodPut, ts.URL+"/big", &pattern{n: size})
	req.ContentLength = size
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Len") != strconv.Itoa(size) || resp.Header.Get("X-Sum") != want {
		t.Fatalf("PUT: status %d len %s sum match %v", resp.StatusCode, resp.Header.Get("X-Len"), resp.Header.Get("X-Sum") == want)
	}
}

// echoUpgrade is a raw backend that switches to an "echo" protocol.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
		http.Error(w, "upgrade required", http.StatusUpgradeRequired)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Hanode-Node: a\r\n\r\n")
	if brw.Flush() != nil {
		return
	}
	_, _ = io.Copy(conn, brw)
}

func upgrade(t *testing.T, addr string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: s3.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// An Upgrade passes through both ways; Shutdown waits, then closes it.
func TestUpgradeAndShutdown(t *testing.T) {
	b := startBackend(t, "a", echoUpgrade)
	p := newProxy(t, Config{}, b)
	ts := serve(t, p)
	addr := ts.Listener.Addr().String()

	conn, br, resp := upgrade(t, addr)
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Hanode-Node") != "a" {
		t.Fatalf("status %d node %q", resp.StatusCode, resp.Header.Get("X-Hanode-Node"))
	}
	if resp.Header.Get(PinHeader) == "" {
		t.Error("no pin on the 101 response")
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an open tunnel = %v, want deadline exceeded", err)
	}
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("tunnel still open after Shutdown")
	}
	// No new upgrades once shutting down; plain requests still work.
	_, _, resp = upgrade(t, addr)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade after Shutdown: %d, want 503", resp.StatusCode)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown with nothing open = %v", err)
	}
}
