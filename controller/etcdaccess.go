package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/agent/state"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/controller/election"
	"github.com/hanode/hanode/internal/ratelimit"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/etcdauth"
	"github.com/hanode/hanode/security/pki"
)

// Least privilege in etcd (docs/security.md): the active master turns etcd's authentication on
// once every machine it knows has an etcd user; joins, renewals and POST /v1/pki/etcd-access
// admit machines as their certificates say; node remove revokes a machine.

// leadEtcdAuth makes sure, for the term, that etcd's authentication is on and the shared
// roles carry this version's permissions; it retries until it managed or the term ends.
func (c *Role) leadEtcdAuth(term *election.Term) {
	ctx := term.Context()
	for ctx.Err() == nil {
		err := c.enableEtcdAuth(ctx)
		if err == nil {
			return
		}
		if ctx.Err() == nil {
			c.log.Warn("etcd authentication: not on yet; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

func (c *Role) enableEtcdAuth(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	on, err := etcdauth.Enabled(ctx, c.cli)
	if err != nil {
		return err
	}
	if on {
		return etcdauth.EnsureRoles(ctx, c.cli)
	}
	// A cluster started before this version: every machine it knows gets its user first —
	// controllers (etcd members, registered controllers) root, the others the roles they
	// run or are meant to run — so that nothing running is locked out when it goes on.
	controllers := []string{c.m.Config.Name}
	ml, err := c.cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("list etcd members: %w", err)
	}
	for _, m := range ml.Members {
		if m.Name != "" {
			controllers = append(controllers, m.Name)
		}
	}
	regs, err := cluster.Nodes(ctx, c.cli)
	if err != nil {
		return err
	}
	others := map[string][]string{}
	for _, r := range regs {
		if r.Role == config.RoleController {
			controllers = append(controllers, r.Machine)
		} else {
			others[r.Machine] = append(others[r.Machine], r.Role)
		}
	}
	agents, err := state.List(ctx, c.cli)
	if err != nil {
		return err
	}
	for _, a := range agents {
		others[a.Machine] = append(others[a.Machine], config.RoleAgent)
		for _, r := range a.Desired.Names() {
			if r != config.RoleController { // root only for what etcd itself says is a controller
				others[a.Machine] = append(others[a.Machine], r)
			}
		}
	}
	slices.Sort(controllers)
	controllers = slices.Compact(controllers)
	enabled, err := etcdauth.Enable(ctx, c.cli, controllers, others)
	if err != nil {
		return err
	}
	if enabled {
		c.log.Info("etcd authentication is on: only controllers hold etcd root, every other machine its roles' key ranges",
			"controllers", controllers, "machines", len(others))
	}
	return nil
}

// admitMachine gives a machine's etcd user the permissions of its certificate's roles.
func (c *Role) admitMachine(ctx context.Context, id pki.Identity) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return etcdauth.Admit(ctx, c.cli, id.Machine, id.Roles)
}

// handleEtcdAccess serves POST /v1/pki/etcd-access: a machine, authenticated by its (not
// revoked) certificate, is admitted to etcd as that certificate says. Every process of a
// machine that is not a controller asks when it starts, so a machine the migration did not
// know, or whose user is missing, needs no operator.
func (c *Role) handleEtcdAccess(w http.ResponseWriter, r *http.Request) {
	id, err := pki.IdentityOf(r.TLS.PeerCertificates[0])
	if err != nil {
		service.WriteError(w, http.StatusForbidden, err)
		return
	}
	if err := etcdauth.CheckRevoked(r.Context(), c.cli, id.Machine, pki.IssuedAt(r.TLS.PeerCertificates[0])); err != nil {
		service.WriteError(w, http.StatusForbidden, err)
		return
	}
	if err := c.admitMachine(r.Context(), id); err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]any{"machine": id.Machine, "roles": id.Roles})
}

// machineTaken refuses a join whose name or addresses belong to another machine: one with a
// live registration, or an etcd member (a controller, running or not, until node remove).
func (c *Role) machineTaken(ctx context.Context, machine string, addresses []string) error {
	if machine == etcdauth.RootUser {
		return etcdauth.ErrReservedName
	}
	owners := map[string]string{} // lower-case host → machine
	regs, err := cluster.Nodes(ctx, c.cli)
	if err != nil {
		return fmt.Errorf("%w: %w", errCannotCheck, err)
	}
	ml, err := c.cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("%w: list etcd members: %w", errCannotCheck, err)
	}
	names := map[string]bool{}
	add := func(who, rawURL string) {
		if u, err := url.Parse(rawURL); err == nil && u.Hostname() != "" {
			owners[strings.ToLower(u.Hostname())] = who
		}
	}
	for _, reg := range regs {
		names[reg.Machine] = true
		add(reg.Machine, reg.Address)
	}
	for _, m := range ml.Members {
		if m.Name != "" {
			names[m.Name] = true
		}
		for _, u := range append(slices.Clone(m.PeerURLs), m.ClientURLs...) {
			add(m.Name, u)
		}
	}
	if names[machine] {
		return fmt.Errorf("%w: machine name %s is in use by a running machine or etcd member (remove it first: hanode node remove %s)", errTaken, machine, machine)
	}
	for _, a := range addresses {
		if who, ok := owners[strings.ToLower(a)]; ok && who != machine {
			if who == "" {
				who = "a joining controller"
			}
			return fmt.Errorf("%w: address %s is machine %s's", errTaken, a, who)
		}
	}
	return nil
}

var (
	errTaken       = errors.New("join refused")
	errCannotCheck = errors.New("cannot check that the name and addresses are free")
)

// joinConflict maps machineTaken's errors to HTTP statuses.
func joinConflict(err error) int {
	switch {
	case errors.Is(err, errCannotCheck):
		return http.StatusServiceUnavailable
	case errors.Is(err, etcdauth.ErrReservedName):
		return http.StatusBadRequest
	default:
		return http.StatusConflict
	}
}

// Requests to POST /v1/pki/etcd-access allowed per source address: each admits a machine with a
// dozen etcd writes, and a machine's processes ask once each when they start, so a burst covers
// a whole machine starting (or a crash loop's first rounds), and the rate bounds what a
// machine's certificate, stolen or looping, can make etcd do.
const (
	etcdAccessRate  = 0.2
	etcdAccessBurst = 20
)

// etcdAccessRoute registers POST /v1/pki/etcd-access for machine certificates.
func (c *Role) etcdAccessRoute() {
	limit := ratelimit.New(etcdAccessRate, etcdAccessBurst, 10000)
	c.srv.Mux.Handle("POST "+adminapi.EtcdAccessPath, access.RequireCertificate(limited(limit, http.HandlerFunc(c.handleEtcdAccess))))
}

// limited answers 429 Too Many Requests, with a Retry-After, to a source past its rate in l.
func limited(l *ratelimit.PerSource, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.Allow(r.RemoteAddr) {
			w.Header().Set("Retry-After", "5")
			service.WriteError(w, http.StatusTooManyRequests, fmt.Errorf("too many %s requests from %s; retry later", r.URL.Path, ratelimit.Source(r.RemoteAddr)))
			return
		}
		h.ServeHTTP(w, r)
	})
}
