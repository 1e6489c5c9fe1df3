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
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/internal/fsutil"
)

// quarantineDir holds chunk files a scrub found corrupt, out of the store's reach (reads get
// ErrNotFound and go to another replica), kept for an operator to inspect.
const quarantineDir = ".quarantine"

// ScrubOptions configure a Scrubber; zero values take the defaults.
type ScrubOptions struct {
	// Interval: a pass over every chunk starts at most this often (scrub-interval, default
	// 168h); a pass that takes longer is followed by the next at once.
	Interval time.Duration
	// Rate bounds the bytes per second a pass reads (scrub-rate, default 50 MiB).
	Rate int64
	// Report records a corrupt chunk, quarantined already (the datanode writes a
	// damaged-replica record, which the active master repairs).
	Report func(ctx context.Context, id string, cause error) error
	Log    *slog.Logger
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
	return &Scrubber{s: s, o: o, lim: rate.NewLimiter(rate.Limit(o.Rate), max(int(min(o.Rate, 1<<20)), BlockSize))}
}

// Report returns the scrub's progress (what the datanode registers).
func (sc *Scrubber) Report() cluster.ScrubReport {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.st
}

// Run scrubs until ctx ends.
func (sc *Scrubber) Run(ctx context.Context) {
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
	if err := sc.s.Quarantine(id); err != nil {
		sc.o.Log.Error("quarantining a corrupt chunk", "chunk", id, "err", err)
		return
	}
	sc.o.Log.Warn("scrub found a corrupt chunk; quarantined", "chunk", id, "err", cause)
	if sc.o.Report == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sc.o.Report(rctx, id, cause); err != nil {
		sc.o.Log.Error("reporting a corrupt chunk; it is quarantined, reads use other replicas", "chunk", id, "err", err)
	}
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

// Quarantine moves chunk id out of the store into the quarantine directory.
func (s *Store) Quarantine(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	q := filepath.Join(s.dir, quarantineDir)
	if err := s.mkdirSynced(q); err != nil {
		return fmt.Errorf("datanode: quarantine chunk %q: %w", id, err)
	}
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	// The file keeps its bytes (s.stored counts quarantined files until they are deleted).
	err := os.Rename(s.path(id), filepath.Join(q, id+"-"+time.Now().UTC().Format("20060102T150405Z")))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("datanode: quarantine chunk %q: %w", id, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("datanode: quarantine chunk %q: %w", id, err)
	}
	s.chunks.Add(-1)
	if err := fsutil.SyncDir(filepath.Dir(s.path(id))); err != nil {
		return fmt.Errorf("datanode: quarantine chunk %q: %w", id, err)
	}
	return fsutil.SyncDir(q)
}
