package testenv

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hanode/hanode/config"
)

// bootstrap brings the planned machines up exactly as an operator would: machine 1 runs
// `hanode init` and starts its controller alone; a join token is created on it; every other
// machine runs `hanode join --server ... ` with the token (passed in the environment, so that it
// is in no command line and no state file) and starts its controller, which joins etcd as a
// learner; then every other role starts. Finally an admin credential is created for DIR/env.
func (l *Lab) bootstrap(ctx context.Context, drv Driver, timeout time.Duration) error {
	first := &l.Machines[0]
	if out, err := drv.Run(ctx, l, first, l.machineArgs(first, "init"), nil); err != nil {
		return fmt.Errorf("%s: hanode init: %w\n%s", first.Name, err, out)
	}
	if err := l.startRole(ctx, drv, config.RoleController, first); err != nil {
		return err
	}
	if err := l.Save(); err != nil {
		return err
	}
	if err := l.WaitReady(ctx, drv, l.processesOf(config.RoleController, first), timeout); err != nil {
		return err
	}
	ac, err := l.AdminClient([]string{l.Endpoints.Controllers[0]})
	if err != nil {
		return err
	}
	if len(l.Machines) > 1 {
		var tok struct {
			Token string `json:"token"`
		}
		if _, err := ac.Do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"ttl": "1h", "uses": len(l.Machines) - 1, "description": "lab up"}, &tok); err != nil {
			return fmt.Errorf("create a join token on %s: %w", first.Name, err)
		}
		for mi := 1; mi < len(l.Machines); mi++ {
			m := &l.Machines[mi]
			args := append(l.machineArgs(m, "join"), "--server", l.Endpoints.Controllers[0])
			if out, err := drv.Run(ctx, l, m, args, []string{"HANODE_TOKEN=" + tok.Token}); err != nil {
				return fmt.Errorf("%s: hanode join: %w\n%s", m.Name, err, out)
			}
		}
		var joining []*Machine
		for mi := 1; mi < len(l.Machines); mi++ {
			joining = append(joining, &l.Machines[mi])
		}
		if err := l.startRole(ctx, drv, config.RoleController, joining...); err != nil {
			return err
		}
		if err := l.Save(); err != nil {
			return err
		}
		if err := l.WaitReady(ctx, drv, l.processesOf(config.RoleController, joining...), timeout); err != nil {
			return err
		}
	}
	for _, role := range roleOrder[1:] {
		var ms []*Machine
		for mi := range l.Machines {
			ms = append(ms, &l.Machines[mi])
		}
		if err := l.startRole(ctx, drv, role, ms...); err != nil {
			return err
		}
	}
	if err := l.Save(); err != nil {
		return err
	}
	if err := l.WaitReady(ctx, drv, nil, timeout); err != nil {
		return err
	}
	var cred struct {
		Credential string `json:"credential"`
	}
	if _, err := ac.Do(ctx, http.MethodPost, "/v1/credentials", map[string]any{"level": "admin", "description": "lab env file"}, &cred); err != nil {
		return fmt.Errorf("create the lab's admin credential: %w", err)
	}
	l.credential = cred.Credential
	var user struct {
		AccessKey string `json:"access_key"`
		SecretKey string `json:"secret_key"`
	}
	if _, err := ac.Do(ctx, http.MethodPost, "/v1/s3/users", map[string]any{"description": "lab env file"}, &user); err != nil {
		return fmt.Errorf("create the lab's S3 user: %w", err)
	}
	l.s3Key = [2]string{user.AccessKey, user.SecretKey}
	return l.Save()
}

// machineArgs are the flags of a one-shot command (init, join) for machine m.
func (l *Lab) machineArgs(m *Machine, cmd string) []string {
	args := []string{cmd, "--name", m.Name, "--address", m.Address, "--data-dir", m.DataDir,
		"--cluster-name", l.ClusterName, "--role", strings.Join(m.Roles, ",")}
	return append(args, l.ExtraArgs...)
}

// startRole starts role's process on each of ms that runs it. In a supervised lab starting
// the controller starts the machine's agent, which starts every role; the other roles are
// then started already.
func (l *Lab) startRole(ctx context.Context, drv Driver, role string, ms ...*Machine) error {
	for _, m := range ms {
		for pi := range m.Processes {
			p := &m.Processes[pi]
			switch {
			case l.Supervised && role == config.RoleController:
				if p.Roles[0] != config.RoleAgent {
					continue
				}
			case l.Supervised:
				continue
			case p.Roles[0] != role:
				continue
			}
			if err := drv.Start(ctx, l, m, p); err != nil {
				return fmt.Errorf("start %s/%s: %w", m.Name, role, err)
			}
		}
	}
	return nil
}

// processesOf returns role's processes on ms.
func (l *Lab) processesOf(role string, ms ...*Machine) []*Process {
	var out []*Process
	for _, m := range ms {
		for pi := range m.Processes {
			if m.Processes[pi].Roles[0] == role {
				out = append(out, &m.Processes[pi])
			}
		}
	}
	return out
}
