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
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/pki"
	"github.com/hanode/hanode/roles"
	"github.com/hanode/hanode/version"
)

type runCmd struct{}

func (runCmd) Run(e *Env) error {
	cfg, _, err := e.Config()
	if err != nil {
		return err
	}
	log := newLogger(e.Stderr, cfg)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	bundle, err := loadOrInitPKI(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	start := time.Now()
	return roles.Run(ctx, roles.Options{
		Config:  cfg,
		Bundle:  bundle,
		Logger:  log,
		Version: version.Version,
		OnReady: func(eps roles.Endpoints) { printReady(e.Stdout, cfg, bundle, eps, time.Since(start)) },
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

// identity is this machine's certificate identity: its name, roles and every address it is
// reached at.
func identity(cfg *config.Config) pki.Identity {
	id := pki.Identity{Machine: cfg.Name, Roles: cfg.Roles(), DNSNames: []string{"localhost", cfg.Name}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	for _, a := range []string{cfg.Address, cfg.BindAddress} {
		if ip := net.ParseIP(a); ip != nil {
			if !ip.IsUnspecified() {
				id.IPs = append(id.IPs, ip)
			}
		} else if a != "" && a != cfg.Name {
			id.DNSNames = append(id.DNSNames, a)
		}
	}
	return id
}

// loadOrInitPKI returns this machine's TLS bundle. A machine that holds the CA key (the first
// controller, the appliance) creates or refreshes its own certificate; any other machine must
// already have been given one.
func loadOrInitPKI(cfg *config.Config) (*pki.Bundle, error) {
	dir := cfg.PKIDir()
	_, caKeyErr := os.Stat(filepath.Join(dir, pki.CAKeyFile))
	bootstrap := cfg.Has(config.RoleController) && len(cfg.InitialCluster) == 1 && len(cfg.Join) == 0
	if caKeyErr == nil || (!pki.Exists(dir) && bootstrap) {
		b, err := pki.EnsureSelfSigned(dir, cfg.ClusterName, identity(cfg), pki.DefaultCAValidity, pki.DefaultNodeValidity)
		if err != nil {
			return nil, fmt.Errorf("initialise certificates in %s: %w", dir, err)
		}
		return b, nil
	}
	if !pki.Exists(dir) {
		return nil, usagef("no certificates in %s: this machine is not part of a cluster yet; create the CA with `hanode init` on the first controller and give this machine a certificate (docs/operations.md)", dir)
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
		{config.RoleController, "admin API and web UI"},
		{config.RoleDatanode, "datanode chunk API"},
		{config.RoleAgent, "agent API"},
	} {
		if ep, ok := eps[row.role]; ok {
			fmt.Fprintf(tw, "  %s\t%s\n", row.what, ep)
		}
	}
	if cfg.Has(config.RoleController) {
		fmt.Fprintf(tw, "  etcd client\t%s\n", cfg.URL(cfg.Address, cfg.EtcdClientPort))
	}
	fmt.Fprintf(tw, "  CA certificate\t%s\n", b.CAFile())
	tw.Flush()
	fmt.Fprintf(w, "Check it with: hanode status --data-dir %s --controllers %s\n", cfg.DataDir, strings.Join(cfg.Controllers, ","))
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
	b, err := pki.EnsureSelfSigned(dir, cfg.ClusterName, identity(cfg), pki.DefaultCAValidity, pki.DefaultNodeValidity)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(e.Stdout, "cluster %q initialised: CA %s, certificate for %s (%s)\n", cfg.ClusterName, b.CAFile(), cfg.Name, b.CertFile())
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
