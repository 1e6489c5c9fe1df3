package certstore

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"

	"github.com/caddyserver/certmagic"
)

// DefaultIssuerKey is CAIssuer's IssuerKey when Key is empty. certmagic
// stores certificates under certificates/<issuer key>/<name>/.
const DefaultIssuerKey = "hanode-cluster-ca"

// CAIssuer is a certmagic.Issuer that has the cluster CA sign certmagic's
// CSRs, for DNS names and IP addresses alike; it never touches the network
// itself.
type CAIssuer struct {
	// Key identifies the CA to certmagic (certificates from issuers with
	// the same key are interchangeable); "" means DefaultIssuerKey.
	Key string
	// Sign has the CA sign a DER CSR and returns the PEM certificate,
	// optionally followed by its intermediates.
	Sign func(ctx context.Context, csrDER []byte) (certPEM []byte, err error)
}

var _ certmagic.Issuer = (*CAIssuer)(nil)

// IssuerKey implements certmagic.Issuer.
func (c *CAIssuer) IssuerKey() string {
	if c.Key == "" {
		return DefaultIssuerKey
	}
	return c.Key
}

// Issue implements certmagic.Issuer. It checks that what the signer returned
// is a certificate for the CSR's key and names: certmagic would otherwise
// store and serve a certificate that fails every handshake.
func (c *CAIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	names := csrNames(csr)
	if c.Sign == nil {
		return nil, fmt.Errorf("certstore: issue %v: CAIssuer has no Sign function", names)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certstore: issue %v: CSR signature: %w", names, err)
	}
	certPEM, err := c.Sign(ctx, csr.Raw)
	if err != nil {
		return nil, fmt.Errorf("certstore: issue %v: sign: %w", names, err)
	}
	if err := checkIssued(certPEM, csr); err != nil {
		return nil, fmt.Errorf("certstore: issue %v: signer returned %w", names, err)
	}
	return &certmagic.IssuedCertificate{Certificate: certPEM}, nil
}

func csrNames(csr *x509.CertificateRequest) []string {
	names := append([]string(nil), csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

func checkIssued(certPEM []byte, csr *x509.CertificateRequest) error {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("an unparsable certificate: %w", err)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(csr.PublicKey) {
		return errors.New("a certificate for another key")
	}
	for _, name := range csr.DNSNames {
		if err := leaf.VerifyHostname(name); err != nil {
			return fmt.Errorf("a certificate not valid for %s", name)
		}
	}
	for _, ip := range csr.IPAddresses {
		if !containsIP(leaf.IPAddresses, ip) {
			return fmt.Errorf("a certificate not valid for %s", ip)
		}
	}
	return nil
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}
