package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/hanode/hanode/client"
	"github.com/hanode/hanode/internal/appliance"
)

// deadEndpoint has nothing listening: connections are refused at once.
const deadEndpoint = "127.0.87.200:9000"

// attempts records OnAttempt calls.
type attempts struct {
	mu   sync.Mutex
	list []client.Attempt
}

func (a *attempts) add(at client.Attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, at)
}

func (a *attempts) served(op string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, at := range a.list {
		if at.Op == op && at.Err == nil {
			out = append(out, at.Endpoint)
		}
	}
	return out
}

func (a *attempts) failed(op string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, at := range a.list {
		if at.Op == op && at.Err != nil {
			out = append(out, at.Endpoint)
		}
	}
	return out
}

type env struct {
	a      *appliance.Appliance
	bucket string
}

// newClient builds an HA client of endpoints trusting the cluster CA and extra servers' certs.
func (e *env) newClient(t *testing.T, endpoints []string, extra ...*httptest.Server) (*client.Client, *attempts) {
	t.Helper()
	pool := e.a.CAPool.Clone()
	for _, s := range extra {
		pool.AddCert(s.Certificate())
	}
	rec := &attempts{}
	start := time.Now()
	c, err := client.New(client.Config{Endpoints: endpoints, AccessKey: e.a.AccessKey, SecretKey: e.a.SecretKey,
		Region: e.a.Config.S3Region, TLS: &tls.Config{RootCAs: pool}, BaseBackoff: 10 * time.Millisecond, OnAttempt: func(at client.Attempt) { t.Logf("%v %+v", time.Since(start), at); rec.add(at) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, rec
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

// stream hides io.Seeker and io.ReaderAt: a source that cannot be read twice.
type stream struct{ io.Reader }

func TestClient(t *testing.T) {
	a := appliance.Start(t, "127.0.87.10", nil)
	e := &env{a: a, bucket: "ha-test"}
	ctx := context.Background()
	real := "https://" + a.S3
	{
		c, _ := e.newClient(t, []string{a.S3})
		if err := c.MakeBucket(ctx, e.bucket); err != nil {
			t.Fatal(err)
		}
		if err := c.EnsureBucket(ctx, e.bucket); err != nil {
			t.Fatalf("EnsureBucket of an existing bucket: %v", err)
		}
	}

	t.Run("round trip", func(t *testing.T) {
		c, _ := e.newClient(t, []string{a.S3})
		data := randomBytes(1 << 20)
		if _, err := c.PutObject(ctx, e.bucket, "dir/one", bytes.NewReader(data), int64(len(data)), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		st, err := c.StatObject(ctx, e.bucket, "dir/one")
		if err != nil || st.Size != int64(len(data)) {
			t.Fatalf("stat: %v, size %d", err, st.Size)
		}
		var buf bytes.Buffer
		info, n, err := c.GetObjectTo(ctx, e.bucket, "dir/one", &buf, client.GetOptions{})
		if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) || info.ETag != st.ETag {
			t.Fatalf("get: %v, %d bytes, equal %v, etag %q vs %q", err, n, bytes.Equal(buf.Bytes(), data), info.ETag, st.ETag)
		}
		buf.Reset()
		info, _, err = c.GetObjectTo(ctx, e.bucket, "dir/one", &buf, client.GetOptions{Offset: 1000, Length: 5000})
		if err != nil || !bytes.Equal(buf.Bytes(), data[1000:6000]) || info.Size != int64(len(data)) {
			t.Fatalf("range get: %v, %d bytes, object size %d", err, buf.Len(), info.Size)
		}

		// Multipart: 12 MiB in 5 MiB parts, from a stream of unknown size.
		big := randomBytes(12 << 20)
		up, err := c.PutObject(ctx, e.bucket, "dir/big", stream{bytes.NewReader(big)}, -1,
			client.PutOptions{PutObjectOptions: minio.PutObjectOptions{PartSize: 5 << 20, NumThreads: 2}})
		if err != nil || !strings.HasSuffix(strings.Trim(up.ETag, `"`), "-3") {
			t.Fatalf("multipart put: %v, etag %q", err, up.ETag)
		}
		r, err := c.GetObject(ctx, e.bucket, "dir/big", client.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("multipart get: %v, %d bytes", err, len(got))
		}

		var keys []string
		for o, err := range c.ListObjects(ctx, e.bucket, client.ListOptions{Prefix: "dir/"}) {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, o.Key)
		}
		if strings.Join(keys, ",") != "dir/big,dir/one" {
			t.Fatalf("list: %q", keys)
		}
		for _, k := range keys {
			if err := c.RemoveObject(ctx, e.bucket, k); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.StatObject(ctx, e.bucket, "dir/one"); !client.IsCode(err, "NoSuchKey") {
			t.Fatalf("stat after remove: %v", err)
		}
	})

	t.Run("dead endpoint first", func(t *testing.T) {
		c, rec := e.newClient(t, []string{deadEndpoint, a.S3})
		data := randomBytes(300 << 10)
		// A stream too: the refused connection consumed none of it, so it may be retried.
		if _, err := c.PutObject(ctx, e.bucket, "dead", stream{bytes.NewReader(data)}, int64(len(data)), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := rec.failed("put"); len(got) != 1 || got[0] != "https://"+deadEndpoint {
			t.Fatalf("failed puts %q, want one on the dead endpoint", got)
		}
		if got := rec.served("put"); len(got) != 1 || got[0] != real {
			t.Fatalf("put served by %q, want %s", got, real)
		}
		// The dead endpoint is now at the back: the next operation goes straight to the live one.
		if c.Current() != real {
			t.Fatalf("current endpoint %s, want %s", c.Current(), real)
		}
		var buf bytes.Buffer
		if _, _, err := c.GetObjectTo(ctx, e.bucket, "dead", &buf, client.GetOptions{}); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("get: %v", err)
		}
		if got := rec.failed("get"); len(got) != 0 {
			t.Fatalf("get tried the cooling dead endpoint first: %q", got)
		}
	})

	t.Run("silent endpoint first", func(t *testing.T) {
		// A machine that is partitioned or frozen: its port takes connections and never
		// answers. Every operation must be served by the live endpoint long before a dial,
		// handshake or answer timeout would give up on the silent one: the context below is
		// shorter than those (DialTimeout 2 s for the handshake, minutes for an answer) and far
		// longer than the hedge delay (300 ms).
		silent := newSilent(t, "127.0.87.201")
		seed, _ := e.newClient(t, []string{a.S3})
		data := randomBytes(200 << 10)
		if _, err := seed.PutObject(ctx, e.bucket, "silent/seed", bytes.NewReader(data), int64(len(data)), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		ops := []struct {
			name string
			op   string // the Attempt.Op served by the live endpoint
			run  func(ctx context.Context, c *client.Client) error
		}{
			{"stat", "stat", func(ctx context.Context, c *client.Client) error {
				_, err := c.StatObject(ctx, e.bucket, "silent/seed")
				return err
			}},
			{"get", "get", func(ctx context.Context, c *client.Client) error {
				var buf bytes.Buffer
				if _, _, err := c.GetObjectTo(ctx, e.bucket, "silent/seed", &buf, client.GetOptions{}); err != nil {
					return err
				}
				if !bytes.Equal(buf.Bytes(), data) {
					return errors.New("the bytes differ")
				}
				return nil
			}},
			{"list", "list", func(ctx context.Context, c *client.Client) error {
				n := 0
				for _, err := range c.ListObjects(ctx, e.bucket, client.ListOptions{Prefix: "silent/", Recursive: true}) {
					if err != nil {
						return err
					}
					n++
				}
				if n == 0 {
					return errors.New("listed nothing")
				}
				return nil
			}},
			{"head bucket", "head bucket", func(ctx context.Context, c *client.Client) error {
				ok, err := c.BucketExists(ctx, e.bucket)
				if err == nil && !ok {
					err = errors.New("the bucket does not exist")
				}
				return err
			}},
			{"list buckets", "list buckets", func(ctx context.Context, c *client.Client) error {
				_, err := c.ListBuckets(ctx)
				return err
			}},
			{"put file", "put", func(ctx context.Context, c *client.Client) error {
				_, err := c.PutObject(ctx, e.bucket, "silent/put", bytes.NewReader(data), int64(len(data)), client.PutOptions{})
				return err
			}},
			{"put stream", "put", func(ctx context.Context, c *client.Client) error {
				_, err := c.PutObject(ctx, e.bucket, "silent/stream", stream{bytes.NewReader(data)}, int64(len(data)), client.PutOptions{})
				return err
			}},
			{"remove", "remove", func(ctx context.Context, c *client.Client) error {
				return c.RemoveObject(ctx, e.bucket, "silent/put")
			}},
		}
		for _, tc := range ops {
			t.Run(tc.name, func(t *testing.T) {
				c, rec := e.newClient(t, []string{silent.addr(), a.S3})
				octx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
				defer cancel()
				start := time.Now()
				if err := tc.run(octx, c); err != nil {
					t.Fatalf("%s with a silent first endpoint: %v", tc.name, err)
				}
				t.Logf("%s served in %s", tc.name, time.Since(start).Round(time.Millisecond))
				if got := rec.served(tc.op); len(got) != 1 || got[0] != real {
					t.Fatalf("%s served by %q, want %s once", tc.op, got, real)
				}
				if c.Current() != real {
					t.Fatalf("current endpoint %s, want the one that answered, %s", c.Current(), real)
				}
			})
		}
	})

	t.Run("503 endpoint first", func(t *testing.T) {
		var hits atomic.Int64
		busy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message><RequestId>test</RequestId></Error>`)
		}))
		defer busy.Close()
		busyURL := busy.URL
		c, rec := e.newClient(t, []string{busyURL, a.S3}, busy)
		data := randomBytes(64 << 10)
		if _, err := c.PutObject(ctx, e.bucket, "busy", bytes.NewReader(data), int64(len(data)), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := rec.served("put"); len(got) != 1 || got[0] != real {
			t.Fatalf("put served by %q", got)
		}
		if hits.Load() != 1 {
			t.Fatalf("the 503 endpoint saw %d requests, want 1", hits.Load())
		}
		if st, err := c.StatObject(ctx, e.bucket, "busy"); err != nil || st.Size != int64(len(data)) {
			t.Fatalf("stat: %v", err)
		}
		// Every endpoint answering 503: the error says so after the retries.
		only, _ := e.newClient(t, []string{busyURL}, busy)
		_, err := only.StatObject(ctx, e.bucket, "busy")
		if err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") {
			t.Fatalf("stat via a 503-only endpoint: %v", err)
		}
		var er minio.ErrorResponse
		if !errors.As(err, &er) || er.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("error %v does not carry the 503 answer", err)
		}
	})

	t.Run("stream not retried after bytes were sent", func(t *testing.T) {
		// This endpoint reads the whole body, then drops the connection without an answer:
		// the client cannot know whether the PUT took effect, and cannot send the stream again.
		var hits, received atomic.Int64
		dropper := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			n, _ := io.Copy(io.Discard, r.Body)
			received.Add(n)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		defer dropper.Close()
		data := randomBytes(1 << 20)

		c, rec := e.newClient(t, []string{dropper.URL, a.S3}, dropper)
		_, err := c.PutObject(ctx, e.bucket, "stream", stream{bytes.NewReader(data)}, int64(len(data)), client.PutOptions{})
		if err == nil || !strings.Contains(err.Error(), "not retried") {
			t.Fatalf("streaming put through a dropping endpoint: %v, want a failure that was not retried", err)
		}
		if hits.Load() != 1 || received.Load() != int64(len(data)) {
			t.Fatalf("dropping endpoint saw %d requests and %d bytes", hits.Load(), received.Load())
		}
		if got := rec.served("put"); len(got) != 0 {
			t.Fatalf("the stream was sent again to %q", got)
		}
		if _, err := c.StatObject(ctx, e.bucket, "stream"); !client.IsCode(err, "NoSuchKey") {
			t.Fatalf("the live endpoint has the object: %v", err)
		}

		// The same bytes from a re-readable source are safe to send again.
		c2, rec2 := e.newClient(t, []string{dropper.URL, a.S3}, dropper)
		if _, err := c2.PutObject(ctx, e.bucket, "stream", bytes.NewReader(data), int64(len(data)), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := rec2.served("put"); len(got) != 1 || got[0] != real {
			t.Fatalf("re-readable put served by %q", got)
		}
	})

	t.Run("get resumes mid-stream", func(t *testing.T) {
		data := randomBytes(3 << 20)
		c, _ := e.newClient(t, []string{a.S3})
		if _, err := c.PutObject(ctx, e.bucket, "resume", bytes.NewReader(data), int64(len(data)), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		cutter := newCutter(t, a, 1<<20, nil)
		c, _ = e.newClient(t, []string{cutter.URL, a.S3}, cutter)
		r, err := c.GetObject(ctx, e.bucket, "resume", client.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("resumed get: %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, data))
		}
		if s := r.Served(); len(s) != 2 || s[0] != cutter.URL || s[1] != real {
			t.Fatalf("served by %q, want the cutting proxy then %s", s, real)
		}

		// The object replaced between the break and the resumption: the download fails.
		cutter = newCutter(t, a, 1<<20, func() {
			if _, err := a.Minio(t).PutObject(ctx, e.bucket, "resume", bytes.NewReader(data[:1000]), 1000, minio.PutObjectOptions{}); err != nil {
				t.Error(err)
			}
		})
		c, _ = e.newClient(t, []string{cutter.URL, a.S3}, cutter)
		_, _, err = c.GetObjectTo(ctx, e.bucket, "resume", io.Discard, client.GetOptions{})
		if !errors.Is(err, client.ErrChanged) {
			t.Fatalf("get of an object replaced mid-download: %v, want ErrChanged", err)
		}
	})
}

// silentEndpoint takes TCP connections on addr and never answers (not even the TLS
// handshake): a frozen or partitioned machine.
type silentEndpoint struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newSilent(t *testing.T, ip string) *silentEndpoint {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentEndpoint{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *silentEndpoint) addr() string { return s.ln.Addr().String() }

// newCutter is a TLS reverse proxy to the appliance's S3 endpoint that breaks the first GET
// body after n bytes (calling before, if set, just before).
func newCutter(t *testing.T, a *appliance.Appliance, n int64, before func()) *httptest.Server {
	t.Helper()
	target, err := url.Parse(a.S3URL)
	if err != nil {
		t.Fatal(err)
	}
	var cut atomic.Bool
	rp := &httputil.ReverseProxy{
		// The Host header stays the proxy's: the client signed it.
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host },
		Transport: &http.Transport{TLSClientConfig: a.TLS()},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method == http.MethodGet && resp.StatusCode == http.StatusOK && cut.CompareAndSwap(false, true) {
				resp.Body = &cutBody{ReadCloser: resp.Body, left: n, before: before}
			}
			return nil
		},
	}
	s := httptest.NewUnstartedServer(rp)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the cut is on purpose
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

type cutBody struct {
	io.ReadCloser
	left   int64
	before func()
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		if c.before != nil {
			c.before()
			c.before = nil
		}
		return 0, errors.New("connection cut by the test")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}
