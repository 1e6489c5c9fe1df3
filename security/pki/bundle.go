package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Bundle is what a running process uses: the trusted CA pool and its own
// certificate. Reload re-reads the files; configs from ServerConfig and
// ClientConfig fetch the certificate per handshake, so a renewed node
// certificate is served without a restart. Safe for concurrent use.
//
// The CA pool is captured when a config is built: trust changes (CA rotation)
// apply to configs built after Reload. Rotation is expected to add the new CA
// to ca.crt well before any leaf is signed by it, so existing configs keep
// working in the meantime.
type Bundle struct {
	dir, caFile, certFile, keyFile string

	reloadMu sync.Mutex // serializes Reload so the last reader wins predictably
	state    atomic.Pointer[bundleState]
	// revoked are the removed machines whose certificates every server config refuses.
	revoked atomic.Pointer[Revocations]
}

// bundleState is immutable once published.
type bundleState struct {
	pool *x509.CertPool
	cert *tls.Certificate // Leaf is set
	id   Identity
}

// LoadBundle loads ca.crt and node.pem from dir and checks that the node
// certificate is a currently valid hanode leaf chaining to ca.crt and that the
// key matches it. A directory of an earlier version, with node.crt and node.key
// instead of node.pem, gets its node.pem written from them first, so that
// everything (etcd included) reads the one file renewals replace; where that
// cannot be written, the two files are read.
func LoadBundle(dir string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pki: resolve %s: %w", dir, err)
	}
	migrated := migrateNode(abs)
	certFile, keyFile := nodeFiles(abs)
	b := &Bundle{dir: abs, caFile: filepath.Join(abs, CACertFile), certFile: certFile, keyFile: keyFile}
	if err := b.Reload(); err != nil {
		if migrated != nil {
			return nil, fmt.Errorf("%w (and writing %s from %s and %s: %v)", err, NodePairFile, NodeCertFile, NodeKeyFile, migrated)
		}
		return nil, err
	}
	return b, nil
}

// nodeFiles names the files holding dir's node certificate and key: node.pem
// twice, or an earlier version's node.crt and node.key when only they exist.
func nodeFiles(dir string) (certFile, keyFile string) {
	pair := filepath.Join(dir, NodePairFile)
	if !fileExists(pair) && fileExists(filepath.Join(dir, NodeCertFile)) {
		return filepath.Join(dir, NodeCertFile), filepath.Join(dir, NodeKeyFile)
	}
	return pair, pair
}

// Reload re-reads and re-validates the files. On error the previous state is
// kept, so a broken file on disk never takes a working node down.
func (b *Bundle) Reload() error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	certFile, keyFile := nodeFiles(b.dir)
	st, err := loadState(b.caFile, certFile, keyFile, time.Now())
	if err != nil {
		return err
	}
	b.state.Store(st)
	return nil
}

// loadCAPool reads a CA bundle file into a pool; every certificate in it must be a CA.
func loadCAPool(caFile string) (*x509.CertPool, error) {
	caPEM, err := readFile(caFile)
	if err != nil {
		return nil, err
	}
	cas, err := parseCertsPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: parse %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA {
			return nil, fmt.Errorf("pki: %s: certificate %q is not a CA", caFile, c.Subject)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// loadState reads the CA pool and the node pair: from one file (node.pem) when
// certFile and keyFile are the same, else from an earlier version's two files.
func loadState(caFile, certFile, keyFile string, now time.Time) (*bundleState, error) {
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	leaf, key, err := readNode(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if !keyMatches(leaf, key) {
		return nil, fmt.Errorf("pki: private key %s does not match certificate %s", keyFile, certFile)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:       pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("pki: certificate %s does not verify against %s: %w", certFile, caFile, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", certFile, err)
	}
	return &bundleState{
		pool: pool,
		cert: &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
		id:   id,
	}, nil
}

func readNode(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := readFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	if certFile == keyFile {
		leaf, key, err := parsePairPEM(certPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("pki: parse %s: %w", certFile, err)
		}
		return leaf, key, nil
	}
	leaf, err := parseLeafPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: parse %s: %w", certFile, err)
	}
	keyPEM, err := readFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: parse %s: %w", keyFile, err)
	}
	return leaf, key, nil
}

// Dir returns the absolute pki directory.
func (b *Bundle) Dir() string { return b.dir }

// CAFile returns the absolute path of ca.crt.
func (b *Bundle) CAFile() string { return b.caFile }

// CertFile returns the absolute path of the file holding the node certificate
// as the bundle was loaded: node.pem, which holds the key too (TLS libraries
// that take a certificate file and a key file read the right block of each).
func (b *Bundle) CertFile() string { return b.certFile }

// KeyFile returns the absolute path of the file holding the node's private key:
// node.pem, as CertFile.
func (b *Bundle) KeyFile() string { return b.keyFile }

// Identity returns the identity of the current node certificate (a copy).
func (b *Bundle) Identity() Identity { return b.state.Load().id.clone() }

// Pool returns the current trusted CA pool. Callers must not modify it.
func (b *Bundle) Pool() *x509.CertPool { return b.state.Load().pool }

// Leaf returns the current node certificate. Callers must not modify it.
func (b *Bundle) Leaf() *x509.Certificate { return b.state.Load().cert.Leaf }

func (b *Bundle) certificate() *tls.Certificate { return b.state.Load().cert }

// ServerConfig returns a TLS server config serving the bundle's current
// certificate. Client certificates are verified when presented but not yet
// required; listeners that need them set ClientAuth to
// tls.RequireAndVerifyClientCert.
func (b *Bundle) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return b.certificate(), nil
		},
		ClientCAs:  b.Pool(),
		ClientAuth: tls.VerifyClientCertIfGiven,
		NextProtos: []string{"h2", "http/1.1"},
		// A removed machine's certificate still chains to the CA: refuse it in the handshake.
		VerifyConnection: b.VerifyConnection,
	}
}

// VerifyConnection refuses a handshake whose client certificate the bundle's revocations
// revoke (tls.Config.VerifyConnection of every server configuration).
func (b *Bundle) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	return b.CheckRevoked(cs.PeerCertificates[0])
}

// ClientConfig returns a TLS client config trusting the cluster CA and
// presenting the bundle's current certificate. An empty serverName lets the
// dialer derive it from the address (as net/http and tls.Dial do).
func (b *Bundle) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    b.Pool(),
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return b.certificate(), nil
		},
	}
}

// ClientTLSForCA returns a client config that trusts only the CA
// certificate(s) in caFile and presents no client certificate, for CLI users
// who have ca.crt but no node certificate.
func ClientTLSForCA(caFile string) (*tls.Config, error) {
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// EnsureSelfSigned bootstraps a single machine (appliance, lab): it creates a
// CA in dir if there is none, issues a node certificate for id if node.pem is
// missing, invalid, expired, or lacks any of id's machine name, roles, IPs or
// DNS names, and returns the loaded Bundle. It never overwrites an existing
// CA. It is not safe to run concurrently against the same dir from two
// processes.
func EnsureSelfSigned(dir, clusterName string, id Identity, caValidity, nodeValidity time.Duration) (*Bundle, error) {
	id, err := id.normalize()
	if err != nil {
		return nil, err
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	now := time.Now()
	caCrt := filepath.Join(dir, CACertFile)
	caKey := filepath.Join(dir, CAKeyFile)
	haveCrt, haveKey := fileExists(caCrt), fileExists(caKey)

	var ca *CA // nil when this machine trusts a CA it does not hold
	switch {
	case !haveCrt && !haveKey:
		if ca, err = NewCA(clusterName, caValidity, now); err != nil {
			return nil, err
		}
		if err := ca.Save(dir); err != nil {
			return nil, err
		}
	case haveCrt && haveKey:
		if ca, err = LoadCA(dir); err != nil {
			return nil, err
		}
	case !haveCrt && haveKey:
		// Refuse to guess: creating a new CA would orphan the existing key.
		return nil, fmt.Errorf("pki: %s exists but %s is missing; restore it or remove the key", caKey, caCrt)
	}

	if reason := nodeReissueReason(dir, id, now); reason != nil {
		if ca == nil {
			return nil, fmt.Errorf("pki: node certificate in %s needs issuing (%w) but %s is not present", dir, reason, caKey)
		}
		certPEM, keyPEM, err := ca.Issue(id, nodeValidity, now)
		if err != nil {
			return nil, err
		}
		if err := WriteNode(dir, certPEM, keyPEM); err != nil {
			return nil, err
		}
	}
	return LoadBundle(dir)
}

// nodeReissueReason returns why the node certificate in dir cannot serve id,
// or nil if it can.
func nodeReissueReason(dir string, want Identity, now time.Time) error {
	certFile, keyFile := nodeFiles(dir)
	st, err := loadState(filepath.Join(dir, CACertFile), certFile, keyFile, now)
	if err != nil {
		return err
	}
	have := st.id
	if have.Machine != want.Machine {
		return fmt.Errorf("certificate is for machine %q, want %q", have.Machine, want.Machine)
	}
	for _, r := range want.Roles {
		if !have.HasRole(r) {
			return fmt.Errorf("certificate lacks role %q", r)
		}
	}
	for _, d := range want.DNSNames {
		if !slices.Contains(have.DNSNames, d) {
			return fmt.Errorf("certificate lacks DNS name %q", d)
		}
	}
	for _, ip := range want.IPs {
		if !slices.ContainsFunc(have.IPs, ip.Equal) {
			return fmt.Errorf("certificate lacks IP %v", ip)
		}
	}
	return nil
}

// RenewAt is when a certificate should be renewed: two thirds into its lifetime, counted from
// its issue (NotBefore is backdated by the clock-skew allowance, which is not lifetime).
func RenewAt(cert *x509.Certificate) time.Time {
	issued := cert.NotBefore.Add(clockSkew)
	if !issued.Before(cert.NotAfter) {
		issued = cert.NotBefore
	}
	return issued.Add(cert.NotAfter.Sub(issued) * 2 / 3)
}
