package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3/sigv4"
)

// keyStore plays the controllers' side of access keys: the public index record in etcd (as
// s3users writes it) and the secret a lookup returns, counting lookups.
type keyStore struct {
	t       *testing.T
	cli     *clientv3.Client
	mu      sync.Mutex
	secrets map[string]string
	calls   map[string]int
}

func newKeyStore(t *testing.T, cli *clientv3.Client) *keyStore {
	return &keyStore{t: t, cli: cli, secrets: map[string]string{}, calls: map[string]int{}}
}

func (s *keyStore) put(key, secret string) {
	s.t.Helper()
	s.mu.Lock()
	s.secrets[key] = secret
	s.mu.Unlock()
	if _, err := s.cli.Put(context.Background(), meta.UserPrefix+key, `{"access_key":"`+key+`"}`); err != nil {
		s.t.Fatal(err)
	}
}

func (s *keyStore) remove(key string) {
	s.t.Helper()
	s.mu.Lock()
	delete(s.secrets, key)
	s.mu.Unlock()
	if _, err := s.cli.Delete(context.Background(), meta.UserPrefix+key); err != nil {
		s.t.Fatal(err)
	}
}

// lookup is the controller's answer to GET /v1/s3/keys/{key}.
func (s *keyStore) lookup(_ context.Context, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[key]++
	if sec, ok := s.secrets[key]; ok {
		return sec, nil
	}
	return "", sigv4.ErrUnknownAccessKey
}

func (s *keyStore) callsTo(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

func (s *keyStore) totalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// startKeyCache runs a key cache until the test ends and waits until its watch has started.
func startKeyCache(t *testing.T, k *keyCache) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); k.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil(t, 10*time.Second, "the key watch to start", func() bool { return k.revision() > 0 })
}

// Requests with access keys that do not exist cost no controller call, however many distinct
// keys they bring; concurrent requests for one key share one lookup; and a key created after
// it was found unknown works at once (the watch evicts the negative entry).
func TestKeyCacheUnknownKeys(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.88.40")
	ks := newKeyStore(t, cli)
	ks.put("AKGOOD", "good-secret")
	k := newKeyCache(cli, ks.lookup, slog.New(slog.DiscardHandler))
	startKeyCache(t, k)
	ctx := context.Background()

	// A flood of bad keys, 16 at a time.
	var wg sync.WaitGroup
	var wrong atomic.Int64
	sem := make(chan struct{}, 16)
	for i := 0; i < 500; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := k.lookup(ctx, fmt.Sprintf("AKBAD%05d", i%250)); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
				wrong.Add(1)
			}
		}()
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d bad keys were not refused as unknown", wrong.Load())
	}
	if n := ks.totalCalls(); n != 0 {
		t.Fatalf("500 requests with 250 unknown keys cost %d controller calls, want 0", n)
	}
	if _, err := k.lookup(ctx, "not a key!"); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("malformed key: %v", err)
	}

	// 50 requests at once for a known key that is not cached yet: one lookup.
	start := make(chan struct{})
	var bad atomic.Int64
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if sec, err := k.lookup(ctx, "AKGOOD"); err != nil || sec != "good-secret" {
				bad.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if bad.Load() != 0 || ks.callsTo("AKGOOD") != 1 {
		t.Fatalf("50 concurrent lookups of a known key: %d failed, %d controller calls; want 0 and 1", bad.Load(), ks.callsTo("AKGOOD"))
	}

	// Found unknown, then created: usable as soon as the watch sees the index record.
	if _, err := k.lookup(ctx, "AKNEW"); !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("AKNEW before it exists: %v", err)
	}
	ks.put("AKNEW", "new-secret")
	waitUntil(t, 10*time.Second, "the new key to be accepted", func() bool {
		sec, err := k.lookup(ctx, "AKNEW")
		return err == nil && sec == "new-secret"
	})
}

func TestShrinkBoundsTheNegativeCache(t *testing.T) {
	now := time.Now()
	m := map[string]time.Time{}
	for i := 0; i < maxUnknown; i++ {
		until := now.Add(time.Second)
		if i%4 == 0 {
			until = now.Add(-time.Second) // expired
		}
		m[fmt.Sprint(i)] = until
	}
	shrink(m, now)
	if len(m) != maxUnknown*3/4 {
		t.Fatalf("after dropping the expired quarter: %d entries, want %d", len(m), maxUnknown*3/4)
	}
	for i := len(m); i < maxUnknown; i++ {
		m[fmt.Sprint("x", i)] = now.Add(time.Second)
	}
	shrink(m, now)
	if len(m) >= maxUnknown*9/10 {
		t.Fatalf("a full cache of live entries kept %d of %d", len(m), maxUnknown)
	}
}

// breakableWatcher is the real etcd watcher with a fault: the test can break the current watch
// (its channel closes, as when the member loses its leader) and hold the next one back.
type breakableWatcher struct {
	clientv3.Watcher
	mu      sync.Mutex
	cancel  context.CancelFunc
	gate    chan struct{} // while not nil, a new watch waits for it to close
	watches atomic.Int64
}

func (b *breakableWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	b.mu.Lock()
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	b.mu.Lock()
	b.cancel = cancel
	b.mu.Unlock()
	b.watches.Add(1)
	return b.Watcher.Watch(ctx, key, opts...)
}

// breakWatch breaks the current watch; the next one starts when the returned func is called.
func (b *breakableWatcher) breakWatch() (resume func()) {
	gate := make(chan struct{})
	b.mu.Lock()
	b.gate = gate
	b.cancel()
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.gate = nil
		b.mu.Unlock()
		close(gate)
	}
}

// After the watch breaks, the cache resumes from the revision it had reached: the keys that did
// not change stay cached (no controller call), and the changes made while it was broken are
// all applied (a removed key is refused, a replaced one takes its new secret).
func TestKeyCacheWatchResumes(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.88.41")
	ks := newKeyStore(t, cli)
	for _, key := range []string{"AKSTAYS", "AKREVOKED", "AKREPLACED"} {
		ks.put(key, key+"-secret")
	}
	k := newKeyCache(cli, ks.lookup, slog.New(slog.DiscardHandler))
	bw := &breakableWatcher{Watcher: cli.Watcher}
	k.watcher = bw
	startKeyCache(t, k)
	ctx := context.Background()
	for _, key := range []string{"AKSTAYS", "AKREVOKED", "AKREPLACED"} {
		if sec, err := k.lookup(ctx, key); err != nil || sec != key+"-secret" {
			t.Fatalf("%s: %q, %v", key, sec, err)
		}
	}

	resume := bw.breakWatch()
	ks.remove("AKREVOKED")
	ks.put("AKREPLACED", "AKREPLACED-new-secret")
	// Something else changes while the watch is down, so that the revision moves on.
	if _, err := cli.Put(ctx, meta.UserPrefix+"AKOTHER", "{}"); err != nil {
		t.Fatal(err)
	}
	resume()
	waitUntil(t, 10*time.Second, "the watch to resume", func() bool { return bw.watches.Load() >= 2 })
	waitUntil(t, 10*time.Second, "the changes made while the watch was down", func() bool {
		_, err := k.lookup(ctx, "AKREVOKED")
		sec, err2 := k.lookup(ctx, "AKREPLACED")
		return errors.Is(err, sigv4.ErrUnknownAccessKey) && err2 == nil && sec == "AKREPLACED-new-secret"
	})
	if sec, err := k.lookup(ctx, "AKSTAYS"); err != nil || sec != "AKSTAYS-secret" {
		t.Fatalf("AKSTAYS after the watch resumed: %q, %v", sec, err)
	}
	if n := ks.callsTo("AKSTAYS"); n != 1 {
		t.Fatalf("the unchanged key was looked up %d times, want once: the cache was reloaded after the watch broke", n)
	}
}
