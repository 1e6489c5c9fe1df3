package controller

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/s3users"
	"github.com/hanode/hanode/security/secrets"
)

// The S3 root user is made once: deleting it sticks across terms (the credentials file and an
// unchanged configuration do not bring it back), and changing root-access-key retires the old
// key.
func TestEnsureRootSticks(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Start(t, "127.0.50.10")
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := &config.Config{Name: "m1", DataDir: dir}
	role := &Role{m: &service.Machine{Config: cfg}, log: slog.New(slog.DiscardHandler), cli: cli, sec: &security{keyring: ring}}
	users := s3users.New(cli, ring)
	roots := func() []string {
		t.Helper()
		list, err := users.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, u := range list {
			if u.Root {
				out = append(out, u.AccessKey)
			}
		}
		return out
	}
	term := func() { // one term of an active master
		t.Helper()
		if err := role.ensureRoot(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// A new cluster: the credentials file written by hanode init.
	if err := s3users.WriteCredentials(filepath.Join(dir, s3users.CredentialsFile), "HNFILEROOT", "file-secret-123"); err != nil {
		t.Fatal(err)
	}
	term()
	if got := roots(); !slices.Equal(got, []string{"HNFILEROOT"}) {
		t.Fatalf("roots after the first term: %q", got)
	}
	// Deleted by the operator: the next terms leave it deleted although the file is there.
	if err := users.Remove(ctx, "HNFILEROOT"); err != nil {
		t.Fatal(err)
	}
	term()
	term()
	if got := roots(); len(got) != 0 {
		t.Fatalf("the deleted root key came back: %q", got)
	}

	// Configured: applied once...
	cfg.RootAccessKey, cfg.RootSecretKey = "cfgroot", "configured-secret-1"
	term()
	if got := roots(); !slices.Equal(got, []string{"cfgroot"}) {
		t.Fatalf("roots with root-access-key set: %q", got)
	}
	// ...and, deleted, not again while the configuration is unchanged.
	if err := users.Remove(ctx, "cfgroot"); err != nil {
		t.Fatal(err)
	}
	term()
	if got := roots(); len(got) != 0 {
		t.Fatalf("the deleted configured root key came back: %q", got)
	}
	// A new secret for the key is a new configuration: applied.
	cfg.RootSecretKey = "configured-secret-2"
	term()
	if sk, err := users.Secret(ctx, "cfgroot"); err != nil || sk != "configured-secret-2" {
		t.Fatalf("after a changed root-secret-key: %q, %v", sk, err)
	}
	// A new key retires the old one.
	cfg.RootAccessKey, cfg.RootSecretKey = "cfgroot2", "configured-secret-3"
	term()
	if got := roots(); !slices.Equal(got, []string{"cfgroot2"}) {
		t.Fatalf("roots after root-access-key changed: %q", got)
	}
	if _, err := users.Secret(ctx, "cfgroot"); !errors.Is(err, s3users.ErrUnknown) {
		t.Fatalf("the old root key: %v", err)
	}
	// Users that are not root are left alone.
	if _, _, err := users.Create(ctx, s3users.User{AccessKey: "app"}, "app-secret-1"); err != nil {
		t.Fatal(err)
	}
	cfg.RootAccessKey, cfg.RootSecretKey = "cfgroot3", "configured-secret-4"
	term()
	if _, err := users.Secret(ctx, "app"); err != nil {
		t.Fatalf("a user that is not root was retired: %v", err)
	}
}

// A cluster whose root user predates the record keeps it, and no file brings another.
func TestEnsureRootAdoptsAnExistingRoot(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Start(t, "127.0.50.11")
	ring, err := secrets.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	role := &Role{m: &service.Machine{Config: &config.Config{Name: "m1", DataDir: dir}}, log: slog.New(slog.DiscardHandler), cli: cli, sec: &security{keyring: ring}}
	users := s3users.New(cli, ring)
	if _, _, err := users.Create(ctx, s3users.User{AccessKey: "oldroot", Root: true}, "old-secret-1"); err != nil {
		t.Fatal(err)
	}
	if err := s3users.WriteCredentials(filepath.Join(dir, s3users.CredentialsFile), "HNOTHER", "other-secret-1"); err != nil {
		t.Fatal(err)
	}
	if err := role.ensureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := users.Remove(ctx, "oldroot"); err != nil {
		t.Fatal(err)
	}
	if err := role.ensureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	if list, _ := users.List(ctx); len(list) != 0 {
		t.Fatalf("users after the adopted root was deleted: %+v", list)
	}
}
