package access

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
	// A create whose name is in the body: the handler names it.
	mux.Handle("POST /v1/keys", a.Mutation(creds, Admin, target, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetAuditTarget(r.Context(), r.URL.Query().Get("name"))
		w.WriteHeader(http.StatusCreated)
	})))
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
		{"/v1/keys?name=k1", "", []tls.Certificate{controller}, 201},
	} {
		if got := post(c.path, c.auth, c.certs...); got != c.status {
			t.Fatalf("POST %s: %d, want %d", c.path, got, c.status)
		}
	}

	entries, err := a.List(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	readonlyID, _, _ := ParseCredential(readonly)
	want := []AuditEntry{
		{Who: "credential:" + readonlyID, Action: "POST /v1/tokens/t2", Target: "t2", Result: 403},
		{Who: "certificate:m2", Action: "POST /v1/tokens/t3", Target: "t3", Result: 201},
		{Who: "certificate:m2", Action: "POST /v1/nodes/m3/drain", Target: "m3", Result: 200},
		{Who: "certificate:m2", Action: "POST /v1/keys", Target: "k1", Result: 201},
	}
	if len(entries) != len(want) {
		t.Fatalf("List(4) returned %d entries: %+v", len(entries), entries)
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
	// The call without any credential is refused, counted and logged (sampled), not stored.
	all, err := a.List(ctx, 100)
	if err != nil || len(all) != 4 {
		t.Fatalf("the refused anonymous call was stored: %v %+v", err, all)
	}
	if n := strings.Count(logged.String(), "msg=audit"); n != 4 {
		t.Errorf("%d audit log lines, want 4:\n%s", n, logged.String())
	}
	if got := testutil.ToFloat64(a.refused.WithLabelValues("admin")); got != 1 {
		t.Errorf("unauthenticated refusals counted: %v, want 1", got)
	}
	if !strings.Contains(logged.String(), "unauthenticated request refused") {
		t.Errorf("the refusal is not in the log:\n%s", logged.String())
	}
}

// Entries are bounded per field, and the trail by age and count.
func TestAuditBounds(t *testing.T) {
	ctx := context.Background()
	cli := startEtcd(t)
	a := NewAuditor(cli, slog.New(slog.DiscardHandler), "m1")
	long := strings.Repeat("é", 40<<10) // 80 KiB of two-byte runes
	a.Record(ctx, AuditEntry{Who: "token:" + long, Action: "POST /v1/join", Target: long, Remote: long})
	e, err := a.List(ctx, 1)
	if err != nil || len(e) != 1 {
		t.Fatalf("List: %v %+v", err, e)
	}
	for _, f := range []string{e[0].Who, e[0].Target, e[0].Remote} {
		if len(f) > MaxAuditField || !utf8.ValidString(f) || !strings.HasSuffix(f, "…(81920 bytes)") && !strings.HasSuffix(f, "…(81926 bytes)") {
			t.Fatalf("a field of %d bytes stored as %d bytes: %q", len(long), len(f), f[max(0, len(f)-40):])
		}
	}
	// By age: an entry from long ago goes, a recent one stays.
	a.Record(ctx, AuditEntry{Time: time.Now().Add(-AuditMaxAge - time.Hour), Who: "old"})
	if n, err := a.Trim(ctx); err != nil || n != 1 {
		t.Fatalf("Trim by age deleted %d: %v", n, err)
	}
	if all, _ := a.List(ctx, 10); len(all) != 1 || all[0].Who == "old" {
		t.Fatalf("after Trim by age: %+v", all)
	}
	// By count: 120 more entries, the newest 50 stay.
	a.MaxEntries = 50
	for i := range 120 {
		a.Record(ctx, AuditEntry{Who: "w", Target: strconv.Itoa(i)})
	}
	if _, err := a.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := a.List(ctx, 1000)
	if err != nil || len(all) != 50 || all[0].Target != "70" || all[49].Target != "119" {
		t.Fatalf("after Trim: %d entries (%v), first %+v", len(all), err, all[0])
	}
}
