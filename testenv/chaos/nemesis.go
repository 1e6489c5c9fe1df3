package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/testenv"
)

// A fault family is one kind of fault (kill -9 and restart, SIGSTOP and SIGCONT, or a network
// partition and its heal) applied to one kind of target (the active master's controller, the
// etcd Raft leader's controller, a datanode, a coordinator, a machine). A run injects faults
// of one family only, so that a violation points at one cause (as etcd's robustness tests).

// Family is a fault family.
type Family struct {
	Name   string
	Action string // "kill", "pause" or "partition"
	Target string // "master", "leader", "datanode", "coordinator" or "machine"
}

// Families are the fault families, in the order "all" runs them.
func Families() []Family {
	var out []Family
	for _, a := range []string{"kill", "pause"} {
		for _, t := range []string{"master", "leader", "datanode", "coordinator"} {
			out = append(out, Family{Name: a + "-" + t, Action: a, Target: t})
		}
	}
	return append(out, Family{Name: "partition", Action: "partition", Target: "machine"})
}

// ParseFamilies parses a comma-separated list of family names, or "all" (every family the
// driver can inject: partitions need the docker driver).
func ParseFamilies(list string, drv testenv.Driver) ([]Family, error) {
	all := Families()
	var out []Family
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if name == "all" {
			for _, f := range all {
				if f.Action != "partition" || drv.Name() == "docker" {
					out = append(out, f)
				}
			}
			continue
		}
		i := slices.IndexFunc(all, func(f Family) bool { return f.Name == name })
		if i < 0 {
			var names []string
			for _, f := range all {
				names = append(names, f.Name)
			}
			return nil, fmt.Errorf("unknown fault family %q (known: all, %s)", name, strings.Join(names, ", "))
		}
		if all[i].Action == "partition" && drv.Name() != "docker" {
			return nil, fmt.Errorf("fault family %s needs the docker lab driver (this lab's is %s)", name, drv.Name())
		}
		out = append(out, all[i])
	}
	if len(out) == 0 {
		return nil, errors.New("no fault family given")
	}
	return out, nil
}

// Event is one fault of the timeline: what was done to what, when, and when it was undone.
type Event struct {
	At     int64     `json:"at"`            // nanoseconds since the history's start
	End    int64     `json:"end,omitempty"` // when the target was back (restarted and ready, resumed, healed)
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`   // "kill", "pause" or "partition"
	Target string    `json:"target"` // MACHINE/ROLE, or MACHINE for a partition
	Why    string    `json:"why,omitempty"`
	Undo   string    `json:"undo,omitempty"` // "restart", "resume" or "heal"
	Err    string    `json:"error,omitempty"`
}

func (e Event) String() string {
	s := fmt.Sprintf("%8.3fs %s %s", float64(e.At)/1e9, e.Kind, e.Target)
	if e.Why != "" {
		s += " (" + e.Why + ")"
	}
	if e.End > 0 {
		s += fmt.Sprintf("; %s done at %.3fs", e.Undo, float64(e.End)/1e9)
	}
	if e.Err != "" {
		s += "; error: " + e.Err
	}
	return s
}

// nemesis injects the faults of one family into a lab.
type nemesis struct {
	lab    *testenv.Lab
	drv    testenv.Driver
	family Family
	h      *History
	rng    *rand.Rand
	// hold is how long a fault lasts before it is undone: a killed process stays down, a
	// paused one frozen, a partitioned machine cut off.
	hold func() time.Duration
	// quiet is the pause between a fault's end and the next fault.
	quiet func() time.Duration
	log   func(string)
}

// run injects faults until the deadline; each is undone before the next. It returns the
// timeline; an error means the lab could not be brought back.
func (n *nemesis) run(ctx context.Context, until time.Time) ([]Event, error) {
	var events []Event
	for {
		if !sleepUntil(ctx, time.Now().Add(n.quiet()), until) {
			return events, nil
		}
		st, err := n.lab.WaitHealthy(ctx, 90*time.Second)
		if err != nil {
			return events, fmt.Errorf("before a %s fault: %w", n.family.Name, err)
		}
		ev, err := n.inject(ctx, st)
		if err != nil {
			return events, err
		}
		n.log("  " + ev.String())
		events = append(events, ev)
	}
}

// sleepUntil sleeps until t, or returns false at once when t is past the deadline or ctx ends.
func sleepUntil(ctx context.Context, t, deadline time.Time) bool {
	if t.After(deadline) {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(t)):
		return true
	}
}

// target picks the machine and role of the next fault from the cluster's status.
func (n *nemesis) target(st *adminapi.Status) (machine, role, why string, err error) {
	switch n.family.Target {
	case "master":
		if st.Leader == nil {
			return "", "", "", errors.New("no active master")
		}
		return st.Leader.Name, config.RoleController, "active master", nil
	case "leader":
		for _, c := range st.Controllers {
			if c.RaftLeader {
				return c.Name, config.RoleController, "etcd Raft leader", nil
			}
		}
		return "", "", "", errors.New("no etcd Raft leader in the status")
	case "datanode", "coordinator":
		m := n.lab.Machines[n.rng.IntN(len(n.lab.Machines))]
		return m.Name, n.family.Target, "", nil
	case "machine":
		// Every other partition cuts the active master's machine off, the others another one.
		if st.Leader != nil && n.rng.IntN(2) == 0 {
			return st.Leader.Name, "", "the active master's machine", nil
		}
		m := n.lab.Machines[n.rng.IntN(len(n.lab.Machines))]
		return m.Name, "", "", nil
	}
	return "", "", "", fmt.Errorf("unknown target %q", n.family.Target)
}

// inject applies one fault, holds it, and undoes it; the undo runs even when ctx ends, so
// that the lab is never left broken.
func (n *nemesis) inject(ctx context.Context, st *adminapi.Status) (Event, error) {
	machine, role, why, err := n.target(st)
	if err != nil {
		return Event{}, fmt.Errorf("%s: %w", n.family.Name, err)
	}
	target := machine
	if role != "" {
		target += "/" + role
	}
	ev := Event{At: n.h.Now(), Time: time.Now().UTC(), Kind: n.family.Action, Target: target, Why: why}
	switch n.family.Action {
	case "kill":
		ev.Undo = "restart"
		err = n.lab.Signal(n.drv, target, "KILL")
	case "pause":
		ev.Undo = "resume"
		err = n.lab.Signal(n.drv, target, "STOP")
	case "partition":
		ev.Undo = "heal"
		err = n.lab.Partition(n.drv, machine)
	}
	if err != nil {
		ev.Err = err.Error()
		return ev, fmt.Errorf("%s %s: %w", ev.Kind, target, err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(n.hold()):
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	switch n.family.Action {
	case "kill":
		err = n.lab.Restart(uctx, n.drv, target, 90*time.Second)
	case "pause":
		err = n.lab.Signal(n.drv, target, "CONT")
	case "partition":
		err = n.lab.Heal(n.drv, machine)
	}
	ev.End = n.h.Now()
	if err != nil {
		ev.Err = err.Error()
		return ev, fmt.Errorf("%s after %s %s: %w", ev.Undo, ev.Kind, target, err)
	}
	return ev, nil
}

// restore undoes whatever any fault left behind: it heals every partition, resumes every
// paused process, restarts every dead one and waits until the whole lab is ready and healthy.
func restore(ctx context.Context, l *testenv.Lab, drv testenv.Driver) error {
	if drv.Name() == "docker" {
		if err := l.Heal(drv, ""); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
	}
	for mi := range l.Machines {
		m := &l.Machines[mi]
		for pi := range m.Processes {
			p := &m.Processes[pi]
			target := m.Name + "/" + p.Roles[0]
			if drv.Alive(l, m, p) {
				if err := drv.Signal(l, m, p, "CONT"); err != nil {
					return fmt.Errorf("resume %s: %w", target, err)
				}
				continue
			}
			if err := l.Restart(ctx, drv, target, 90*time.Second); err != nil {
				return fmt.Errorf("restart %s: %w", target, err)
			}
		}
	}
	if err := l.WaitReady(ctx, drv, nil, 90*time.Second); err != nil {
		return err
	}
	_, err := l.WaitHealthy(ctx, 90*time.Second)
	return err
}
