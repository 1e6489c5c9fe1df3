package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hanode/hanode/agent"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/sdnotify"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/version"
)

// agentCmd is the machine's supervisor (the systemd unit's command): it runs the machine's
// roles as child processes of this binary, as their desired state in etcd says.
type agentCmd struct{}

// notForChildren are flags the role processes do not get: their role is their own, and the
// machine has joined (the agent joined it) by the time they start.
var notForChildren = []string{"role", "server", "token", "credential", "config"}

func (agentCmd) Run(e *Env) error {
	cfg, origins, err := e.Config()
	if err != nil {
		return err
	}
	log := newLogger(e.Stderr, cfg).With("role", config.RoleAgent, "node", cfg.Name)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	bundle, err := loadOrInitPKI(ctx, cfg, origins)
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("agent: find this binary: %w", err)
	}
	base := withMachineEtcd(e.childArgs(), cfg, origins)
	m := service.NewMachine(cfg, bundle, version.Version)
	defer m.Close()
	r := agent.NewSupervisingRole(m, log, agent.SuperviseOptions{
		Binary: bin,
		Args:   func(role string) []string { return append(slices.Clone(base), "--role", role) },
		Env:    childEnv(),
		Roles:  cfg.Roles(),
	})
	start := time.Now()
	if err := r.Start(ctx); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if r.Ready() == nil && r.Supervisor().AllReady() {
				log.Info("agent and its roles ready", "after", time.Since(start).Round(time.Millisecond))
				// systemd (Type=notify): started means every role the machine should run serves.
				if err := sdnotify.Ready(); err != nil {
					log.Warn("cannot notify systemd", "err", err)
				}
				return
			}
		}
	}()
	<-ctx.Done()
	_ = sdnotify.Stopping()
	log.Info("stopping the machine's roles: proxy and coordinator first, controller last")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	r.Stop(sctx)
	return nil
}

// childArgs is the command line of a role process without its --role: `run`, the
// configuration file, and every other flag set on this command line, with its value.
func (e *Env) childArgs() []string {
	args := []string{"run"}
	if f := e.cli.ConfigFile; f != "" {
		args = append(args, "--config", f)
	}
	seen := map[string]bool{}
	for _, p := range e.kctx.Path {
		f := p.Flag
		if f == nil || seen[f.Name] || slices.Contains(notForChildren, f.Name) {
			continue
		}
		seen[f.Name] = true
		if f.Target.Kind() == reflect.Bool {
			args = append(args, "--"+f.Name+"="+flagValue(f.Target))
		} else {
			args = append(args, "--"+f.Name, flagValue(f.Target))
		}
	}
	return args
}

// withMachineEtcd adds to a role process's command line the etcd endpoints the machine's
// configuration resolves to when it runs a controller and names none: a role process resolves
// them for its own role alone, and a role other than the controller would then take the join's
// endpoints from cluster.json (the first controller's only) instead of the machine's own etcd
// member, and lose etcd whenever that one machine is cut off.
func withMachineEtcd(args []string, cfg *config.Config, origins config.Origins) []string {
	if !cfg.Has(config.RoleController) || origins["etcd-endpoints"].Kind != "default" || len(cfg.EtcdEndpoints) == 0 || slices.Contains(args, "--etcd-endpoints") {
		return args
	}
	return append(args, "--etcd-endpoints", strings.Join(cfg.EtcdEndpoints, ","))
}

// flagValue prints a parsed flag's value the way kong reads it back.
func flagValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	}
	return fmt.Sprint(v.Interface())
}

// childEnv is the agent's environment without NOTIFY_SOCKET: systemd hears from the agent
// alone (READY once every role is ready).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	return env
}
