// Command pprof runs hanode's roles exactly as `hanode` runs them (roles.Run), configured by the
// HANODE_* environment, under a CPU profile written when it stops (SIGTERM or interrupt). It is
// how bench/proxy.sh profiles the proxy (BENCH_PPROF=1): the same code path, plus the profile.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/roles"
	"github.com/hanode/hanode/security/pki"
)

func main() {
	out := flag.String("cpuprofile", "cpu.pprof", "where to write the CPU profile")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	cfg, _, err := config.Load(config.Sources{Env: os.LookupEnv})
	if err != nil {
		return err
	}
	bundle, err := pki.LoadBundle(cfg.PKIDir())
	if err != nil {
		return fmt.Errorf("certificates (run hanode init first): %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return roles.Run(ctx, roles.Options{Config: cfg, Bundle: bundle, Logger: log, Version: "pprof"})
}
