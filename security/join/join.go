// Package join brings a machine into a cluster with a join token, as k3s does with its secure
// tokens: the token carries the SHA-256 of the cluster CA, so the joining machine first fetches
// the CA, checks the hash, and only then — over TLS verified by that CA — sends the token's
// secret and a certificate signing request. The server checks the token (hash of the secret,
// expiry, uses, revocation, allowed roles), signs a certificate for the machine's name,
// addresses and roles, and for a controller also hands over the cluster keyring.
package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hanode/hanode/internal/ratelimit"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
	"github.com/hanode/hanode/security/tokens"
)

// Paths of the join API on the controllers' admin port.
const (
	CAPath   = "/v1/pki/ca"
	JoinPath = "/v1/join"
)

// KeyringFile is where a controller keeps the cluster keyring, beside its certificates.
const KeyringFile = "keyring.json"

// Request is what a joining machine sends.
type Request struct {
	TokenID   string   `json:"token_id"`
	Secret    string   `json:"secret"`
	Machine   string   `json:"machine"`
	Roles     []string `json:"roles"`
	Addresses []string `json:"addresses"` // IPs and DNS names the machine is reached at
	CSR       string   `json:"csr"`
}

// Response is what it gets back.
type Response struct {
	Cluster       string           `json:"cluster"`
	Certificate   string           `json:"certificate"`
	CA            string           `json:"ca"`
	Keyring       *secrets.Keyring `json:"keyring,omitempty"` // controllers only
	EtcdEndpoints []string         `json:"etcd_endpoints"`
	Controllers   []string         `json:"controllers"`
}

// Options are a joining machine's inputs.
type Options struct {
	Server    string // https://host:8900 of any controller
	Token     string
	Machine   string
	Roles     []string
	Addresses []string
	PKIDir    string // where to write ca.crt, node.pem (and keyring.json)
}

// ErrCAMismatch means the server's CA is not the one the token pins: the secret was not sent.
var ErrCAMismatch = errors.New("the server's CA does not match the token")

// Join runs the client side and writes the certificates into o.PKIDir.
func Join(ctx context.Context, o Options) (*Response, error) {
	tok, err := tokens.Parse(o.Token)
	if err != nil {
		return nil, fmt.Errorf("join token: %w", err)
	}
	base, err := url.Parse(strings.TrimSuffix(o.Server, "/"))
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("join server %q: want https://host:port", o.Server)
	}
	// Step 1: fetch the CA without trusting anything and without sending anything secret.
	caPEM, err := fetchCA(ctx, base.String()+CAPath)
	if err != nil {
		return nil, err
	}
	if !tok.MatchesCA(caPEM) {
		return nil, fmt.Errorf("%w: server %s has CA sha256 %s, the token pins %s; refusing to send the token secret",
			ErrCAMismatch, base.Host, tokens.CAHash(caPEM), tok.CAHash)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the server's CA bundle holds no certificate")
	}
	// Step 2: a key of our own and a CSR; the secret travels only over TLS verified by the CA.
	csrPEM, keyPEM, err := pki.NewCSR(pki.Identity{Machine: o.Machine, Roles: o.Roles})
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(Request{TokenID: tok.ID, Secret: tok.Secret, Machine: o.Machine, Roles: o.Roles, Addresses: o.Addresses, CSR: string(csrPEM)})
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String()+JoinPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", base.Host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("join %s: read answer: %w", base.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("join refused by %s: %s", base.Host, strings.TrimSpace(string(data)))
	}
	var out Response
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("join %s: decode answer: %w", base.Host, err)
	}
	if err := pki.WriteCACert(o.PKIDir, []byte(out.CA)); err != nil {
		return nil, err
	}
	if err := pki.WriteNode(o.PKIDir, []byte(out.Certificate), keyPEM); err != nil {
		return nil, err
	}
	if out.Keyring != nil {
		if err := out.Keyring.Save(filepath.Join(o.PKIDir, KeyringFile)); err != nil {
			return nil, err
		}
	}
	return &out, nil
}

func fetchCA(ctx context.Context, u string) ([]byte, error) {
	// Verification is deliberately off for this one request: it sends nothing, and what it
	// receives is checked against the token's hash before anything is trusted.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}}
	data, err := get(ctx, hc, u)
	if err != nil {
		return nil, fmt.Errorf("fetch the cluster CA: %w", err)
	}
	return data, nil
}

// Server is the controller side.
type Server struct {
	Tokens       *tokens.Store
	Signer       func(ctx context.Context) (*pki.CA, error) // the CA that signs
	CABundle     func() ([]byte, error)                     // the CA certificates served to joiners
	Keyring      func() *secrets.Keyring                    // nil when this controller has none
	Cluster      func(ctx context.Context) (name string, etcd, controllers []string, err error)
	CertValidity time.Duration
	Log          *slog.Logger
	// Audit, if set, records each join attempt made with a valid token (its secret matched):
	// who (the token id), the machine, the result.
	Audit func(ctx context.Context, who, machine string, status int, remote string)
	// Refused, if set, is told of every other refused attempt (no valid token, a malformed
	// request, over the rate limit), which is counted and sampled into the log rather than
	// audited, so that nobody without a token can make etcd grow.
	Refused func(remote string)
	// Limit, if set, bounds the join attempts per source address: beyond it, 429.
	Limit *ratelimit.PerSource
	// Conflict, if set, is asked — only for a caller with a valid token, before its use is
	// counted — whether the machine name or an address is another machine's: it returns the
	// HTTP status and the reason to refuse, or 0 and nil.
	Conflict func(ctx context.Context, machine string, addresses []string) (int, error)
	// Admit, if set, gives a machine its etcd access as its certificate's roles say: at a join
	// (a failure refuses the join, leaving the token unused) and at each renewal (a failure is
	// logged; the machine's processes ask again when they start).
	Admit func(ctx context.Context, id pki.Identity) error
	// Revoked, if set, refuses the renewal of a certificate of a removed machine.
	Revoked func(ctx context.Context, cert *x509.Certificate) error
}

// ErrConflict wraps the refusals of Conflict and Admit.
var ErrConflict = errors.New("machine name or address in use")

func (s *Server) refused(r *http.Request) {
	if s.Refused != nil {
		s.Refused(r.RemoteAddr)
	}
}

// Register adds the join endpoints to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+CAPath, s.serveCA)
	mux.HandleFunc("POST "+JoinPath, s.serveJoin)
}

func (s *Server) serveCA(w http.ResponseWriter, r *http.Request) {
	ca, err := s.CABundle()
	if err != nil {
		http.Error(w, "CA unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(ca)
}

// knownRoles are the roles a machine may ask for.
var knownRoles = []string{"controller", "agent", "datanode", "coordinator", "proxy"}

// ParseRequest decodes and checks a join request body; it is the parser of outside input.
func ParseRequest(body []byte) (*Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("malformed join request: %w", err)
	}
	if req.TokenID == "" || req.Secret == "" {
		return nil, errors.New("join request without a token")
	}
	if len(req.Roles) == 0 {
		return nil, errors.New("join request names no roles")
	}
	for _, r := range req.Roles {
		if !slices.Contains(knownRoles, r) {
			return nil, fmt.Errorf("unknown role %q (allowed: %s)", r, strings.Join(knownRoles, ", "))
		}
	}
	if len(req.Addresses) > 32 {
		return nil, errors.New("too many addresses")
	}
	for _, a := range req.Addresses {
		if net.ParseIP(a) == nil && !validDNSName(a) {
			return nil, fmt.Errorf("address %q is neither an IP nor a DNS name", a)
		}
	}
	return &req, nil
}

func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func (s *Server) serveJoin(w http.ResponseWriter, r *http.Request) {
	if s.Limit != nil && !s.Limit.Allow(r.RemoteAddr) {
		s.refused(r)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many join attempts from this address; retry later", http.StatusTooManyRequests)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil || len(body) > 64<<10 {
		s.refused(r)
		http.Error(w, "join request too large", http.StatusRequestEntityTooLarge)
		return
	}
	req, err := ParseRequest(body)
	if err != nil {
		s.refused(r)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	status, resp, err := s.join(r.Context(), req)
	// A token whose secret matched was checked first in Redeem: any other error means the
	// caller showed no valid token (or failed before it was looked at).
	tokenValid := err == nil || errors.Is(err, tokens.ErrRevoked) || errors.Is(err, tokens.ErrExpired) ||
		errors.Is(err, tokens.ErrUsedUp) || errors.Is(err, tokens.ErrRoleNotAllowed) || errors.Is(err, ErrConflict)
	switch {
	case tokenValid && s.Audit != nil:
		s.Audit(r.Context(), "token:"+req.TokenID, req.Machine, status, r.RemoteAddr)
	case !tokenValid:
		s.refused(r)
	}
	if err != nil {
		if tokenValid {
			s.Log.Warn("join refused", "token", req.TokenID, "machine", req.Machine, "roles", req.Roles, "remote", r.RemoteAddr, "err", err)
		}
		http.Error(w, err.Error(), status)
		return
	}
	s.Log.Info("machine joined", "token", req.TokenID, "machine", req.Machine, "roles", req.Roles, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Server) join(ctx context.Context, req *Request) (int, *Response, error) {
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		return http.StatusBadRequest, nil, fmt.Errorf("certificate request: %w", err)
	}
	id := pki.Identity{Machine: req.Machine, Roles: req.Roles}
	for _, a := range req.Addresses {
		if ip := net.ParseIP(a); ip != nil {
			id.IPs = append(id.IPs, ip)
		} else {
			id.DNSNames = append(id.DNSNames, a)
		}
	}
	wantsKeyring := slices.Contains(req.Roles, "controller")
	var ring *secrets.Keyring
	if wantsKeyring {
		if ring = s.Keyring(); ring == nil {
			return http.StatusServiceUnavailable, nil, errors.New("this controller holds no cluster keyring; join through another controller")
		}
	}
	ca, err := s.Signer(ctx)
	if err != nil {
		return http.StatusServiceUnavailable, nil, fmt.Errorf("signing CA unavailable: %w", err)
	}
	// Redeem last: a request that fails the checks above does not use the token up.
	// Once the token passed, before its use is counted: the name and addresses must be free,
	// and the machine gets its etcd access (a joining controller needs it to add itself to
	// etcd), so that a refusal here leaves the token unused.
	conflictStatus := 0
	conflict := func() error {
		if s.Conflict != nil {
			if status, err := s.Conflict(ctx, req.Machine, req.Addresses); err != nil {
				conflictStatus = status
				return fmt.Errorf("%w: %w", ErrConflict, err)
			}
		}
		if s.Admit != nil {
			if err := s.Admit(ctx, id); err != nil {
				conflictStatus = http.StatusServiceUnavailable
				return fmt.Errorf("%w: etcd access for %s: %w", ErrConflict, req.Machine, err)
			}
		}
		return nil
	}
	if _, err := s.Tokens.RedeemIf(ctx, req.TokenID, req.Secret, req.Roles, time.Now(), conflict); err != nil {
		if conflictStatus != 0 {
			return conflictStatus, nil, err
		}
		return http.StatusForbidden, nil, fmt.Errorf("token refused: %w", err)
	}
	certPEM, err := ca.SignCSR(csr, id, s.CertValidity, time.Now())
	if err != nil {
		return http.StatusBadRequest, nil, fmt.Errorf("sign certificate for %s: %w", req.Machine, err)
	}

	bundle, err := s.CABundle()
	if err != nil {
		return http.StatusServiceUnavailable, nil, err
	}
	name, etcd, controllers, err := s.Cluster(ctx)
	if err != nil {
		return http.StatusServiceUnavailable, nil, err
	}
	return http.StatusOK, &Response{Cluster: name, Certificate: string(certPEM), CA: string(bundle), Keyring: ring, EtcdEndpoints: etcd, Controllers: controllers}, nil
}
