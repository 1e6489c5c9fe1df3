// Package pki manages hanode's cluster certificate authority and node
// certificates: one ECDSA P-256 CA per cluster, one leaf per machine that
// carries the machine's Identity, stored under <data-dir>/pki/.
//
// Every dir argument in this package is that pki directory itself
// (filepath.Join(dataDir, DirName)), not the data directory.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the pki directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	// NodePairFile holds the node's certificate and its private key together (PEM: the
	// certificate, then the PKCS#8 key), so that a renewal replaces both with one rename: no
	// reader, and no crash, ever finds a key of one issue beside a certificate of another.
	NodePairFile = "node.pem"
	// NodeCertFile and NodeKeyFile are where earlier versions kept the pair as two files.
	// LoadBundle reads them when node.pem is missing (and writes node.pem from them);
	// WriteNode removes them.
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// DirName is the pki directory's name under the data directory.
const DirName = "pki"

// Default validities used by callers.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultNodeValidity = 365 * 24 * time.Hour
)

// clockSkew backdates NotBefore so machines whose clocks are slightly behind
// the issuer still accept a freshly issued certificate.
const clockSkew = 5 * time.Minute

// URI SAN that carries the machine name: hanode://machine/<Machine>. The CN
// alone is not authoritative because it is free-form; the URI SAN is what a
// future authorizer should match on.
const (
	uriScheme = "hanode"
	uriHost   = "machine"
)

// Identity is who a certificate speaks for. Machine is the machine name; Roles
// the hanode roles (controller, datanode, coordinator, proxy, agent, admin...).
// Machine is encoded as Subject CommonName and as the URI SAN
// hanode://machine/<Machine>, Roles as Subject OrganizationalUnit (sorted,
// deduplicated). DNSNames and IPs become SANs.
type Identity struct {
	Machine  string
	Roles    []string
	DNSNames []string
	IPs      []net.IP
}

// HasRole reports whether id carries role.
func (id Identity) HasRole(role string) bool {
	return slices.Contains(id.Roles, role)
}

// URI returns the URI SAN that names id.Machine.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: uriScheme, Host: uriHost, Path: "/" + id.Machine}
}

func (id Identity) clone() Identity {
	c := Identity{
		Machine:  id.Machine,
		Roles:    slices.Clone(id.Roles),
		DNSNames: slices.Clone(id.DNSNames),
	}
	for _, ip := range id.IPs {
		c.IPs = append(c.IPs, slices.Clone(ip))
	}
	return c
}

// validName restricts machine names and roles to a conservative charset so they
// embed in a URI path, a DN and log lines without escaping.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// normalize validates id and returns it with roles sorted and deduplicated,
// which is the form Issue encodes and IdentityOf returns.
func (id Identity) normalize() (Identity, error) {
	if !validName(id.Machine) {
		return Identity{}, fmt.Errorf("pki: invalid machine name %q (want 1-253 of [A-Za-z0-9._-])", id.Machine)
	}
	n := id.clone()
	for _, r := range n.Roles {
		if !validName(r) {
			return Identity{}, fmt.Errorf("pki: invalid role %q for machine %q", r, id.Machine)
		}
	}
	slices.Sort(n.Roles)
	n.Roles = slices.Compact(n.Roles)
	for i, ip := range n.IPs {
		if ip4 := ip.To4(); ip4 != nil {
			n.IPs[i] = ip4
		} else if len(ip) != net.IPv6len {
			return Identity{}, fmt.Errorf("pki: invalid IP %v for machine %q", ip, id.Machine)
		}
	}
	for _, d := range n.DNSNames {
		if d == "" || strings.ContainsAny(d, " /\x00") {
			return Identity{}, fmt.Errorf("pki: invalid DNS name %q for machine %q", d, id.Machine)
		}
	}
	return n, nil
}

// IdentityOf decodes the Identity that Issue encoded in cert. It fails for CA
// certificates and for certificates without exactly one hanode machine URI SAN
// agreeing with the CommonName.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("pki: nil certificate")
	}
	if cert.IsCA {
		return Identity{}, fmt.Errorf("pki: certificate %q is a CA, not a hanode leaf", cert.Subject.CommonName)
	}
	var machine string
	found := 0
	for _, u := range cert.URIs {
		if u == nil || u.Scheme != uriScheme || u.Host != uriHost {
			continue
		}
		found++
		machine = strings.TrimPrefix(u.Path, "/")
	}
	switch {
	case found == 0:
		return Identity{}, fmt.Errorf("pki: certificate %q has no %s://%s/ URI SAN: not a hanode leaf", cert.Subject.CommonName, uriScheme, uriHost)
	case found > 1:
		return Identity{}, fmt.Errorf("pki: certificate %q has %d machine URI SANs, want 1", cert.Subject.CommonName, found)
	case machine != cert.Subject.CommonName:
		return Identity{}, fmt.Errorf("pki: certificate machine URI %q disagrees with CommonName %q", machine, cert.Subject.CommonName)
	case !validName(machine):
		return Identity{}, fmt.Errorf("pki: certificate has invalid machine name %q", machine)
	}
	id := Identity{
		Machine:  machine,
		Roles:    slices.Clone(cert.Subject.OrganizationalUnit),
		DNSNames: slices.Clone(cert.DNSNames),
	}
	slices.Sort(id.Roles)
	id.Roles = slices.Compact(id.Roles)
	for _, ip := range cert.IPAddresses {
		id.IPs = append(id.IPs, slices.Clone(ip))
	}
	return id, nil
}

// CA is the cluster certificate authority. Key is nil on a CA loaded for
// verification only. CertPEM is the content of ca.crt: the signing
// certificate, possibly followed by other trusted CA certificates during a
// rotation.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	if s.Sign() == 0 { // serials must be positive
		s.SetInt64(1)
	}
	return s, nil
}

// NewCA creates a self-signed ECDSA P-256 CA valid from now-5m to now+validity.
func NewCA(clusterName string, validity time.Duration, now time.Time) (*CA, error) {
	if strings.TrimSpace(clusterName) == "" {
		return nil, errors.New("pki: empty cluster name")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("pki: CA validity %v must be positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "hanode " + clusterName + " CA",
			Organization: []string{"hanode"},
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// No intermediates: the CA signs leaves directly.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCertPEM(der)}, nil
}

// LoadCA reads ca.crt and ca.key from dir. When ca.crt holds several CA
// certificates the one matching ca.key is the signing certificate.
func LoadCA(dir string) (*CA, error) {
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	certPEM, err := readFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile(keyPath)
	if err != nil {
		return nil, err
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s and %s: %w", certPath, keyPath, err)
	}
	return ca, nil
}

// ParseCA builds a CA from its certificate bundle and key PEM (as kept sealed in etcd, so
// that every controller can sign). The key must match one certificate of the bundle.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA key: %w", err)
	}
	for _, c := range certs {
		if keyMatches(c, key) {
			if !c.IsCA {
				return nil, fmt.Errorf("certificate %q is not a CA", c.Subject)
			}
			return &CA{Cert: c, Key: key, CertPEM: certPEM}, nil
		}
	}
	return nil, errors.New("the CA key does not match any certificate of the bundle")
}

// KeyPEM encodes the CA's private key (PKCS#8 PEM).
func (ca *CA) KeyPEM() ([]byte, error) { return encodeKeyPEM(ca.Key) }

func (ca *CA) Save(dir string) error {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return errors.New("pki: save CA: certificate and key required")
	}
	if !keyMatches(ca.Cert, ca.Key) {
		return errors.New("pki: save CA: key does not match certificate")
	}
	certPEM := ca.CertPEM
	if len(certPEM) == 0 {
		certPEM = encodeCertPEM(ca.Cert.Raw)
	}
	keyPEM, err := encodeKeyPEM(ca.Key)
	if err != nil {
		return err
	}
	if err := ensureDir(dir); err != nil {
		return err
	}
	if err := writeAtomic(dir, CAKeyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(dir, CACertFile, certPEM, 0o644)
}

// Issue signs a leaf certificate for id with a fresh ECDSA P-256 key. The leaf
// is good for both server and client auth because etcd peers use one
// certificate for both. NotAfter is capped at the CA's NotAfter since a leaf
// outliving its issuer would fail verification anyway.
func (ca *CA) Issue(id Identity, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	tmpl, id, err := ca.leafTemplate("issue", id, validity, now)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key for %q: %w", id.Machine, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: sign certificate for %q: %w", id.Machine, err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCertPEM(der), keyPEM, nil
}

// EncodeCert is the PEM form of one certificate.
func EncodeCert(c *x509.Certificate) []byte { return encodeCertPEM(c.Raw) }
