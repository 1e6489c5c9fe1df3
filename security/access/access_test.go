package access

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAllows(t *testing.T) {
	for _, c := range []struct {
		has, needs string
		want       bool
	}{
		{ReadOnly, ReadOnly, true},
		{ReadOnly, Operator, false},
		{ReadOnly, Admin, false},
		{Operator, ReadOnly, true},
		{Operator, Operator, true},
		{Operator, Admin, false},
		{Admin, ReadOnly, true},
		{Admin, Admin, true},
		{"", ReadOnly, false}, // no level: nothing is allowed
		{"root", ReadOnly, false},
	} {
		if got := (Principal{Level: c.has}).Allows(c.needs); got != c.want {
			t.Errorf("level %q allows %q: %v, want %v", c.has, c.needs, got, c.want)
		}
	}
	for _, l := range Levels {
		if !ValidLevel(l) {
			t.Errorf("ValidLevel(%q) false", l)
		}
	}
	if ValidLevel("controller") || ValidLevel("") {
		t.Error("a role or nothing is a valid level")
	}
}

// The level a machine certificate gets, from its roles, over a real TLS connection.
func TestFromCertificate(t *testing.T) {
	p := newPKI(t, "prod")
	srv := p.serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, ok := FromCertificate(r)
		if !ok {
			io.WriteString(w, "none")
			return
		}
		io.WriteString(w, pr.String()+" "+strings.Join(pr.Roles, ",")+" "+pr.Level)
	}), tls.VerifyClientCertIfGiven)
	for _, c := range []struct {
		name string
		cert []tls.Certificate
		want string
	}{
		{"no certificate", nil, "none"},
		{"controller", []tls.Certificate{p.issue(t, "m1", "controller", "datanode")}, "certificate:m1 controller,datanode admin"},
		{"datanode machine", []tls.Certificate{p.issue(t, "m2", "datanode", "agent")}, "certificate:m2 agent,datanode readonly"},
		{"operator role", []tls.Certificate{p.issue(t, "ops", "operator")}, "certificate:ops operator operator"},
		{"no roles", []tls.Certificate{p.issue(t, "bare")}, "certificate:bare  "},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := p.client(t, c.cert...).Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != c.want {
				t.Fatalf("principal %q, want %q", b, c.want)
			}
		})
	}

	// A certificate the server did not verify (it only asked for one) names nobody, even one
	// carrying a controller's identity.
	other := newPKI(t, "prod")
	lax := p.serveTLS(t, srv.Config.Handler, tls.RequestClientCert)
	resp, err := p.client(t, other.issue(t, "m1", "controller")).Get(lax.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "none" {
		t.Fatalf("an unverified certificate authenticated as %q", b)
	}
}

func TestParseCredential(t *testing.T) {
	id, secret := "abcd1234", "0123456789abcdefghijklmnopqrstuv"
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"hnc_" + id + "." + secret, true},
		{" hnc_" + id + "." + secret + "\n", true},
		{"hnc_" + strings.ToUpper(id) + "." + secret, false},
		{"hnc_" + id + "." + secret[1:], false},
		{"hnc_" + id + secret, false},
		{id + "." + secret, false},
		{"", false},
	} {
		gotID, gotSecret, err := ParseCredential(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseCredential(%q): %v", c.in, err)
			continue
		}
		if c.ok && (gotID != id || gotSecret != secret) {
			t.Errorf("ParseCredential(%q) = %q, %q", c.in, gotID, gotSecret)
		}
		if err != nil && strings.Contains(err.Error(), secret[4:]) {
			t.Errorf("the error echoes the secret: %v", err)
		}
	}
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	creds := NewCredentials(startEtcd(t))
	if _, _, err := creds.Create(ctx, "root", "", ""); err == nil {
		t.Fatal("created a credential of an unknown level")
	}
	op, opSecret, err := creds.Create(ctx, Operator, "ci pipeline", "certificate:m1")
	if err != nil {
		t.Fatal(err)
	}
	ad, adSecret, err := creds.Create(ctx, Admin, "", "")
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := ParseCredential(opSecret)
	if err != nil || id != op.ID {
		t.Fatalf("the returned credential %q does not parse to its id %s: %v", opSecret, op.ID, err)
	}
	if level, err := creds.Verify(ctx, id, secret); err != nil || level != Operator {
		t.Fatalf("verify: %q, %v", level, err)
	}
	if _, err := creds.Verify(ctx, id, strings.Repeat("x", 32)); !errors.Is(err, ErrBadCredential) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := creds.Verify(ctx, "zzzzzzzz", secret); !errors.Is(err, ErrUnknownCredential) {
		t.Fatalf("unknown id: %v", err)
	}

	list, err := creds.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != op.ID || list[1].ID != ad.ID {
		t.Fatalf("list: %+v, want the operator's then the admin's", list)
	}
	if list[0].Description != "ci pipeline" || list[0].CreatedBy != "certificate:m1" || list[0].SecretHash != HashSecret(secret) {
		t.Fatalf("stored record: %+v", list[0])
	}
	_, adSecretOnly, _ := ParseCredential(adSecret)
	for _, c := range list {
		if strings.Contains(c.SecretHash, secret) || strings.Contains(c.SecretHash, adSecretOnly) {
			t.Fatal("a listed record holds a secret")
		}
	}

	if err := creds.Revoke(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := creds.Verify(ctx, id, secret); !errors.Is(err, ErrUnknownCredential) {
		t.Fatalf("revoked credential verifies: %v", err)
	}
	if err := creds.Revoke(ctx, op.ID); !errors.Is(err, ErrUnknownCredential) {
		t.Fatalf("second revoke: %v", err)
	}
}

// Require, RequireRoles and RequireCertificate as the admin API and the datanodes use them,
// over real TLS connections, with real certificates and credentials.
func TestMiddleware(t *testing.T) {
	ctx := context.Background()
	p := newPKI(t, "prod")
	creds := NewCredentials(startEtcd(t))
	bearer := map[string]string{}
	for _, l := range Levels {
		_, s, err := creds.Create(ctx, l, "", "")
		if err != nil {
			t.Fatal(err)
		}
		bearer[l] = s
	}
	who := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, ok := PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "no principal in the context", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, pr.String())
	})
	mux := http.NewServeMux()
	mux.Handle("/read", Require(creds, ReadOnly, who))
	mux.Handle("/operate", Require(creds, Operator, who))
	mux.Handle("/admin", Require(creds, Admin, who))
	mux.Handle("/nocreds", Require(nil, ReadOnly, who))
	mux.Handle("/chunks", RequireRoles(who, "coordinator", "controller"))
	mux.Handle("/cert", RequireCertificate(who))
	srv := p.serveTLS(t, mux, tls.VerifyClientCertIfGiven)

	controller := p.issue(t, "m1", "controller")
	coordinator := p.issue(t, "m2", "coordinator")
	datanode := p.issue(t, "m3", "datanode")
	type call struct {
		path, auth string
		cert       *tls.Certificate
		status     int
	}
	calls := []call{
		{"/read", "", nil, 401},
		{"/read", "Bearer " + bearer[ReadOnly], nil, 200},
		{"/read", "Bearer " + bearer[ReadOnly][:len(bearer[ReadOnly])-1] + "x", nil, 401}, // wrong secret
		{"/read", "Bearer hnc_zzzzzzzz.0123456789abcdefghijklmnopqrstuv", nil, 401},       // unknown id
		{"/read", "Bearer not-a-credential", nil, 401},
		{"/read", "Basic dXNlcjpwYXNz", nil, 401},
		{"/read", "", &datanode, 200},
		{"/operate", "Bearer " + bearer[ReadOnly], nil, 403},
		{"/operate", "Bearer " + bearer[Operator], nil, 200},
		{"/operate", "", &datanode, 403},
		{"/admin", "Bearer " + bearer[Operator], nil, 403},
		{"/admin", "Bearer " + bearer[Admin], nil, 200},
		{"/admin", "", &controller, 200},
		{"/admin", "", &coordinator, 403},
		{"/nocreds", "Bearer " + bearer[Admin], nil, 401}, // no Verifier: bearer credentials are refused
		{"/nocreds", "", &coordinator, 200},
		// The chunk API: certificates only, and only of the roles named.
		{"/chunks", "", nil, 401},
		{"/chunks", "Bearer " + bearer[Admin], nil, 401},
		{"/chunks", "", &datanode, 403},
		{"/chunks", "", &coordinator, 200},
		{"/chunks", "", &controller, 200},
		{"/cert", "Bearer " + bearer[Admin], nil, 401},
		{"/cert", "", &datanode, 200},
	}
	for _, c := range calls {
		var certs []tls.Certificate
		if c.cert != nil {
			certs = append(certs, *c.cert)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := p.client(t, certs...).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := c.path + " with " + describe(c.auth, c.cert)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", name, resp.StatusCode, b, c.status)
			continue
		}
		wantChallenge := c.status == 401 && c.path != "/chunks"
		if got := resp.Header.Get("WWW-Authenticate"); (got != "") != wantChallenge {
			t.Errorf("%s: WWW-Authenticate %q", name, got)
		}
		if c.status == 200 {
			want := "credential:"
			if c.cert != nil {
				want = "certificate:" + c.cert.Leaf.Subject.CommonName
			}
			if !strings.HasPrefix(string(b), want) {
				t.Errorf("%s: handler saw principal %q, want %s...", name, b, want)
			}
		}
	}
}

func describe(auth string, cert *tls.Certificate) string {
	switch {
	case cert != nil:
		return "certificate " + cert.Leaf.Subject.CommonName + " " + strings.Join(cert.Leaf.Subject.OrganizationalUnit, ",")
	case auth == "":
		return "nothing"
	default:
		return "Authorization " + auth[:min(len(auth), 20)]
	}
}
