package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/hanode/hanode/testenv"
)

type labCmd struct {
	Up        labUpCmd        `cmd:"" help:"Start a lab of N machines on this host and wait until it is ready."`
	Status    labStatusCmd    `cmd:"" help:"Show every lab process: running, paused or dead, and ready or why not."`
	Down      labDownCmd      `cmd:"" help:"Stop every lab process and remove the lab directory."`
	Kill      labSignalCmd    `cmd:"" help:"kill -9 a machine's processes, or one role's (MACHINE[/ROLE])."`
	Pause     labSignalCmd    `cmd:"" help:"Freeze every process of a machine (SIGSTOP)."`
	Resume    labSignalCmd    `cmd:"" help:"Resume a paused machine (SIGCONT)."`
	Restart   labRestartCmd   `cmd:"" help:"Stop and start a machine's processes, or one role's (MACHINE[/ROLE])."`
	Failover  labFailoverCmd  `cmd:"" help:"Measure active-master failover: kill -9 the master (also the Raft leader) N times."`
	Partition labPartitionCmd `cmd:"" help:"Cut a machine off the lab network (docker driver)."`
	Heal      labHealCmd      `cmd:"" help:"Reconnect partitioned machines (all, or MACHINE) with their addresses (docker driver)."`
}

type labDir struct {
	Dir string `default:"hanode-lab" help:"The lab's directory (state, data, logs)."`
}

func (d labDir) load() (*testenv.Lab, testenv.Driver, error) {
	l, err := testenv.Load(d.Dir)
	if err != nil {
		return nil, nil, usagef("%v (start one with `hanode lab up --dir %s`)", err, d.Dir)
	}
	drv, err := testenv.NewDriver(l.Driver)
	return l, drv, err
}

func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

type labUpCmd struct {
	labDir
	Machines      int           `default:"3" help:"How many machines."`
	Driver        string        `default:"process" enum:"process,docker" help:"What a machine is: process (loopback addresses 127.0.10.i) or docker (a container installed from the .deb, on a private network)."`
	Package       string        `help:"docker driver: the hanode .deb to install (default: the newest dist/hanode_*_ARCH.deb, from make packages)." type:"path"`
	AddressPrefix string        `default:"127.0.10" help:"First three octets of the machines' loopback addresses (process driver)."`
	Arg           []string      `help:"Extra flag for every lab process, e.g. --arg=--leader-ttl=5s (repeatable)."`
	Timeout       time.Duration `default:"90s" help:"How long to wait for the lab to be ready."`
}

func (c labUpCmd) Run(e *Env) error {
	ctx, cancel := interruptible()
	defer cancel()
	_, err := testenv.Up(ctx, testenv.Spec{Machines: c.Machines, Dir: c.Dir, Driver: c.Driver,
		AddressPrefix: c.AddressPrefix, ExtraArgs: c.Arg, ReadyTimeout: c.Timeout, Package: c.Package}, e.Stdout)
	if err != nil {
		return fmt.Errorf("lab up: %w (inspect with `hanode lab status --dir %s`, remove with `hanode lab down --dir %s`)", err, c.Dir, c.Dir)
	}
	return nil
}

type labStatusCmd struct{ labDir }

func (c labStatusCmd) Run(e *Env) error {
	l, drv, err := c.load()
	if err != nil {
		return err
	}
	ctx, cancel := interruptible()
	defer cancel()
	fmt.Fprintf(e.Stdout, "lab in %s (driver %s), env file %s\n", l.Dir, l.Driver, filepath.Join(l.Dir, testenv.EnvFile))
	return l.PrintStatus(ctx, drv, e.Stdout)
}

type labDownCmd struct {
	labDir
	Keep bool `help:"Keep the lab directory (data and logs)."`
}

func (c labDownCmd) Run(e *Env) error {
	l, drv, err := c.load()
	if err != nil {
		return err
	}
	if err := l.Down(drv, c.Keep); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "lab in %s is down\n", l.Dir)
	return nil
}

type labSignalCmd struct {
	labDir
	Target string `arg:"" help:"MACHINE or MACHINE/ROLE, e.g. m1 or m1/controller."`
}

func (c labSignalCmd) Run(e *Env) error {
	l, drv, err := c.load()
	if err != nil {
		return err
	}
	sig := map[string]string{"kill": "KILL", "pause": "STOP", "resume": "CONT"}[e.kctx.Selected().Name]
	if err := l.Signal(drv, c.Target, sig); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s: %s\n", e.kctx.Selected().Name, c.Target)
	return nil
}

type labRestartCmd struct {
	labDir
	Target  string        `arg:"" help:"MACHINE or MACHINE/ROLE."`
	Timeout time.Duration `default:"60s" help:"How long to wait for the restarted processes to be ready."`
}

func (c labRestartCmd) Run(e *Env) error {
	l, drv, err := c.load()
	if err != nil {
		return err
	}
	ctx, cancel := interruptible()
	defer cancel()
	start := time.Now()
	if err := l.Restart(ctx, drv, c.Target, c.Timeout); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "restarted %s; ready in %s\n", c.Target, time.Since(start).Round(100*time.Millisecond))
	return nil
}

type labFailoverCmd struct {
	labDir
	Runs   int    `default:"10" help:"How many failovers to measure."`
	Signal string `default:"KILL" enum:"KILL,TERM" help:"KILL (a crash) or TERM (a graceful stop, which resigns)."`
}

func (c labFailoverCmd) Run(e *Env) error {
	l, drv, err := c.load()
	if err != nil {
		return err
	}
	ctx, cancel := interruptible()
	defer cancel()
	_, err = l.MeasureFailover(ctx, drv, c.Runs, c.Signal, e.Stdout)
	return err
}

type labPartitionCmd struct {
	labDir
	Machine string `arg:"" help:"The machine to cut off, e.g. m1."`
}

func (c labPartitionCmd) Run(e *Env) error {
	l, drv, err := c.load()
	if err != nil {
		return err
	}
	if err := l.Partition(drv, c.Machine); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "partitioned %s (heal with `hanode lab heal --dir %s`)\n", c.Machine, c.Dir)
	return nil
}

type labHealCmd struct {
	labDir
	Machine string `arg:"" optional:"" help:"The machine to reconnect (default: every machine)."`
}

func (c labHealCmd) Run(e *Env) error {
	l, drv, err := c.load()
	if err != nil {
		return err
	}
	if err := l.Heal(drv, c.Machine); err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, "healed", map[bool]string{true: "every machine", false: c.Machine}[c.Machine == ""])
	return nil
}
