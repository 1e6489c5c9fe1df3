package certstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// lockKeys returns the etcd keys of lock name (holder and waiters).
func lockKeys(t *testing.T, cli *clientv3.Client, name string) []*mvccpb.KeyValue {
	t.Helper()
	resp, err := cli.Get(context.Background(), testPrefix+"locks/"+name+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Kvs
}

func lockKeyCount(t *testing.T, cli *clientv3.Client, name string) int {
	return len(lockKeys(t, cli, name))
}

func TestLockContention(t *testing.T) {
	cli := etcdtest.Start(t, hostLocks)
	ctx := testCtx(t)
	a := newStorage(t, cli, Options{})
	b := newStorage(t, newClient(t, cli, true), Options{})

	if err := a.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_x"); ok || err != nil {
		t.Fatalf("B.TryLock while A holds = %v, %v; want false, nil", ok, err)
	}
	if ok, err := a.TryLock(ctx, "issue_cert_x"); ok || err != nil {
		t.Fatalf("A.TryLock while A holds = %v, %v; want false, nil", ok, err)
	}
	// Names with slashes are distinct locks, not a hierarchy.
	if ok, err := b.TryLock(ctx, "issue_cert_x/y"); !ok || err != nil {
		t.Fatalf("B.TryLock of another name = %v, %v", ok, err)
	}
	if err := b.Unlock(ctx, "issue_cert_x/y"); err != nil {
		t.Fatal(err)
	}

	// A waiter whose context ends gives up and leaves no key behind.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := b.Lock(short, "issue_cert_x")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("B.Lock with expiring ctx = %v, want deadline exceeded", err)
	}
	waitFor(t, 5*time.Second, "the abandoned waiter's key to go", func() bool { return lockKeyCount(t, cli, "issue_cert_x") == 1 })

	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_x") }()
	select {
	case err := <-got:
		t.Fatalf("B.Lock returned %v while A holds the lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := a.RenewLockLease(ctx, "issue_cert_x", time.Minute); err != nil {
		t.Fatalf("RenewLockLease of a held lock: %v", err)
	}
	if err := a.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("B.Lock still blocked 5s after A unlocked")
	}
	if ok, _ := a.TryLock(ctx, "issue_cert_x"); ok {
		t.Fatal("A.TryLock succeeded while B holds")
	}
	if err := b.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if n := lockKeyCount(t, cli, "issue_cert_x"); n != 0 {
		t.Fatalf("%d lock keys left after Unlock", n)
	}
	if ok, err := a.TryLock(ctx, "issue_cert_x"); !ok || err != nil {
		t.Fatalf("A.TryLock of a free lock = %v, %v", ok, err)
	}
	if err := a.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, "issue_cert_x"); err == nil {
		t.Fatal("Unlock of a lock not held succeeded")
	}
	if err := a.RenewLockLease(ctx, "issue_cert_x", time.Minute); err == nil {
		t.Fatal("RenewLockLease of a lock not held succeeded")
	}
}

// Goroutines of one Storage exclude each other too.
func TestLockSameStorage(t *testing.T) {
	cli := etcdtest.Start(t, hostLocks)
	ctx := testCtx(t)
	s := newStorage(t, cli, Options{})
	var mu sync.Mutex
	inside, maxInside := 0, 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				if err := s.Lock(ctx, "n"); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				inside--
				mu.Unlock()
				if err := s.Unlock(ctx, "n"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if maxInside != 1 {
		t.Fatalf("%d goroutines held the lock at once", maxInside)
	}
}

func TestLockReleasedWhenHolderDies(t *testing.T) {
	cli := etcdtest.Start(t, hostCrash)
	ctx := testCtx(t)
	dying := newClient(t, cli, false)
	a := newStorage(t, dying, Options{LockTTL: 2 * time.Second})
	b := newStorage(t, cli, Options{LockTTL: 2 * time.Second})
	if err := a.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	// The process dies: no Unlock, no revoke, its keepalives just stop.
	dying.Close()
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Lock(lctx, "issue_cert_x"); err != nil {
		t.Fatalf("B.Lock after A died: %v", err)
	}
	t.Logf("lock taken over %v after its holder died (TTL 2s)", time.Since(start).Round(10*time.Millisecond))
	if err := b.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
}

func TestFencing(t *testing.T) {
	cli := etcdtest.Start(t, hostFence)
	ctx := testCtx(t)
	kr := newKeyring(t)
	a := newStorage(t, newClient(t, cli, true), Options{Keyring: kr})
	b := newStorage(t, newClient(t, cli, true), Options{Keyring: kr})
	const lock, key = "issue_cert_proxy", "certificates/ca/proxy/proxy.crt"

	if err := a.Lock(ctx, lock); err != nil {
		t.Fatal(err)
	}
	if err := a.Store(ctx, key, []byte("A1")); err != nil {
		t.Fatalf("write under a held lock: %v", err)
	}
	// A is paused past its lease: simulate the expiry by revoking it.
	kvs := lockKeys(t, cli, lock)
	if len(kvs) != 1 {
		t.Fatalf("%d keys for a held lock", len(kvs))
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Lock(lctx, lock); err != nil {
		t.Fatalf("B.Lock after A's lease ended: %v", err)
	}
	if err := b.Store(ctx, key, []byte("B")); err != nil {
		t.Fatal(err)
	}
	// A resumes and carries on with its critical section.
	if err := a.Store(ctx, key, []byte("A2")); !errors.Is(err, ErrFenced) {
		t.Fatalf("A.Store after losing the lock = %v, want ErrFenced", err)
	}
	if err := a.Delete(ctx, key); !errors.Is(err, ErrFenced) {
		t.Fatalf("A.Delete after losing the lock = %v, want ErrFenced", err)
	}
	if err := a.RenewLockLease(ctx, lock, time.Minute); !errors.Is(err, ErrLockLost) {
		t.Fatalf("A.RenewLockLease after losing the lock = %v, want ErrLockLost", err)
	}
	if got, err := b.Load(ctx, key); err != nil || string(got) != "B" {
		t.Fatalf("value = %q, %v; want B's", got, err)
	}
	// Unlocking the lost lock ends the fencing of A's writes, and does not
	// touch B's lock.
	if err := a.Unlock(ctx, lock); err != nil {
		t.Fatalf("A.Unlock of a lost lock: %v", err)
	}
	if err := a.Store(ctx, "other", []byte("x")); err != nil {
		t.Fatalf("A.Store after Unlock: %v", err)
	}
	if ok, _ := a.TryLock(ctx, lock); ok {
		t.Fatal("A took the lock B holds")
	}
	if err := b.Store(ctx, key, []byte("B2")); err != nil {
		t.Fatalf("B's write under its lock: %v", err)
	}
	if err := b.Unlock(ctx, lock); err != nil {
		t.Fatal(err)
	}
}

// A lock released normally (Unlock) while a write is in flight must not
// make that write fail as fenced; a lock lost meanwhile must.
func TestUnlockDuringWriteIsNotFenced(t *testing.T) {
	cli := etcdtest.Start(t, hostFenceRel)
	ctx := testCtx(t)
	s := newStorage(t, cli, Options{})
	if err := s.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	hooked := 0
	s.mu.Lock()
	s.beforeFencedTxn = func() {
		if hooked++; hooked == 1 {
			if err := s.Unlock(ctx, "l"); err != nil {
				t.Error(err)
			}
		}
	}
	s.mu.Unlock()
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Store racing a normal Unlock: %v", err)
	}
	if hooked != 2 {
		t.Fatalf("write ran its transaction %d times, want 2 (fenced by the released lock, then retried)", hooked)
	}

	if err := s.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	hooked = 0
	s.mu.Lock()
	s.beforeFencedTxn = func() {
		if hooked++; hooked == 1 {
			kvs := lockKeys(t, cli, "l")
			if _, err := cli.Revoke(ctx, clientv3.LeaseID(kvs[0].Lease)); err != nil {
				t.Error(err)
			}
		}
	}
	s.mu.Unlock()
	if err := s.Store(ctx, "k", []byte("v2")); !errors.Is(err, ErrFenced) {
		t.Fatalf("Store racing a lost lock = %v, want ErrFenced", err)
	}
}
