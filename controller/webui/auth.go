package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hanode/hanode/security/access"
)

// viewer is who is looking: a session's credential or the browser's client certificate.
type viewer struct {
	Name  string // "credential:<id>" or "certificate:<machine>"
	Level string
	CSRF  string
	sess  *session
	tls   bool // the identity is the request's client certificate
}

// Can reports whether the viewer's level reaches level (templates hide what it cannot do).
func (v *viewer) Can(level string) bool {
	return access.Principal{Level: v.Level}.Allows(level)
}

// Operator and Admin are Can for templates.
func (v *viewer) Operator() bool { return v.Can(access.Operator) }
func (v *viewer) Admin() bool    { return v.Can(access.Admin) }

type viewerHandler func(w http.ResponseWriter, r *http.Request, v *viewer)

// viewer resolves who is asking and sends anyone else to the sign-in form (a live fragment
// gets 401, which its script turns into the same). Every POST must carry the viewer's CSRF
// token in the form field "csrf".
func (u *UI) viewer(h viewerHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := u.identify(r)
		if v == nil {
			if strings.HasPrefix(r.URL.Path, "/ui/live/") || r.Method != http.MethodGet {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !tokenMatches(r.PostFormValue("csrf"), v.CSRF) {
				u.cfg.Log.Warn("web UI: refused a POST without a valid CSRF token", "path", r.URL.Path, "who", v.Name, "remote", r.RemoteAddr)
				http.Error(w, "refused: missing or wrong CSRF token", http.StatusForbidden)
				return
			}
		}
		h(w, r, v)
	})
}

// identify returns the request's viewer: a verified client certificate first (as the API
// does), else a live session cookie.
func (u *UI) identify(r *http.Request) *viewer {
	if p, ok := access.FromCertificate(r); ok {
		return &viewer{Name: p.String(), Level: p.Level, CSRF: u.certCSRF(p.Name), tls: true}
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil
	}
	s, ok := u.sessions.get(c.Value)
	if !ok {
		return nil
	}
	return &viewer{Name: "credential:" + s.name, Level: s.level, CSRF: s.csrf, sess: s}
}

func (u *UI) signinForm(w http.ResponseWriter, r *http.Request) {
	if v := u.identify(r); v != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	u.render(w, r, http.StatusOK, "signin", nil, map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

// signin checks the credential typed into the form and starts a session. A sign-in is audited,
// a refusal counted (Config.Refused); a refusal does not say why (unknown id and wrong secret
// look the same).
func (u *UI) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	raw := strings.TrimSpace(r.PostFormValue("credential"))
	next := safeNext(r.PostFormValue("next"))
	id, secret, err := access.ParseCredential(raw)
	level := ""
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
		level, err = u.cfg.Verifier.Verify(ctx, id, secret)
		cancel()
	}
	who := "anonymous"
	if id != "" {
		who = "credential:" + id
	}
	if err != nil {
		if u.cfg.Refused != nil {
			u.cfg.Refused("POST /signin", r.RemoteAddr)
		}
		u.cfg.Log.Debug("web UI: sign-in refused", "who", who, "remote", r.RemoteAddr, "err", err)
		u.render(w, r, http.StatusUnauthorized, "signin", nil, map[string]any{"Next": next, "Error": "Sign-in refused: that credential is not valid."})
		return
	}
	s := u.sessions.create(raw, id, level)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: s.id, Path: "/", Expires: s.expires, MaxAge: int(u.cfg.SessionTTL.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	u.audit(r, who, http.StatusSeeOther)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) signout(w http.ResponseWriter, r *http.Request, v *viewer) {
	if v.sess != nil {
		u.sessions.end(v.sess.id)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func (u *UI) audit(r *http.Request, who string, status int) {
	if u.cfg.Audit != nil {
		u.cfg.Audit(r.Context(), access.AuditEntry{Who: who, Action: "POST /signin", Target: "web UI", Result: status, Remote: r.RemoteAddr})
	}
}

// safeNext keeps a redirect after sign-in on this site: a local absolute path only.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// apiError is a refusal or failure of the admin API.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Msg) }

// Bounds of one in-process API call.
const (
	apiTimeout  = 5 * time.Second
	maxAPIReply = 8 << 20
)

// call runs one admin API request in-process as the viewer and decodes its JSON answer into
// out (if not nil).
func (u *UI) call(r *http.Request, v *viewer, method, path string, body any, out any) error {
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	if v.tls {
		req.TLS = r.TLS
	} else if v.sess != nil {
		req.Header.Set("Authorization", "Bearer "+v.sess.credential)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{h: http.Header{}}
	u.cfg.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		msg := strings.TrimSpace(rec.buf.String())
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(rec.buf.Bytes(), &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &apiError{Status: rec.status, Msg: msg}
	}
	if rec.over {
		return fmt.Errorf("%s %s: the answer is over %d bytes", method, path, maxAPIReply)
	}
	if out != nil {
		if err := json.Unmarshal(rec.buf.Bytes(), out); err != nil {
			return fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// recorder is the in-process API call's response writer, bounded to maxAPIReply.
type recorder struct {
	h      http.Header
	status int
	buf    bytes.Buffer
	over   bool
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.buf.Len()+len(b) > maxAPIReply {
		r.over = true
		return 0, errors.New("answer too large")
	}
	return r.buf.Write(b)
}

// signedOut reports whether err means the viewer's identity no longer holds (a revoked
// credential): its session ends.
func (u *UI) signedOut(err error, v *viewer) bool {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		if v.sess != nil {
			u.sessions.end(v.sess.id)
		}
		return true
	}
	return false
}
