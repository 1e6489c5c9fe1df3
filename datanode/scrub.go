package datanode

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/internal/fsutil"
)

// quarantineDir holds chunk files a scrub found corrupt, out of the store's reach (reads get
// ErrNotFound and go to another replica), kept for an operator to inspect until the chunk is
// repaired elsewhere, or at most QuarantineKeep (see Scrubber.Clean).
const quarantineDir = ".quarantine"

// unreportedSuffix ends the name of a quarantined file whose damage is not yet recorded in etcd.
// A file is quarantined under it and renamed without it once the report has landed, so that a
// report that failed, or a crash between quarantine and report, is retried by Clean instead of
// being lost: nothing else would tell the master that this machine's copy is gone.
const unreportedSuffix = ".unreported"

// Quarantine bounds: a quarantined file is deleted QuarantineKeep after the quarantine even if
// its chunk was never repaired (a failed report, say), and the directory keeps at most
// QuarantineMax files (the oldest go first), so that a failing disk cannot fill it.
const (
	QuarantineKeep = 7 * 24 * time.Hour
	QuarantineMax  = 1000
	// quarantineSettle: a file is not deleted as repaired sooner than this after its quarantine
	// (its report, made just after, must have landed for "no record" to mean "repaired").
	quarantineSettle = time.Minute
	// quarantineStamp is the time suffix of a quarantined file's name.
	quarantineStamp = "20060102T150405Z"
)

// ScrubOptions configure a Scrubber; zero values take the defaults.
type ScrubOptions struct {
	// Interval: a pass over every chunk starts at most this often (scrub-interval, default
	// 168h); a pass that takes longer is followed by the next at once.
	Interval time.Duration
	// Rate bounds the bytes per second a pass reads (scrub-rate, default 50 MiB).
	Rate int64
	// Report records a corrupt chunk, quarantined already (the datanode writes a
	// damaged-replica record, which the active master repairs). It must be idempotent: a report
	// that failed is made again by every Clean until it succeeds.
	Report func(ctx context.Context, id string, cause error) error
	// Repaired reports whether the damaged copy of chunk id reported from this datanode is dealt
	// with: its damaged-replica record is gone (the master deletes it in the transaction that
	// records the replacement, or once no record references the chunk). Its quarantined file is
	// then deleted. Nil: files are kept for QuarantineKeep.
	Repaired func(ctx context.Context, id string) (bool, error)
	// CleanEvery spaces the looks at the quarantine (default 10m).
	CleanEvery time.Duration
	Log        *slog.Logger
}

// Scrubber verifies every chunk of a store in the background: block CRCs and the SHA-256,
// read at no more than Rate and yielding to client I/O (a block waits while client streams are
// open, up to yieldMax). A corrupt chunk is moved to quarantine and reported.
type Scrubber struct {
	s   *Store
	o   ScrubOptions
	lim *rate.Limiter

	mu sync.Mutex
	st cluster.ScrubReport
}

// Scrub pacing.
const (
	scrubPage = 256
	// yieldMax bounds how long one block waits for client streams to close.
	yieldMax  = 100 * time.Millisecond
	yieldStep = 5 * time.Millisecond
)

// NewScrubber returns the scrubber of s.
func NewScrubber(s *Store, o ScrubOptions) *Scrubber {
	if o.Interval <= 0 {
		o.Interval = 168 * time.Hour
	}
	if o.Rate <= 0 {
		o.Rate = 50 << 20
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CleanEvery <= 0 {
		o.CleanEvery = 10 * time.Minute
	}
	return &Scrubber{s: s, o: o, lim: rate.NewLimiter(rate.Limit(o.Rate), max(int(min(o.Rate, 1<<20)), BlockSize))}
}

// Report returns the scrub's progress (what the datanode registers).
func (sc *Scrubber) Report() cluster.ScrubReport {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.st
}

// Run scrubs, and cleans the quarantine every CleanEvery, until ctx ends.
func (sc *Scrubber) Run(ctx context.Context) {
	go func() {
		t := time.NewTicker(sc.o.CleanEvery)
		defer t.Stop()
		for {
			if err := sc.Clean(ctx, time.Now()); err != nil && ctx.Err() == nil {
				sc.o.Log.Warn("cleaning the quarantine", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	for ctx.Err() == nil {
		start := time.Now()
		if err := sc.Pass(ctx); err != nil && ctx.Err() == nil {
			sc.o.Log.Warn("scrub pass", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(start.Add(sc.o.Interval))):
		}
	}
}

// Pass verifies every chunk once.
func (sc *Scrubber) Pass(ctx context.Context) error {
	sc.mu.Lock()
	sc.st.PassStarted, sc.st.PassChunks, sc.st.PassBytes = time.Now().UTC(), 0, 0
	sc.mu.Unlock()
	after := ""
	for {
		infos, err := sc.s.List(ctx, after, scrubPage)
		if err != nil {
			return err
		}
		for _, in := range infos {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := sc.s.scrubChunk(ctx, in.ID, sc.wait)
			switch {
			case err == nil, errors.Is(err, ErrNotFound):
			case errors.Is(err, ErrCorrupt):
				sc.corrupt(ctx, in.ID, err)
			default:
				if ctx.Err() != nil {
					return ctx.Err()
				}
				sc.o.Log.Warn("scrubbing a chunk", "chunk", in.ID, "err", err)
			}
			sc.mu.Lock()
			sc.st.PassChunks++
			sc.st.PassBytes += n
			sc.mu.Unlock()
		}
		if len(infos) < scrubPage {
			break
		}
		after = infos[len(infos)-1].ID
	}
	sc.mu.Lock()
	sc.st.Passes++
	sc.st.LastPassStarted, sc.st.LastPassFinished = sc.st.PassStarted, time.Now().UTC()
	sc.st.LastPassChunks, sc.st.LastPassBytes = sc.st.PassChunks, sc.st.PassBytes
	sc.mu.Unlock()
	return nil
}

// wait paces one block of n bytes: it yields to client streams, then takes n from the limiter.
func (sc *Scrubber) wait(ctx context.Context, n int) error {
	for waited := time.Duration(0); len(sc.s.streams) > 0 && waited < yieldMax; waited += yieldStep {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(yieldStep):
		}
	}
	return sc.lim.WaitN(ctx, n)
}

func (sc *Scrubber) corrupt(ctx context.Context, id string, cause error) {
	sc.mu.Lock()
	sc.st.Corrupt++
	sc.mu.Unlock()
	name, err := sc.s.Quarantine(id)
	if err != nil {
		sc.o.Log.Error("quarantining a corrupt chunk", "chunk", id, "err", err)
		return
	}
	sc.o.Log.Warn("scrub found a corrupt chunk; quarantined", "chunk", id, "err", cause)
	if err := sc.report(ctx, quarantined{name: name, id: id}, cause); err != nil {
		sc.o.Log.Error("reporting a corrupt chunk; it is quarantined, reads use other replicas; the report is retried every "+sc.o.CleanEvery.String(), "chunk", id, "err", err)
	}
}

// report records the damage of quarantined file f in etcd, then marks the file reported.
func (sc *Scrubber) report(ctx context.Context, f quarantined, cause error) error {
	if sc.o.Report == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sc.o.Report(rctx, f.id, cause); err != nil {
		return err
	}
	return sc.s.markReported(f.name)
}

// scrubChunk verifies chunk id block by block, calling wait before each block, and returns
// the bytes read. Failures wrap ErrCorrupt.
func (s *Store) scrubChunk(ctx context.Context, id string, wait func(context.Context, int) error) (int64, error) {
	cf, err := s.openChunk(id, true)
	if err != nil {
		return 0, err
	}
	defer cf.f.Close()
	bp := s.getBuf()
	defer s.putBuf(bp)
	h := sha256.New()
	var n int64
	for i := int64(0); i < cf.ft.nblocks; i++ {
		size := int(min(BlockSize, cf.ft.size-i*BlockSize))
		if err := wait(ctx, size); err != nil {
			return n, err
		}
		if err := s.acquire(ctx); err != nil {
			return n, err
		}
		b, err := s.readBlock(cf, i, *bp)
		s.release()
		if err != nil {
			return n, err
		}
		h.Write(b)
		n += int64(len(b))
	}
	if !slices.Equal(h.Sum(nil), cf.ft.sha[:]) {
		return n, fmt.Errorf("datanode: chunk %q: SHA-256 mismatch: %w", id, ErrCorrupt)
	}
	return n, nil
}

// Quarantine moves chunk id out of the store into the quarantine directory, as not yet
// reported, and returns the quarantined file's name.
func (s *Store) Quarantine(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	q := filepath.Join(s.dir, quarantineDir)
	if err := s.mkdirSynced(q); err != nil {
		return "", fmt.Errorf("datanode: quarantine chunk %q: %w", id, err)
	}
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	// The file keeps its bytes (s.stored counts quarantined files until they are deleted).
	name := id + "-" + time.Now().UTC().Format(quarantineStamp) + unreportedSuffix
	err := os.Rename(s.path(id), filepath.Join(q, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("datanode: quarantine chunk %q: %w", id, ErrNotFound)
	} else if err != nil {
		return "", fmt.Errorf("datanode: quarantine chunk %q: %w", id, err)
	}
	s.chunks.Add(-1)
	if err := fsutil.SyncDir(filepath.Dir(s.path(id))); err != nil {
		return "", fmt.Errorf("datanode: quarantine chunk %q: %w", id, err)
	}
	return name, fsutil.SyncDir(q)
}

// markReported renames quarantined file name to its reported form (without unreportedSuffix).
func (s *Store) markReported(name string) error {
	to, ok := strings.CutSuffix(name, unreportedSuffix)
	if !ok {
		return nil
	}
	q := filepath.Join(s.dir, quarantineDir)
	if err := os.Rename(filepath.Join(q, name), filepath.Join(q, to)); err != nil {
		return fmt.Errorf("datanode: mark quarantined %s reported: %w", name, err)
	}
	return fsutil.SyncDir(q)
}

// Clean reports again the quarantined files whose report has not landed, and deletes those
// whose chunk is repaired (Repaired; reported files only), those quarantined more than
// QuarantineKeep before now, and the oldest beyond QuarantineMax. A file whose name does not
// parse is left alone (an operator put it there).
func (sc *Scrubber) Clean(ctx context.Context, now time.Time) error {
	files, err := sc.s.quarantined()
	if err != nil {
		return err
	}
	slices.SortFunc(files, func(a, b quarantined) int { return a.at.Compare(b.at) })
	excess := len(files) - QuarantineMax
	for i, f := range files {
		why := ""
		switch {
		case i < excess:
			why = fmt.Sprintf("more than %d quarantined files", QuarantineMax)
		case now.Sub(f.at) > QuarantineKeep:
			why = "quarantined longer than " + QuarantineKeep.String()
		case !f.reported:
			// Its damage is not recorded, so "no record" would not mean "repaired": report it again.
			if err := sc.report(ctx, f, errReportRetried); err != nil {
				sc.o.Log.Warn("reporting a quarantined chunk again", "chunk", f.id, "file", f.name, "err", err)
			} else {
				sc.o.Log.Info("quarantined chunk reported", "chunk", f.id, "file", f.name)
			}
		case sc.o.Repaired != nil && now.Sub(f.at) >= quarantineSettle:
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ok, err := sc.o.Repaired(rctx, f.id)
			cancel()
			if err != nil {
				return fmt.Errorf("is chunk %s repaired: %w", f.id, err)
			}
			if ok {
				why = "repaired elsewhere"
			}
		}
		if why == "" {
			continue
		}
		if err := sc.s.deleteQuarantined(f.name); err != nil {
			return err
		}
		sc.o.Log.Info("quarantined chunk file deleted", "chunk", f.id, "file", f.name, "why", why)
	}
	return nil
}

// errReportRetried is the cause a report made again gives (the first cause was only logged).
var errReportRetried = errors.New("corrupt, found by scrub (report retried)")

// quarantined is a file of the quarantine: its chunk id, when it was quarantined and whether
// its damage is recorded in etcd.
type quarantined struct {
	name, id string
	at       time.Time
	reported bool
}

func (s *Store) quarantined() ([]quarantined, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, quarantineDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("datanode: list the quarantine: %w", err)
	}
	var out []quarantined
	for _, e := range ents {
		name := e.Name()
		base, unreported := strings.CutSuffix(name, unreportedSuffix)
		i := strings.LastIndexByte(base, '-')
		if i <= 0 || !e.Type().IsRegular() {
			continue
		}
		at, err := time.Parse(quarantineStamp, base[i+1:])
		if err != nil || !ValidID(base[:i]) {
			continue
		}
		out = append(out, quarantined{name: name, id: base[:i], at: at, reported: !unreported})
	}
	return out, nil
}

// deleteQuarantined removes a file of the quarantine and gives its bytes back.
func (s *Store) deleteQuarantined(name string) error {
	p := filepath.Join(s.dir, quarantineDir, name)
	fi, err := os.Stat(p)
	if err == nil {
		err = os.Remove(p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("datanode: delete quarantined %s: %w", name, err)
	}
	s.stored.Add(-fi.Size())
	return fsutil.SyncDir(filepath.Dir(p))
}
