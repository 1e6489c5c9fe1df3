package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"time"
)

const pemTypeCSR = "CERTIFICATE REQUEST"

// CSRs arrive from machines that are not trusted yet, so ParseCSR bounds the
// work they can cause: input size and RSA modulus size.
const (
	maxCSRSize    = 64 << 10
	minRSABits    = 2048
	maxRSABits    = 8192
	csrInputLabel = "certificate request"
)

// NewCSR makes a fresh ECDSA P-256 key and a CSR for id: CommonName and
// OrganizationalUnit, DNS, IP and URI SANs as Issue would set them. The
// signer decides the identity anyway (see SignCSR); the request's subject
// only tells an operator what the machine asked for.
func NewCSR(id Identity) (csrPEM, keyPEM []byte, err error) {
	id, err = id.normalize()
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key for %q: %w", id.Machine, err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: id.Machine, OrganizationalUnit: id.Roles},
		DNSNames:    id.DNSNames,
		IPAddresses: id.IPs,
		URIs:        []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create certificate request for %q: %w", id.Machine, err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCSR, Bytes: der}), keyPEM, nil
}

// ParseCSR decodes exactly one PEM "CERTIFICATE REQUEST" block (surrounding
// whitespace only, no headers), checks its self-signature (proof that the
// requester holds the private key) and accepts only ECDSA P-256 and RSA
// 2048-8192 bit public keys.
func ParseCSR(pemBytes []byte) (*x509.CertificateRequest, error) {
	if len(pemBytes) > maxCSRSize {
		return nil, fmt.Errorf("pki: parse %s: %d bytes exceeds the %d byte limit", csrInputLabel, len(pemBytes), maxCSRSize)
	}
	// pem.Decode silently skips text before the block; refuse it instead, as
	// parseCertsPEM refuses trailing data.
	if !bytes.HasPrefix(bytes.TrimLeft(pemBytes, " \t\r\n"), []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("pki: parse %s: no PEM block at start of input", csrInputLabel)
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("pki: parse %s: no PEM block found", csrInputLabel)
	}
	if block.Type != pemTypeCSR {
		return nil, fmt.Errorf("pki: parse %s: unexpected PEM block %q, want %q", csrInputLabel, block.Type, pemTypeCSR)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("pki: parse %s: unexpected PEM headers", csrInputLabel)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("pki: parse %s: trailing data after PEM block", csrInputLabel)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse %s: %w", csrInputLabel, err)
	}
	if err := checkCSR(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkCSR verifies the public key policy and the signature; SignCSR repeats
// it because its csr need not come from ParseCSR.
func checkCSR(csr *x509.CertificateRequest) error {
	name := csr.Subject.CommonName
	switch pub := csr.PublicKey.(type) {
	// The nil checks matter for requests built by hand rather than parsed.
	case *ecdsa.PublicKey:
		if pub == nil || pub.Curve != elliptic.P256() {
			return fmt.Errorf("pki: %s %q: ECDSA key not on P-256", csrInputLabel, name)
		}
	case *rsa.PublicKey:
		if pub == nil || pub.N == nil {
			return fmt.Errorf("pki: %s %q: empty RSA key", csrInputLabel, name)
		}
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return fmt.Errorf("pki: %s %q: RSA key of %d bits not accepted, want %d-%d", csrInputLabel, name, bits, minRSABits, maxRSABits)
		}
	default:
		return fmt.Errorf("pki: %s %q: public key type %T not accepted, want ECDSA P-256 or RSA", csrInputLabel, name, csr.PublicKey)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("pki: %s %q: bad signature: %w", csrInputLabel, name, err)
	}
	return nil
}

// leafTemplate validates the issuing inputs and builds the leaf template
// exactly as Issue does (same subject, SANs, usages, validity capping), so
// SignCSR and Issue produce interchangeable certificates. It returns the
// normalized identity for error messages.
func (ca *CA) leafTemplate(op string, id Identity, validity time.Duration, now time.Time) (*x509.Certificate, Identity, error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, Identity{}, fmt.Errorf("pki: %s: CA certificate and key required", op)
	}
	if validity <= 0 {
		return nil, Identity{}, fmt.Errorf("pki: %s for %q: validity %v must be positive", op, id.Machine, validity)
	}
	id, err := id.normalize()
	if err != nil {
		return nil, Identity{}, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, Identity{}, fmt.Errorf("pki: %s for %q: CA expired at %v", op, id.Machine, ca.Cert.NotAfter)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, Identity{}, err
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         id.Machine,
			OrganizationalUnit: id.Roles,
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              id.DNSNames,
		IPAddresses:           id.IPs,
		URIs:                  []*url.URL{id.URI()},
	}, id, nil
}

// SignCSR issues a leaf exactly like Issue but for the CSR's public key, so
// the private key never leaves the requesting machine. The identity comes
// from the caller (the server decides machine, roles and SANs after
// authenticating the requester); the CSR's subject and SANs are ignored
// because anyone can write anything there.
func (ca *CA) SignCSR(csr *x509.CertificateRequest, id Identity, validity time.Duration, now time.Time) (certPEM []byte, err error) {
	if csr == nil {
		return nil, errors.New("pki: sign certificate request: nil request")
	}
	if err := checkCSR(csr); err != nil {
		return nil, err
	}
	tmpl, id, err := ca.leafTemplate("sign certificate request", id, validity, now)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate for %q: %w", id.Machine, err)
	}
	return encodeCertPEM(der), nil
}
