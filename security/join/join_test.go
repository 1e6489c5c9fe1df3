package join

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/internal/ratelimit"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/secrets"
	"github.com/hanode/hanode/security/tokens"
)

// tlsServer serves h over TLS with a certificate for 127.0.0.1 from ca.
func tlsServer(t *testing.T, ca *pki.CA, h http.Handler) *httptest.Server {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.Identity{Machine: "srv", Roles: []string{"controller"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test", time.Hour*24, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// A token pins the CA: against a server with another CA, the client stops after fetching the
// CA and sends nothing else — the recording server proves the secret never left.
func TestWrongCAAbortsBeforeTheSecret(t *testing.T) {
	pinned, impostor := newCA(t), newCA(t)
	var mu sync.Mutex
	var received []string
	srv := tlsServer(t, impostor, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		received = append(received, r.Method+" "+r.URL.String()+" "+r.Header.Get("Authorization")+" "+string(body))
		mu.Unlock()
		if r.URL.Path == CAPath {
			_, _ = w.Write(impostor.CertPEM)
			return
		}
		http.Error(w, "nope", http.StatusForbidden)
	}))
	tok, err := tokens.Generate(pinned.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Join(context.Background(), Options{Server: srv.URL, Token: tok.String(), Machine: "m2", Roles: []string{"datanode"}, PKIDir: t.TempDir()})
	if !errors.Is(err, ErrCAMismatch) {
		t.Fatalf("join against a foreign CA: got %v, want ErrCAMismatch", err)
	}
	if strings.Contains(err.Error(), tok.Secret) {
		t.Fatal("the error message contains the token secret")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(received) != 1 || !strings.HasPrefix(received[0], "GET "+CAPath) {
		t.Fatalf("the server received %q; want only the CA fetch", received)
	}
	for _, r := range received {
		if strings.Contains(r, tok.Secret) || strings.Contains(r, tok.ID+".") {
			t.Fatalf("the token secret reached the impostor: %q", r)
		}
	}
}

func TestJoinFlow(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.82.1")
	ca := newCA(t)
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	store := tokens.NewStore(cli)
	s := &Server{
		Tokens:   store,
		Signer:   func(context.Context) (*pki.CA, error) { return ca, nil },
		CABundle: func() ([]byte, error) { return ca.CertPEM, nil },
		Keyring:  func() *secrets.Keyring { return ring },
		Cluster: func(context.Context) (string, []string, []string, error) {
			return "test", []string{"https://e:2379"}, nil, nil
		},
		CertValidity: time.Hour,
		Log:          slog.New(slog.DiscardHandler),
	}
	var mu sync.Mutex
	var audited []string
	refused := 0
	s.Audit = func(_ context.Context, who, machine string, status int, _ string) {
		mu.Lock()
		defer mu.Unlock()
		audited = append(audited, machine+" "+strconv.Itoa(status))
	}
	s.Refused = func(string) { mu.Lock(); refused++; mu.Unlock() }
	mux := http.NewServeMux()
	s.Register(mux)
	srv := tlsServer(t, ca, mux)
	ctx := context.Background()
	mkToken := func(rec tokens.Record) string {
		tok, err := tokens.Generate(ca.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		rec.ID, rec.SecretHash = tok.ID, tokens.HashSecret(tok.Secret)
		if err := store.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return tok.String()
	}
	join := func(tok, machine string, roles ...string) (string, *Response, error) {
		dir := t.TempDir()
		resp, err := Join(ctx, Options{Server: srv.URL, Token: tok, Machine: machine, Roles: roles, Addresses: []string{"127.0.0.1", machine}, PKIDir: dir})
		return dir, resp, err
	}

	// A good token: certificates written, identity decided by the server, keyring for a controller.
	dir, resp, err := join(mkToken(tokens.Record{MaxUses: 1}), "m2", "controller", "datanode")
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id := b.Identity(); id.Machine != "m2" || !id.HasRole("controller") || !id.HasRole("datanode") {
		t.Fatalf("identity %+v", id)
	}
	if resp.Keyring == nil || resp.Keyring.PrimaryID() != ring.PrimaryID() {
		t.Fatal("a controller did not receive the cluster keyring")
	}
	if _, err := os.Stat(filepath.Join(dir, KeyringFile)); err != nil {
		t.Fatal(err)
	}
	// A datanode gets no keyring.
	_, resp, err = join(mkToken(tokens.Record{}), "m3", "datanode")
	if err != nil || resp.Keyring != nil {
		t.Fatalf("datanode join: keyring %v, err %v", resp.Keyring != nil, err)
	}

	used := mkToken(tokens.Record{MaxUses: 1})
	if _, _, err := join(used, "m4", "datanode"); err != nil {
		t.Fatal(err)
	}
	revoked := mkToken(tokens.Record{})
	if err := store.Revoke(ctx, strings.SplitN(strings.SplitN(revoked, "::", 2)[1], ".", 2)[0]); err != nil {
		t.Fatal(err)
	}
	bad, _ := tokens.Parse(mkToken(tokens.Record{}))
	bad.Secret = strings.Repeat("x", len(bad.Secret))
	tests := []struct {
		name, token, want string
		roles             []string
	}{
		{"used up", used, "used", []string{"datanode"}},
		{"expired", mkToken(tokens.Record{Expires: time.Now().Add(-time.Minute)}), "expired", []string{"datanode"}},
		{"revoked", revoked, "revoked", []string{"datanode"}},
		{"wrong secret", bad.String(), "token refused", []string{"datanode"}},
		{"role not allowed", mkToken(tokens.Record{Roles: []string{"datanode"}}), "token refused", []string{"controller"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _, err := join(tt.token, "m9", tt.roles...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a refusal mentioning %q", err, tt.want)
			}
			if pki.Exists(dir) {
				t.Fatal("a refused join wrote certificates")
			}
		})
	}
	// Attempts with a valid token are audited (3 joins, 4 refusals); the wrong secret and junk
	// are only counted.
	for _, body := range []string{"junk", `{"token_id":"` + strings.Repeat("x", 60<<10) + `","secret":"s","roles":["datanode"],"csr":"x"}`} {
		resp, err := srv.Client().Post(srv.URL+JoinPath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(audited) != 7 || refused != 3 {
		t.Fatalf("audited %q, refused %d; want 7 audited and 3 refused", audited, refused)
	}
}

// The join endpoint is rate-limited per source address.
func TestJoinRateLimit(t *testing.T) {
	ca := newCA(t)
	refused := 0
	s := &Server{Log: slog.New(slog.DiscardHandler), Limit: ratelimit.New(0.001, 3, 100), Refused: func(string) { refused++ }}
	mux := http.NewServeMux()
	s.Register(mux)
	srv := tlsServer(t, ca, mux)
	var codes []int
	for range 5 {
		resp, err := srv.Client().Post(srv.URL+JoinPath, "application/json", strings.NewReader("junk"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if !slices.Equal(codes, []int{400, 400, 400, 429, 429}) || refused != 5 {
		t.Fatalf("statuses %v, %d refused; want 3 × 400 then 429, all 5 refused", codes, refused)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"token_id":"abcdef","secret":"0123456789abcdef","machine":"m2","roles":["datanode"],"addresses":["127.0.0.1","m2"],"csr":""}`,
		`{}`, `{"roles":["web"]}`, `[]`, `{"token_id":"a","secret":"b","roles":["agent"],"addresses":["-bad-"]}`, `{"extra":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseRequest(data)
		if err == nil && (req.TokenID == "" || len(req.Roles) == 0) {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
	})
}

// TestJoinConflictAndRevokedRenewal: a join whose name the Conflict hook refuses fails with its
// status and leaves the token's use; a certificate the Revoked hook refuses is not renewed.
func TestJoinConflictAndRevokedRenewal(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.100.22")
	ca := newCA(t)
	store := tokens.NewStore(cli)
	var admitted []string
	revoked := map[string]bool{}
	s := &Server{
		Tokens:   store,
		Signer:   func(context.Context) (*pki.CA, error) { return ca, nil },
		CABundle: func() ([]byte, error) { return ca.CertPEM, nil },
		Keyring:  func() *secrets.Keyring { return nil },
		Cluster: func(context.Context) (string, []string, []string, error) {
			return "test", []string{"https://e:2379"}, nil, nil
		},
		CertValidity: time.Hour,
		Log:          slog.New(slog.DiscardHandler),
		Conflict: func(_ context.Context, machine string, _ []string) (int, error) {
			if machine == "taken" {
				return http.StatusConflict, errors.New("machine name taken is in use")
			}
			return 0, nil
		},
		Admit: func(_ context.Context, id pki.Identity) error { admitted = append(admitted, id.Machine); return nil },
		Revoked: func(_ context.Context, cert *x509.Certificate) error {
			if revoked[cert.Subject.CommonName] {
				return errors.New("machine was removed")
			}
			return nil
		},
	}
	mux := http.NewServeMux()
	s.Register(mux)
	s.RegisterRenew(mux)
	srv := tlsServer(t, ca, mux)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv.TLS.ClientCAs, srv.TLS.ClientAuth = pool, tls.VerifyClientCertIfGiven // for renewals
	ctx := context.Background()
	tok, err := tokens.Generate(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create(ctx, tokens.Record{ID: tok.ID, SecretHash: tokens.HashSecret(tok.Secret), MaxUses: 1}); err != nil {
		t.Fatal(err)
	}
	join := func(machine string) (string, error) {
		dir := t.TempDir()
		_, err := Join(ctx, Options{Server: srv.URL, Token: tok.String(), Machine: machine, Roles: []string{"datanode"}, Addresses: []string{"127.0.0.1"}, PKIDir: dir})
		return dir, err
	}
	if _, err := join("taken"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("join as a taken name: %v", err)
	}
	dir, err := join("free") // the one use is still there
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(admitted, ",") != "free" {
		t.Errorf("admitted %v, want [free]", admitted)
	}
	b, err := pki.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Renew(ctx, []string{srv.URL}, b); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	revoked["free"] = true
	if err := Renew(ctx, []string{srv.URL}, b); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("renewal of a revoked machine: %v, want 403", err)
	}
}
