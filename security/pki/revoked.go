package pki

import (
	"crypto/x509"
	"fmt"
	"maps"
	"time"
)

// Revocations are the machines removed from the cluster and when: a certificate of such a
// machine issued before its removal is revoked. Revoking by machine and time rather than by
// serial covers every certificate a machine ever held — renewed ones, and those issued
// before anything recorded serials — with one record. Immutable once built.
type Revocations struct {
	removed map[string]time.Time
}

// NewRevocations builds the set from machine → removal time.
func NewRevocations(removed map[string]time.Time) *Revocations {
	return &Revocations{removed: maps.Clone(removed)}
}

// Len is the number of removed machines.
func (r *Revocations) Len() int { return len(r.removed) }

// Check refuses a machine certificate issued before its machine's removal.
func (r *Revocations) Check(cert *x509.Certificate) error {
	if r == nil || cert == nil {
		return nil
	}
	at, ok := r.removed[cert.Subject.CommonName]
	if !ok {
		return nil
	}
	if IssuedAt(cert).After(at) {
		return nil // a machine of the same name that joined after the removal
	}
	return fmt.Errorf("certificate of machine %s (serial %x, issued %s) is revoked: the machine was removed at %s",
		cert.Subject.CommonName, cert.SerialNumber, IssuedAt(cert).Format(time.RFC3339), at.Format(time.RFC3339))
}

// IssuedAt is when a certificate was issued: NotBefore, which is backdated by the clock-skew
// allowance, plus that allowance.
func IssuedAt(cert *x509.Certificate) time.Time { return cert.NotBefore.Add(clockSkew) }

// SetRevocations makes every TLS server configuration built from b refuse, from its next
// handshake, a client certificate that r revokes.
func (b *Bundle) SetRevocations(r *Revocations) { b.revoked.Store(r) }

// CheckRevoked refuses cert if the bundle's revocations say so.
func (b *Bundle) CheckRevoked(cert *x509.Certificate) error { return b.revoked.Load().Check(cert) }
