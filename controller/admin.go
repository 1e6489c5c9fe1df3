package controller

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/controller/repair"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/internal/ratelimit"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/etcdauth"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
	"github.com/hanode/hanode/security/tokens"
)

// CAKey is where the cluster CA (certificate and key) is kept in etcd, sealed with the cluster
// keyring, so that every controller can sign certificates for joining machines.
const CAKey = keyspace.CA

// DrainPrefix marks machines being drained; placement avoids them.
const DrainPrefix = cluster.DrainPrefix

// security is the controller's access control: who may call the admin API, the audit trail,
// join tokens and the sealed CA.
type security struct {
	pkiDir  string
	keyring *secrets.Keyring // nil on a controller that has none (it can then not sign joins)
	creds   *access.Credentials
	audit   *access.Auditor
	tokens  *tokens.Store
}

func newSecurity(m *service.Machine, cli *clientv3.Client, log *slog.Logger) (*security, error) {
	s := &security{pkiDir: m.Bundle.Dir(), creds: access.NewCredentials(cli), tokens: tokens.NewStore(cli)}
	s.audit = access.NewAuditor(cli, log, m.Config.Name)
	ring, err := secrets.Load(filepath.Join(s.pkiDir, join.KeyringFile))
	switch {
	case err == nil:
		s.keyring = ring
	case errors.Is(err, os.ErrNotExist):
		log.Warn("no cluster keyring in the pki dir: this controller cannot read sealed secrets or sign joins", "dir", s.pkiDir)
	default:
		return nil, fmt.Errorf("controller: %w", err)
	}
	return s, nil
}

// caBundle is the CA bundle the cluster trusts, handed to joining and renewing machines: the
// one published in etcd during a CA rotation, else this controller's own ca.crt.
func (s *security) caBundle(cli *clientv3.Client) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if resp, err := cli.Get(ctx, BundleKey); err == nil && len(resp.Kvs) == 1 {
		return resp.Kvs[0].Value, nil
	}
	return os.ReadFile(filepath.Join(s.pkiDir, pki.CACertFile))
}

// signer returns the CA that signs: the one sealed in etcd (after a CA rotation, the new one),
// else the local ca.key of the machine that created the cluster (before it published it).
func (s *security) signer(ctx context.Context, cli *clientv3.Client) (*pki.CA, error) {
	if s.keyring != nil {
		ca, ok, err := s.sealedCA(ctx, cli, CAKey)
		if err != nil {
			return nil, err
		}
		if ok {
			return ca, nil
		}
	}
	if ca, err := pki.LoadCA(s.pkiDir); err == nil {
		return ca, nil
	}
	return nil, errors.New("no CA to sign with: none sealed in etcd yet and no local CA key")
}

// sealedCA reads a CA kept sealed in etcd under key.
func (s *security) sealedCA(ctx context.Context, cli *clientv3.Client, key string) (*pki.CA, bool, error) {
	if s.keyring == nil {
		return nil, false, errors.New("no keyring to unseal the CA with")
	}
	val, ok, err := secrets.Get(ctx, cli, s.keyring, key)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("read the sealed CA %s: %w", key, err)
		}
		return nil, false, err
	}
	var pair struct{ Cert, Key []byte }
	if err := json.Unmarshal(val, &pair); err != nil {
		return nil, false, fmt.Errorf("decode the sealed CA %s: %w", key, err)
	}
	ca, err := pki.ParseCA(pair.Cert, pair.Key)
	return ca, err == nil, err
}

// sealCA stores ca sealed under key.
func (s *security) sealCA(ctx context.Context, cli *clientv3.Client, key string, ca *pki.CA) error {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	certPEM := pki.EncodeCert(ca.Cert)
	val, _ := json.Marshal(struct{ Cert, Key []byte }{certPEM, keyPEM})
	return secrets.Put(ctx, cli, s.keyring, key, val)
}

// publishCA seals the local CA into etcd once, so that the other controllers can sign. It
// retries until etcd answers or ctx ends.
func (s *security) publishCA(ctx context.Context, cli *clientv3.Client, log *slog.Logger) {
	ca, err := pki.LoadCA(s.pkiDir)
	if err != nil || s.keyring == nil {
		return // not the machine that holds the CA
	}
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, ok, err := secrets.Get(rctx, cli, s.keyring, CAKey)
		if err == nil && !ok {
			if err = s.sealCA(rctx, cli, CAKey, ca); err == nil {
				log.Info("sealed the cluster CA into etcd for the other controllers")
			}
		}
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// adminRoutes registers the admin API. Reads need readonly, draining operator, tokens and
// credentials admin; every mutation is audited. Nothing is reachable without a credential except
// the health endpoints and the join flow (which authenticates with its token).
func (c *Role) adminRoutes() {
	v, mux, sec := c.sec.creds, c.srv.Mux, c.sec
	read := func(level string, h http.HandlerFunc) http.Handler { return access.Require(v, level, h) }
	write := func(level string, h http.HandlerFunc) http.Handler {
		return sec.audit.Mutation(v, level, func(r *http.Request) string { return r.PathValue("id") }, h)
	}
	c.srv.MetricsAuth = func(h http.Handler) http.Handler { return access.Require(v, access.ReadOnly, h) }
	mux.Handle("GET /v1/cluster/leader", read(access.ReadOnly, c.handleLeader))
	mux.Handle("GET /v1/cluster/status", read(access.ReadOnly, c.handleStatus))
	mux.Handle("GET /v1/nodes", read(access.ReadOnly, c.handleNodes))
	mux.Handle("GET /v1/repair", read(access.ReadOnly, c.handleRepair))
	mux.Handle("GET /v1/scrub", read(access.ReadOnly, c.handleScrub))
	mux.Handle("GET /v1/rebalance/plan", read(access.ReadOnly, c.handleRebalancePlan))
	mux.Handle("POST /v1/rebalance", write(access.Operator, c.handleRebalanceApply))
	mux.Handle("DELETE /v1/rebalance", write(access.Operator, c.handleRebalanceCancel))
	mux.Handle("POST /v1/nodes/{id}/drain", write(access.Operator, c.handleDrain))
	mux.Handle("DELETE /v1/nodes/{id}/drain", write(access.Operator, c.handleUndrain))
	mux.Handle("DELETE /v1/nodes/{id}", write(access.Operator, c.handleNodeRemove))
	mux.Handle("GET /v1/tokens", read(access.Admin, c.handleTokenList))
	mux.Handle("POST /v1/tokens", write(access.Admin, c.handleTokenCreate))
	mux.Handle("DELETE /v1/tokens/{id}", write(access.Admin, c.handleTokenRevoke))
	mux.Handle("GET /v1/credentials", read(access.Admin, c.handleCredentialList))
	mux.Handle("POST /v1/credentials", write(access.Admin, c.handleCredentialCreate))
	mux.Handle("DELETE /v1/credentials/{id}", write(access.Admin, c.handleCredentialRevoke))
	mux.Handle("GET /v1/audit", read(access.Operator, c.handleAudit))
	mux.Handle("POST /v1/secrets/rotate", write(access.Admin, c.handleSecretsRotate))
	mux.Handle("POST /v1/pki/rotate", write(access.Admin, c.handleCARotate))
	mux.HandleFunc("GET /v1/pki/signer", c.handleSigner) // public: which CA signs now
	c.proxyRoutes()
	c.etcdAccessRoute()
	c.agentRoutes(read, write, access.ReadOnly, access.Operator)
	js := &join.Server{
		Tokens:       sec.tokens,
		Signer:       func(ctx context.Context) (*pki.CA, error) { return sec.signer(ctx, c.cli) },
		CABundle:     func() ([]byte, error) { return sec.caBundle(c.cli) },
		Keyring:      func() *secrets.Keyring { return sec.keyring },
		Cluster:      c.clusterInfo,
		CertValidity: c.m.Config.CertValidity,
		Log:          c.log,
		Audit: func(ctx context.Context, who, machine string, status int, remote string) {
			sec.audit.Record(ctx, access.AuditEntry{Who: who, Action: "POST " + join.JoinPath, Target: machine, Result: status, Remote: remote})
		},
		Refused: func(remote string) { sec.audit.Refused("join", "POST "+join.JoinPath, remote) },
		Limit:   ratelimit.New(joinRate, joinBurst, 10000),
		Conflict: func(ctx context.Context, machine string, addresses []string) (int, error) {
			if err := c.machineTaken(ctx, machine, addresses); err != nil {
				return joinConflict(err), err
			}
			return 0, nil
		},
		Admit: c.admitMachine,
		Revoked: func(ctx context.Context, cert *x509.Certificate) error {
			return etcdauth.CheckRevoked(ctx, c.cli, cert.Subject.CommonName, pki.IssuedAt(cert))
		},
	}
	js.Register(mux)
	js.RegisterRenew(mux)
}

// Join attempts allowed per source address: joinBurst at once, then joinRate a second.
const (
	joinRate  = 5
	joinBurst = 50
)

// clusterInfo tells a joining machine where etcd and the controllers are.
func (c *Role) clusterInfo(ctx context.Context) (string, []string, []string, error) {
	ml, err := c.cli.MemberList(ctx)
	if err != nil {
		return "", nil, nil, fmt.Errorf("list etcd members: %w", err)
	}
	var etcd []string
	for _, m := range ml.Members {
		if !m.IsLearner {
			etcd = append(etcd, m.ClientURLs...)
		}
	}
	regs, err := cluster.Nodes(ctx, c.cli)
	if err != nil {
		return "", nil, nil, err
	}
	return c.m.Config.ClusterName, etcd, cluster.Addresses(regs, config.RoleController), nil
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("malformed request body: %w", err)
	}
	return nil
}

func principal(r *http.Request) string {
	if p, ok := access.PrincipalFrom(r.Context()); ok {
		return p.String()
	}
	return ""
}

func (c *Role) handleTokenCreate(w http.ResponseWriter, r *http.Request) {
	var req adminapi.TokenCreate
	if err := decodeBody(r, &req); err != nil {
		service.WriteError(w, http.StatusBadRequest, err)
		return
	}
	var ttl time.Duration
	if req.TTL != "" && req.TTL != "0" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < 0 {
			service.WriteError(w, http.StatusBadRequest, fmt.Errorf("ttl %q: want a duration such as 1h", req.TTL))
			return
		}
		ttl = d
	}
	if req.Uses < 0 {
		service.WriteError(w, http.StatusBadRequest, errors.New("uses must be >= 0"))
		return
	}
	for _, role := range req.Roles {
		if role != config.RoleAll && !slices.Contains(config.AllRoles, role) {
			service.WriteError(w, http.StatusBadRequest, fmt.Errorf("role %q: allowed: controller, datanode, coordinator, proxy, agent", role))
			return
		}
	}
	ca, err := c.sec.caBundle(c.cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	tok, err := tokens.Generate(ca)
	if err != nil {
		service.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	now := time.Now().UTC()
	rec := tokens.Record{ID: tok.ID, SecretHash: tokens.HashSecret(tok.Secret), Roles: req.Roles, Description: req.Description,
		Created: now, MaxUses: req.Uses, CreatedBy: principal(r)}
	if ttl > 0 {
		rec.Expires = now.Add(ttl)
	}
	if err := c.sec.tokens.Create(r.Context(), rec); err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, adminapi.TokenCreated{Record: rec, Token: tok.String()})
}

func (c *Role) handleTokenList(w http.ResponseWriter, r *http.Request) {
	list, err := c.sec.tokens.List(r.Context())
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"tokens": list})
}

func (c *Role) handleTokenRevoke(w http.ResponseWriter, r *http.Request) {
	err := c.sec.tokens.Revoke(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, tokens.ErrUnknown):
		service.WriteError(w, http.StatusNotFound, err)
	case err != nil:
		service.WriteError(w, http.StatusServiceUnavailable, err)
	default:
		service.WriteJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "revoked": true})
	}
}

func (c *Role) handleCredentialCreate(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CredentialCreate
	if err := decodeBody(r, &req); err != nil {
		service.WriteError(w, http.StatusBadRequest, err)
		return
	}
	cred, secret, err := c.sec.creds.Create(r.Context(), req.Level, req.Description, principal(r))
	if err != nil {
		service.WriteError(w, http.StatusBadRequest, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"id": cred.ID, "level": cred.Level, "credential": secret})
}

func (c *Role) handleCredentialList(w http.ResponseWriter, r *http.Request) {
	list, err := c.sec.creds.List(r.Context())
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"credentials": list})
}

func (c *Role) handleCredentialRevoke(w http.ResponseWriter, r *http.Request) {
	err := c.sec.creds.Revoke(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, access.ErrUnknownCredential):
		service.WriteError(w, http.StatusNotFound, err)
	case err != nil:
		service.WriteError(w, http.StatusServiceUnavailable, err)
	default:
		service.WriteJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "revoked": true})
	}
}

func (c *Role) handleAudit(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			service.WriteError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want 1 to 10000", s))
			return
		}
		limit = n
	}
	list, err := c.sec.audit.List(r.Context(), limit)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"entries": list})
}

// handleDrain marks a machine as draining: it keeps serving what it has while placement sends
// nothing new to it.
func (c *Role) handleDrain(w http.ResponseWriter, r *http.Request) {
	machine := r.PathValue("id")
	regs, err := cluster.Nodes(r.Context(), c.cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	known := false
	for _, reg := range regs {
		known = known || reg.Machine == machine
	}
	if !known {
		service.WriteError(w, http.StatusNotFound, fmt.Errorf("no machine %q is registered", machine))
		return
	}
	val, _ := json.Marshal(map[string]any{"machine": machine, "by": principal(r), "since": time.Now().UTC()})
	if _, err := c.cli.Put(r.Context(), DrainPrefix+machine, string(val)); err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"machine": machine, "draining": true})
}

// holdsNoReplicas refuses the removal of a machine that the last complete repair sweep found
// replicas on (or when no sweep has told yet).
func (c *Role) holdsNoReplicas(ctx context.Context, machine string) error {
	st, err := repair.ReadStatus(ctx, c.cli)
	if err != nil {
		return err
	}
	if st == nil || st.Sweep == nil {
		return fmt.Errorf("machine %s: no repair sweep has finished yet, so whether it still holds replicas is unknown; retry, or use --force", machine)
	}
	for _, m := range st.Machines {
		if m.Name == machine && m.Replicas > 0 {
			return fmt.Errorf("machine %s still holds %d replicas (%d bytes) as of the sweep of %s: drain it first (hanode node drain %s --wait), or use --force to lose them there and have repair re-create them",
				machine, m.Replicas, m.Bytes, st.Sweep.Finished.Format(time.RFC3339), machine)
		}
	}
	return nil
}

// handleNodeRemove forgets a machine that has left for good: its drain mark, its etcd user and,
// if it was a controller, its etcd member; its certificates are revoked; repair takes its
// replicas for lost at once. A machine that still
// runs any role is refused (stop it first), and so is one still holding replicas unless
// ?force=true.
func (c *Role) handleNodeRemove(w http.ResponseWriter, r *http.Request) {
	machine := r.PathValue("id")
	ctx := r.Context()
	regs, err := cluster.Nodes(ctx, c.cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	var running []string
	for _, reg := range regs {
		if reg.Machine == machine {
			running = append(running, reg.Role)
		}
	}
	if len(running) > 0 {
		service.WriteError(w, http.StatusConflict, fmt.Errorf("machine %s still runs %v: stop hanode there first", machine, running))
		return
	}
	force := r.URL.Query().Get("force") == "true"
	if !force {
		if err := c.holdsNoReplicas(ctx, machine); err != nil {
			service.WriteError(w, http.StatusConflict, err)
			return
		}
	}
	ml, err := c.cli.MemberList(ctx)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("list etcd members: %w", err))
		return
	}
	removedMember := false
	for _, m := range ml.Members {
		if m.Name != machine {
			continue
		}
		if _, err := c.cli.MemberRemove(ctx, m.ID); err != nil {
			service.WriteError(w, http.StatusConflict, fmt.Errorf("remove controller %s from etcd: %w", machine, err))
			return
		}
		removedMember = true
	}
	resp, err := c.cli.Delete(ctx, DrainPrefix+machine)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	c.tracker.forget(machine)
	// Its agent's desired state goes too (a machine of that name joining later starts afresh).
	agents, err := c.cli.Delete(ctx, keyspace.Agents+machine+"/", clientv3.WithPrefix())
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	// Its etcd user goes, so its certificates reach no key in etcd from now on.
	hadUser, err := etcdauth.Remove(ctx, c.cli, machine)
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, etcdauth.ErrReservedName) {
			code = http.StatusBadRequest
		}
		service.WriteError(w, code, err)
		return
	}
	if !removedMember && resp.Deleted == 0 && agents.Deleted == 0 && !hadUser && !force {
		service.WriteError(w, http.StatusNotFound, fmt.Errorf("no machine %q is known to the cluster", machine))
		return
	}
	// Every certificate issued to it so far is revoked: every listener refuses it and it
	// cannot be renewed. The record outlives the longest such certificate, then goes.
	ttl := max(c.m.Config.CertValidity, pki.DefaultNodeValidity) + 24*time.Hour
	if _, err := etcdauth.Revoke(ctx, c.cli, machine, principal(r), ttl); err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	// Its replicas are lost at once: repair need not wait for repair-grace.
	if err := repair.MarkRemoved(ctx, c.cli, machine); err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"machine": machine, "removed_controller": removedMember, "revoked": true})
}
