package join

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanode/hanode/security/pki"
)

// RenewPath re-issues the caller's certificate. The caller authenticates with the certificate
// it renews (still valid), and the new one names exactly the same identity: renewal never
// widens what a machine may do.
const RenewPath = "/v1/pki/renew"

// RenewRequest carries a fresh CSR; the identity is taken from the caller's certificate.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// RenewResponse is the new certificate and the CA bundle.
type RenewResponse struct {
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// RegisterRenew adds the renewal endpoint to mux.
func (s *Server) RegisterRenew(mux *http.ServeMux) {
	mux.HandleFunc("POST "+RenewPath, s.serveRenew)
}

func (s *Server) serveRenew(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		http.Error(w, "renewal needs the current cluster certificate", http.StatusUnauthorized)
		return
	}
	id, err := pki.IdentityOf(r.TLS.PeerCertificates[0])
	if err != nil {
		http.Error(w, "not a machine certificate: "+err.Error(), http.StatusForbidden)
		return
	}
	if s.Revoked != nil {
		if err := s.Revoked(r.Context(), r.TLS.PeerCertificates[0]); err != nil {
			http.Error(w, "renewal refused: "+err.Error(), http.StatusForbidden)
			return
		}
	}
	var req RenewRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "malformed renewal request: "+err.Error(), http.StatusBadRequest)
		return
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		http.Error(w, "certificate request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ca, err := s.Signer(r.Context())
	if err != nil {
		http.Error(w, "signing CA unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	certPEM, err := ca.SignCSR(csr, id, s.CertValidity, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	bundle, err := s.CABundle()
	if err != nil {
		http.Error(w, "CA unavailable", http.StatusServiceUnavailable)
		return
	}
	if s.Admit != nil {
		if err := s.Admit(r.Context(), id); err != nil {
			s.Log.Warn("renewing machine not admitted to etcd", "machine", id.Machine, "err", err)
		}
	}
	s.Log.Info("renewed a machine certificate", "machine", id.Machine, "roles", id.Roles, "valid_for", s.CertValidity)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(RenewResponse{Certificate: string(certPEM), CA: string(bundle)})
}

// Renew gets a new certificate for b's identity from the first controller that signs it,
// writes it into b's directory and reloads b: TLS configurations built from b use it from
// their next handshake, so nothing restarts.
func Renew(ctx context.Context, controllers []string, b *pki.Bundle) error {
	csrPEM, keyPEM, err := pki.NewCSR(b.Identity())
	if err != nil {
		return err
	}
	body, _ := json.Marshal(RenewRequest{CSR: string(csrPEM)})
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: b.ClientConfig("")}}
	var errs []error
	for _, c := range controllers {
		u := strings.TrimSuffix(c, "/") + RenewPath
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s: %d %s", u, resp.StatusCode, strings.TrimSpace(string(data))))
			continue
		}
		var out RenewResponse
		if err := json.Unmarshal(data, &out); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		if err := pki.WriteNode(b.Dir(), []byte(out.Certificate), keyPEM); err != nil {
			return err
		}
		return b.Reload()
	}
	return fmt.Errorf("renew the certificate of %s: %w", b.Identity().Machine, errors.Join(errs...))
}

// SignerPath tells which CA signs now (its subject key id), so that machines renew at once
// when a CA rotation switches signers.
const SignerPath = "/v1/pki/signer"

// checkEvery is how often a process asks the controllers for the trust bundle and the signer.
const checkEvery = 10 * time.Second

// RenewLoop keeps b fresh. It renews at two thirds of the certificate's lifetime (or picks up a
// certificate another process of the same machine renewed), and every checkEvery it follows a
// CA rotation: it writes the cluster's trust bundle to ca.crt when it changed (used by TLS
// configurations built from then on, and by etcd at its next start), and renews at once when
// another CA than its certificate's issuer signs. Failures are retried with backoff.
func RenewLoop(ctx context.Context, controllers []string, b *pki.Bundle, log *slog.Logger) {
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	backoff := time.Second
	for {
		// A little jitter keeps the processes of one machine from renewing all at once.
		wait := time.Until(pki.RenewAt(b.Leaf())) + time.Duration(rand.Int64N(int64(time.Second)))
		due := wait <= 0
		if !due {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
				due = true
			case <-tick.C:
				stale, err := followCA(ctx, controllers, b, log)
				if err != nil {
					log.Debug("cannot check the cluster CA", "err", err)
				}
				due = stale
			}
		}
		if !due {
			continue
		}
		// The processes of one machine share its certificate files: one renews, under a lock,
		// and the others find the fresh certificate when they get the lock.
		renewed := false
		err := withLock(filepath.Join(b.Dir(), ".renew.lock"), func() error {
			if err := b.Reload(); err == nil && time.Now().Before(pki.RenewAt(b.Leaf())) {
				if stale, err := followCA(ctx, controllers, b, log); err == nil && !stale {
					return nil
				}
			}
			renewed = true
			return Renew(ctx, controllers, b)
		})
		if err != nil {
			log.Warn("certificate renewal failed; retrying", "expires", b.Leaf().NotAfter, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		if !renewed {
			log.Info("picked up a renewed certificate", "not_after", b.Leaf().NotAfter)
			continue
		}
		backoff = time.Second
		log.Info("renewed this machine's certificate", "not_after", b.Leaf().NotAfter, "issuer", hex.EncodeToString(b.Leaf().AuthorityKeyId))
	}
}

// followCA writes the cluster's trust bundle to ca.crt when it changed and still trusts this
// machine's certificate, and reports whether another CA than the certificate's issuer signs now.
func followCA(ctx context.Context, controllers []string, b *pki.Bundle, log *slog.Logger) (stale bool, err error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: b.ClientConfig("")}}
	defer hc.CloseIdleConnections()
	var errs []error
	for _, c := range controllers {
		base := strings.TrimSuffix(c, "/")
		bundle, err := get(ctx, hc, base+CAPath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		data, err := get(ctx, hc, base+SignerPath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var signer struct {
			KeyID string `json:"key_id"`
		}
		if err := json.Unmarshal(data, &signer); err != nil {
			return false, fmt.Errorf("%s: %w", base+SignerPath, err)
		}
		leaf := b.Leaf()
		current, _ := os.ReadFile(b.CAFile())
		if !bytes.Equal(bytes.TrimSpace(bundle), bytes.TrimSpace(current)) {
			// Never write a bundle that would stop trusting this machine's own certificate:
			// renew first (the next check writes it).
			if bundleHas(bundle, leaf.AuthorityKeyId) {
				if err := pki.WriteCACert(b.Dir(), bundle); err != nil {
					return false, err
				}
				if err := b.Reload(); err != nil {
					return false, err
				}
				log.Info("cluster trust bundle updated; a restart makes every listener use it", "file", b.CAFile())
			} else {
				stale = true
			}
		}
		return stale || signer.KeyID != hex.EncodeToString(leaf.AuthorityKeyId), nil
	}
	return false, errors.Join(errs...)
}

func get(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %d", u, resp.StatusCode)
	}
	return data, err
}

// bundleHas reports whether a PEM bundle holds the CA whose subject key id is kid.
func bundleHas(bundle, kid []byte) bool {
	certs, err := pki.ParseCertsPEM(bundle)
	if err != nil {
		return false
	}
	for _, c := range certs {
		if bytes.Equal(c.SubjectKeyId, kid) {
			return true
		}
	}
	return false
}

// withLock runs fn holding an exclusive flock on path (created if needed).
func withLock(path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}
