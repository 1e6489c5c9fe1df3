package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

var csrNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func csrTestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("csr-test", DefaultCAValidity, csrNow)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// csrFromKey builds a CSR PEM for an arbitrary key type, bypassing NewCSR.
func csrFromKey(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "m1"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCSR, Bytes: der})
}

func TestCSRSignRoundTrip(t *testing.T) {
	ca := csrTestCA(t)
	// The machine asks for more than it should get.
	asked := Identity{Machine: "evil", Roles: []string{"admin", "controller"}, DNSNames: []string{"ca.example"}}
	csrPEM, keyPEM, err := NewCSR(asked)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "evil" || len(csr.URIs) != 1 || csr.URIs[0].String() != "hanode://machine/evil" ||
		!slices.Equal(csr.Subject.OrganizationalUnit, []string{"admin", "controller"}) {
		t.Fatalf("CSR subject %v, URIs %v", csr.Subject, csr.URIs)
	}
	// The server decides.
	granted := Identity{Machine: "dn1", Roles: []string{"datanode", "agent", "datanode"},
		DNSNames: []string{"dn1.local"}, IPs: []net.IP{net.ParseIP("10.0.0.7")}}
	certPEM, err := ca.SignCSR(csr, granted, DefaultNodeValidity, csrNow)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseLeafPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: csrNow, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("verify for %v: %v", usage, err)
		}
	}
	got, err := IdentityOf(cert)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := granted.normalize()
	if got.Machine != want.Machine || !slices.Equal(got.Roles, want.Roles) || !slices.Equal(got.DNSNames, want.DNSNames) ||
		len(got.IPs) != 1 || !got.IPs[0].Equal(want.IPs[0]) {
		t.Fatalf("IdentityOf = %+v, want the caller's %+v", got, want)
	}
	// The certificate is for the CSR's key, which only the machine holds.
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !keyMatches(cert, key) {
		t.Fatal("certificate is not for the CSR's key")
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	if err := WriteNode(t.TempDir(), certPEM, keyPEM); err != nil {
		t.Fatalf("WriteNode: %v", err)
	}
	// Same shape as Issue.
	issuedPEM, _, err := ca.Issue(granted, DefaultNodeValidity, csrNow)
	if err != nil {
		t.Fatal(err)
	}
	issued, _ := parseLeafPEM(issuedPEM)
	if !issued.NotBefore.Equal(cert.NotBefore) || !issued.NotAfter.Equal(cert.NotAfter) ||
		issued.KeyUsage != cert.KeyUsage || !slices.Equal(issued.ExtKeyUsage, cert.ExtKeyUsage) ||
		issued.Subject.String() != cert.Subject.String() || issued.IsCA != cert.IsCA {
		t.Fatalf("SignCSR and Issue disagree:\n%+v\n%+v", cert, issued)
	}
}

func TestSignCSRCapsAndRefuses(t *testing.T) {
	ca := csrTestCA(t)
	csrPEM, _, err := NewCSR(Identity{Machine: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignCSR(csr, Identity{Machine: "m1"}, 2*DefaultCAValidity, csrNow)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := parseLeafPEM(certPEM); !c.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("NotAfter %v not capped at the CA's %v", c.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := ca.SignCSR(nil, Identity{Machine: "m1"}, time.Hour, csrNow); err == nil {
		t.Error("nil CSR accepted")
	}
	if _, err := ca.SignCSR(csr, Identity{Machine: "bad name"}, time.Hour, csrNow); err == nil {
		t.Error("invalid identity accepted")
	}
	if _, err := ca.SignCSR(csr, Identity{Machine: "m1"}, 0, csrNow); err == nil {
		t.Error("zero validity accepted")
	}
	if _, err := ca.SignCSR(csr, Identity{Machine: "m1"}, time.Hour, ca.Cert.NotAfter.Add(time.Hour)); err == nil {
		t.Error("signing with an expired CA succeeded")
	}
	verifyOnly := &CA{Cert: ca.Cert, CertPEM: ca.CertPEM}
	if _, err := verifyOnly.SignCSR(csr, Identity{Machine: "m1"}, time.Hour, csrNow); err == nil {
		t.Error("CA without key signed")
	}
	// A hand-built request is held to the same policy as a parsed one.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := ca.SignCSR(&x509.CertificateRequest{PublicKey: &p384.PublicKey}, Identity{Machine: "m1"}, time.Hour, csrNow); err == nil {
		t.Error("unsigned P-384 request signed")
	}
	forged := *csr
	forged.Signature = slices.Clone(csr.Signature)
	forged.Signature[len(forged.Signature)-1] ^= 1
	if _, err := ca.SignCSR(&forged, Identity{Machine: "m1"}, time.Hour, csrNow); err == nil {
		t.Error("request with a bad signature signed")
	}
}

func TestParseCSRKeyPolicy(t *testing.T) {
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCSR(csrFromKey(t, rsa2048)); err != nil {
		t.Errorf("RSA 2048: %v", err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]crypto.Signer{"RSA 1024": rsa1024, "P-384": p384, "Ed25519": ed} {
		if _, err := ParseCSR(csrFromKey(t, key)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestParseCSRRejects(t *testing.T) {
	valid, _, err := NewCSR(Identity{Machine: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(valid)
	tampered := slices.Clone(block.Bytes)
	tampered[len(tampered)-1] ^= 1 // last byte of the signature
	tamperedSubject := slices.Clone(block.Bytes)
	if i := strings.Index(string(tamperedSubject), "m1"); i >= 0 {
		tamperedSubject[i] = 'n' // signed content changes, signature stays
	} else {
		t.Fatal("CN not found in CSR DER")
	}
	certPEM := encodeCertPEM(csrTestCA(t).Cert.Raw)
	enc := func(b *pem.Block) []byte { return pem.EncodeToMemory(b) }

	for name, in := range map[string][]byte{
		"empty":            nil,
		"garbage":          []byte("hello"),
		"tampered sig":     enc(&pem.Block{Type: pemTypeCSR, Bytes: tampered}),
		"tampered subject": enc(&pem.Block{Type: pemTypeCSR, Bytes: tamperedSubject}),
		"trailing data":    append(slices.Clone(valid), "junk\n"...),
		"two blocks":       append(slices.Clone(valid), valid...),
		"leading data":     append([]byte("junk\n"), valid...),
		"wrong type":       enc(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: block.Bytes}),
		"certificate":      certPEM,
		"headers":          enc(&pem.Block{Type: pemTypeCSR, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: block.Bytes}),
		"not DER":          enc(&pem.Block{Type: pemTypeCSR, Bytes: []byte("not der")}),
		"oversized":        append(slices.Clone(valid), make([]byte, maxCSRSize)...),
	} {
		if _, err := ParseCSR(in); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "certificate request") {
			t.Errorf("%s: error does not name the input: %v", name, err)
		}
	}
	// Surrounding whitespace is fine.
	if _, err := ParseCSR(append(append([]byte("\n\n"), valid...), "\n\n"...)); err != nil {
		t.Errorf("whitespace around the block: %v", err)
	}
}

func FuzzParseCSR(f *testing.F) {
	valid, _, err := NewCSR(Identity{Machine: "m1", Roles: []string{"datanode"}, IPs: []net.IP{net.IPv4(10, 0, 0, 1)}})
	if err != nil {
		f.Fatal(err)
	}
	block, _ := pem.Decode(valid)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(csrFromKey(f, rsaKey))
	f.Add(valid[:len(valid)/2])
	f.Add(append(slices.Clone(valid), "x"...))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: pemTypeCSR, Bytes: block.Bytes[:len(block.Bytes)-3]}))
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		csr, err := ParseCSR(in)
		if err != nil {
			return
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR with a bad signature: %v", err)
		}
		switch pub := csr.PublicKey.(type) {
		case *ecdsa.PublicKey:
			if pub.Curve != elliptic.P256() {
				t.Fatal("accepted a non-P-256 ECDSA key")
			}
		case *rsa.PublicKey:
			if pub.N.BitLen() < minRSABits {
				t.Fatal("accepted a short RSA key")
			}
		default:
			t.Fatalf("accepted key type %T", pub)
		}
	})
}
