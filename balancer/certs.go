package balancer

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/caddyserver/certmagic"
	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/zapslog"
	"github.com/hanode/hanode/security/certstore"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/secrets"
	"go.uber.org/zap"
)

// reloadFiles picks up a renewed proxy-cert-file and proxy-key-file.
func (px *Role) reloadFiles(ctx context.Context) {
	stamp := func() string {
		var b strings.Builder
		for _, f := range []string{px.cfg.ProxyCertFile, px.cfg.ProxyKeyFile} {
			if fi, err := os.Stat(f); err == nil {
				fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
			}
		}
		return b.String()
	}
	last := stamp()
	for sleepCtx(ctx, 30*time.Second) {
		cur := stamp()
		if cur == last {
			continue
		}
		cert, err := tls.LoadX509KeyPair(px.cfg.ProxyCertFile, px.cfg.ProxyKeyFile)
		if err != nil {
			px.log.Warn("proxy: certificate files changed but do not load; serving the previous certificate", "err", err)
			continue // retried at the next tick: the pair may be half written
		}
		last = cur
		px.fileCert.Store(&cert)
		px.log.Info("proxy: reloaded the certificate files", "not_after", cert.Leaf.NotAfter)
	}
}

// manageCertificates runs certmagic on the etcd storage for px.names.
func (px *Role) manageCertificates(ctx context.Context, cli *clientv3.Client, ring *secrets.Keyring) {
	c := px.cfg
	zl := zapslog.New(px.log.With("component", "certmagic"))
	storage, err := certstore.New(cli, proxyCertPrefix, certstore.Options{Keyring: ring, Logger: px.log})
	if err != nil {
		px.setErr(err)
		px.log.Error("proxy: certificate storage", "err", err)
		return
	}
	if c.ProxyACMEDirectory == "" {
		px.followSigner(ctx, cli, storage, zl)
		return
	}
	mc, cache := newMagic(storage, zl, px.names[0], false)
	host := c.BindAddress
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = ""
	}
	// The solvers find this proxy's ports taken and leave the answers to them: http-01
	// through redirect, tls-alpn-01 through getCertificate. The challenge data is in the
	// shared storage, so any proxy can answer for any other.
	iss := certmagic.NewACMEIssuer(mc, certmagic.ACMEIssuer{
		CA: c.ProxyACMEDirectory, Email: c.ProxyACMEEmail, Agreed: true, Logger: zl,
		ListenHost: host, AltHTTPPort: c.ProxyHTTPPort, AltTLSALPNPort: c.ProxyHTTPSPort,
	})
	mc.Issuers = []certmagic.Issuer{iss}
	px.acme.Store(iss)
	px.cache.Store(cache)
	px.magic.Store(mc)
	// certmagic retries ACME with its own backoff, which respects the CA's rate limits.
	if err := mc.ManageAsync(ctx, px.names); err != nil {
		px.setErr(err)
		px.log.Error("proxy: manage certificates", "names", px.names, "err", err)
	}
}

// newMagic is a certmagic configuration with a cache of its own (no package-level state).
func newMagic(storage certmagic.Storage, zl *zap.Logger, defaultName string, clusterCA bool) (*certmagic.Config, *certmagic.Cache) {
	var mc *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return mc, nil },
		Logger:           zl,
	})
	tmpl := certmagic.Config{Storage: storage, Logger: zl, DefaultServerName: defaultName}
	if clusterCA {
		// The cluster CA publishes no OCSP responder and is not an ACME server.
		tmpl.OCSP = certmagic.OCSPConfig{DisableStapling: true}
		tmpl.DisableARI = true
	}
	mc = certmagic.New(cache, tmpl)
	return mc, cache
}

// signerEvery is how often a proxy asks which CA signs, as join.RenewLoop does.
const signerEvery = 10 * time.Second

// followSigner gets the names' certificates from the cluster CA, and new ones from the new CA
// when a CA rotation switches signers (docs/security.md). The certmagic issuer key names the
// signing CA, so certificates of different CAs live apart in storage: after a switch, the first
// proxy to look finds none for the new CA and has one issued, the others load it, and each
// serves its old certificates until the new ones are in.
func (px *Role) followSigner(ctx context.Context, cli *clientv3.Client, storage certmagic.Storage, zl *zap.Logger) {
	current := ""
	backoff := time.Second
	for {
		var signer struct {
			KeyID string `json:"key_id"`
		}
		err := px.callControllers(ctx, cli, http.MethodGet, join.SignerPath, nil, &signer)
		if err == nil && signer.KeyID != current {
			if err = px.issueWith(ctx, cli, storage, zl, signer.KeyID); err == nil {
				current = signer.KeyID
			}
		}
		wait := signerEvery
		if err != nil {
			px.setErr(err)
			px.log.Warn("proxy: cannot get certificates; retrying", "names", px.names, "in", backoff, "err", err)
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
		}
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

// issueWith manages px.names with the CA whose key id is signer and, once every name has a
// certificate, serves them instead of the previous CA's.
func (px *Role) issueWith(ctx context.Context, cli *clientv3.Client, storage certmagic.Storage, zl *zap.Logger, signer string) error {
	mc, cache := newMagic(storage, zl, px.names[0], true)
	mc.Issuers = []certmagic.Issuer{&certstore.CAIssuer{
		Key: certstore.DefaultIssuerKey + "-" + signer,
		Sign: func(ctx context.Context, csrDER []byte) ([]byte, error) {
			var out adminapi.PKISignResponse
			req := adminapi.PKISignRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))}
			if err := px.callControllers(ctx, cli, http.MethodPost, adminapi.PKISignPath, req, &out); err != nil {
				return nil, err
			}
			return []byte(out.Certificate), nil
		},
	}}
	if err := mc.ManageSync(ctx, px.names); err != nil {
		cache.Stop()
		return err
	}
	px.magic.Store(mc)
	if old := px.cache.Swap(cache); old != nil {
		old.Stop()
		px.log.Info("proxy: certificates of the new signing CA in service", "names", px.names, "signer", signer)
	} else {
		px.log.Info("proxy: certificates ready", "names", px.names, "signer", signer)
	}
	return nil
}
