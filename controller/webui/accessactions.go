package webui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
)

// accessOutcome is what the access page says after an action: a message and, for a creation,
// the secret the API shows this once.
type accessOutcome struct {
	OK      bool
	Message string
	Label   string // what Secret is
	Secret  string
}

// doneOutcomes are the messages of ?done= after a revocation (redirected, so a reload does not
// repeat it).
var doneOutcomes = map[string]string{
	"credentials-revoke": "Credential revoked: its sessions end at their next request.",
	"tokens-revoke":      "Join token revoked.",
	"users-remove":       "S3 user removed.",
	"grants-set":         "Grant set.",
	"grants-revoke":      "Grant revoked.",
}

func doneOutcome(done string) *accessOutcome {
	if msg, ok := doneOutcomes[done]; ok {
		return &accessOutcome{OK: true, Message: msg}
	}
	return nil
}

// accessAction runs one button or form of the access page as the admin API call behind it.
func (u *UI) accessAction(w http.ResponseWriter, r *http.Request, v *viewer) {
	kind, action := r.PathValue("kind"), r.PathValue("action")
	id := r.PostFormValue("id")
	var (
		method, path string
		body         any
		out          any
		label        string
		secret       func() string
	)
	switch kind + "/" + action {
	case "credentials/create":
		var res struct {
			ID         string `json:"id"`
			Credential string `json:"credential"`
		}
		method, path, out, label = http.MethodPost, "/v1/credentials", &res, "credential"
		body = adminapi.CredentialCreate{Level: r.PostFormValue("level"), Description: r.PostFormValue("description")}
		secret = func() string { return res.Credential }
	case "tokens/create":
		var res adminapi.TokenCreated
		uses, _ := strconv.Atoi(r.PostFormValue("uses"))
		var roles []string
		for _, role := range r.PostForm["roles"] {
			if role != "" {
				roles = append(roles, role)
			}
		}
		method, path, out, label = http.MethodPost, "/v1/tokens", &res, "join token"
		body = adminapi.TokenCreate{TTL: r.PostFormValue("ttl"), Uses: uses, Roles: roles, Description: r.PostFormValue("description")}
		secret = func() string { return res.Token }
	case "users/create":
		var res adminapi.UserCreated
		method, path, out, label = http.MethodPost, "/v1/s3/users", &res, "S3 user"
		body = adminapi.UserCreate{AccessKey: strings.TrimSpace(r.PostFormValue("access_key")), Description: r.PostFormValue("description")}
		secret = func() string { return "access key " + res.AccessKey + "   secret key " + res.SecretKey }
	case "grants/set":
		method, path = http.MethodPut, "/v1/s3/grants/"+url.PathEscape(r.PostFormValue("bucket"))+"/"+url.PathEscape(strings.TrimSpace(r.PostFormValue("user")))
		body = adminapi.GrantSet{Level: r.PostFormValue("level")}
	case "grants/revoke":
		bucket, user, _ := strings.Cut(id, "/")
		method, path = http.MethodDelete, "/v1/s3/grants/"+url.PathEscape(bucket)+"/"+url.PathEscape(user)
	case "credentials/revoke":
		method, path = http.MethodDelete, "/v1/credentials/"+url.PathEscape(id)
	case "tokens/revoke":
		method, path = http.MethodDelete, "/v1/tokens/"+url.PathEscape(id)
	case "users/remove":
		method, path = http.MethodDelete, "/v1/s3/users/"+url.PathEscape(id)
	default:
		http.NotFound(w, r)
		return
	}
	if err := u.call(r, v, method, path, body, out); err != nil {
		if u.signedOut(err, v) {
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		status := http.StatusServiceUnavailable
		if ae, ok := err.(*apiError); ok {
			status = ae.Status
		}
		u.accessPage(w, r, v, status, &accessOutcome{Message: kind + " " + action + " refused: " + err.Error()})
		return
	}
	if secret == nil {
		http.Redirect(w, r, "/access?done="+kind+"-"+action, http.StatusSeeOther)
		return
	}
	// A creation's secret is shown in this answer only (never in a URL, never stored).
	u.accessPage(w, r, v, http.StatusOK, &accessOutcome{OK: true, Label: label, Secret: secret(),
		Message: "Created. Copy the " + label + " now: it is not shown again."})
}

// tokenRoles are the roles a join token may be limited to, for the form.
var tokenRoles = config.AllRoles
