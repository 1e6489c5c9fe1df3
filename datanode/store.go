// Package datanode stores chunks on local disk, checksummed, and serves them
// over the internal chunk API (see Handler).
//
// # Layout
//
// Under Options.Dir:
//
//	.lock                 flock(2)ed while a Store has the directory open
//	.identity             the store's identity, 32 hex digits made on first open
//	<pp>/<id>             one file per chunk; <pp> is the first two characters
//	                      of the id (a one-character id "a" lives in "a_")
//	<pp>/.tmp-<id>-<rnd>  a put in progress; removed on failure and by Open
//
// Ids are [a-z0-9-]{1,128}, so they never start with '.' and can never name
// a temp file, the lock file or a path outside the directory.
//
// # Chunk file format (version 1)
//
// A chunk file is self-describing and written once (temp file, fsync,
// rename, fsync of the directory):
//
//	data      size bytes, the chunk content, verbatim
//	crcs      nblocks × uint32 LE: CRC32C (Castagnoli) of each 64 KiB block of
//	          data; the last block may be short; nblocks = ceil(size/65536)
//	footer    72 bytes, little-endian:
//	            0  [8]byte  magic "HNCHUNK1"
//	            8  uint64   size
//	           16  uint32   block size (65536)
//	           20  uint32   nblocks
//	           24  [32]byte SHA-256 of data
//	           56  int64    created, Unix nanoseconds
//	           64  uint32   CRC32C of the crcs table
//	           68  uint32   CRC32C of footer bytes [0,68)
//
// The file length must be exactly size + 4·nblocks + 72. Stat reads only the
// footer; Get also reads and checks the CRC table, then verifies each block it
// touches before returning any byte of it; Verify reads everything and checks
// the block CRCs and the SHA-256.
package datanode

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanode/hanode/internal/fsutil"
)

// Errors returned (wrapped, naming the chunk id) by Store methods.
var (
	ErrNotFound     = errors.New("chunk not found")
	ErrExists       = errors.New("chunk exists with different content")
	ErrChecksum     = errors.New("checksum mismatch")
	ErrCorrupt      = errors.New("chunk corrupt")
	ErrNoSpace      = errors.New("no space left for chunk")
	ErrTooLarge     = errors.New("chunk too large")
	ErrBadID        = errors.New("invalid chunk id")
	ErrSizeMismatch = errors.New("chunk body length does not match declared size")
	ErrBadRange     = errors.New("invalid chunk range")
)

const (
	// BlockSize is the unit of CRC32C verification.
	BlockSize = 64 << 10
	// MaxIDLen is the longest valid chunk id.
	MaxIDLen = 128

	magic         = "HNCHUNK1"
	footerLen     = 72
	tmpPrefix     = ".tmp-"
	lockName      = ".lock"
	lockStripes   = 64
	spaceCheckEvr = 16 // blocks between free-space checks during a put (1 MiB)

	defaultMaxChunkSize  = 64 << 20
	defaultMaxConcurrent = 64
	defaultMaxStreams    = 512
	defaultMinFreeBytes  = 64 << 20
)

// Options configures a Store. Zero values select the defaults.
type Options struct {
	Dir           string // chunk directory (created 0750)
	MaxChunkSize  int64  // default 64 MiB: larger puts are refused with ErrTooLarge
	MaxConcurrent int    // disk reads and writes of a block (and fsyncs) in flight (default 64); beyond it they wait (ctx)
	MaxStreams    int    // open Get readers plus puts in progress (default 512); beyond it Put/Get wait (ctx)
	MinFreeBytes  int64  // refuse puts (ErrNoSpace) that would leave less free (default 64 MiB)
	// Capacity bounds the bytes of the store's files (chunks and quarantined chunks); 0: the
	// filesystem's size. Usage reports the smaller of the two, so that machines sharing one
	// filesystem, or a disk shared with other data, can be given their share.
	Capacity int64
}

// Info describes a stored chunk.
type Info struct {
	ID      string    `json:"id"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

// Usage describes the space of the store: its capacity (the filesystem's size, or the
// configured capacity when smaller), the bytes still free for chunks, the bytes used on the
// filesystem and the store's own files.
type Usage struct {
	Capacity int64 `json:"capacity"`
	Free     int64 `json:"free"`   // available to the (unprivileged) datanode, within the capacity
	Used     int64 `json:"used"`   // filesystem bytes in use (by anything)
	Stored   int64 `json:"stored"` // bytes of the store's chunk files, quarantined ones included
	Chunks   int   `json:"chunks"`
}

// Store is a directory of chunks. It is safe for concurrent use; one process
// at a time may have a directory open.
type Store struct {
	dir     string
	maxSize int64
	minFree int64
	limit   int64         // Options.Capacity (0: none)
	sem     chan struct{} // disk I/O slots, held for one block (or one fsync)
	streams chan struct{} // open readers and puts in progress
	crc     *crc32.Table
	bufs    sync.Pool // *[]byte of BlockSize
	stripes [lockStripes]sync.Mutex
	chunks  atomic.Int64
	stored  atomic.Int64 // bytes of chunk files, quarantined ones included
	pending atomic.Int64 // bytes the puts under way will add (reserve), not yet in stored
	lock    *os.File
	id      string // the store's identity (identity.go)

	// freeBytes reports bytes available on the filesystem holding dir;
	// replaceable in tests.
	freeBytes func() (int64, error)
}

// Open opens (creating if needed) the chunk directory, takes an exclusive
// lock on it, removes temp files left by interrupted puts, and counts chunks.
func Open(o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("datanode: Options.Dir is required")
	}
	if o.MaxChunkSize <= 0 {
		o.MaxChunkSize = defaultMaxChunkSize
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = defaultMaxConcurrent
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = defaultMaxStreams
	}
	if o.MinFreeBytes <= 0 {
		o.MinFreeBytes = defaultMinFreeBytes
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("datanode: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(o.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("datanode: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("datanode: chunk directory %s is in use by another process: %w", o.Dir, err)
	}
	s := &Store{
		dir:     o.Dir,
		maxSize: o.MaxChunkSize,
		minFree: o.MinFreeBytes,
		limit:   max(o.Capacity, 0),
		sem:     make(chan struct{}, o.MaxConcurrent),
		streams: make(chan struct{}, o.MaxStreams),
		crc:     crc32.MakeTable(crc32.Castagnoli),
		lock:    lf,
	}
	s.bufs.New = func() any { b := make([]byte, BlockSize); return &b }
	s.freeBytes = func() (int64, error) {
		u, err := s.statfs()
		return u.Free, err
	}
	n, bytes, err := s.scan()
	if err != nil {
		lf.Close()
		return nil, err
	}
	s.chunks.Store(n)
	s.stored.Store(bytes)
	if s.id, err = loadIdentity(o.Dir); err != nil {
		lf.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the directory lock. Readers still open keep working.
func (s *Store) Close() error { return s.lock.Close() }

// scan removes stale temp files and counts chunk files and their bytes (quarantined ones
// included: they hold disk space until deleted).
func (s *Store) scan() (n, bytes int64, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, 0, fmt.Errorf("datanode: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || !(validPrefixDir(e.Name()) || e.Name() == quarantineDir) {
			continue
		}
		sub := filepath.Join(s.dir, e.Name())
		files, err := os.ReadDir(sub)
		if err != nil {
			return 0, 0, fmt.Errorf("datanode: %w", err)
		}
		for _, f := range files {
			name := f.Name()
			switch {
			case strings.HasPrefix(name, tmpPrefix):
				if err := os.Remove(filepath.Join(sub, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return 0, 0, fmt.Errorf("datanode: removing stale temp file: %w", err)
				}
				continue
			case !f.Type().IsRegular():
				continue
			case e.Name() != quarantineDir && ValidID(name):
				n++
			}
			if fi, err := f.Info(); err == nil {
				bytes += fi.Size()
			}
		}
	}
	return n, bytes, nil
}

// ValidID reports whether id is a valid chunk id: 1..128 of [a-z0-9-].
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("datanode: chunk %q: %w", id, ErrBadID)
	}
	return nil
}

func prefixOf(id string) string {
	if len(id) == 1 {
		return id + "_"
	}
	return id[:2]
}

func validPrefixDir(name string) bool {
	if len(name) != 2 {
		return false
	}
	if name[1] == '_' {
		return ValidID(name[:1])
	}
	return ValidID(name)
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, prefixOf(id), id) }

func (s *Store) stripe(id string) *sync.Mutex {
	return &s.stripes[crc32.Checksum([]byte(id), s.crc)%lockStripes]
}

// acquire takes a disk I/O slot: held for one block read or write (or one fsync), never for a
// whole stream, so a slow peer cannot keep others from the disk.
func (s *Store) acquire(ctx context.Context) error { return take(ctx, s.sem) }

func (s *Store) release() { <-s.sem }

// openStream takes a stream slot, held by a Get reader until Close and by a put until it ends:
// it bounds open files and buffers, not disk I/O.
func (s *Store) openStream(ctx context.Context) error { return take(ctx, s.streams) }

func (s *Store) closeStream() { <-s.streams }

func take(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) getBuf() *[]byte  { return s.bufs.Get().(*[]byte) }
func (s *Store) putBuf(b *[]byte) { s.bufs.Put(b) }

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// footer is the decoded trailer of a chunk file.
type footer struct {
	size     int64
	nblocks  int64
	sha      [32]byte
	created  int64
	tableCRC uint32
}

func nblocksFor(size int64) int64 { return (size + BlockSize - 1) / BlockSize }

func (s *Store) encodeFooter(f footer) []byte {
	b := make([]byte, footerLen)
	copy(b, magic)
	binary.LittleEndian.PutUint64(b[8:], uint64(f.size))
	binary.LittleEndian.PutUint32(b[16:], BlockSize)
	binary.LittleEndian.PutUint32(b[20:], uint32(f.nblocks))
	copy(b[24:56], f.sha[:])
	binary.LittleEndian.PutUint64(b[56:], uint64(f.created))
	binary.LittleEndian.PutUint32(b[64:], f.tableCRC)
	binary.LittleEndian.PutUint32(b[68:], crc32.Checksum(b[:68], s.crc))
	return b
}

// decodeFooter parses and checks a footer against the file length.
func (s *Store) decodeFooter(b []byte, fileLen int64) (footer, error) {
	var f footer
	if string(b[:8]) != magic {
		return f, errors.New("bad magic")
	}
	if crc32.Checksum(b[:68], s.crc) != binary.LittleEndian.Uint32(b[68:]) {
		return f, errors.New("footer checksum mismatch")
	}
	if bs := binary.LittleEndian.Uint32(b[16:]); bs != BlockSize {
		return f, fmt.Errorf("unsupported block size %d", bs)
	}
	size := binary.LittleEndian.Uint64(b[8:])
	if size > uint64(fileLen) {
		return f, errors.New("size exceeds file length")
	}
	f.size = int64(size)
	f.nblocks = int64(binary.LittleEndian.Uint32(b[20:]))
	if f.nblocks != nblocksFor(f.size) || f.size+4*f.nblocks+footerLen != fileLen {
		return f, errors.New("length fields inconsistent with file length")
	}
	copy(f.sha[:], b[24:56])
	f.created = int64(binary.LittleEndian.Uint64(b[56:]))
	f.tableCRC = binary.LittleEndian.Uint32(b[64:])
	return f, nil
}

func (f footer) info(id string) Info {
	return Info{ID: id, Size: f.size, SHA256: hex.EncodeToString(f.sha[:]), Created: time.Unix(0, f.created).UTC()}
}

// chunkFile is an open chunk with its checked footer (and CRC table if loaded).
type chunkFile struct {
	id    string
	f     *os.File
	ft    footer
	table []uint32
}

// openChunk opens id and checks its footer; withTable also loads and checks
// the CRC table.
func (s *Store) openChunk(id string, withTable bool) (*chunkFile, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("datanode: chunk %q: %w", id, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("datanode: chunk %q: %w", id, err)
	}
	cf := &chunkFile{id: id, f: f}
	if err := s.loadChunk(cf, withTable); err != nil {
		f.Close()
		return nil, err
	}
	return cf, nil
}

func (s *Store) loadChunk(cf *chunkFile, withTable bool) error {
	corrupt := func(what string, err error) error {
		return fmt.Errorf("datanode: chunk %q: %s: %v: %w", cf.id, what, err, ErrCorrupt)
	}
	st, err := cf.f.Stat()
	if err != nil {
		return fmt.Errorf("datanode: chunk %q: %w", cf.id, err)
	}
	if st.Size() < footerLen {
		return corrupt("footer", errors.New("file too short"))
	}
	var fb [footerLen]byte
	if _, err := cf.f.ReadAt(fb[:], st.Size()-footerLen); err != nil {
		return fmt.Errorf("datanode: chunk %q: reading footer: %w", cf.id, err)
	}
	ft, err := s.decodeFooter(fb[:], st.Size())
	if err != nil {
		return corrupt("footer", err)
	}
	cf.ft = ft
	if !withTable {
		return nil
	}
	raw := make([]byte, 4*ft.nblocks)
	if _, err := cf.f.ReadAt(raw, ft.size); err != nil {
		return fmt.Errorf("datanode: chunk %q: reading crc table: %w", cf.id, err)
	}
	if crc32.Checksum(raw, s.crc) != ft.tableCRC {
		return corrupt("crc table", errors.New("checksum mismatch"))
	}
	cf.table = make([]uint32, ft.nblocks)
	for i := range cf.table {
		cf.table[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	return nil
}

// Stat returns the Info of id from its footer.
func (s *Store) Stat(id string) (Info, error) {
	cf, err := s.openChunk(id, false)
	if err != nil {
		return Info{}, err
	}
	defer cf.f.Close()
	return cf.ft.info(id), nil
}

// Put stores size bytes read from r as chunk id. It reads exactly size bytes
// from r and never more (size -1: read to EOF, up to MaxChunkSize); a short
// body is ErrSizeMismatch. If wantSHA256 is not empty (64 hex digits), the
// content must have that SHA-256 or nothing is stored (ErrChecksum). A put of
// an existing id with identical content succeeds; different content is
// ErrExists. On any failure no file is left behind.
func (s *Store) Put(ctx context.Context, id string, r io.Reader, size int64, wantSHA256 string) (Info, error) {
	info, _, err := s.put(ctx, id, r, size, wantSHA256)
	return info, err
}

func (s *Store) put(ctx context.Context, id string, r io.Reader, size int64, wantSHA256 string) (info Info, existed bool, err error) {
	if err := checkID(id); err != nil {
		return Info{}, false, err
	}
	wrap := func(e error) error { return fmt.Errorf("datanode: put chunk %q: %w", id, e) }
	var want []byte
	if wantSHA256 != "" {
		want, err = hex.DecodeString(wantSHA256)
		if err != nil || len(want) != sha256.Size {
			return Info{}, false, wrap(fmt.Errorf("malformed SHA-256 %q: %w", wantSHA256, ErrChecksum))
		}
	}
	switch {
	case size > s.maxSize:
		return Info{}, false, wrap(fmt.Errorf("%d bytes > limit %d: %w", size, s.maxSize, ErrTooLarge))
	case size < -1:
		return Info{}, false, wrap(fmt.Errorf("negative size %d: %w", size, ErrSizeMismatch))
	}
	// Cheap early refusal when what exists cannot match.
	if old, err := s.Stat(id); err == nil {
		if (size >= 0 && size != old.Size) || (want != nil && hex.EncodeToString(want) != old.SHA256) {
			return Info{}, false, wrap(ErrExists)
		}
	}
	if err := s.openStream(ctx); err != nil {
		return Info{}, false, wrap(err)
	}
	defer s.closeStream()

	release, err := s.reserve(max(size, 0))
	if err != nil {
		return Info{}, false, wrap(err)
	}
	defer release()
	sub := filepath.Join(s.dir, prefixOf(id))
	if err := s.mkdirSynced(sub); err != nil {
		return Info{}, false, wrap(err)
	}
	tmp, err := os.CreateTemp(sub, tmpPrefix+id+"-*")
	if err != nil {
		if isNoSpace(err) {
			err = fmt.Errorf("%v: %w", err, ErrNoSpace)
		}
		return Info{}, false, wrap(err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	ft, table, err := s.writeData(ctx, tmp, r, size)
	if err != nil {
		return Info{}, false, wrap(err)
	}
	if want != nil && !slices.Equal(want, ft.sha[:]) {
		return Info{}, false, wrap(fmt.Errorf("content SHA-256 %x, want %x: %w", ft.sha, want, ErrChecksum))
	}
	ft.tableCRC = crc32.Checksum(table, s.crc)
	ft.created = time.Now().UnixNano()
	if err := s.finish(ctx, tmp, table, s.encodeFooter(ft)); err != nil {
		return Info{}, false, wrap(err)
	}

	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	final := s.path(id)
	if old, err := s.Stat(id); err == nil {
		if old.Size == ft.size && old.SHA256 == hex.EncodeToString(ft.sha[:]) {
			return old, true, nil // deferred cleanup removes the temp file
		}
		return Info{}, false, wrap(ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return Info{}, false, wrap(fmt.Errorf("existing chunk unreadable: %w", err))
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return Info{}, false, wrap(err)
	}
	committed = true
	s.chunks.Add(1)
	s.stored.Add(ft.size + int64(len(table)) + footerLen)
	if err := fsutil.SyncDir(sub); err != nil {
		return Info{}, false, wrap(err)
	}
	return ft.info(id), false, nil
}

// finish writes the table and footer of a chunk file and fsyncs and closes it, in one disk slot.
func (s *Store) finish(ctx context.Context, f *os.File, table, footer []byte) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	if _, err := f.Write(table); err != nil {
		return s.ioErr(err)
	}
	if _, err := f.Write(footer); err != nil {
		return s.ioErr(err)
	}
	if err := f.Sync(); err != nil {
		return s.ioErr(err)
	}
	return s.ioErr(f.Close())
}

// writeData streams the body to w block by block, returning the footer (size,
// nblocks, sha) and the encoded CRC table.
func (s *Store) writeData(ctx context.Context, w io.Writer, r io.Reader, size int64) (footer, []byte, error) {
	bp := s.getBuf()
	defer s.putBuf(bp)
	buf := *bp
	h := sha256.New()
	var (
		ft    footer
		table []byte
	)
	if size >= 0 {
		table = make([]byte, 0, 4*nblocksFor(size))
	}
	for blk := int64(1); ; blk++ {
		if err := ctx.Err(); err != nil {
			return ft, nil, err
		}
		want := int64(BlockSize)
		if size >= 0 {
			want = min(want, size-ft.size)
			if want == 0 {
				break
			}
		}
		n, err := io.ReadFull(r, buf[:want])
		if n > 0 {
			if size < 0 && ft.size+int64(n) > s.maxSize {
				return ft, nil, fmt.Errorf("more than %d bytes: %w", s.maxSize, ErrTooLarge)
			}
			table = binary.LittleEndian.AppendUint32(table, crc32.Checksum(buf[:n], s.crc))
			h.Write(buf[:n])
			// The body is read without a disk slot: a slow sender holds only its stream.
			if err := s.acquire(ctx); err != nil {
				return ft, nil, err
			}
			_, werr := w.Write(buf[:n])
			s.release()
			if werr != nil {
				return ft, nil, s.ioErr(werr)
			}
			ft.size += int64(n)
			ft.nblocks++
		}
		if err != nil {
			if size < 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				break
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return ft, nil, fmt.Errorf("got %d of %d bytes: %w", ft.size, size, ErrSizeMismatch)
			}
			return ft, nil, fmt.Errorf("reading body: %w", err)
		}
		if blk%spaceCheckEvr == 0 {
			if err := s.checkGrowing(size, ft.size); err != nil {
				return ft, nil, err
			}
		}
	}
	copy(ft.sha[:], h.Sum(nil))
	return ft, table, nil
}

// reserve refuses a put of size bytes when its file would leave less than MinFreeBytes on the
// filesystem, or take the store's files past its configured capacity, counting the puts under
// way by what their files will take; otherwise it sets that room aside until release. (The
// filesystem itself is read, not reserved: other writers on it are not counted; what puts under
// way have written is both gone from it and still promised, so the check errs on the side of
// refusing, by at most what they carry.) A put of unknown size reserves only its footer.
func (s *Store) reserve(size int64) (release func(), err error) {
	file := fileSize(size)
	free, err := s.freeBytes()
	if err != nil {
		return nil, err
	}
	for {
		pending := s.pending.Load()
		if free-pending-file < s.minFree {
			return nil, fmt.Errorf("%d bytes free, %d of them promised to puts under way, need %d + %d reserved: %w", free, pending, file, s.minFree, ErrNoSpace)
		}
		if used := s.stored.Load(); s.limit > 0 && used+pending+file > s.limit {
			return nil, fmt.Errorf("%d of the configured capacity of %d bytes used and %d promised to puts under way, need %d more: %w", used, s.limit, pending, file, ErrNoSpace)
		}
		if s.pending.CompareAndSwap(pending, pending+file) {
			// A put that commits adds its file to stored before this runs: the two counts overlap
			// for a moment, which only errs on the side of refusing.
			return func() { s.pending.Add(-file) }, nil
		}
	}
}

// checkGrowing refuses, during a put of size bytes (-1: unknown, nothing reserved) that has
// written written bytes, when the filesystem has filled past MinFreeBytes beyond what the
// reservations promised (another writer on it, say), or when a put of unknown size has grown
// past the configured capacity.
func (s *Store) checkGrowing(size, written int64) error {
	free, err := s.freeBytes()
	if err != nil {
		return err
	}
	pending := s.pending.Load()
	// What this put reserved and has written is in both free (taken) and pending (promised).
	if free-pending+min(written, fileSize(max(size, 0))) < s.minFree {
		return fmt.Errorf("%d bytes free, %d promised to puts under way: %w", free, pending, ErrNoSpace)
	}
	if used := s.stored.Load(); size < 0 && s.limit > 0 && used+pending+written > s.limit {
		return fmt.Errorf("%d of the configured capacity of %d bytes used, %d promised, %d written by a put of unknown size: %w", used, s.limit, pending, written, ErrNoSpace)
	}
	return nil
}

// fileSize is the length of the file of a chunk of size bytes: the data, a CRC per block and
// the footer.
func fileSize(size int64) int64 { return size + 4*nblocksFor(size) + footerLen }

func (s *Store) ioErr(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%v: %w", err, ErrNoSpace)
	}
	return err
}

// mkdirSynced creates dir (0750) if missing, fsyncing its parent when it does.
func (s *Store) mkdirSynced(dir string) error {
	err := os.Mkdir(dir, 0o750)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return s.ioErr(err)
	}
	return fsutil.SyncDir(filepath.Dir(dir))
}

// Delete removes chunk id (ErrNotFound if absent).
func (s *Store) Delete(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	fi, err := os.Stat(s.path(id))
	if err == nil {
		err = os.Remove(s.path(id))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("datanode: delete chunk %q: %w", id, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("datanode: delete chunk %q: %w", id, err)
	}
	s.chunks.Add(-1)
	s.stored.Add(-fi.Size())
	if err := fsutil.SyncDir(filepath.Dir(s.path(id))); err != nil {
		return fmt.Errorf("datanode: delete chunk %q: %w", id, err)
	}
	return nil
}

// List returns up to limit chunks with ids > after, sorted by id (limit <= 0:
// 1000). A chunk whose footer cannot be read is listed with Size -1 so that a
// caller checking chunks (Verify) still sees it.
func (s *Store) List(ctx context.Context, after string, limit int) ([]Info, error) {
	if limit <= 0 {
		limit = 1000
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("datanode: list: %w", err)
	}
	// Prefix "x_" holds the one-character id "x"; ordering prefixes by the
	// ids they hold orders all ids.
	var keys []string
	for _, e := range ents {
		if e.IsDir() && validPrefixDir(e.Name()) {
			keys = append(keys, strings.TrimSuffix(e.Name(), "_"))
		}
	}
	slices.Sort(keys)
	var out []Info
	for _, k := range keys {
		if k < after && !strings.HasPrefix(after, k) {
			continue // every id under k sorts before after
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		files, err := os.ReadDir(filepath.Join(s.dir, prefixOf(k)))
		if err != nil {
			return nil, fmt.Errorf("datanode: list: %w", err)
		}
		var ids []string
		for _, f := range files { // ReadDir sorts by name
			if n := f.Name(); n > after && ValidID(n) && f.Type().IsRegular() {
				ids = append(ids, n)
			}
		}
		for _, id := range ids {
			info, err := s.Stat(id)
			switch {
			case errors.Is(err, ErrNotFound):
				continue // deleted meanwhile
			case err != nil:
				info = Info{ID: id, Size: -1}
			}
			out = append(out, info)
			if len(out) == limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// Usage reports the store's capacity (the filesystem's, or the configured capacity when
// smaller), the bytes free within it, the filesystem's used bytes, the store's bytes and the
// number of chunks stored.
func (s *Store) Usage() (Usage, error) {
	u, err := s.statfs()
	if err != nil {
		return Usage{}, err
	}
	u.Chunks = int(s.chunks.Load())
	u.Stored = s.stored.Load()
	if s.limit > 0 && s.limit < u.Capacity {
		u.Capacity = s.limit
		u.Free = min(u.Free, max(s.limit-u.Stored, 0))
	}
	return u, nil
}

func (s *Store) statfs() (Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return Usage{}, fmt.Errorf("datanode: statfs %s: %w", s.dir, err)
	}
	bs := int64(st.Bsize)
	return Usage{
		Capacity: int64(st.Blocks) * bs,
		Free:     int64(st.Bavail) * bs,
		Used:     int64(st.Blocks-st.Bfree) * bs,
	}, nil
}

// Verify reads all of chunk id and checks the footer, the CRC table, every
// block CRC32C and the SHA-256. Failures wrap ErrCorrupt.
func (s *Store) Verify(id string) error {
	if err := s.acquire(context.Background()); err != nil {
		return err
	}
	defer s.release()
	cf, err := s.openChunk(id, true)
	if err != nil {
		return err
	}
	defer cf.f.Close()
	bp := s.getBuf()
	defer s.putBuf(bp)
	h := sha256.New()
	for i := int64(0); i < cf.ft.nblocks; i++ {
		b, err := s.readBlock(cf, i, *bp)
		if err != nil {
			return err
		}
		h.Write(b)
	}
	if !slices.Equal(h.Sum(nil), cf.ft.sha[:]) {
		return fmt.Errorf("datanode: chunk %q: SHA-256 mismatch: %w", id, ErrCorrupt)
	}
	return nil
}

// readBlock reads block i of cf into buf and verifies its CRC32C.
func (s *Store) readBlock(cf *chunkFile, i int64, buf []byte) ([]byte, error) {
	start := i * BlockSize
	b := buf[:min(BlockSize, cf.ft.size-start)]
	if _, err := cf.f.ReadAt(b, start); err != nil {
		return nil, fmt.Errorf("datanode: chunk %q: block %d: %w", cf.id, i, err)
	}
	if crc32.Checksum(b, s.crc) != cf.table[i] {
		return nil, fmt.Errorf("datanode: chunk %q: block %d: CRC32C mismatch: %w", cf.id, i, ErrCorrupt)
	}
	return b, nil
}
