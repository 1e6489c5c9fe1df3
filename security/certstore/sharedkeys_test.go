package certstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
)

const sharedKey = "/t/proxy/ticket-keys"

// recorder collects what OnChange delivers.
type recorder struct {
	mu  sync.Mutex
	got [][][]byte
}

func (r *recorder) record(keys [][]byte) {
	r.mu.Lock()
	r.got = append(r.got, keys)
	r.mu.Unlock()
}

func (r *recorder) last() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return nil
	}
	return r.got[len(r.got)-1]
}

func runShared(t *testing.T, k *SharedKeys) *recorder {
	r := &recorder{}
	k.OnChange(r.record)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = k.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func equalKeys(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }

func TestSharedKeysAgree(t *testing.T) {
	cli := etcdtest.Start(t, hostShared)
	ctx := testCtx(t)
	kr := newKeyring(t)
	a := NewSharedKeys(newClient(t, cli, true), sharedKey, kr, TicketKeySize, TicketKeyRotate, TicketKeyKeep)
	b := NewSharedKeys(newClient(t, cli, true), sharedKey, kr, TicketKeySize, TicketKeyRotate, TicketKeyKeep)

	// Both find the set missing at once; they must end up with one set.
	var ka, kb [][]byte
	var ea, eb error
	var wg sync.WaitGroup
	wg.Go(func() { ka, ea = a.Current(ctx) })
	wg.Go(func() { kb, eb = b.Current(ctx) })
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatal(ea, eb)
	}
	if len(ka) != 1 || len(ka[0]) != TicketKeySize || !equalKeys(ka, kb) {
		t.Fatalf("peers disagree or bad set: %x vs %x", ka, kb)
	}
	// Sealed at rest.
	resp, err := cli.Get(ctx, sharedKey)
	if err != nil || len(resp.Kvs) != 1 || bytes.Contains(resp.Kvs[0].Value, ka[0]) {
		t.Fatalf("raw value: %v, or it holds the key in the clear", err)
	}
	ra, rb := runShared(t, a), runShared(t, b)
	waitFor(t, 5*time.Second, "both peers to deliver the set", func() bool {
		return equalKeys(ra.last(), ka) && equalKeys(rb.last(), ka)
	})
	var cfg tls.Config
	cfg.SetSessionTicketKeys(SessionTicketKeys(ra.last()))

	// A deleted set is recreated, and both peers converge on the new one.
	if _, err := cli.Delete(ctx, sharedKey); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "peers to agree on a recreated set", func() bool {
		la, lb := ra.last(), rb.last()
		return len(la) == 1 && !equalKeys(la, ka) && equalKeys(la, lb)
	})
}

func TestSharedKeysRotationSeenByPeer(t *testing.T) {
	cli := etcdtest.Start(t, hostRotate)
	kr := newKeyring(t)
	// Only the fast one is ever due; the slow one learns of its rotations
	// through the watch alone.
	fast := NewSharedKeys(newClient(t, cli, true), sharedKey, kr, PinKeySize, 400*time.Millisecond, 3)
	slow := NewSharedKeys(newClient(t, cli, true), sharedKey, kr, PinKeySize, time.Hour, 3)
	initial, err := slow.Current(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	rs := runShared(t, slow)
	runShared(t, fast)

	waitFor(t, 5*time.Second, "the slow peer to see a rotation", func() bool {
		l := rs.last()
		return len(l) == 2 && bytes.Equal(l[1], initial[0])
	})
	// It keeps rotating, newest first, never more than keep keys.
	waitFor(t, 10*time.Second, "the initial key to age out", func() bool {
		l := rs.last()
		return len(l) == 3 && !slices.ContainsFunc(l, func(k []byte) bool { return bytes.Equal(k, initial[0]) })
	})
	rs.mu.Lock()
	for i, l := range rs.got {
		if len(l) > 3 {
			t.Errorf("delivery %d has %d keys, keep is 3", i, len(l))
		}
		if i == 0 {
			continue
		}
		// The watch may coalesce rotations, so the previous newest key is
		// somewhere behind the new front (or aged out), never in front.
		prev := rs.got[i-1][0]
		if j := slices.IndexFunc(l, func(k []byte) bool { return bytes.Equal(k, prev) }); j == 0 {
			t.Errorf("delivery %d did not put a new key in front", i)
		}
	}
	rs.mu.Unlock()
}

func TestSharedKeysRotateOnce(t *testing.T) {
	cli := etcdtest.Start(t, hostRotate)
	ctx := testCtx(t)
	kr := newKeyring(t)
	const rotate, keep = time.Hour, 2
	peers := []*SharedKeys{
		NewSharedKeys(newClient(t, cli, true), sharedKey, kr, 32, rotate, keep),
		NewSharedKeys(newClient(t, cli, true), sharedKey, kr, 32, rotate, keep),
	}
	set, modRev, _, err := peers[0].ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Everyone finds the same set due at the same moment.
	now := set.Rotated.Add(rotate)
	var mu sync.Mutex
	rotations := 0
	var results [][][]byte
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			got, _, rotated, err := peers[i%2].rotateIfDue(ctx, now, set, modRev)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			if rotated {
				rotations++
			}
			results = append(results, got.Keys)
		})
	}
	wg.Wait()
	if rotations != 1 {
		t.Fatalf("%d rotations, want exactly 1", rotations)
	}
	for _, r := range results {
		if !equalKeys(r, results[0]) {
			t.Fatal("callers disagree on the rotated set")
		}
	}
	resp, err := cli.Get(ctx, sharedKey)
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.Kvs[0].Version; v != 2 {
		t.Fatalf("key written %d times, want 2 (create + one rotation)", v)
	}
	cur, err := peers[1].Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != 2 || !bytes.Equal(cur[1], set.Keys[0]) || !equalKeys(cur, results[0]) {
		t.Fatal("rotation did not put a new key in front of the old one")
	}
	// Further rotations keep only the newest keep keys.
	set2, mr2, _, err := peers[0].ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set3, _, rotated, err := peers[0].rotateIfDue(ctx, set2.Rotated.Add(rotate), set2, mr2)
	if err != nil || !rotated {
		t.Fatalf("second rotation: %v, rotated %v", err, rotated)
	}
	if len(set3.Keys) != keep || !bytes.Equal(set3.Keys[1], cur[0]) {
		t.Fatalf("after a second rotation: %d keys, want %d with the previous newest second", len(set3.Keys), keep)
	}
	// Not due: nothing happens.
	if _, _, rotated, err := peers[1].rotateIfDue(ctx, set3.Rotated.Add(rotate/2), set3, 0); err != nil || rotated {
		t.Fatalf("rotation before due: rotated %v, %v", rotated, err)
	}
}
