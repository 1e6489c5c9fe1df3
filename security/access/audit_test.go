package access

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Every call of a mutating handler is recorded, refused ones included, with who made it, what
// it touched and how it ended; List returns the newest entries, oldest first.
func TestAuditor(t *testing.T) {
	ctx := context.Background()
	cli := startEtcd(t)
	p := newPKI(t, "prod")
	creds := NewCredentials(cli)
	_, readonly, err := creds.Create(ctx, ReadOnly, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	a := NewAuditor(cli, slog.New(slog.NewTextHandler(&logged, nil)), "m1")
	created := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	wrote := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }) // an implicit 200
	target := func(r *http.Request) string { return r.PathValue("id") }
	mux := http.NewServeMux()
	mux.Handle("POST /v1/tokens/{id}", a.Mutation(creds, Admin, target, created))
	mux.Handle("POST /v1/nodes/{id}/drain", a.Mutation(creds, Operator, target, wrote))
	srv := p.serveTLS(t, mux, tls.VerifyClientCertIfGiven)

	post := func(path, auth string, certs ...tls.Certificate) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := p.client(t, certs...).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := time.Now().UTC()
	controller := p.issue(t, "m2", "controller")
	for _, c := range []struct {
		path, auth string
		certs      []tls.Certificate
		status     int
	}{
		{"/v1/tokens/t1", "", nil, 401},
		{"/v1/tokens/t2", readonly, nil, 403},
		{"/v1/tokens/t3", "", []tls.Certificate{controller}, 201},
		{"/v1/nodes/m3/drain", "", []tls.Certificate{controller}, 200},
	} {
		if got := post(c.path, c.auth, c.certs...); got != c.status {
			t.Fatalf("POST %s: %d, want %d", c.path, got, c.status)
		}
	}

	entries, err := a.List(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	readonlyID, _, _ := ParseCredential(readonly)
	want := []AuditEntry{
		{Who: "credential:" + readonlyID, Action: "POST /v1/tokens/t2", Target: "t2", Result: 403},
		{Who: "certificate:m2", Action: "POST /v1/tokens/t3", Target: "t3", Result: 201},
		{Who: "certificate:m2", Action: "POST /v1/nodes/m3/drain", Target: "m3", Result: 200},
	}
	if len(entries) != len(want) {
		t.Fatalf("List(3) returned %d entries: %+v", len(entries), entries)
	}
	for i, e := range entries {
		w := want[i]
		if e.Who != w.Who || e.Action != w.Action || e.Target != w.Target || e.Result != w.Result || e.Machine != "m1" {
			t.Errorf("entry %d: %+v, want %+v answered by m1", i, e, w)
		}
		if e.Time.Before(start.Add(-time.Second)) || !strings.HasPrefix(e.Remote, "127.0.0.1:") {
			t.Errorf("entry %d: time %v, remote %q", i, e.Time, e.Remote)
		}
	}
	all, err := a.List(ctx, 100)
	if err != nil || len(all) != 4 || all[0].Who != "anonymous" || all[0].Result != 401 {
		t.Fatalf("the refused anonymous call: %v %+v", err, all)
	}
	if n := strings.Count(logged.String(), "msg=audit"); n != 4 {
		t.Errorf("%d audit log lines, want 4:\n%s", n, logged.String())
	}
}
