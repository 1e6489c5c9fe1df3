package datanode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func openTest(t *testing.T, o Options) *Store {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "chunks")
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 1 // tests must not depend on the host's free space
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func shaHex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func mustPut(t *testing.T, s *Store, id string, data []byte) Info {
	t.Helper()
	info, err := s.Put(context.Background(), id, bytes.NewReader(data), int64(len(data)), "")
	if err != nil {
		t.Fatalf("Put %s: %v", id, err)
	}
	return info
}

func readRange(s *Store, id string, off, n int64) ([]byte, error) {
	rc, _, err := s.Get(context.Background(), id, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// leftovers lists every file under the store dir except the lock file.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() != lockName && d.Name() != identityName {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTripSizes(t *testing.T) {
	s := openTest(t, Options{})
	for i, size := range []int{0, 1, BlockSize - 1, BlockSize, BlockSize + 1, 1<<20 + 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			id := fmt.Sprintf("c-%d", size)
			data := randBytes(size, uint64(i))
			info, err := s.Put(context.Background(), id, bytes.NewReader(data), int64(size), shaHex(data))
			if err != nil {
				t.Fatal(err)
			}
			if info.ID != id || info.Size != int64(size) || info.SHA256 != shaHex(data) || info.Created.IsZero() {
				t.Fatalf("info = %+v", info)
			}
			got, err := readRange(s, id, 0, -1)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, err %v; equal=%v", len(got), err, bytes.Equal(got, data))
			}
			st, err := s.Stat(id)
			if err != nil || st != info {
				t.Fatalf("Stat = %+v, %v; want %+v", st, err, info)
			}
			if err := s.Verify(id); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(s.path(id))
			if err != nil || fi.Size() != int64(size)+4*nblocksFor(int64(size))+footerLen {
				t.Fatalf("file size %v, %v", fi.Size(), err)
			}
		})
	}
}

func TestRanges(t *testing.T) {
	s := openTest(t, Options{})
	const size = 3*BlockSize + 100
	data := randBytes(size, 1)
	mustPut(t, s, "r", data)
	B := int64(BlockSize)
	for _, tc := range []struct{ off, n int64 }{
		{0, 1}, {0, B}, {0, B + 1}, {B - 1, 1}, {B - 1, 2}, {B, B}, {B, -1},
		{2*B - 1, B + 2}, {3 * B, 100}, {3 * B, -1}, {size - 1, 1}, {size, 0}, {size, -1}, {0, size}, {5, 0},
	} {
		got, err := readRange(s, "r", tc.off, tc.n)
		end := int64(size)
		if tc.n >= 0 {
			end = tc.off + tc.n
		}
		if err != nil || !bytes.Equal(got, data[tc.off:end]) {
			t.Errorf("[%d,+%d): %d bytes, %v", tc.off, tc.n, len(got), err)
		}
	}
	for _, tc := range []struct{ off, n int64 }{{-1, 1}, {0, size + 1}, {size + 1, -1}, {10, -2}} {
		if _, err := readRange(s, "r", tc.off, tc.n); !errors.Is(err, ErrBadRange) {
			t.Errorf("[%d,+%d): err %v, want ErrBadRange", tc.off, tc.n, err)
		}
	}
	// small reads across a block boundary
	rc, _, err := s.Get(context.Background(), "r", B-3, 6)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []byte
	p := make([]byte, 2)
	for {
		k, err := rc.Read(p)
		got = append(got, p[:k]...)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data[B-3:B+3]) {
		t.Fatal("small reads mismatch")
	}
}

func TestPutChecksumMismatchStoresNothing(t *testing.T) {
	s := openTest(t, Options{})
	data := randBytes(BlockSize+5, 2)
	for _, want := range []string{shaHex([]byte("other")), "zz", strings.Repeat("a", 63)} {
		_, err := s.Put(context.Background(), "bad-sum", bytes.NewReader(data), int64(len(data)), want)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "bad-sum") {
			t.Fatalf("want %q: err %v", want, err)
		}
	}
	if _, err := s.Stat("bad-sum"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat: %v", err)
	}
	if l := leftovers(t, s.dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
	// upper-case hex is accepted
	if _, err := s.Put(context.Background(), "bad-sum", bytes.NewReader(data), int64(len(data)), strings.ToUpper(shaHex(data))); err != nil {
		t.Fatal(err)
	}
}

func TestPutIdempotentAndExists(t *testing.T) {
	s := openTest(t, Options{})
	data := randBytes(2*BlockSize+3, 3)
	first := mustPut(t, s, "x1", data)
	again, existed, err := s.put(context.Background(), "x1", bytes.NewReader(data), int64(len(data)), shaHex(data))
	if err != nil || !existed || again != first {
		t.Fatalf("re-put: %+v existed=%v %v; first %+v", again, existed, err, first)
	}
	other := bytes.Clone(data)
	other[len(other)-1] ^= 1
	for _, tc := range []struct {
		name string
		body []byte
		size int64
		sha  string
	}{
		{"same size different bytes", other, int64(len(other)), ""},
		{"different size", data[:10], 10, ""},
		{"unknown size", other, -1, ""},
		{"different sha declared", data, int64(len(data)), shaHex(other)},
	} {
		_, err := s.Put(context.Background(), "x1", bytes.NewReader(tc.body), tc.size, tc.sha)
		if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"x1"`) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	got, err := readRange(s, "x1", 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatal("original content changed")
	}
	if l := leftovers(t, s.dir); len(l) != 1 {
		t.Fatalf("files: %v", l)
	}
}

func TestPutSizeAndLimits(t *testing.T) {
	s := openTest(t, Options{MaxChunkSize: 1000})
	ctx := context.Background()
	if _, err := s.Put(ctx, "big", bytes.NewReader(make([]byte, 1001)), 1001, ""); !errors.Is(err, ErrTooLarge) {
		t.Errorf("declared too large: %v", err)
	}
	if _, err := s.Put(ctx, "big", bytes.NewReader(make([]byte, 1001)), -1, ""); !errors.Is(err, ErrTooLarge) {
		t.Errorf("streamed too large: %v", err)
	}
	if _, err := s.Put(ctx, "short", bytes.NewReader(make([]byte, 10)), 20, ""); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("short body: %v", err)
	}
	// exactly size bytes are consumed, never more
	r := bytes.NewReader(make([]byte, 30))
	if _, err := s.Put(ctx, "exact", r, 20, ""); err != nil || r.Len() != 10 {
		t.Errorf("exact: %v, %d left", err, r.Len())
	}
	if info, err := s.Put(ctx, "unknown", bytes.NewReader(make([]byte, 999)), -1, ""); err != nil || info.Size != 999 {
		t.Errorf("unknown size: %+v %v", info, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, "cancelled", bytes.NewReader(make([]byte, 10)), 10, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if l := leftovers(t, s.dir); len(l) != 2 {
		t.Fatalf("files: %v", l)
	}
}

// flipByte flips one bit of the chunk file at offset off.
func flipByte(t *testing.T, s *Store, id string, off int64) {
	t.Helper()
	f, err := os.OpenFile(s.path(id), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruption(t *testing.T) {
	s := openTest(t, Options{})
	B := int64(BlockSize)
	data := randBytes(int(3*B+10), 4)
	mustPut(t, s, "cor", data)
	flipByte(t, s, "cor", B+123) // block 1
	for _, tc := range []struct {
		off, n  int64
		corrupt bool
	}{
		{0, B, false}, {0, B + 1, true}, {B, 1, true}, {B + 123, 1, true}, {2*B - 1, 1, true},
		{2 * B, -1, false}, {B - 1, 1, false}, {0, -1, true}, {B - 10, 20, true},
	} {
		rc, _, err := s.Get(context.Background(), "cor", tc.off, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if tc.corrupt {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cor") {
				t.Errorf("[%d,+%d): err %v, want ErrCorrupt", tc.off, tc.n, err)
			}
			// nothing from the bad block was returned
			if int64(len(got)) > max(0, B-tc.off) {
				t.Errorf("[%d,+%d): %d bytes returned past the good block", tc.off, tc.n, len(got))
			}
			if !bytes.Equal(got, data[tc.off:tc.off+int64(len(got))]) {
				t.Errorf("[%d,+%d): wrong bytes returned", tc.off, tc.n)
			}
		} else {
			end := int64(len(data))
			if tc.n >= 0 {
				end = tc.off + tc.n
			}
			if err != nil || !bytes.Equal(got, data[tc.off:end]) {
				t.Errorf("[%d,+%d): %v", tc.off, tc.n, err)
			}
		}
	}
	if err := s.Verify("cor"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v", err)
	}
}

func TestCorruptMetadata(t *testing.T) {
	B := int64(BlockSize)
	for _, tc := range []struct {
		name string
		at   func(size int64) int64
	}{
		{"crc table", func(size int64) int64 { return size + 1 }},
		{"footer size", func(size int64) int64 { return size + 4*nblocksFor(size) + 9 }},
		{"footer sha", func(size int64) int64 { return size + 4*nblocksFor(size) + 30 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, Options{})
			data := randBytes(int(B+1), 5)
			mustPut(t, s, "m", data)
			flipByte(t, s, "m", tc.at(int64(len(data))))
			if err := s.Verify("m"); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify: %v", err)
			}
			if _, err := readRange(s, "m", 0, 1); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get: %v", err)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		s := openTest(t, Options{})
		mustPut(t, s, "m", randBytes(100, 6))
		if err := os.Truncate(s.path("m"), 50); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat("m"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Stat: %v", err)
		}
		l, err := s.List(context.Background(), "", 10)
		if err != nil || len(l) != 1 || l[0].Size != -1 {
			t.Fatalf("List: %+v %v", l, err)
		}
	})
}

func TestNoSpace(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		s := openTest(t, Options{MinFreeBytes: 1 << 62})
		_, err := s.Put(context.Background(), "ns", bytes.NewReader(randBytes(100, 1)), 100, "")
		if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "ns") {
			t.Fatalf("err %v", err)
		}
		if l := leftovers(t, s.dir); len(l) != 0 {
			t.Fatalf("left behind: %v", l)
		}
	})
	t.Run("during", func(t *testing.T) {
		s := openTest(t, Options{MinFreeBytes: 1 << 20})
		calls := 0
		s.freeBytes = func() (int64, error) {
			calls++
			if calls == 1 {
				return 1 << 40, nil
			}
			return 1 << 10, nil // the disk filled up meanwhile
		}
		data := randBytes(2<<20, 2)
		_, err := s.Put(context.Background(), "ns2", bytes.NewReader(data), int64(len(data)), "")
		if !errors.Is(err, ErrNoSpace) || calls < 2 {
			t.Fatalf("err %v after %d checks", err, calls)
		}
		if l := leftovers(t, s.dir); len(l) != 0 {
			t.Fatalf("left behind: %v", l)
		}
	})
	t.Run("ENOSPC", func(t *testing.T) {
		s := openTest(t, Options{})
		err := s.ioErr(&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
		if !errors.Is(err, ErrNoSpace) {
			t.Fatalf("err %v", err)
		}
		w := errWriter{err: &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}}
		if _, _, err := s.writeData(context.Background(), w, bytes.NewReader([]byte("abc")), 3); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("writeData: %v", err)
		}
	})
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestBadIDs(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	for _, id := range []string{"", "../x", "..", ".", "a/b", "ABC", "a_b", "a b", ".tmp-x", strings.Repeat("a", 129), "é"} {
		if _, err := s.Put(ctx, id, strings.NewReader("x"), 1, ""); !errors.Is(err, ErrBadID) {
			t.Errorf("Put %q: %v", id, err)
		}
		if _, _, err := s.Get(ctx, id, 0, -1); !errors.Is(err, ErrBadID) {
			t.Errorf("Get %q: %v", id, err)
		}
		if _, err := s.Stat(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Stat %q: %v", id, err)
		}
		if err := s.Delete(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Delete %q: %v", id, err)
		}
		if err := s.Verify(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Verify %q: %v", id, err)
		}
	}
	for _, id := range []string{"a", "0", "-", strings.Repeat("z", 128), "abc-123"} {
		mustPut(t, s, id, []byte(id))
	}
}

func TestListAndDelete(t *testing.T) {
	s := openTest(t, Options{})
	var ids []string
	for i := range 37 {
		ids = append(ids, fmt.Sprintf("%c%02d", 'a'+i%5, i))
	}
	ids = append(ids, "a", "b", "a-", "a0", "z")
	for _, id := range ids {
		mustPut(t, s, id, []byte(id))
	}
	want := append([]string(nil), ids...)
	slices.Sort(want)

	var got []string
	after := ""
	pages := 0
	for {
		page, err := s.List(context.Background(), after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages++
		for _, in := range page {
			if in.Size != int64(len(in.ID)) || in.SHA256 != shaHex([]byte(in.ID)) {
				t.Fatalf("info %+v", in)
			}
			got = append(got, in.ID)
		}
		after = page[len(page)-1].ID
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != (len(want)+6)/7 {
		t.Fatalf("listed %v in %d pages\nwant %v", got, pages, want)
	}
	if l, _ := s.List(context.Background(), "a05", 3); len(l) != 3 || l[0].ID != want[slices.Index(want, "a05")+1] {
		t.Fatalf("after a05: %+v", l)
	}
	if u, err := s.Usage(); err != nil || u.Chunks != len(ids) || u.Capacity <= 0 || u.Free <= 0 || u.Used <= 0 {
		t.Fatalf("usage %+v %v", u, err)
	}

	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.Stat("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat deleted: %v", err)
	}
	if _, _, err := s.Get(context.Background(), "a", 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if u, _ := s.Usage(); u.Chunks != len(ids)-1 {
		t.Fatalf("chunks %d", u.Chunks)
	}
	// a deleted id can be put again with other content
	mustPut(t, s, "a", []byte("new"))
}

func TestConcurrentPuts(t *testing.T) {
	s := openTest(t, Options{MaxConcurrent: 4})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			data := randBytes(BlockSize*2+i, uint64(i))
			id := fmt.Sprintf("conc-%d", i)
			if _, err := s.Put(context.Background(), id, bytes.NewReader(data), int64(len(data)), shaHex(data)); err != nil {
				errs <- err
				return
			}
			got, err := readRange(s, id, 0, -1)
			if err != nil || !bytes.Equal(got, data) {
				errs <- fmt.Errorf("%s: read back: %v", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		if err := s.Verify(fmt.Sprintf("conc-%d", i)); err != nil {
			t.Error(err)
		}
	}
}

func TestConcurrentSameID(t *testing.T) {
	s := openTest(t, Options{})
	data := randBytes(BlockSize+1, 9)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 8 {
		wg.Go(func() {
			_, existed, err := s.put(context.Background(), "same", bytes.NewReader(data), int64(len(data)), "")
			if err != nil {
				t.Error(err)
				return
			}
			if !existed {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("%d puts created the chunk", created)
	}
	if u, _ := s.Usage(); u.Chunks != 1 {
		t.Fatalf("chunks %d", u.Chunks)
	}
}

func TestConcurrencyLimitWaitsOnContext(t *testing.T) {
	s := openTest(t, Options{MaxStreams: 1})
	mustPut(t, s, "held", []byte("hello"))
	rc, _, err := s.Get(context.Background(), "held", 0, -1) // holds the only stream
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Get(ctx, "held", 0, -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get while full: %v", err)
	}
	if _, err := s.Put(ctx, "other", strings.NewReader("x"), 1, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put while full: %v", err)
	}
	rc.Close()
	rc.Close() // idempotent
	if _, err := readRange(s, "held", 0, -1); err != nil {
		t.Fatal(err)
	}
}

// Readers that stop consuming hold their stream, never a disk slot: more of them than there
// are disk slots leave a new Get (and Put) free to run.
func TestSlowReadersDoNotBlockGets(t *testing.T) {
	s := openTest(t, Options{MaxConcurrent: 2})
	data := randBytes(3*BlockSize+100, 11)
	mustPut(t, s, "slow", data)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 6 { // three times the disk slots
		rc, _, err := s.Get(ctx, "slow", int64(i), -1)
		if err != nil {
			t.Fatalf("stalled reader %d: %v", i, err)
		}
		t.Cleanup(func() { rc.Close() })
		if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil { // reads a block, then stops
			t.Fatal(err)
		}
	}
	rc, _, err := s.Get(ctx, "slow", 0, -1)
	if err != nil {
		t.Fatalf("Get with 6 stalled readers and 2 disk slots: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with stalled readers: %v (equal %v)", err, bytes.Equal(got, data))
	}
	if _, err := s.Put(ctx, "new", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatalf("Put with stalled readers: %v", err)
	}
}

func TestOpenCleansTempAndLocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	s := openTest(t, Options{Dir: dir})
	mustPut(t, s, "keep", []byte("k"))
	if _, err := Open(Options{Dir: dir}); err == nil {
		t.Fatal("second Open of a locked dir succeeded")
	}
	stale := filepath.Join(dir, "ke", tmpPrefix+"keep-123")
	if err := os.WriteFile(stale, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openTest(t, Options{Dir: dir})
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale temp survived: %v", err)
	}
	if u, _ := s2.Usage(); u.Chunks != 1 {
		t.Fatalf("chunks %d", u.Chunks)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("dir mode %v %v", fi.Mode(), err)
	}
}

// TestCapacity: a configured capacity below the filesystem's is what Usage reports, its free
// bytes shrink with what the store holds (quarantined files included), a put past it is
// refused with ErrNoSpace, a deletion gives the room back, and a reopened store counts the
// same bytes.
func TestCapacity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "chunks")
	const limit = 1 << 20
	s := openTest(t, Options{Dir: dir, Capacity: limit})
	u, err := s.Usage()
	if err != nil || u.Capacity != limit || u.Free != limit || u.Stored != 0 {
		t.Fatalf("empty store: %+v %v", u, err)
	}
	for i := range 3 {
		mustPut(t, s, fmt.Sprintf("c%d", i), randBytes(300<<10, uint64(i)))
	}
	u, _ = s.Usage()
	// Each file is its data, a CRC per block and the footer.
	if u.Stored < 3*300<<10 || u.Stored > 3*(300<<10+1024) || u.Free != limit-u.Stored {
		t.Fatalf("three chunks: %+v", u)
	}
	if _, err := s.Put(context.Background(), "c3", bytes.NewReader(randBytes(300<<10, 9)), 300<<10, ""); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("put past the capacity: %v", err)
	}
	if _, err := s.Quarantine("c0"); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.Usage(); q.Stored != u.Stored || q.Chunks != 2 {
		t.Fatalf("after a quarantine: %+v, before %+v", q, u)
	}
	if err := s.Delete("c1"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "c3", randBytes(300<<10, 9))
	u, _ = s.Usage()
	s.Close()
	s2 := openTest(t, Options{Dir: dir, Capacity: limit})
	if u2, _ := s2.Usage(); u2.Stored != u.Stored || u2.Chunks != u.Chunks {
		t.Fatalf("reopened: %+v, before %+v", u2, u)
	}
	// A capacity above the filesystem's: the filesystem's is reported.
	s2.Close()
	s3 := openTest(t, Options{Dir: dir, Capacity: 1 << 62})
	if u3, _ := s3.Usage(); u3.Capacity >= 1<<62 || u3.Capacity <= 0 {
		t.Fatalf("capacity above the filesystem's: %+v", u3)
	}
}

// gatedReader hands out its bytes only once gate is closed, counting the puts that got as far
// as reading.
type gatedReader struct {
	r       io.Reader
	gate    <-chan struct{}
	started *atomic.Int32
	once    sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.once.Do(func() { g.started.Add(1) })
	<-g.gate
	return g.r.Read(p)
}

// Concurrent puts cannot take the store past its capacity together: each sets its file's room
// aside before reading its body, so of six 300 KiB puts under way at once into a 1 MiB store,
// three are refused before they read anything and the store ends within its capacity.
func TestCapacityConcurrentPuts(t *testing.T) {
	const limit, size, n = 1 << 20, 300 << 10, 6
	s := openTest(t, Options{Dir: filepath.Join(t.TempDir(), "chunks"), Capacity: limit})
	gate := make(chan struct{})
	var started atomic.Int32
	errs := make(chan error, n)
	for i := range n {
		go func() {
			body := &gatedReader{r: bytes.NewReader(randBytes(size, uint64(i))), gate: gate, started: &started}
			_, err := s.Put(context.Background(), fmt.Sprintf("p%d", i), body, size, "")
			errs <- err
		}()
	}
	// Wait until every put is either reading its body or refused.
	var refused []error
	deadline := time.Now().Add(10 * time.Second)
	for int(started.Load())+len(refused) < n {
		select {
		case err := <-errs:
			refused = append(refused, err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d puts reading, %d refused after 10s", started.Load(), len(refused))
		}
	}
	close(gate)
	ok := 0
	for len(refused)+ok < n {
		err := <-errs
		if err == nil {
			ok++
			continue
		}
		refused = append(refused, err)
	}
	for _, err := range refused {
		if !errors.Is(err, ErrNoSpace) {
			t.Errorf("refused put: %v, want ErrNoSpace", err)
		}
	}
	u, _ := s.Usage()
	if ok != 3 || u.Stored > limit || u.Chunks != 3 {
		t.Fatalf("%d puts stored, usage %+v; want 3 within %d bytes", ok, u, limit)
	}
}
