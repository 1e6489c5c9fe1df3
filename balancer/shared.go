package balancer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/security/certstore"
	"github.com/hanode/hanode/security/secrets"
)

// Where the proxies keep what they share in etcd, sealed with the proxy keyring (see
// pkisign.go). Outside /hanode/secrets/ on purpose: a cluster keyring rotation re-seals that
// prefix and cannot open values sealed with another keyring.
const (
	proxyCertPrefix    = keyspace.ProxyCerts
	proxyTicketKeysKey = keyspace.ProxyTicketKeys
	proxyPinKeysKey    = keyspace.ProxyPinKeys
)

// shared fetches the proxy keyring, then shares pin and ticket keys and runs certmagic.
func (px *Role) shared(ctx context.Context, cli *clientv3.Client) {
	ring := px.fetchKeyring(ctx, cli)
	if ring == nil {
		return
	}
	pins := certstore.NewSharedKeys(cli, proxyPinKeysKey, ring, certstore.PinKeySize, certstore.PinKeyRotate, certstore.PinKeyKeep).WithLogger(px.log)
	pins.OnChange(func(keys [][]byte) {
		if err := px.engine.SetPinKeys(keys[0], keys[1:]...); err != nil {
			px.log.Error("proxy: shared pin keys", "err", err)
			return
		}
		px.pins.Store(true)
	})
	tickets := certstore.NewSharedKeys(cli, proxyTicketKeysKey, ring, certstore.TicketKeySize, certstore.TicketKeyRotate, certstore.TicketKeyKeep).WithLogger(px.log)
	tickets.OnChange(func(keys [][]byte) {
		if tk := certstore.SessionTicketKeys(keys); len(tk) > 0 {
			// The listener uses this very tls.Config, so the keys apply from the next handshake.
			px.https.TLSConfig.SetSessionTicketKeys(tk)
			px.tickets.Store(true)
		}
	})
	px.wg.Go(func() { _ = pins.Run(ctx) })
	px.wg.Go(func() { _ = tickets.Run(ctx) })
	if px.fileCert.Load() == nil {
		px.manageCertificates(ctx, cli, ring)
	}
}

// fetchKeyring asks the controllers for the proxy keyring until one answers or ctx ends.
func (px *Role) fetchKeyring(ctx context.Context, cli *clientv3.Client) *secrets.Keyring {
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 30*time.Second) {
		var out adminapi.ProxyKeyringResponse
		err := px.callControllers(ctx, cli, http.MethodGet, adminapi.ProxyKeyringPath, nil, &out)
		if err == nil && (out.Keyring == nil || out.Keyring.PrimaryID() == "") {
			err = errors.New("the controller sent an empty keyring")
		}
		if err == nil {
			px.unshared.Store(false)
			px.log.Info("proxy: got the proxy keyring")
			return out.Keyring
		}
		px.setErr(fmt.Errorf("get the proxy keyring: %w", err))
		if allStatus(err, http.StatusNotImplemented) {
			// A cluster without a keyring (made by hand, or by an old version): serve, but
			// alone — this machine's certificate, pins and tickets of this proxy only.
			if !px.unshared.Swap(true) {
				var lacking []string
				for _, n := range px.names {
					if px.bundle.Leaf().VerifyHostname(n) != nil {
						lacking = append(lacking, n)
					}
				}
				px.log.Warn("proxy: no controller holds the cluster keyring; this proxy shares no certificates, pin keys or ticket keys and serves this machine's certificate",
					"not_valid_for", lacking, "err", err)
			}
		} else {
			px.log.Warn("proxy: cannot get the proxy keyring from the controllers; retrying", "in", backoff, "err", err)
		}
		if !sleepCtx(ctx, backoff) {
			return nil
		}
	}
}

// callControllers sends a JSON request to the controllers through the process's admin client:
// the one that answered last first, the next one too when it is silent or answers 5xx, until
// one answers 2xx or refuses (4xx: asking another would not help). Every request here may be
// repeated (reads, and signing a CSR), so they are all raced.
func (px *Role) callControllers(ctx context.Context, cli *clientv3.Client, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := px.m.Controllers(ctx, cli).DoIdempotent(ctx, method, path, in, out)
	return err
}

// allStatus reports whether err holds answers of the controllers and every one was code.
func allStatus(err error, code int) bool {
	var ae *adminapi.APIError
	if !errors.As(err, &ae) {
		return false
	}
	var errs []error
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
			break
		}
	}
	if len(errs) == 0 {
		return ae.Status == code
	}
	for _, e := range errs {
		if !errors.As(e, &ae) || ae.Status != code {
			return false
		}
	}
	return true
}
