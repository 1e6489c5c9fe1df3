package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/security/s3users"
	"github.com/hanode/hanode/security/secrets"
)

// rootRecord is what the active master remembers (sealed, keyspace.S3Root) about the S3 root
// user it made: its access key, where it came from, and for a configured one a hash of the
// configured secret, so that a configuration is applied once — not again on every term.
type rootRecord struct {
	AccessKey    string `json:"access_key"`
	Source       string `json:"source"` // config, file, generated or existing
	SecretSHA256 string `json:"secret_sha256,omitempty"`
}

func secretSum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// ensureRoot makes the S3 root user, once per cluster and once per configuration:
//
//   - with root-access-key/root-secret-key (HANODE_ROOT_ACCESS_KEY/...) configured, a pair
//     that differs from the one applied last is applied, and every other root key is removed
//     (changing root-access-key retires the old one);
//   - without, the first term of a new cluster registers <data-dir>/credentials (written by
//     hanode init) or a generated pair written there;
//   - after that nothing: a root key deleted with `hanode user remove` stays deleted (no master
//     makes it again from the credentials file or an unchanged configuration).
func (c *Role) ensureRoot(ctx context.Context) error {
	if c.sec.keyring == nil {
		return errors.New("this controller has no cluster keyring")
	}
	cfg := c.m.Config
	users := s3users.New(c.cli, c.sec.keyring)
	var rec rootRecord
	val, found, err := secrets.Get(ctx, c.cli, c.sec.keyring, keyspace.S3Root)
	if err != nil {
		return fmt.Errorf("read the S3 root record: %w", err)
	}
	if found {
		if err := json.Unmarshal(val, &rec); err != nil {
			return fmt.Errorf("S3 root record: %w", err)
		}
	}
	if cfg.RootAccessKey != "" {
		sum := secretSum(cfg.RootSecretKey)
		if found && rec.AccessKey == cfg.RootAccessKey && rec.SecretSHA256 == sum {
			return nil
		}
		if err := users.Ensure(ctx, s3users.User{AccessKey: cfg.RootAccessKey, Description: "root (configured)", CreatedBy: "controller:" + cfg.Name, Root: true}, cfg.RootSecretKey); err != nil {
			return err
		}
		if err := c.retireRoots(ctx, users, cfg.RootAccessKey); err != nil {
			return err
		}
		return c.writeRootRecord(ctx, rootRecord{AccessKey: cfg.RootAccessKey, Source: "config", SecretSHA256: sum})
	}
	if found {
		return nil
	}
	list, err := users.List(ctx)
	if err != nil {
		return err
	}
	for _, u := range list {
		if u.Root { // made before this record existed
			return c.writeRootRecord(ctx, rootRecord{AccessKey: u.AccessKey, Source: "existing"})
		}
	}
	path := filepath.Join(cfg.DataDir, s3users.CredentialsFile)
	if ak, sk, err := s3users.ReadCredentials(path); err == nil {
		if err := users.Ensure(ctx, s3users.User{AccessKey: ak, Description: "root (" + path + ")", CreatedBy: "controller:" + cfg.Name, Root: true}, sk); err != nil {
			return err
		}
		return c.writeRootRecord(ctx, rootRecord{AccessKey: ak, Source: "file"})
	}
	ak, sk := s3users.NewKeyPair()
	if err := s3users.WriteCredentials(path, ak, sk); err != nil {
		return err
	}
	if _, _, err := users.Create(ctx, s3users.User{AccessKey: ak, Description: "root (generated on " + cfg.Name + ")", CreatedBy: "controller:" + cfg.Name, Root: true}, sk); err != nil {
		return err
	}
	c.log.Info("S3 root user created", "access_key", ak, "credentials", path)
	return c.writeRootRecord(ctx, rootRecord{AccessKey: ak, Source: "generated"})
}

// retireRoots removes every root key but keep.
func (c *Role) retireRoots(ctx context.Context, users *s3users.Store, keep string) error {
	list, err := users.List(ctx)
	if err != nil {
		return err
	}
	for _, u := range list {
		if !u.Root || u.AccessKey == keep {
			continue
		}
		if err := users.Remove(ctx, u.AccessKey); err != nil && !errors.Is(err, s3users.ErrUnknown) {
			return fmt.Errorf("retire the old S3 root key %s: %w", u.AccessKey, err)
		}
		c.log.Info("old S3 root key retired: root-access-key changed", "access_key", u.AccessKey, "root", keep)
	}
	return nil
}

func (c *Role) writeRootRecord(ctx context.Context, rec rootRecord) error {
	val, _ := json.Marshal(rec)
	if err := secrets.Put(ctx, c.cli, c.sec.keyring, keyspace.S3Root, val); err != nil {
		return fmt.Errorf("record the S3 root user: %w", err)
	}
	return nil
}
