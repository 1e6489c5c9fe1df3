// Package certstore keeps the proxies' TLS state in the controllers' etcd: a
// certmagic.Storage (with etcd-session locks whose writes are fenced), shared
// rotating secrets (TLS session ticket keys, pin-signing keys) and a
// certmagic.Issuer that signs with the cluster CA.
//
// Certificates, private keys and certmagic's metadata are all secrets at rest:
// when Options.Keyring is set every value is sealed with the cluster keyring
// (AES-GCM, bound to its etcd key), so an etcd snapshot or backup alone does
// not leak a private key.
package certstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hanode/hanode/security/secrets"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultLockTTL is the lease TTL of a lock's etcd session: how long a lock
// held by a crashed or paused process survives it. Sessions are kept alive
// while the process runs, so it does not bound how long a lock may be held.
const DefaultLockTTL = 60 * time.Second

// listPage bounds how many keys one List round trip fetches.
const listPage = 1000

// Value layout in etcd: format byte | modified (unix ns, big endian) | payload.
// certmagic wants KeyInfo.Modified and etcd keeps no wall-clock time, so it
// is stored beside the value; when sealed, the header is authenticated too.
const (
	fmtPlain  byte = 1
	fmtSealed byte = 2
	headerLen      = 1 + 8
)

// ErrFenced is wrapped by the error of a Store or Delete refused because a
// lock this Storage believes it holds was lost meanwhile (its session lease
// expired or was revoked), so another process may hold it now.
var ErrFenced = errors.New("write fenced: a held lock was lost")

// ErrLockLost is wrapped by RenewLockLease's error when the lock's session
// has already ended.
var ErrLockLost = errors.New("lock lost: its etcd session ended")

// Options configures a Storage.
type Options struct {
	// Keyring seals every value at rest. With a keyring set, a value found
	// unsealed is refused rather than trusted: anyone with etcd write access
	// could have planted it. nil stores plaintext (tests, or no keyring).
	Keyring *secrets.Keyring
	// LockTTL is the lease TTL of lock sessions (rounded up to whole
	// seconds); 0 means DefaultLockTTL.
	LockTTL time.Duration
	// Logger receives warnings (lost locks); nil means slog.Default().
	Logger *slog.Logger
}

// Storage is a certmagic.Storage (also a certmagic.TryLocker and
// certmagic.LockLeaseRenewer) on etcd. Files live at <prefix>data/<key>,
// "directories" are implied by key prefixes as in certmagic.FileStorage, and
// locks live at <prefix>locks/<name>/<lease>. It is safe for concurrent use.
//
// Each lock is an etcd mutex on a session (lease) of its own: a crashed
// holder's lock frees itself when the lease expires (Options.LockTTL).
// Writes are fenced: Store and Delete commit only if every lock this Storage
// holds is still owned, else they fail with ErrFenced, so a holder that was
// paused past its lease cannot overwrite the next holder's work. Fencing is
// per Storage, not per goroutine, since certmagic's Lock passes no token
// back: while a lost lock is still held (not yet Unlocked) all writes of this
// Storage fail.
type Storage struct {
	cli        *clientv3.Client
	dataPrefix string
	lockPrefix string
	keyring    *secrets.Keyring
	ttl        int // seconds
	log        *slog.Logger

	mu    sync.Mutex
	held  map[string]*heldLock  // locks currently held, by name
	local map[string]*localLock // in-process serialisation per name

	// beforeFencedTxn, if set (by tests), runs between a fenced write's
	// snapshot of the held locks and its transaction.
	beforeFencedTxn func()
}

var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
)

// New returns a Storage keeping its keys under prefix (for example
// "/hanode/certmagic/"; a missing trailing slash is added).
func New(cli *clientv3.Client, prefix string, opts Options) (*Storage, error) {
	if cli == nil {
		return nil, errors.New("certstore: new storage: nil etcd client")
	}
	if prefix == "" || prefix == "/" {
		return nil, errors.New("certstore: new storage: empty prefix would share the keyspace root")
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	ttl := opts.LockTTL
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Storage{
		cli:        cli,
		dataPrefix: prefix + "data/",
		lockPrefix: prefix + "locks/",
		keyring:    opts.Keyring,
		ttl:        int((ttl + time.Second - 1) / time.Second),
		log:        log,
		held:       map[string]*heldLock{},
		local:      map[string]*localLock{},
	}, nil
}

func (s *Storage) String() string { return "certstore.Storage:" + s.dataPrefix }

// cleanKey normalises a certmagic key the way a file path would be: no
// leading or trailing slash, no empty, "." or ".." components. The root is "".
func cleanKey(key string) string {
	return strings.TrimPrefix(path.Clean("/"+key), "/")
}

// etcdKey is where the file key lives; key must be clean and non-empty.
func (s *Storage) etcdKey(key string) string { return s.dataPrefix + key }

// dirPrefix is the etcd prefix of everything inside directory key.
func (s *Storage) dirPrefix(key string) string {
	if key == "" {
		return s.dataPrefix
	}
	return s.dataPrefix + key + "/"
}

func sealAAD(header []byte, etcdKey string) []byte {
	// header is fixed-length, so header||key is unambiguous.
	return append(slices.Clone(header), etcdKey...)
}

func (s *Storage) encode(etcdKey string, value []byte, modified time.Time) ([]byte, error) {
	header := make([]byte, headerLen)
	binary.BigEndian.PutUint64(header[1:], uint64(modified.UnixNano()))
	if s.keyring == nil {
		header[0] = fmtPlain
		return append(header, value...), nil
	}
	header[0] = fmtSealed
	sealed, err := s.keyring.Seal(value, sealAAD(header, etcdKey))
	if err != nil {
		return nil, err
	}
	return append(header, sealed...), nil
}

func (s *Storage) decode(etcdKey string, raw []byte) ([]byte, time.Time, error) {
	if len(raw) < headerLen {
		return nil, time.Time{}, fmt.Errorf("value of %d bytes is shorter than its header", len(raw))
	}
	header, payload := raw[:headerLen], raw[headerLen:]
	modified := time.Unix(0, int64(binary.BigEndian.Uint64(header[1:])))
	switch header[0] {
	case fmtPlain:
		if s.keyring != nil {
			return nil, time.Time{}, errors.New("value is not sealed but this storage requires sealed values")
		}
		return payload, modified, nil
	case fmtSealed:
		if s.keyring == nil {
			return nil, time.Time{}, errors.New("value is sealed but this storage has no keyring")
		}
		plain, err := s.keyring.Open(payload, sealAAD(header, etcdKey))
		if err != nil {
			return nil, time.Time{}, err
		}
		return plain, modified, nil
	default:
		return nil, time.Time{}, fmt.Errorf("unknown value format %d", header[0])
	}
}

// Store writes value at key, fenced by every lock this Storage holds.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	k := cleanKey(key)
	if k == "" {
		return fmt.Errorf("certstore: store %q: empty key", key)
	}
	ek := s.etcdKey(k)
	enc, err := s.encode(ek, value, time.Now())
	if err != nil {
		return fmt.Errorf("certstore: store %s: %w", k, err)
	}
	return s.fencedWrite(ctx, "store", k, clientv3.OpPut(ek, string(enc)))
}

// Load returns the value at key; a missing key's error wraps fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	k := cleanKey(key)
	if k == "" {
		return nil, fmt.Errorf("certstore: load %q: %w", key, fs.ErrNotExist)
	}
	ek := s.etcdKey(k)
	resp, err := s.cli.Get(ctx, ek)
	if err != nil {
		return nil, fmt.Errorf("certstore: load %s: %w", k, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("certstore: load %s: %w", k, fs.ErrNotExist)
	}
	val, _, err := s.decode(ek, resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("certstore: load %s: %w", k, err)
	}
	return val, nil
}

// Delete removes key and, if it is a directory, everything under it. A
// missing key is not an error. It is fenced like Store.
func (s *Storage) Delete(ctx context.Context, key string) error {
	k := cleanKey(key)
	ops := []clientv3.Op{clientv3.OpDelete(s.dirPrefix(k), clientv3.WithPrefix())}
	if k != "" {
		ops = append(ops, clientv3.OpDelete(s.etcdKey(k)))
	}
	return s.fencedWrite(ctx, "delete", k, ops...)
}

// probe reports whether key exists as a file and as a directory, in one
// consistent read.
func (s *Storage) probe(ctx context.Context, k string) (file *clientv3.GetResponse, isDir bool, err error) {
	ops := []clientv3.Op{clientv3.OpGet(s.dirPrefix(k), clientv3.WithPrefix(), clientv3.WithCountOnly())}
	if k != "" {
		ops = append(ops, clientv3.OpGet(s.etcdKey(k)))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, false, err
	}
	isDir = resp.Responses[0].GetResponseRange().Count > 0
	if k != "" {
		file = (*clientv3.GetResponse)(resp.Responses[1].GetResponseRange())
		if len(file.Kvs) == 0 {
			file = nil
		}
	}
	return file, isDir, nil
}

// Exists reports whether key is a file or a directory (false on error, as
// certmagic's interface has no error to return).
func (s *Storage) Exists(ctx context.Context, key string) bool {
	file, isDir, err := s.probe(ctx, cleanKey(key))
	return err == nil && (file != nil || isDir)
}

// Stat describes key. Directories have no Modified time or Size.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	k := cleanKey(key)
	file, isDir, err := s.probe(ctx, k)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("certstore: stat %s: %w", k, err)
	}
	if file != nil {
		val, modified, err := s.decode(s.etcdKey(k), file.Kvs[0].Value)
		if err != nil {
			return certmagic.KeyInfo{}, fmt.Errorf("certstore: stat %s: %w", k, err)
		}
		return certmagic.KeyInfo{Key: k, Modified: modified, Size: int64(len(val)), IsTerminal: true}, nil
	}
	if isDir {
		return certmagic.KeyInfo{Key: k, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, fmt.Errorf("certstore: stat %s: %w", k, fs.ErrNotExist)
}

// List returns the keys in directory dir, sorted. Not recursive: its direct
// children (files and sub-directories). Recursive: every file and
// sub-directory below it, as certmagic.FileStorage's walk does. A file has no
// children (empty list); a path that does not exist is fs.ErrNotExist.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	k := cleanKey(dir)
	rel, err := s.keysUnder(ctx, s.dirPrefix(k))
	if err != nil {
		return nil, fmt.Errorf("certstore: list %s: %w", k, err)
	}
	if len(rel) == 0 {
		if k != "" {
			resp, err := s.cli.Get(ctx, s.etcdKey(k), clientv3.WithCountOnly())
			if err != nil {
				return nil, fmt.Errorf("certstore: list %s: %w", k, err)
			}
			if resp.Count > 0 {
				return []string{}, nil
			}
		}
		return nil, fmt.Errorf("certstore: list %s: %w", k, fs.ErrNotExist)
	}
	seen := map[string]bool{}
	var out []string
	add := func(r string) {
		if !seen[r] {
			seen[r] = true
			out = append(out, path.Join(k, r))
		}
	}
	for _, r := range rel {
		if !recursive {
			first, _, _ := strings.Cut(r, "/")
			add(first)
			continue
		}
		// Every implied directory on the way is listed too.
		for i := 0; i < len(r); i++ {
			if r[i] == '/' {
				add(r[:i])
			}
		}
		add(r)
	}
	slices.Sort(out)
	return out, nil
}

// keysUnder returns the keys below pfx relative to it, read page by page
// at one revision so the listing is a consistent snapshot.
func (s *Storage) keysUnder(ctx context.Context, pfx string) ([]string, error) {
	end := clientv3.GetPrefixRangeEnd(pfx)
	var out []string
	var rev int64
	for start := pfx; ; {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithKeysOnly(),
			clientv3.WithLimit(listPage), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, start, opts...)
		if err != nil {
			return nil, err
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			// Store writes only clean keys, so r has no empty components.
			if r := strings.TrimPrefix(string(kv.Key), pfx); r != "" {
				out = append(out, r)
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
