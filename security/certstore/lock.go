package certstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// revokeTimeout bounds the lease revocation of a failed lock attempt, which
// has no caller context left to use.
const revokeTimeout = 5 * time.Second

// fenceRetries bounds how often a write is retried because a lock it was
// fenced with was released normally (by Unlock) while it was in flight.
const fenceRetries = 16

// heldLock is one acquired lock: an etcd mutex on a session of its own, so
// that Unlock (lease revoke) or a crash (lease expiry) releases exactly it.
type heldLock struct {
	name    string
	session *concurrency.Session
	mutex   *concurrency.Mutex
}

// localLock serialises Lock calls for one name inside this Storage. Without
// it two goroutines could both hold "the" lock of a name (the second after
// the first's lease expired), and Unlock(name) could not tell them apart.
type localLock struct {
	ch   chan struct{} // capacity 1: full while a goroutine of ours owns the name
	refs int
}

// Lock blocks until it holds the lock name (across all processes using the
// same etcd prefix) or ctx is done.
func (s *Storage) Lock(ctx context.Context, name string) error {
	if _, err := s.acquire(ctx, name, false); err != nil {
		return fmt.Errorf("certstore: lock %q: %w", name, err)
	}
	return nil
}

// TryLock takes the lock name if it is free and reports whether it did.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	ok, err := s.acquire(ctx, name, true)
	if err != nil {
		return false, fmt.Errorf("certstore: try lock %q: %w", name, err)
	}
	return ok, nil
}

func (s *Storage) acquire(ctx context.Context, name string, try bool) (bool, error) {
	ok, err := s.acquireLocal(ctx, name, try)
	if err != nil || !ok {
		return false, err
	}
	for {
		h, err := s.newSession(ctx, name)
		if err != nil {
			s.releaseLocal(name)
			return false, err
		}
		if try {
			err = h.mutex.TryLock(ctx)
		} else {
			err = h.mutex.Lock(ctx)
		}
		if err == nil {
			s.mu.Lock()
			s.held[name] = h
			s.mu.Unlock()
			return true, nil
		}
		s.abandon(h)
		switch {
		case try && errors.Is(err, concurrency.ErrLocked):
			s.releaseLocal(name)
			return false, nil
		case !try && errors.Is(err, concurrency.ErrSessionExpired) && ctx.Err() == nil:
			// Our lease expired while we queued (a long partition, say):
			// queue again on a fresh session.
			continue
		default:
			s.releaseLocal(name)
			return false, err
		}
	}
}

// newSession grants a lease with ctx (so a cancelled Lock does not hang in
// Grant) and keeps it alive for as long as the client lives.
func (s *Storage) newSession(ctx context.Context, name string) (*heldLock, error) {
	lease, err := s.cli.Grant(ctx, int64(s.ttl))
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(lease.ID), concurrency.WithContext(s.cli.Ctx()))
	if err != nil {
		rctx, cancel := context.WithTimeout(s.cli.Ctx(), revokeTimeout)
		defer cancel()
		_, _ = s.cli.Revoke(rctx, lease.ID)
		return nil, fmt.Errorf("start session: %w", err)
	}
	// PathEscape keeps "/" out of the name, so lock "a" never queues behind
	// the waiters of lock "a/b".
	return &heldLock{name: name, session: sess, mutex: concurrency.NewMutex(sess, s.lockPrefix+url.PathEscape(name))}, nil
}

// abandon ends a session that did not get (or no longer needs) its lock; if
// the revoke fails the lease still expires within the TTL.
func (s *Storage) abandon(h *heldLock) {
	h.session.Orphan()
	ctx, cancel := context.WithTimeout(s.cli.Ctx(), revokeTimeout)
	defer cancel()
	_, _ = s.cli.Revoke(ctx, h.session.Lease())
}

// Unlock releases the lock name by revoking its session's lease. A lock
// already lost (lease expired) is released too; that is logged, not an error.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	// Forget it before its etcd key disappears, so a concurrent fenced
	// write sees a normal release (and retries) rather than a lost lock.
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("certstore: unlock %q: not locked by this storage", name)
	}
	defer s.releaseLocal(name)
	lost := false
	select {
	case <-h.session.Done():
		lost = true
	default:
	}
	h.session.Orphan()
	_, err := s.cli.Revoke(ctx, h.session.Lease())
	if lost || errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.log.Warn("certstore: lock was lost before Unlock; writes made meanwhile were fenced",
			"lock", name, "lease", fmt.Sprintf("%x", h.session.Lease()))
		return nil
	}
	if err != nil {
		return fmt.Errorf("certstore: unlock %q: revoke lease %x (it expires by itself within %ds): %w",
			name, h.session.Lease(), s.ttl, err)
	}
	return nil
}

// RenewLockLease checks that the lock is still held and refreshes its lease
// now. etcd cannot give a lease a longer TTL than it was granted, and does
// not need to: the session keeps the lease alive for as long as this process
// runs, so leaseDuration is ignored.
func (s *Storage) RenewLockLease(ctx context.Context, lockKey string, leaseDuration time.Duration) error {
	s.mu.Lock()
	h := s.held[lockKey]
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("certstore: renew lock %q: not locked by this storage", lockKey)
	}
	select {
	case <-h.session.Done():
		return fmt.Errorf("certstore: renew lock %q: %w", lockKey, ErrLockLost)
	default:
	}
	if _, err := s.cli.KeepAliveOnce(ctx, h.session.Lease()); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("certstore: renew lock %q: %w", lockKey, ErrLockLost)
		}
		return fmt.Errorf("certstore: renew lock %q: %w", lockKey, err)
	}
	return nil
}

func (s *Storage) acquireLocal(ctx context.Context, name string, try bool) (bool, error) {
	s.mu.Lock()
	l := s.local[name]
	if l == nil {
		l = &localLock{ch: make(chan struct{}, 1)}
		s.local[name] = l
	}
	l.refs++
	s.mu.Unlock()
	if try {
		select {
		case l.ch <- struct{}{}:
			return true, nil
		default:
			s.dropLocal(name, l)
			return false, nil
		}
	}
	select {
	case l.ch <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		s.dropLocal(name, l)
		return false, ctx.Err()
	}
}

func (s *Storage) releaseLocal(name string) {
	s.mu.Lock()
	l := s.local[name]
	s.mu.Unlock()
	<-l.ch
	s.dropLocal(name, l)
}

func (s *Storage) dropLocal(name string, l *localLock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(s.local, name)
	}
}

// fencedWrite commits ops only if every lock this Storage holds is still
// owned by it (its mutex key, created under its session's lease, still
// exists). A holder that was paused past its lease therefore cannot
// overwrite what the next holder wrote.
func (s *Storage) fencedWrite(ctx context.Context, op, key string, ops ...clientv3.Op) error {
	for range fenceRetries {
		s.mu.Lock()
		locks := make([]*heldLock, 0, len(s.held))
		for _, h := range s.held {
			locks = append(locks, h)
		}
		hook := s.beforeFencedTxn
		s.mu.Unlock()
		if hook != nil {
			hook()
		}
		cmps := make([]clientv3.Cmp, len(locks))
		checks := make([]clientv3.Op, len(locks))
		for i, h := range locks {
			cmps[i] = h.mutex.IsOwner()
			checks[i] = clientv3.OpGet(h.mutex.Key(), clientv3.WithCountOnly())
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(checks...).Commit()
		if err != nil {
			return fmt.Errorf("certstore: %s %s: %w", op, key, err)
		}
		if resp.Succeeded {
			return nil
		}
		var lost []string
		s.mu.Lock()
		for i, h := range locks {
			// The key is named by our own lease, so it exists iff we own it.
			if resp.Responses[i].GetResponseRange().Count == 0 && s.held[h.name] == h {
				lost = append(lost, h.name)
			}
		}
		s.mu.Unlock()
		if len(lost) > 0 {
			slices.Sort(lost)
			return fmt.Errorf("certstore: %s %s: %w (lock %s)", op, key, ErrFenced, strings.Join(lost, ", "))
		}
		// Only locks that Unlock released meanwhile failed: try again
		// with the current set.
	}
	return fmt.Errorf("certstore: %s %s: locks kept changing during the write", op, key)
}
