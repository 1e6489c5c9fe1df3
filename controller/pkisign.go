package controller

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
)

// What the controllers do for the proxies, which hold neither the cluster CA nor the cluster
// keyring: they sign the certificates of the proxies' public names, and they hand the proxies
// a keyring of their own, the proxy keyring. Both endpoints take only a verified cluster
// certificate that carries the proxy role.
//
// The proxy keyring seals what the proxies share through etcd (certmagic's certificates and
// keys, TLS session ticket keys, pin keys), so an etcd snapshot alone leaks none of it, while a
// proxy machine that is broken into leaks only what any proxy holds in memory anyway: never
// the CA key, S3 secrets or anything else the cluster keyring opens. It is created on first
// request and kept sealed with the cluster keyring under /hanode/secrets/, so a keyring
// rotation re-seals it like every other secret.
const (
	proxyKeyringKey = keyspace.ProxyKeyring
	// ProxyCertValidity is short, as public certificates are these days: certmagic renews at a
	// third of the lifetime left, so a proxy renews every 20 days.
	ProxyCertValidity = 30 * 24 * time.Hour
	maxProxyCertNames = 100
)

// proxyRoutes registers the proxies' endpoints on the admin API.
func (c *Role) proxyRoutes() {
	mux := c.srv.Mux
	mux.Handle("POST "+adminapi.PKISignPath, access.RequireRoles(http.HandlerFunc(c.handlePKISign), config.RoleProxy))
	mux.Handle("GET "+adminapi.ProxyKeyringPath, access.RequireRoles(http.HandlerFunc(c.handleProxyKeyring), config.RoleProxy))
}

// handlePKISign signs a server certificate for the DNS names and IPs of a proxy's CSR. The
// certificate is for TLS servers only (no client-auth usage, no machine identity): it opens no
// cluster API and no etcd. Names that are another machine's address or name are refused unless
// that machine runs a proxy too, so a proxy cannot get a certificate to pose as, say, a
// coordinator on another machine.
func (c *Role) handlePKISign(w http.ResponseWriter, r *http.Request) {
	p, _ := access.PrincipalFrom(r.Context())
	status, target := http.StatusOK, ""
	defer func() {
		c.sec.audit.Record(r.Context(), access.AuditEntry{Who: p.String(), Action: "POST " + adminapi.PKISignPath, Target: target, Result: status, Remote: r.RemoteAddr})
	}()
	fail := func(code int, err error) {
		status = code
		service.WriteError(w, code, err)
	}
	var req adminapi.PKISignRequest
	if err := decodeBody(r, &req); err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	names, err := proxyCSRNames(csr)
	target = strings.Join(names, ",")
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	regs, err := cluster.Nodes(r.Context(), c.cli)
	if err != nil {
		fail(http.StatusServiceUnavailable, err)
		return
	}
	if err := proxyNamePolicy(p.Name, names, regs); err != nil {
		fail(http.StatusForbidden, err)
		return
	}
	ca, err := c.sec.signer(r.Context(), c.cli)
	if err != nil {
		fail(http.StatusServiceUnavailable, err)
		return
	}
	certPEM, err := signProxyCert(ca, csr, time.Now())
	if err != nil {
		fail(http.StatusInternalServerError, err)
		return
	}
	c.log.Info("signed a proxy certificate", "proxy", p.Name, "names", names, "valid_for", ProxyCertValidity)
	service.WriteJSON(w, http.StatusOK, adminapi.PKISignResponse{Certificate: string(certPEM)})
}

// proxyCSRNames returns the CSR's names after checking them: 1 to maxProxyCertNames DNS names
// and IPs, DNS names lower-case.
func proxyCSRNames(csr *x509.CertificateRequest) ([]string, error) {
	var names []string
	for _, d := range csr.DNSNames {
		if !config.ValidCertName(d) || net.ParseIP(d) != nil {
			return nil, fmt.Errorf("DNS name %q: want a lower-case host name (*.example.com allowed)", d)
		}
		names = append(names, d)
	}
	for _, ip := range csr.IPAddresses {
		names = append(names, ip.String())
	}
	switch {
	case len(names) == 0:
		return nil, errors.New("the certificate request names no DNS name or IP address")
	case len(names) > maxProxyCertNames:
		return names, fmt.Errorf("the certificate request names %d names; at most %d", len(names), maxProxyCertNames)
	}
	return names, nil
}

// proxyNamePolicy refuses names that are the address or name of a registered machine other
// than caller, unless that machine runs a proxy as well.
func proxyNamePolicy(caller string, names []string, regs []cluster.Registration) error {
	owners := map[string][]string{}
	proxies := map[string]bool{}
	for _, reg := range regs {
		if reg.Role == config.RoleProxy {
			proxies[reg.Machine] = true
		}
		owners[strings.ToLower(reg.Machine)] = append(owners[strings.ToLower(reg.Machine)], reg.Machine)
		if u, err := url.Parse(reg.Address); err == nil && u.Hostname() != "" {
			h := strings.ToLower(u.Hostname())
			owners[h] = append(owners[h], reg.Machine)
		}
	}
	for _, n := range names {
		for _, m := range owners[strings.ToLower(n)] {
			if m != caller && !proxies[m] {
				return fmt.Errorf("%s is the address or name of machine %s, which runs no proxy", n, m)
			}
		}
	}
	return nil
}

// signProxyCert issues the server certificate for csr's names.
func signProxyCert(ca *pki.CA, csr *x509.CertificateRequest, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("proxy certificate serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1)) // positive
	notAfter := now.Add(ProxyCertValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	cn := ""
	if len(csr.DNSNames) > 0 {
		cn = csr.DNSNames[0]
	} else {
		cn = csr.IPAddresses[0].String()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-5 * time.Minute), // clock skew
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign the proxy certificate for %s: %w", cn, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func (c *Role) handleProxyKeyring(w http.ResponseWriter, r *http.Request) {
	if c.sec.keyring == nil {
		// 501, not 503: this lasts, and a proxy that hears it from every controller runs
		// without shared state rather than waiting for ever.
		service.WriteError(w, http.StatusNotImplemented, errors.New("this controller holds no cluster keyring"))
		return
	}
	ring, err := proxyKeyring(r.Context(), c.cli, c.sec.keyring)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	p, _ := access.PrincipalFrom(r.Context())
	c.log.Info("handed the proxy keyring to a proxy", "proxy", p.Name)
	w.Header().Set("Cache-Control", "no-store")
	service.WriteJSON(w, http.StatusOK, adminapi.ProxyKeyringResponse{Keyring: ring})
}

// proxyKeyring reads the proxy keyring, creating it if it does not exist yet; when controllers
// race to create it, every one ends up with the first one's.
func proxyKeyring(ctx context.Context, cli *clientv3.Client, clusterRing *secrets.Keyring) (*secrets.Keyring, error) {
	open := func(sealed []byte) (*secrets.Keyring, error) {
		plain, err := clusterRing.Open(sealed, []byte(proxyKeyringKey))
		if err != nil {
			return nil, fmt.Errorf("open the proxy keyring: %w", err)
		}
		ring := &secrets.Keyring{}
		if err := json.Unmarshal(plain, ring); err != nil {
			return nil, fmt.Errorf("decode the proxy keyring: %w", err)
		}
		return ring, nil
	}
	resp, err := cli.Get(ctx, proxyKeyringKey)
	if err != nil {
		return nil, fmt.Errorf("read the proxy keyring: %w", err)
	}
	if len(resp.Kvs) == 1 {
		return open(resp.Kvs[0].Value)
	}
	ring, err := secrets.NewKeyring()
	if err != nil {
		return nil, err
	}
	doc, err := json.Marshal(ring)
	if err != nil {
		return nil, err
	}
	sealed, err := clusterRing.Seal(doc, []byte(proxyKeyringKey))
	if err != nil {
		return nil, fmt.Errorf("seal the proxy keyring: %w", err)
	}
	tr, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(proxyKeyringKey), "=", 0)).
		Then(clientv3.OpPut(proxyKeyringKey, string(sealed))).
		Else(clientv3.OpGet(proxyKeyringKey)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("create the proxy keyring: %w", err)
	}
	if tr.Succeeded {
		return ring, nil
	}
	kvs := tr.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return nil, errors.New("create the proxy keyring: created and deleted concurrently")
	}
	return open(kvs[0].Value)
}
