package datanode

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hanode/hanode/internal/fsutil"
)

// identityName is the file holding a store's identity: 32 hex digits made when the directory is
// first opened. A datanode registers it; a new identity under an old machine name tells the
// active master that the machine's store was wiped or replaced, so every replica it held is
// lost at once (no grace to wait for).
const identityName = ".identity"

// loadIdentity reads the directory's identity, creating it (fsynced) when absent.
func loadIdentity(dir string) (string, error) {
	p := filepath.Join(dir, identityName)
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) == 32 {
			if _, err := hex.DecodeString(id); err == nil {
				return id, nil
			}
		}
		return "", fmt.Errorf("datanode: store identity %s is malformed (%q)", p, b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("datanode: store identity: %w", err)
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return "", fmt.Errorf("datanode: store identity: %w", err)
	}
	_, werr := f.WriteString(id + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, p)
	}
	if werr == nil {
		werr = fsutil.SyncDir(dir)
	}
	if werr != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("datanode: store identity: %w", werr)
	}
	return id, nil
}

// Identity is the store's identity (see identityName).
func (s *Store) Identity() string { return s.id }

// Have returns which of ids are stored here (by their footer; a chunk whose footer is damaged
// counts as present: the scrub and reads find it).
func (s *Store) Have(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !ValidID(id) {
			continue
		}
		if _, err := os.Stat(s.path(id)); err == nil {
			out = append(out, id)
		}
	}
	return out
}
