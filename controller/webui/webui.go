// Package webui is the web cluster manager that every controller serves at / on its admin port:
// an overview of the cluster that updates itself, a page per machine with its actions, the
// object explorer down to each chunk's machines, and the access page.
//
// The UI holds no cluster state of its own and takes no shortcut around the admin API: every
// read and every action is an in-process call of the API's own handlers (Config.API) carrying
// the signed-in user's identity — the bearer credential of the session, or the browser's client
// certificate — so the API's levels, checks and audit trail apply unchanged, and a revoked
// credential stops working at its next request. Pages are html/template, with a little CSS and
// JavaScript embedded in the binary; graphs are SVG drawn by the server. Nothing is loaded from
// anywhere else, and the Content-Security-Policy says so.
package webui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/hanode/hanode/security/access"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Defaults of Config.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultMaxSessions = 1024
	// PollInterval is how often the overview and machine pages refresh themselves.
	PollInterval = 2 * time.Second
)

// csp allows nothing but this origin's own script, styles and images, and no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Config is what the UI needs from its controller.
type Config struct {
	// API is the admin API (the controller's mux): the UI calls it in-process for every read
	// and action.
	API http.Handler
	// Verifier checks the credential typed into the sign-in form.
	Verifier access.Verifier
	// Audit records sign-ins in the audit trail (nil: not recorded). Refused counts a refused
	// sign-in without storing it, as the API does with requests lacking a valid credential, so
	// that nobody without a credential makes etcd grow (nil: only logged).
	Audit   func(context.Context, access.AuditEntry)
	Refused func(action, remote string)
	// Cluster and Machine name the cluster and the controller serving the UI.
	Cluster, Machine string
	// SessionTTL is how long a sign-in lasts (DefaultSessionTTL when 0); MaxSessions bounds the
	// sessions held (DefaultMaxSessions when 0): past it the oldest one ends.
	SessionTTL  time.Duration
	MaxSessions int
	Log         *slog.Logger
}

// UI is the web cluster manager.
type UI struct {
	cfg      Config
	pages    map[string]*template.Template
	sessions *sessions
	// csrfKey derives the CSRF token of a client-certificate viewer, who has no session.
	csrfKey []byte
	cross   *http.CrossOriginProtection
}

// New returns the UI; it panics if the embedded templates do not parse (a build defect).
func New(cfg Config) *UI {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	u := &UI{cfg: cfg, sessions: newSessions(cfg.SessionTTL, cfg.MaxSessions, time.Now), csrfKey: key, cross: http.NewCrossOriginProtection()}
	u.pages = parsePages()
	return u
}

// Register mounts the UI's pages on mux, beside the admin API.
func (u *UI) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /ui/static/", u.headers(http.StripPrefix("/ui/static/", http.FileServerFS(static)), true))
	mux.Handle("GET /favicon.ico", u.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml") // browsers ask for it on pages that name no icon
		http.ServeFileFS(w, r, static, "icon.svg")
	}), true))
	mux.Handle("GET /signin", u.page(http.HandlerFunc(u.signinForm)))
	mux.Handle("POST /signin", u.page(http.HandlerFunc(u.signin)))
	mux.Handle("POST /signout", u.page(u.viewer(u.signout)))
	mux.Handle("GET /{$}", u.page(u.viewer(u.overview)))
	mux.Handle("GET /ui/live/overview", u.page(u.viewer(u.overviewLive)))
	mux.Handle("GET /machines/{name}", u.page(u.viewer(u.machine)))
	mux.Handle("GET /ui/live/machines/{name}", u.page(u.viewer(u.machineLive)))
	mux.Handle("POST /machines/{name}/{action}", u.page(u.viewer(u.machineAction)))
	mux.Handle("POST /machines/{name}/roles/{role}/{action}", u.page(u.viewer(u.roleAction)))
	mux.Handle("GET /objects", u.page(u.viewer(u.objects)))
	mux.Handle("GET /object", u.page(u.viewer(u.object)))
	mux.Handle("GET /access", u.page(u.viewer(u.access)))
	mux.Handle("POST /access/{kind}/{action}", u.page(u.viewer(u.accessAction)))
}

// page wraps a page handler with the UI's security headers and refuses cross-origin requests
// that change state (Sec-Fetch-Site and Origin), before anything else runs.
func (u *UI) page(h http.Handler) http.Handler {
	return u.headers(u.cross.Handler(h), false)
}

func (u *UI) headers(h http.Handler, cacheable bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		if cacheable {
			hd.Set("Cache-Control", "private, max-age=300")
		} else {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// certCSRF is the CSRF token of a client-certificate viewer: bound to the certificate's name
// by a key that never leaves this process.
func (u *UI) certCSRF(name string) string {
	m := hmac.New(sha256.New, u.csrfKey)
	m.Write([]byte("certificate:" + name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
