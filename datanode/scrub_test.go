package datanode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A pass verifies every chunk: a byte flipped in one chunk's data (no read touched it) is found,
// the chunk quarantined (reads get ErrNotFound) and reported; the others stay; the report
// counts the pass. The rate holds the pass back.
func TestScrubPass(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte("scrub me"), 200<<10/8) // 200 KiB: four blocks
	for _, id := range []string{"a1", "a2", "a3"} {
		if _, err := s.Put(ctx, id, bytes.NewReader(data), int64(len(data)), ""); err != nil {
			t.Fatal(err)
		}
	}
	// Flip one byte in a2's third block, on disk.
	f, err := os.OpenFile(s.path("a2"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'X'}, 2*BlockSize+17); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var mu sync.Mutex
	var reported []string
	sc := NewScrubber(s, ScrubOptions{Rate: 256 << 10, Report: func(_ context.Context, id string, cause error) error {
		if !errors.Is(cause, ErrCorrupt) {
			t.Errorf("reported %s with %v, want ErrCorrupt", id, cause)
		}
		mu.Lock()
		reported = append(reported, id)
		mu.Unlock()
		return nil
	}})
	start := time.Now()
	if err := sc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	// 600 KiB at 256 KiB/s (a 256 KiB burst): at least a second and a half.
	if d := time.Since(start); d < 1300*time.Millisecond {
		t.Errorf("a pass over 600 KiB at 256 KiB/s took %v", d)
	}
	if len(reported) != 1 || reported[0] != "a2" {
		t.Fatalf("reported %q, want [a2]", reported)
	}
	if _, err := s.Stat("a2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a2 after quarantine: %v", err)
	}
	for _, id := range []string{"a1", "a3"} {
		if err := s.Verify(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	rep := sc.Report()
	if rep.Passes != 1 || rep.LastPassChunks != 3 || rep.Corrupt != 1 || rep.LastPassFinished.IsZero() {
		t.Fatalf("report %+v", rep)
	}
	if u, _ := s.Usage(); u.Chunks != 2 {
		t.Errorf("%d chunks counted after the quarantine, want 2", u.Chunks)
	}
	// A second pass finds nothing new.
	if err := sc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if rep := sc.Report(); rep.Passes != 2 || rep.LastPassChunks != 2 || rep.Corrupt != 1 || len(reported) != 1 {
		t.Fatalf("second pass: report %+v, reported %q", rep, reported)
	}
}

// Clean deletes a quarantined file once its chunk is repaired (not within a minute of the
// quarantine, and never while its report has not landed: it reports it again), any file older
// than QuarantineKeep, and the oldest beyond QuarantineMax; the store's byte count follows.
func TestQuarantineClean(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"fixed", "broken", "old", "lost"} {
		if _, err := s.Put(ctx, id, bytes.NewReader([]byte(id)), int64(len(id)), ""); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.Usage()
	// "lost"'s first report fails (etcd unreachable, say); every other report lands. The damaged
	// record of a chunk stands from its report until the master repairs it ("fixed" only): a
	// chunk never reported has no record either, which must not read as "repaired".
	reports := map[string]int{}
	recorded := map[string]bool{}
	etcdDown := true
	sc := NewScrubber(s, ScrubOptions{
		Report: func(_ context.Context, id string, _ error) error {
			reports[id]++
			if id == "lost" && etcdDown {
				return errors.New("etcd unreachable")
			}
			recorded[id] = true
			return nil
		},
		Repaired: func(_ context.Context, id string) (bool, error) { return id == "fixed" || !recorded[id], nil },
	})
	for _, id := range []string{"fixed", "broken", "old", "lost"} {
		sc.corrupt(ctx, id, ErrCorrupt)
	}
	q := filepath.Join(s.dir, quarantineDir)
	// "old" was quarantined long ago.
	ents, _ := os.ReadDir(q)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "old-") {
			if err := os.Rename(filepath.Join(q, e.Name()), filepath.Join(q, "old-20200101T000000Z")); err != nil {
				t.Fatal(err)
			}
		}
	}
	names := func() []string {
		var out []string
		ents, _ := os.ReadDir(q)
		for _, e := range ents {
			base, _ := strings.CutSuffix(e.Name(), unreportedSuffix)
			out = append(out, base[:strings.LastIndexByte(base, '-')])
		}
		slices.Sort(out)
		return out
	}
	if err := sc.Clean(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []string{"broken", "fixed", "lost"}) {
		t.Fatalf("just quarantined: %q left, want the old one gone only", got)
	}
	if reports["lost"] != 2 || recorded["lost"] {
		t.Fatalf("lost: %d reports, recorded %v; want a second, failed, attempt", reports["lost"], recorded["lost"])
	}
	if err := sc.Clean(ctx, time.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []string{"broken", "lost"}) {
		t.Fatalf("after a minute: %q left, want the unrepaired and the unreported ones", got)
	}
	etcdDown = false
	if err := sc.Clean(ctx, time.Now().Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !recorded["lost"] || reports["lost"] != 4 || reports["broken"] != 1 {
		t.Fatalf("reports %v, recorded %v: want lost reported once etcd answers, the others once", reports, recorded)
	}
	if got := names(); !slices.Equal(got, []string{"broken", "lost"}) {
		t.Fatalf("after the report landed: %q left, want both kept until repaired", got)
	}
	if u, _ := s.Usage(); u.Stored != before.Stored-int64(len("fixed")+len("old"))-2*(footerLen+4) {
		t.Errorf("stored %d bytes, before %d", u.Stored, before.Stored)
	}
	// The bound on the count: the oldest go.
	for i := range QuarantineMax + 5 {
		name := fmt.Sprintf("x%04d-%s", i, time.Now().Add(time.Duration(i)*time.Second).UTC().Format(quarantineStamp))
		if err := os.WriteFile(filepath.Join(q, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Clean(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	got := names()
	if len(got) != QuarantineMax || slices.Contains(got, "x0000") || !slices.Contains(got, fmt.Sprintf("x%04d", QuarantineMax+4)) {
		t.Fatalf("%d files left (%q ...), want the newest %d", len(got), got[:3], QuarantineMax)
	}
}
