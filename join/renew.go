package join

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/hanode/hanode/pki"
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

// RenewLoop keeps b's certificate fresh: at two thirds of its lifetime it renews it (or picks up
// one that another process of the same machine renewed), retrying with backoff on failure.
func RenewLoop(ctx context.Context, controllers []string, b *pki.Bundle, log *slog.Logger) {
	for {
		due := pki.RenewAt(b.Leaf())
		// A little jitter keeps the processes of one machine from renewing all at once.
		wait := time.Until(due) + time.Duration(rand.Int64N(int64(time.Second)))
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		before := b.Leaf().SerialNumber
		if err := b.Reload(); err == nil && b.Leaf().SerialNumber.Cmp(before) != 0 && time.Now().Before(pki.RenewAt(b.Leaf())) {
			log.Info("picked up a renewed certificate", "not_after", b.Leaf().NotAfter)
			continue
		}
		backoff := time.Second
		for {
			err := Renew(ctx, controllers, b)
			if err == nil {
				log.Info("renewed this machine's certificate", "not_after", b.Leaf().NotAfter)
				break
			}
			log.Warn("certificate renewal failed; retrying", "expires", b.Leaf().NotAfter, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}
