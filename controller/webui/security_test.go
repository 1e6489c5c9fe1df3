package webui_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/controller/webui"
)

// session signs in with cred over plain HTTP and returns the session cookie.
func session(t *testing.T, c *testCluster, cred string) *http.Cookie {
	t.Helper()
	resp, err := c.anonClient().PostForm(c.controller()+"/signin", url.Values{"credential": {cred}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d, want 303", resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == webui.CookieName {
			return ck
		}
	}
	t.Fatal("sign-in set no session cookie")
	return nil
}

type page struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, hc *http.Client, u string, ck *http.Cookie, hdr map[string]string) page {
	t.Helper()
	return do(t, hc, http.MethodGet, u, "", ck, hdr)
}

func do(t *testing.T, hc *http.Client, method, u, form string, ck *http.Cookie, hdr map[string]string) page {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if ck != nil {
		req.AddCookie(ck)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(b)}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestHTTPSecurity checks the UI's defences as plain HTTP sees them, on the in-process cluster.
func TestHTTPSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, "127.0.61.", 2)
	base := c.controller()
	hc := c.anonClient()
	admin := c.credential(t, "admin")
	operator := c.credential(t, "operator")

	// Without a session: pages go to sign-in, live fragments and POSTs are 401.
	if p := get(t, hc, base+"/machines/m2", nil, nil); p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin?next=%2Fmachines%2Fm2" {
		t.Errorf("anonymous page: %d %q", p.status, p.header.Get("Location"))
	}
	if p := get(t, hc, base+"/ui/live/overview", nil, nil); p.status != http.StatusUnauthorized {
		t.Errorf("anonymous live fragment: %d", p.status)
	}
	if p := do(t, hc, http.MethodPost, base+"/machines/m2/drain", "csrf=x", nil, nil); p.status != http.StatusUnauthorized {
		t.Errorf("anonymous POST: %d", p.status)
	}
	// A wrong credential is refused, the form says nothing about why, and nothing is stored
	// (refusals of callers without a valid credential are only counted).
	var trail struct {
		Entries []struct{ Action string } `json:"entries"`
	}
	c.api(t, http.MethodGet, "/v1/audit?limit=1000", nil, &trail)
	before := len(trail.Entries)
	bad := strings.Replace(admin, admin[len(admin)-4:], "0000", 1)
	p := do(t, hc, http.MethodPost, base+"/signin", url.Values{"credential": {bad}}.Encode(), nil, nil)
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Sign-in refused") || len(p.header.Values("Set-Cookie")) != 0 {
		t.Errorf("wrong credential: %d, cookies %v", p.status, p.header.Values("Set-Cookie"))
	}
	if p := do(t, hc, http.MethodPost, base+"/signin", "credential=junk", nil, nil); p.status != http.StatusUnauthorized {
		t.Errorf("malformed credential: %d", p.status)
	}
	c.api(t, http.MethodGet, "/v1/audit?limit=1000", nil, &trail)
	if len(trail.Entries) != before {
		t.Errorf("refused sign-ins stored %d audit entries", len(trail.Entries)-before)
	}
	// next= stays on this site.
	p = do(t, hc, http.MethodPost, base+"/signin", url.Values{"credential": {admin}, "next": {"//evil.example/x"}}.Encode(), nil, nil)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/" {
		t.Errorf("sign-in with an off-site next: %d %q", p.status, p.header.Get("Location"))
	}

	ck := session(t, c, operator)
	c.api(t, http.MethodGet, "/v1/audit?limit=1000", nil, &trail)
	if n := len(trail.Entries); n == 0 || trail.Entries[n-1].Action != "POST /signin" {
		t.Errorf("the sign-in is not the newest audit entry: %+v", trail.Entries)
	}
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge <= 0 || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("session cookie %+v", ck)
	}
	// Every page and fragment carries the strict CSP and is not cached.
	for _, path := range []string{"/", "/ui/live/overview", "/machines/m1", "/objects", "/signin"} {
		p := get(t, hc, base+path, ck, nil)
		if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
			!strings.Contains(csp, "frame-ancestors 'none'") || p.header.Get("Cache-Control") != "no-store" || p.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, p.header)
		}
		if strings.Contains(p.body, "http://") || strings.Contains(p.body, "<script>") || strings.Contains(p.body, " style=") {
			t.Errorf("%s loads or inlines something the CSP forbids", path)
		}
	}
	// Operators see the drain button but not the access page.
	mp := get(t, hc, base+"/machines/m2", ck, nil)
	m := csrfRE.FindStringSubmatch(mp.body)
	if m == nil || !strings.Contains(mp.body, `id="drain"`) {
		t.Fatalf("operator's machine page lacks the drain form")
	}
	if p := get(t, hc, base+"/access", ck, nil); p.status != http.StatusForbidden {
		t.Errorf("operator's access page: %d", p.status)
	}
	// POSTs: no token, a wrong token, a cross-site origin are refused; the right one works.
	for _, tc := range []struct {
		name string
		form string
		hdr  map[string]string
	}{
		{"no token", "", nil},
		{"wrong token", "csrf=" + strings.Repeat("A", 43), nil},
		{"cross-site", "csrf=" + m[1], map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"other origin", "csrf=" + m[1], map[string]string{"Origin": "https://evil.example"}},
	} {
		if p := do(t, hc, http.MethodPost, base+"/machines/m2/drain", tc.form, ck, tc.hdr); p.status != http.StatusForbidden {
			t.Errorf("POST with %s: %d, want 403", tc.name, p.status)
		}
	}
	var ms struct {
		Draining any `json:"draining"`
	}
	if c.api(t, http.MethodGet, "/v1/machines/m2", nil, &ms); ms.Draining != nil {
		t.Fatal("a refused POST drained m2")
	}
	if p := do(t, hc, http.MethodPost, base+"/machines/m2/drain", "csrf="+url.QueryEscape(m[1]), ck, map[string]string{"Sec-Fetch-Site": "same-origin"}); p.status != http.StatusSeeOther {
		t.Fatalf("POST with the token: %d %s", p.status, p.body)
	}
	if c.api(t, http.MethodGet, "/v1/machines/m2", nil, &ms); ms.Draining == nil {
		t.Fatal("the drain button did not drain m2")
	}
	// Revoking the credential ends its session at the next request.
	id := strings.TrimPrefix(strings.SplitN(operator, ".", 2)[0], "hnc_")
	if st := c.api(t, http.MethodDelete, "/v1/credentials/"+id, nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: %d", st)
	}
	if p := get(t, hc, base+"/", ck, nil); p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/signin") {
		t.Errorf("page of a revoked credential's session: %d %q", p.status, p.header.Get("Location"))
	}
	if p := get(t, hc, base+"/ui/live/overview", ck, nil); p.status != http.StatusUnauthorized {
		t.Errorf("live fragment of an ended session: %d", p.status)
	}

	// A client certificate of the cluster is a viewer too (a controller's is admin), and its
	// POSTs need the CSRF token as well: the browser sends the certificate on any request.
	certClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.machines[0].bundle.ClientConfig("")},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	p = get(t, certClient, base+"/machines/m2", nil, nil)
	m = csrfRE.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil || !strings.Contains(p.body, "certificate:m1") || !strings.Contains(p.body, `id="undrain"`) {
		t.Fatalf("certificate viewer's machine page: %d", p.status)
	}
	if p := do(t, certClient, http.MethodPost, base+"/machines/m2/undrain", "", nil, nil); p.status != http.StatusForbidden {
		t.Errorf("certificate POST without the token: %d", p.status)
	}
	if p := do(t, certClient, http.MethodPost, base+"/machines/m2/undrain", "csrf="+url.QueryEscape(m[1]), nil, nil); p.status != http.StatusSeeOther {
		t.Errorf("certificate POST with the token: %d %s", p.status, p.body)
	}
	if p := get(t, certClient, base+"/access", nil, nil); p.status != http.StatusOK || !strings.Contains(p.body, "Admin credentials") {
		t.Errorf("certificate viewer's access page: %d", p.status)
	}

	// GET /v1/machines, which the overview shows: heartbeats of running roles, and a stopped
	// machine kept as down with its events.
	c.machines[1].stop(t)
	var all adminapi.Machines
	if st := c.api(t, http.MethodGet, "/v1/machines", nil, &all); st != http.StatusOK || len(all.Machines) != 2 {
		t.Fatalf("machines: %d %+v", st, all)
	}
	m1, m2 := all.Machines[0], all.Machines[1]
	if m1.Name != "m1" || m1.State != adminapi.MachineUp || len(m1.Roles) != 3 || m1.Capacity <= 0 {
		t.Errorf("m1: %+v", m1)
	}
	for _, r := range m1.Roles {
		if r.State != adminapi.RoleRunning || r.LeaseTTL != 2 || time.Since(r.LastHeartbeat) > 3*time.Second {
			t.Errorf("m1/%s: %+v", r.Role, r)
		}
	}
	if m2.Name != "m2" || m2.State != adminapi.MachineDown || len(m2.Roles) != 1 || m2.Roles[0].State != adminapi.RoleDown || m2.Roles[0].Since.IsZero() {
		t.Errorf("stopped m2: %+v", m2)
	}
	var one adminapi.MachineState
	c.api(t, http.MethodGet, "/v1/machines/m2", nil, &one)
	if len(one.Events) < 2 || one.Events[0].Event != "down" || one.Events[0].Role != "datanode" || one.Events[len(one.Events)-1].Event != "up" {
		t.Errorf("m2's events: %+v", one.Events)
	}
	if st := c.api(t, http.MethodGet, "/v1/machines/nosuch", nil, nil); st != http.StatusNotFound {
		t.Errorf("unknown machine: %d", st)
	}
	if st := c.api(t, http.MethodPost, "/v1/nodes/m2/undrain", nil, nil); st != http.StatusNotFound {
		t.Errorf("undrain of a machine not draining: %d, want 404", st)
	}
}
