package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/testenv"
	"github.com/hanode/hanode/testenv/chaos"
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
	Chaos     labChaosCmd     `cmd:"" help:"Record S3 histories under faults, one fault family at a time, and check them for linearizability."`
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
	Agent         bool          `default:"true" negatable:"" help:"Process driver: one agent per machine starts its roles and restarts them when they die (--no-agent: the lab starts every role process itself)."`
}

func (c labUpCmd) Run(e *Env) error {
	ctx, cancel := interruptible()
	defer cancel()
	_, err := testenv.Up(ctx, testenv.Spec{Machines: c.Machines, Dir: c.Dir, Driver: c.Driver,
		AddressPrefix: c.AddressPrefix, ExtraArgs: c.Arg, ReadyTimeout: c.Timeout, Package: c.Package, Supervised: c.Agent}, e.Stdout)
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

type labChaosCmd struct {
	labDir
	Duration time.Duration `default:"60s" help:"How long each fault family's fault phase lasts."`
	Faults   string        `default:"all" help:"Fault families to run in turn, comma-separated: all, or kill-master, kill-leader, kill-datanode, kill-coordinator, pause-master, pause-leader, pause-datanode, pause-coordinator, partition (docker driver)."`
	Clients  int           `default:"6" help:"Concurrent S3 clients."`
	Keys     int           `default:"4" help:"Keys shared by all clients (each also writes keys of its own)."`
	Hold     time.Duration `default:"6s" help:"The longest a fault lasts (a killed process stays down, a paused one frozen, a machine cut off); each lasts half to all of it."`
	Quiet    time.Duration `default:"3s" help:"The longest pause between two faults."`
	Out      string        `help:"Where a failed family's history, timeline and visualisation go (default DIR/chaos)." type:"path"`
	Seed     uint64        `help:"Seed of the workload's and the faults' choices (default: random, printed)."`
}

func (c labChaosCmd) Run(e *Env) error {
	l, drv, err := c.load()
	if err != nil {
		return err
	}
	fams, err := chaos.ParseFamilies(c.Faults, drv)
	if err != nil {
		return usagef("--faults: %v", err)
	}
	ctx, cancel := interruptible()
	defer cancel()
	reports, err := chaos.Run(ctx, chaos.Config{Lab: l, Driver: drv, Families: fams, Duration: c.Duration,
		Clients: c.Clients, Keys: c.Keys, Hold: c.Hold, Quiet: c.Quiet, OutDir: c.Out, Log: e.Stdout, Seed: c.Seed})
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FAMILY\tOPS\tFAULTS\tFAILED REQUESTS\tKEYS READ BACK\tVERDICT\tHISTORY")
	failed := 0
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Family, r.Ops, len(r.Faults), r.Unknown, r.Keys, r.Verdict, r.Dir)
		if r.Verdict != chaos.VerdictOK {
			failed++
		}
	}
	_ = tw.Flush()
	if err != nil {
		return fmt.Errorf("lab chaos: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("lab chaos: %d of %d fault families failed the check (see the problems above)", failed, len(reports))
	}
	return nil
}
