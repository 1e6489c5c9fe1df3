package s3users

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/security/secrets"
)

func newStore(t *testing.T) (*Store, *clientv3.Client) {
	t.Helper()
	cli := etcdtest.Start(t, "127.0.89.3")
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	return New(cli, ring), cli
}

func TestCreateLookupRemove(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)

	// Generated key pair: AWS-shaped.
	u, secret, err := s.Create(ctx, User{Description: "backups", CreatedBy: "credential:abcd1234"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(u.AccessKey) != 20 || !strings.HasPrefix(u.AccessKey, "HN") || len(secret) != 40 || u.Created.IsZero() {
		t.Fatalf("generated %+v with a secret of %d characters", u, len(secret))
	}
	if got, err := s.Secret(ctx, u.AccessKey); err != nil || got != secret {
		t.Fatalf("Secret: %q, %v", got, err)
	}

	// etcd holds the public record in the clear and the secret sealed, bound to its key.
	idx, err := cli.Get(ctx, meta.UserPrefix+u.AccessKey)
	if err != nil || len(idx.Kvs) != 1 {
		t.Fatalf("index record: %v", err)
	}
	var rec User
	if err := json.Unmarshal(idx.Kvs[0].Value, &rec); err != nil || rec.AccessKey != u.AccessKey || rec.Description != "backups" {
		t.Fatalf("index record %s: %v", idx.Kvs[0].Value, err)
	}
	sealed, err := cli.Get(ctx, SecretPrefix+u.AccessKey)
	if err != nil || len(sealed.Kvs) != 1 {
		t.Fatalf("sealed secret: %v", err)
	}
	for _, kv := range append(idx.Kvs, sealed.Kvs...) {
		if strings.Contains(string(kv.Value), secret) {
			t.Fatalf("%s holds the secret in the clear", kv.Key)
		}
	}
	if !secrets.IsSealed(sealed.Kvs[0].Value) {
		t.Fatal("the stored secret is not sealed")
	}
	// Moved under another key, the sealed value does not open: the key is bound into it.
	if _, err := cli.Put(ctx, SecretPrefix+"OTHERKEY", string(sealed.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, meta.UserPrefix+"OTHERKEY", `{"access_key":"OTHERKEY"}`); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Secret(ctx, "OTHERKEY"); err == nil {
		t.Fatalf("a secret moved to another key opened: %q", got)
	}
	if err := s.Remove(ctx, "OTHERKEY"); err != nil {
		t.Fatal(err)
	}

	// A chosen key pair, then the refusals.
	if _, _, err := s.Create(ctx, User{AccessKey: "app-1"}, "app-secret-1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, ak, sk string
		exists       bool
	}{
		{"existing key", "app-1", "another-secret", true},
		{"key too short", "ab", "app-secret-1", false},
		{"key with a slash", "a/b", "app-secret-1", false},
		{"secret too short", "app-2", "short", false},
	} {
		_, _, err := s.Create(ctx, User{AccessKey: c.ak}, c.sk)
		if err == nil || errors.Is(err, ErrExists) != c.exists {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if got, _ := s.Secret(ctx, "app-1"); got != "app-secret-1" {
		t.Fatalf("a refused Create changed the secret to %q", got)
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.AccessKey)
	}
	if strings.Join(names, ",") != u.AccessKey+",app-1" && strings.Join(names, ",") != "app-1,"+u.AccessKey {
		t.Fatalf("List: %q", names)
	}

	if err := s.Remove(ctx, "app-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secret(ctx, "app-1"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Secret after Remove: %v", err)
	}
	if resp, _ := cli.Get(ctx, SecretPrefix+"app-1"); len(resp.Kvs) != 0 {
		t.Fatal("Remove left the sealed secret")
	}
	if err := s.Remove(ctx, "app-1"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("second Remove: %v", err)
	}
	if _, err := s.Secret(ctx, "../../ca"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Secret of an invalid access key: %v", err)
	}

	// Another keyring (a machine that is not a controller of this cluster) cannot read it.
	other, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := New(cli, other).Secret(ctx, u.AccessKey); err == nil {
		t.Fatalf("another keyring read the secret %q", got)
	}
}

// Ensure makes the configured root key exist with the configured secret, and leaves it alone
// when it already has it.
func TestEnsure(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)
	root := User{AccessKey: "root", Root: true}
	if err := s.Ensure(ctx, root, "first-secret"); err != nil {
		t.Fatal(err)
	}
	rev := func() int64 {
		resp, err := cli.Get(ctx, SecretPrefix+"root")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("root secret: %v", err)
		}
		return resp.Kvs[0].ModRevision
	}
	r1 := rev()
	if err := s.Ensure(ctx, root, "first-secret"); err != nil {
		t.Fatal(err)
	}
	if rev() != r1 {
		t.Fatal("Ensure with the same secret rewrote it")
	}
	if err := s.Ensure(ctx, root, "second-secret"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Secret(ctx, "root"); err != nil || got != "second-secret" {
		t.Fatalf("after Ensure with a new secret: %q, %v", got, err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || !list[0].Root {
		t.Fatalf("List: %+v, %v", list, err)
	}
}

func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, CredentialsFile)
	if err := WriteCredentials(p, "HNROOTKEY", "s3cr3t/with+chars="); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	ak, sk, err := ReadCredentials(p)
	if err != nil || ak != "HNROOTKEY" || sk != "s3cr3t/with+chars=" {
		t.Fatalf("round trip: %q %q %v", ak, sk, err)
	}

	// A file written by the AWS CLI: other profiles, spacing, comments.
	aws := "[prod]\naws_access_key_id = PRODKEY\naws_secret_access_key = prodsecret\n\n" +
		"# the one hanode reads\n[ default ]\naws_access_key_id=DEFKEY\n  aws_secret_access_key =  defsecret  \nregion = eu-west-1\n"
	for _, c := range []struct {
		name, body, ak, sk string
	}{
		{"aws cli file", aws, "DEFKEY", "defsecret"},
		{"no default profile", "[prod]\naws_access_key_id = A\naws_secret_access_key = B\n", "", ""},
		{"no secret", "[default]\naws_access_key_id = A\n", "", ""},
		{"empty", "", "", ""},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		if err := os.WriteFile(f, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		ak, sk, err := ReadCredentials(f)
		if ak != c.ak || sk != c.sk || (err == nil) != (c.ak != "") {
			t.Errorf("%s: %q %q %v; want %q %q", c.name, ak, sk, err, c.ak, c.sk)
		}
	}
	if _, _, err := ReadCredentials(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
