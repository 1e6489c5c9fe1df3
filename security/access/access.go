// Package access decides who is calling an API and what they may do.
//
// A caller is a Principal, identified either by the client certificate of the TLS connection
// (issued by the cluster CA; its roles are in the certificate) or by a bearer credential
// created with `hanode credential create` and stored hashed in etcd. Admin-API permissions
// are three levels, readonly < operator < admin; a machine certificate of a controller counts
// as admin (the CLI on a controller machine uses it), any other machine certificate as
// readonly. Everything is denied unless a handler states the level it needs.
package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hanode/hanode/security/pki"
)

// Admin-API permission levels.
const (
	ReadOnly = "readonly"
	Operator = "operator"
	Admin    = "admin"
)

// Levels lists the levels from least to most privileged.
var Levels = []string{ReadOnly, Operator, Admin}

func rank(level string) int { return slices.Index(Levels, level) }

// ValidLevel reports whether s names a level.
func ValidLevel(s string) bool { return rank(s) >= 0 }

// Principal is an authenticated caller.
type Principal struct {
	Name  string   // machine name, or credential id
	Kind  string   // "certificate" or "credential"
	Roles []string // certificate roles (controller, datanode, ...) or the credential's level
	Level string   // admin-API level: readonly, operator, admin, or "" for none
}

// String names the principal in logs and the audit trail.
func (p Principal) String() string { return p.Kind + ":" + p.Name }

// Has reports whether the principal holds any of roles (certificate roles).
func (p Principal) Has(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// Allows reports whether the principal's level reaches level.
func (p Principal) Allows(level string) bool {
	return p.Level != "" && rank(p.Level) >= rank(level)
}

// levelOfCertificate maps a certificate's roles to an admin-API level.
func levelOfCertificate(roles []string) string {
	best := ""
	for _, r := range roles {
		l := r
		if r == "controller" {
			l = Admin
		}
		if ValidLevel(l) && rank(l) > rank(best) {
			best = l
		}
	}
	if best == "" && len(roles) > 0 {
		best = ReadOnly // any machine of the cluster may read its state
	}
	return best
}

// FromCertificate is the principal of a verified cluster client certificate.
func FromCertificate(r *http.Request) (Principal, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return Principal{}, false
	}
	id, err := pki.IdentityOf(r.TLS.PeerCertificates[0])
	if err != nil {
		return Principal{}, false
	}
	return Principal{Name: id.Machine, Kind: "certificate", Roles: id.Roles, Level: levelOfCertificate(id.Roles)}, true
}

// ErrNoCredential means the request carried neither a client certificate nor a bearer credential.
var ErrNoCredential = errors.New("no credential: present a cluster client certificate or an Authorization: Bearer credential")

// Verifier checks bearer credentials.
type Verifier interface {
	Verify(ctx context.Context, id, secret string) (level string, err error)
}

// Authenticate returns the request's principal: its client certificate if it has one, else its
// bearer credential.
func Authenticate(r *http.Request, v Verifier) (Principal, error) {
	if p, ok := FromCertificate(r); ok {
		return p, nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return Principal{}, ErrNoCredential
	}
	raw, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return Principal{}, errors.New("authorization header: want Bearer <credential>")
	}
	id, secret, err := ParseCredential(raw)
	if err != nil {
		return Principal{}, err
	}
	if v == nil {
		return Principal{}, errors.New("bearer credentials are not accepted here")
	}
	level, err := v.Verify(r.Context(), id, secret)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Name: id, Kind: "credential", Roles: []string{level}, Level: level}, nil
}

type ctxKey struct{}

// WithPrincipal stores p in ctx.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// PrincipalFrom returns the principal stored by Require.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// check authenticates r and checks it reaches level. On failure it returns the HTTP status to
// answer (401 without a valid credential, 403 with too low a level) and, for 403, the principal.
func check(r *http.Request, v Verifier, level string) (Principal, int, error) {
	p, err := Authenticate(r, v)
	if err != nil {
		return Principal{}, http.StatusUnauthorized, err
	}
	if !p.Allows(level) {
		return p, http.StatusForbidden, fmt.Errorf("%s may not do this: it needs %s, has %q", p, level, p.Level)
	}
	return p, http.StatusOK, nil
}

func refuse(w http.ResponseWriter, status int, err error) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hanode"`)
	}
	http.Error(w, err.Error(), status)
}

// Require wraps h so that only principals reaching level may call it: no credential is 401,
// too low a level 403.
func Require(v Verifier, level string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status, err := check(r, v, level)
		if err != nil {
			refuse(w, status, err)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// RequireRoles wraps an internal API so that only certificates carrying one of roles may call
// it (a datanode takes chunk writes only from coordinators and controllers).
func RequireRoles(h http.Handler, roles ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromCertificate(r)
		if !ok {
			http.Error(w, "a cluster client certificate is required", http.StatusUnauthorized)
			return
		}
		if !p.Has(roles...) {
			http.Error(w, fmt.Sprintf("%s (roles %v) may not call this API: it needs one of %v", p, p.Roles, roles), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// RequireCertificate wraps h so that only holders of a cluster certificate may call it.
func RequireCertificate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromCertificate(r)
		if !ok {
			refuse(w, http.StatusUnauthorized, errors.New("a cluster client certificate is required"))
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// HashSecret is how credential secrets are stored: hex SHA-256 (the secrets are random, so no
// stretching is needed).
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches compares a secret with a stored hash in constant time.
func SecretMatches(secret, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(hash)) == 1
}
