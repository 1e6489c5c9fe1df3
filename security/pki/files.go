package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hanode/hanode/internal/fsutil"
)

const (
	pemTypeCert = "CERTIFICATE"
	pemTypeKey  = "PRIVATE KEY" // PKCS#8
)

// ensureDir creates dir (and parents) and makes sure dir itself is 0700: it
// holds private keys, and MkdirAll leaves an existing directory's mode alone.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: create directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("pki: stat directory %s: %w", dir, err)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("pki: chmod directory %s: %w", dir, err)
		}
	}
	return nil
}

// parseCertsPEM parses one or more CERTIFICATE blocks and nothing else.
// It is strict (no other block types, no trailing garbage) because its input
// may arrive over the network once joining exists, and a silently ignored
// block is a confusing way to lose a certificate.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemTypeCert {
			return nil, fmt.Errorf("unexpected PEM block %q, want %q", block.Type, pemTypeCert)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after last PEM certificate")
	}
	return certs, nil
}

// parseLeafPEM parses a file that must hold exactly one certificate.
func parseLeafPEM(data []byte) (*x509.Certificate, error) {
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("want exactly one certificate, found %d", len(certs))
	}
	return certs[0], nil
}

// parseKeyPEM parses a single PKCS#8 PRIVATE KEY block.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	if block.Type != pemTypeKey {
		return nil, fmt.Errorf("unexpected PEM block %q, want %q (PKCS#8)", block.Type, pemTypeKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key type %T cannot sign", k)
	}
	return s, nil
}

func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCert, Bytes: der})
}

func encodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeKey, Bytes: der}), nil
}

// keyMatches reports whether key is the private half of cert's public key.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: read %s: %w", path, err)
	}
	return b, nil
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// WriteNode atomically replaces the node's certificate and key: both go into node.pem (0600),
// written to a temporary file, synced and renamed over the old one, so a reader or a crash
// sees the old pair or the new one. The pair is validated first so a bad issuance can't
// replace a working identity. The two files of earlier versions are removed afterwards.
func WriteNode(dir string, certPEM, keyPEM []byte) error {
	cert, err := parseLeafPEM(certPEM)
	if err != nil {
		return fmt.Errorf("pki: node certificate: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return fmt.Errorf("pki: node key: %w", err)
	}
	if !keyMatches(cert, key) {
		return errors.New("pki: node key does not match node certificate")
	}
	if err := ensureDir(dir); err != nil {
		return err
	}
	if err := writeAtomic(dir, NodePairFile, encodePair(certPEM, keyPEM), 0o600); err != nil {
		return err
	}
	removed := false
	for _, name := range []string{NodeCertFile, NodeKeyFile} {
		switch err := os.Remove(filepath.Join(dir, name)); {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("pki: remove the old %s: %w", name, err)
		}
	}
	if removed {
		return fsutil.SyncDir(dir)
	}
	return nil
}

func encodePair(certPEM, keyPEM []byte) []byte {
	out := make([]byte, 0, len(certPEM)+len(keyPEM)+2)
	out = append(append(out, bytes.TrimSpace(certPEM)...), '\n')
	return append(append(out, bytes.TrimSpace(keyPEM)...), '\n')
}

// parsePairPEM parses node.pem: exactly one certificate and one PKCS#8 private key.
func parsePairPEM(data []byte) (*x509.Certificate, crypto.Signer, error) {
	var certs, keys [][]byte
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case pemTypeCert:
			certs = append(certs, pem.EncodeToMemory(block))
		case pemTypeKey:
			keys = append(keys, pem.EncodeToMemory(block))
		default:
			return nil, nil, fmt.Errorf("unexpected PEM block %q, want one %q and one %q", block.Type, pemTypeCert, pemTypeKey)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, errors.New("trailing data after the last PEM block")
	}
	if len(certs) != 1 || len(keys) != 1 {
		return nil, nil, fmt.Errorf("want exactly one certificate and one private key, found %d and %d", len(certs), len(keys))
	}
	cert, err := parseLeafPEM(certs[0])
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKeyPEM(keys[0])
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// migrateNode writes node.pem from the node.crt and node.key of an earlier version, unless
// node.pem exists (it is created, never replaced: a renewal may have written it meanwhile).
func migrateNode(dir string) error {
	pair := filepath.Join(dir, NodePairFile)
	if fileExists(pair) || !fileExists(filepath.Join(dir, NodeCertFile)) {
		return nil
	}
	certPEM, err := readFile(filepath.Join(dir, NodeCertFile))
	if err != nil {
		return err
	}
	keyPEM, err := readFile(filepath.Join(dir, NodeKeyFile))
	if err != nil {
		return err
	}
	cert, err := parseLeafPEM(certPEM)
	if err != nil {
		return fmt.Errorf("pki: %s: %w", NodeCertFile, err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return fmt.Errorf("pki: %s: %w", NodeKeyFile, err)
	}
	if !keyMatches(cert, key) {
		return fmt.Errorf("pki: %s does not match %s", NodeKeyFile, NodeCertFile)
	}
	return createFileAtomic(dir, NodePairFile, encodePair(certPEM, keyPEM), 0o600)
}

// createFileAtomic creates dir/name with data unless it exists, never showing a partial file:
// a synced temporary file is hard-linked to the name, which fails if the name exists.
func createFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(perm)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", name, err)
	}
	if err := os.Link(tmp.Name(), filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pki: create %s: %w", name, err)
	}
	return fsutil.SyncDir(dir)
}

// WriteCACert atomically writes ca.crt (0644) for a machine that trusts the
// CA but does not hold its key. certPEM may hold several CA certificates
// (old and new during a CA rotation).
func WriteCACert(dir string, certPEM []byte) error {
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return fmt.Errorf("pki: CA certificate: %w", err)
	}
	for i, c := range certs {
		if !c.IsCA {
			return fmt.Errorf("pki: CA certificate %d (%s) is not a CA", i+1, c.Subject)
		}
	}
	if err := ensureDir(dir); err != nil {
		return err
	}
	return writeAtomic(dir, CACertFile, certPEM, 0o644)
}

// Exists reports whether dir holds what a node needs to run TLS: ca.crt and
// node.pem (or an earlier version's node.crt and node.key). It does not validate
// them; LoadBundle does.
func Exists(dir string) bool {
	return fileExists(filepath.Join(dir, CACertFile)) &&
		(fileExists(filepath.Join(dir, NodePairFile)) ||
			fileExists(filepath.Join(dir, NodeCertFile)) && fileExists(filepath.Join(dir, NodeKeyFile)))
}

// ParseCertsPEM decodes a bundle of PEM certificates (strictly: nothing but CERTIFICATE blocks).
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) { return parseCertsPEM(data) }

// writeAtomic replaces dir/name with data, atomically and durably (a reader or a crash sees the
// old content or the new, never a torn file).
func writeAtomic(dir, name string, data []byte, perm os.FileMode) error {
	if err := fsutil.WriteFile(filepath.Join(dir, name), data, perm); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}
