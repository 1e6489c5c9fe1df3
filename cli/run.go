package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/sdnotify"
	"github.com/hanode/hanode/roles"
	"github.com/hanode/hanode/security/pki"
	"github.com/hanode/hanode/security/s3users"
	"github.com/hanode/hanode/version"
)

type runCmd struct{}

func (runCmd) Run(e *Env) error {
	cfg, origins, err := e.Config()
	if err != nil {
		return err
	}
	log := newLogger(e.Stderr, cfg)
	if e.appliance && origins["replicas"].Kind == "default" {
		// One machine holds one replica of everything; a cluster keeps the default of 2.
		cfg.Replicas = 1
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	bundle, err := loadOrInitPKI(ctx, cfg, origins)
	if err != nil {
		return err
	}
	start := time.Now()
	go func() {
		<-ctx.Done()
		_ = sdnotify.Stopping() // systemd: the drain has begun
	}()
	return roles.Run(ctx, roles.Options{
		Config:  cfg,
		Bundle:  bundle,
		Logger:  log,
		Version: version.Version,
		OnReady: func(eps roles.Endpoints) {
			printReady(e.Stdout, cfg, bundle, eps, time.Since(start))
			// systemd (Type=notify): started means every role serves.
			if err := sdnotify.Ready(); err != nil {
				log.Warn("cannot notify systemd", "err", err)
			}
		},
	})
}

func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// identityAddresses are the names and IPs this machine is reached at, for its certificate.
// 127.0.0.1 is among them because etcd checks that a peer connects from an IP its certificate
// names, and on one host peers connect from the loopback address.
func identityAddresses(cfg *config.Config) []string {
	out := []string{"127.0.0.1", "localhost", cfg.Name}
	for _, a := range []string{cfg.Address, cfg.BindAddress} {
		if ip := net.ParseIP(a); a != "" && (ip == nil || !ip.IsUnspecified()) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// identity is this machine's certificate identity: its name, roles and addresses.
func identity(cfg *config.Config) pki.Identity {
	id := pki.Identity{Machine: cfg.Name, Roles: cfg.Roles()}
	for _, a := range identityAddresses(cfg) {
		if ip := net.ParseIP(a); ip != nil {
			id.IPs = append(id.IPs, ip)
		} else {
			id.DNSNames = append(id.DNSNames, a)
		}
	}
	return id
}

// loadOrInitPKI returns this machine's TLS bundle. The machine that holds the CA key (the
// first controller, the appliance) creates the CA and keyring or refreshes its own certificate;
// a machine with --server and --token joins the cluster on its first start; any other machine
// must already have joined.
func loadOrInitPKI(ctx context.Context, cfg *config.Config, origins config.Origins) (*pki.Bundle, error) {
	dir := cfg.PKIDir()
	_, caKeyErr := os.Stat(filepath.Join(dir, pki.CAKeyFile))
	holdsCA := caKeyErr == nil
	if holdsCA {
		// After a CA rotation the old key matches no certificate of ca.crt: the CA now lives
		// sealed in etcd, and this machine is like any other.
		_, err := pki.LoadCA(dir)
		holdsCA = err == nil
	}
	bootstrap := cfg.Has(config.RoleController) && len(cfg.InitialCluster) == 1 && len(cfg.Join) == 0 && cfg.Server == ""
	switch {
	case holdsCA || (!pki.Exists(dir) && bootstrap):
		id := identity(cfg)
		// A process of some of the machine's roles (an agent's child) keeps the roles its
		// certificate has: reissuing it for fewer would take rights from the machine's other roles.
		if old, err := pki.LoadBundle(dir); err == nil && old.Identity().Machine == id.Machine {
			for _, r := range old.Identity().Roles {
				if !slices.Contains(id.Roles, r) {
					id.Roles = append(id.Roles, r)
				}
			}
		}
		b, err := pki.EnsureSelfSigned(dir, cfg.ClusterName, id, pki.DefaultCAValidity, cfg.CertValidity)
		if err != nil {
			return nil, fmt.Errorf("initialise certificates in %s: %w", dir, err)
		}
		if err := ensureKeyring(dir); err != nil {
			return nil, err
		}
		return b, applyClusterFile(cfg, origins)
	case !pki.Exists(dir) && cfg.Server != "" && cfg.Token != "":
		resp, err := joinCluster(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if len(cfg.Join) == 0 && cfg.Has(config.RoleController) {
			cfg.Join = resp.EtcdEndpoints // an empty controller joins etcd as a learner
		}
	case !pki.Exists(dir):
		return nil, usagef("no certificates in %s: this machine has not joined a cluster; create a token on a controller (`hanode token create`) and start with --server https://CONTROLLER:8900 --token TOKEN (docs/security.md)", dir)
	}
	if err := applyClusterFile(cfg, origins); err != nil {
		return nil, err
	}
	b, err := pki.LoadBundle(dir)
	if err != nil {
		return nil, fmt.Errorf("load certificates: %w", err)
	}
	return b, nil
}

func printReady(w io.Writer, cfg *config.Config, b *pki.Bundle, eps roles.Endpoints, took time.Duration) {
	fmt.Fprintf(w, "hanode %s ready in %s: cluster %q, machine %q, roles %s\n", version.Version, took.Round(time.Millisecond), cfg.ClusterName, cfg.Name, strings.Join(cfg.Roles(), ","))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, row := range []struct{ role, what string }{
		{config.RoleCoordinator, "S3 API"},
		{config.RoleProxy, "HTTPS proxy"},
		{config.RoleController, "web UI, admin API"},
		{config.RoleDatanode, "datanode chunk API"},
		{config.RoleAgent, "agent API"},
	} {
		if ep, ok := eps[row.role]; ok {
			if row.role == config.RoleController {
				ep += "/" // the web UI's address; the admin API is under /v1/
			}
			fmt.Fprintf(tw, "  %s\t%s\n", row.what, ep)
		}
	}
	if cfg.Has(config.RoleController) {
		fmt.Fprintf(tw, "  etcd client\t%s\n", cfg.URL(cfg.Address, cfg.EtcdClientPort))
	}
	fmt.Fprintf(tw, "  CA certificate\t%s\n", b.CAFile())
	if cfg.Has(config.RoleCoordinator) {
		creds := filepath.Join(cfg.DataDir, s3users.CredentialsFile)
		if cfg.RootAccessKey != "" {
			creds = "access key " + cfg.RootAccessKey + " (from the configuration)"
		}
		fmt.Fprintf(tw, "  S3 credentials\t%s\n", creds)
	}
	tw.Flush()
	fmt.Fprintf(w, "Check it with: hanode status --data-dir %s --controllers %s\n", cfg.DataDir, strings.Join(cfg.Controllers, ","))
	if cfg.Has(config.RoleController) {
		fmt.Fprintf(w, "Sign in to the web UI with a credential from: hanode credential create --level admin --data-dir %s --controllers %s\n", cfg.DataDir, strings.Join(cfg.Controllers, ","))
	}
}

type initCmd struct{}

func (initCmd) Run(e *Env) error {
	cfg, _, err := e.Config()
	if err != nil {
		return err
	}
	dir := cfg.PKIDir()
	if pki.Exists(dir) {
		if _, err := os.Stat(filepath.Join(dir, pki.CAKeyFile)); errors.Is(err, os.ErrNotExist) {
			return usagef("%s already holds a certificate from an existing cluster; refusing to create a new CA over it", dir)
		}
	}
	b, err := pki.EnsureSelfSigned(dir, cfg.ClusterName, identity(cfg), pki.DefaultCAValidity, cfg.CertValidity)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := ensureKeyring(dir); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(e.Stdout, "cluster %q initialised: CA %s, certificate for %s (%s)\n", cfg.ClusterName, b.CAFile(), cfg.Name, b.CertFile())
	// The S3 root user: from the configuration when set, else a fresh pair the first active
	// master registers from this file.
	creds := filepath.Join(cfg.DataDir, s3users.CredentialsFile)
	if _, err := os.Stat(creds); cfg.RootAccessKey == "" && errors.Is(err, os.ErrNotExist) {
		ak, sk := s3users.NewKeyPair()
		if err := s3users.WriteCredentials(creds, ak, sk); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		fmt.Fprintf(e.Stdout, "S3 root credentials: %s\n", creds)
	}
	return nil
}

type versionCmd struct{}

func (versionCmd) Run(e *Env) error {
	fmt.Fprintf(e.Stdout, "hanode %s (commit %s)\n", version.Version, version.Commit)
	return nil
}

type configCmd struct {
	Show configShowCmd `cmd:"" help:"Print the effective configuration and where each value came from."`
}

type configShowCmd struct{}

func (configShowCmd) Run(e *Env) error {
	cfg, origins, err := e.Config()
	if err != nil {
		return err
	}
	return config.Show(e.Stdout, cfg, origins)
}
