package webui

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/security/access"
	"github.com/hanode/hanode/security/s3access"
	"github.com/hanode/hanode/security/s3users"
	"github.com/hanode/hanode/security/tokens"
)

// fail answers a page whose API call failed: a credential that no longer holds goes back to
// sign-in, a refusal is 403, anything else 503, each with the API's message.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, v *viewer, err error) {
	if u.signedOut(err, v) {
		if strings.HasPrefix(r.URL.Path, "/ui/live/") {
			http.Error(w, "signed out", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	status := http.StatusServiceUnavailable
	var ae *apiError
	if errors.As(err, &ae) && ae.Status < 500 {
		status = ae.Status
	}
	u.render(w, r, status, "error", v, map[string]any{"Error": err.Error()})
}

// overviewData is the overview's live part.
type overviewData struct {
	Status   adminapi.Status
	Master   string // the active master's name, "" when none
	Machines []adminapi.MachineState
	S3       []string
	Proxies  []string
	Up       int
	Degraded int
	Down     int
	Draining int
	Capacity int64
	Free     int64
	// Writable is the live datanodes not draining; writes need at least Status.Replication.Replicas.
	Writable int
	// Repair is the active master's last published repair status (nil before its first sweep);
	// Held is, by machine, the replicas and bytes it holds as of that sweep.
	Repair *adminapi.Repair
	Held   map[string]adminapi.RepairMachine
}

func (u *UI) overviewData(r *http.Request, v *viewer) (*overviewData, error) {
	d := &overviewData{}
	var ms adminapi.Machines
	var rep adminapi.Repair
	var statusErr, machinesErr, repairErr error
	var wg sync.WaitGroup // the three answers are independent: ask them at once
	wg.Add(3)
	go func() {
		defer wg.Done()
		statusErr = u.call(r, v, http.MethodGet, "/v1/cluster/status", nil, &d.Status)
	}()
	go func() { defer wg.Done(); machinesErr = u.call(r, v, http.MethodGet, "/v1/machines", nil, &ms) }()
	go func() { defer wg.Done(); repairErr = u.call(r, v, http.MethodGet, "/v1/repair", nil, &rep) }()
	wg.Wait()
	if err := cmp.Or(statusErr, machinesErr); err != nil {
		return nil, err
	}
	d.Machines = ms.Machines
	if repairErr == nil { // 503 before the active master's first sweep
		d.Repair, d.Held = &rep, map[string]adminapi.RepairMachine{}
		for _, m := range rep.Machines {
			d.Held[m.Name] = m
		}
	}
	if d.Status.Leader != nil {
		d.Master = d.Status.Leader.Name
	}
	for _, m := range ms.Machines {
		switch m.State {
		case adminapi.MachineUp:
			d.Up++
		case adminapi.MachineDegraded:
			d.Degraded++
		default:
			d.Down++
		}
		if m.Draining != nil {
			d.Draining++
		}
		d.Capacity += m.Capacity
		d.Free += m.Free
		for _, rs := range m.Roles {
			if rs.State != adminapi.RoleRunning {
				continue
			}
			switch rs.Role {
			case config.RoleCoordinator:
				d.S3 = append(d.S3, rs.Address)
			case config.RoleProxy:
				d.Proxies = append(d.Proxies, rs.Address)
			case config.RoleDatanode:
				if m.Draining == nil {
					d.Writable++
				}
			}
		}
	}
	return d, nil
}

func (u *UI) overview(w http.ResponseWriter, r *http.Request, v *viewer) {
	d, err := u.overviewData(r, v)
	if err != nil {
		u.fail(w, r, v, err)
		return
	}
	u.render(w, r, http.StatusOK, "overview", v, d)
}

func (u *UI) overviewLive(w http.ResponseWriter, r *http.Request, v *viewer) {
	d, err := u.overviewData(r, v)
	if err != nil {
		u.fail(w, r, v, err)
		return
	}
	u.fragment(w, "overview", v, d)
}

// machineData is the machine page.
type machineData struct {
	Machine adminapi.MachineState
	Held    *adminapi.RepairMachine // replicas on the machine as of the last repair sweep
	Audit   []access.AuditEntry
	Done    string
	Error   string
}

func (u *UI) machineData(r *http.Request, v *viewer) (*machineData, error) {
	name := r.PathValue("name")
	d := &machineData{}
	if err := u.call(r, v, http.MethodGet, "/v1/machines/"+url.PathEscape(name), nil, &d.Machine); err != nil {
		return nil, err
	}
	var rep adminapi.Repair
	if err := u.call(r, v, http.MethodGet, "/v1/repair", nil, &rep); err == nil {
		for i := range rep.Machines {
			if rep.Machines[i].Name == name {
				d.Held = &rep.Machines[i]
			}
		}
	}
	if v.Operator() { // the audit trail needs operator
		var a struct {
			Entries []access.AuditEntry `json:"entries"`
		}
		if err := u.call(r, v, http.MethodGet, "/v1/audit?limit=1000", nil, &a); err == nil {
			for i := len(a.Entries) - 1; i >= 0 && len(d.Audit) < 20; i-- {
				if a.Entries[i].Target == name {
					d.Audit = append(d.Audit, a.Entries[i])
				}
			}
		}
	}
	switch done := r.URL.Query().Get("done"); done {
	case "drain":
		d.Done = "Drain mark set: placement sends this machine no new chunks and repair moves its replicas off it."
	case "undrain":
		d.Done = "Drain mark removed: placement may send this machine new chunks again."
	default:
		if role, action, ok := strings.Cut(done, "-"); ok && roleActions[action] && slices.ContainsFunc(d.Machine.Roles, func(rs adminapi.RoleState) bool { return rs.Role == role }) {
			d.Done = "Asked the machine's agent to " + action + " its " + role + "."
		}
	}
	return d, nil
}

func (u *UI) machine(w http.ResponseWriter, r *http.Request, v *viewer) {
	d, err := u.machineData(r, v)
	if err != nil {
		u.fail(w, r, v, err)
		return
	}
	u.render(w, r, http.StatusOK, "machine", v, d)
}

func (u *UI) machineLive(w http.ResponseWriter, r *http.Request, v *viewer) {
	d, err := u.machineData(r, v)
	if err != nil {
		u.fail(w, r, v, err)
		return
	}
	u.fragment(w, "machine", v, d)
}

// machineActions maps the machine page's buttons to the admin API calls they make.
var machineActions = map[string]string{
	"drain":   "/drain",
	"undrain": "/undrain",
}

// machineAction runs a button of the machine page as the admin API call behind it, which checks
// the level and writes the audit entry as for any API client.
func (u *UI) machineAction(w http.ResponseWriter, r *http.Request, v *viewer) {
	name, action := r.PathValue("name"), r.PathValue("action")
	suffix, ok := machineActions[action]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if err := u.call(r, v, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+suffix, nil, nil); err != nil {
		u.actionFailed(w, r, v, action, err)
		return
	}
	http.Redirect(w, r, "/machines/"+url.PathEscape(name)+"?done="+action, http.StatusSeeOther)
}

// roleActions are the role buttons of the machine page: POST /v1/nodes/{id}/roles/{role}/{action},
// which changes the machine's desired state; its agent acts on it.
var roleActions = map[string]bool{"start": true, "stop": true, "restart": true}

func (u *UI) roleAction(w http.ResponseWriter, r *http.Request, v *viewer) {
	name, role, action := r.PathValue("name"), r.PathValue("role"), r.PathValue("action")
	if !roleActions[action] {
		http.NotFound(w, r)
		return
	}
	path := "/v1/nodes/" + url.PathEscape(name) + "/roles/" + url.PathEscape(role) + "/" + action
	if err := u.call(r, v, http.MethodPost, path, nil, nil); err != nil {
		u.actionFailed(w, r, v, action+" "+role, err)
		return
	}
	http.Redirect(w, r, "/machines/"+url.PathEscape(name)+"?done="+url.QueryEscape(role+"-"+action), http.StatusSeeOther)
}

// actionFailed shows the machine page with the API's refusal of an action.
func (u *UI) actionFailed(w http.ResponseWriter, r *http.Request, v *viewer, what string, err error) {
	if u.signedOut(err, v) {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	d, derr := u.machineData(r, v)
	if derr != nil {
		u.fail(w, r, v, err)
		return
	}
	d.Error = what + " refused: " + err.Error()
	status := http.StatusServiceUnavailable
	var ae *apiError
	if errors.As(err, &ae) {
		status = ae.Status
	}
	u.render(w, r, status, "machine", v, d)
}

// objectsData is the object explorer: buckets, or one page of a bucket's prefix.
type objectsData struct {
	Buckets []adminapi.BucketInfo
	List    *adminapi.Objects
	Crumbs  []crumb
	NextURL string
}

type crumb struct{ Name, URL string }

func (u *UI) objects(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	bucket := q.Get("bucket")
	d := &objectsData{}
	if bucket == "" {
		var bs adminapi.Buckets
		if err := u.call(r, v, http.MethodGet, "/v1/buckets", nil, &bs); err != nil {
			u.fail(w, r, v, err)
			return
		}
		d.Buckets = bs.Buckets
		u.render(w, r, http.StatusOK, "objects", v, d)
		return
	}
	prefix := q.Get("prefix")
	args := url.Values{"prefix": {prefix}, "limit": {"100"}}
	if after := q.Get("after"); after != "" {
		args.Set("after", after)
		if q.Get("after_prefix") == "true" {
			args.Set("after_prefix", "true")
		}
	}
	d.List = &adminapi.Objects{}
	if err := u.call(r, v, http.MethodGet, "/v1/buckets/"+url.PathEscape(bucket)+"/objects?"+args.Encode(), nil, d.List); err != nil {
		u.fail(w, r, v, err)
		return
	}
	d.Crumbs = crumbs(bucket, prefix)
	if d.List.Truncated {
		next := url.Values{"bucket": {bucket}, "prefix": {prefix}, "after": {d.List.Next}}
		if d.List.NextIsPrefix {
			next.Set("after_prefix", "true")
		}
		d.NextURL = "/objects?" + next.Encode()
	}
	u.render(w, r, http.StatusOK, "objects", v, d)
}

// crumbs are the links from the bucket list down to prefix.
func crumbs(bucket, prefix string) []crumb {
	out := []crumb{{"buckets", "/objects"}, {bucket, "/objects?" + url.Values{"bucket": {bucket}}.Encode()}}
	p := ""
	for _, part := range strings.SplitAfter(prefix, "/") {
		if part == "" {
			continue
		}
		p += part
		out = append(out, crumb{part, "/objects?" + url.Values{"bucket": {bucket}, "prefix": {p}}.Encode()})
	}
	return out
}

// objectData is one object with its chunks and their sites.
type objectData struct {
	Locate adminapi.Locate
	Crumbs []crumb
	Down   int // replicas on machines whose datanode is not running
}

func (u *UI) object(w http.ResponseWriter, r *http.Request, v *viewer) {
	bucket, key := r.URL.Query().Get("bucket"), r.URL.Query().Get("key")
	if bucket == "" || key == "" {
		u.render(w, r, http.StatusBadRequest, "error", v, map[string]any{"Error": "an object is named by ?bucket= and ?key="})
		return
	}
	segs := strings.Split(key, "/")
	for i := range segs {
		segs[i] = url.PathEscape(segs[i])
	}
	d := &objectData{}
	if err := u.call(r, v, http.MethodGet, "/v1/locate/"+url.PathEscape(bucket)+"/"+strings.Join(segs, "/"), nil, &d.Locate); err != nil {
		u.fail(w, r, v, err)
		return
	}
	prefix := ""
	if i := strings.LastIndex(key, "/"); i >= 0 {
		prefix = key[:i+1]
	}
	d.Crumbs = append(crumbs(bucket, prefix), crumb{key[len(prefix):], ""})
	for _, c := range d.Locate.Chunks {
		for _, m := range c.Replicas {
			if !d.Locate.Machines[m] {
				d.Down++
			}
		}
	}
	u.render(w, r, http.StatusOK, "object", v, d)
}

// accessData is the access page.
type accessData struct {
	Users       []s3users.User
	Grants      []s3access.Grant
	Tokens      []tokens.Record
	Credentials []access.Credential
	Audit       []access.AuditEntry // newest first, filtered
	Filter      auditFilter
	Scanned     int
	Outcome     *accessOutcome
	Levels      []string
	Roles       []string // roles a join token may be limited to
}

type auditFilter struct {
	Who, Action, Target, Result string
	Limit                       int
}

func (f auditFilter) match(e access.AuditEntry) bool {
	return strings.Contains(e.Who, f.Who) && strings.Contains(e.Action, f.Action) && strings.Contains(e.Target, f.Target) &&
		(f.Result == "" || strconv.Itoa(e.Result) == f.Result || (len(f.Result) == 3 && strings.HasSuffix(f.Result, "xx") && strconv.Itoa(e.Result)[:1] == f.Result[:1]))
}

// maxAuditScan is how many of the newest audit entries the access page filters.
const maxAuditScan = 2000

func (u *UI) access(w http.ResponseWriter, r *http.Request, v *viewer) {
	u.accessPage(w, r, v, http.StatusOK, nil)
}

// accessPage renders the access page; shown, if not nil, is the outcome of an action.
func (u *UI) accessPage(w http.ResponseWriter, r *http.Request, v *viewer, status int, shown *accessOutcome) {
	if !v.Admin() {
		u.render(w, r, http.StatusForbidden, "error", v, map[string]any{"Error": "The access page is for admin credentials; " + v.Name + " is " + v.Level + "."})
		return
	}
	q := r.URL.Query()
	d := &accessData{Levels: access.Levels, Roles: tokenRoles, Filter: auditFilter{Who: q.Get("who"), Action: q.Get("action"), Target: q.Get("target"), Result: q.Get("result"), Limit: 100}}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= 1000 {
		d.Filter.Limit = n
	}
	var users struct {
		Users []s3users.User `json:"users"`
	}
	var toks struct {
		Tokens []tokens.Record `json:"tokens"`
	}
	var creds struct {
		Credentials []access.Credential `json:"credentials"`
	}
	var audit struct {
		Entries []access.AuditEntry `json:"entries"`
	}
	var grants struct {
		Grants []s3access.Grant `json:"grants"`
	}
	for _, c := range []struct {
		path string
		out  any
	}{{"/v1/s3/users", &users}, {"/v1/s3/grants", &grants}, {"/v1/tokens", &toks}, {"/v1/credentials", &creds}, {"/v1/audit?limit=" + strconv.Itoa(maxAuditScan), &audit}} {
		if err := u.call(r, v, http.MethodGet, c.path, nil, c.out); err != nil {
			u.fail(w, r, v, err)
			return
		}
	}
	d.Users, d.Grants, d.Tokens, d.Credentials, d.Scanned = users.Users, grants.Grants, toks.Tokens, creds.Credentials, len(audit.Entries)
	sort.Slice(d.Users, func(i, j int) bool { return d.Users[i].AccessKey < d.Users[j].AccessKey })
	for i := len(audit.Entries) - 1; i >= 0 && len(d.Audit) < d.Filter.Limit; i-- {
		if d.Filter.match(audit.Entries[i]) {
			d.Audit = append(d.Audit, audit.Entries[i])
		}
	}
	d.Outcome = shown
	if shown == nil {
		d.Outcome = doneOutcome(q.Get("done"))
	}
	u.render(w, r, status, "access", v, d)
}
