// Package state is the agents' state in etcd: per machine, the desired state (which roles it
// runs and whether each should be running; a versioned record changed only through the
// controllers' admin API, except that a machine's agent creates it once from its configuration)
// and the actual state its agent reports (per role: pid, started, restarts, last exit, ready).
//
// Keys (internal/keyspace):
//
//	/hanode/agents/<machine>/desired   Desired, JSON; Version grows by one with every change
//	/hanode/agents/<machine>/actual    Actual, JSON, on the agent's lease (gone when it dies)
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/keyspace"
)

// Key names.
const (
	desiredSuffix = "/desired"
	actualSuffix  = "/actual"
)

// DesiredKey is the etcd key of machine's desired state.
func DesiredKey(machine string) string { return keyspace.Agents + machine + desiredSuffix }

// ActualKey is the etcd key of machine's reported state.
func ActualKey(machine string) string { return keyspace.Agents + machine + actualSuffix }

// Want is what one role of a machine should be doing.
type Want struct {
	Role string `json:"role"`
	// Run: the agent keeps the role's process running; false: stopped (and not restarted).
	Run bool `json:"run"`
	// Restart is a generation: each restart request adds one, and the agent restarts the role's
	// process when it sees a generation above the one it last applied.
	Restart int64 `json:"restart"`
}

// Desired is a machine's desired state.
type Desired struct {
	Machine string `json:"machine"`
	// Version is 1 when the record is created and grows by one with every change.
	Version int64     `json:"version"`
	Roles   []Want    `json:"roles"`
	Updated time.Time `json:"updated"`
	By      string    `json:"by"` // who made the last change: a principal, or "agent" for the seed
}

// Role returns the want of role, or nil when the machine has no such role.
func (d *Desired) Role(role string) *Want {
	for i := range d.Roles {
		if d.Roles[i].Role == role {
			return &d.Roles[i]
		}
	}
	return nil
}

// Names are the roles of the record, in its order.
func (d *Desired) Names() []string {
	var out []string
	for _, w := range d.Roles {
		out = append(out, w.Role)
	}
	return out
}

// Clone returns a deep copy.
func (d *Desired) Clone() *Desired {
	c := *d
	c.Roles = slices.Clone(d.Roles)
	return &c
}

// Actual is what a machine's agent reports.
type Actual struct {
	Machine  string      `json:"machine"`
	AgentPID int         `json:"agent_pid"`
	Version  int64       `json:"version"` // the desired version the agent applies
	Source   string      `json:"source"`  // where that desired state came from: etcd, cache or config
	Reported time.Time   `json:"reported"`
	Roles    []RoleState `json:"roles"`
}

// Role returns the state of role, or nil.
func (a *Actual) Role(role string) *RoleState {
	for i := range a.Roles {
		if a.Roles[i].Role == role {
			return &a.Roles[i]
		}
	}
	return nil
}

// States of a role's process.
const (
	StateStarting = "starting" // running, not ready yet
	StateRunning  = "running"  // running and ready
	StateStopping = "stopping"
	StateStopped  = "stopped" // desired stopped
	StateBackoff  = "backoff" // exited; waiting before the next start
)

// RoleState is one role's process as its agent sees it.
type RoleState struct {
	Role    string    `json:"role"`
	Run     bool      `json:"run"` // desired
	State   string    `json:"state"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Restarts counts the process's starts after the first (crashes and requested restarts).
	Restarts int `json:"restarts"`
	// Failures counts the exits in a row nobody asked for (reset after a long healthy run);
	// above 1 the role is in a crash loop and waits (backoff) before each start.
	Failures     int       `json:"failures"`
	NextStart    time.Time `json:"next_start,omitzero"` // in backoff: when it starts again
	Ready        bool      `json:"ready"`
	NotReady     string    `json:"not_ready,omitempty"` // why not, when running
	RestartGen   int64     `json:"restart_gen"`         // the restart generation applied
	Adopted      bool      `json:"adopted,omitempty"`   // started by an earlier agent process
	LastExit     *Exit     `json:"last_exit,omitempty"`
	ReadySince   time.Time `json:"ready_since,omitzero"`
	StartFailure string    `json:"start_failure,omitempty"` // the binary could not be started
}

// Exit is how a role's process ended.
type Exit struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"` // "exit status 1", "signal: killed", "unknown (adopted)"
	// Reason: "crashed" (nobody asked), "stopped" or "restarted" (asked), "agent stopped".
	Reason string `json:"reason"`
	// Tail holds the last lines the process logged, for a crash.
	Tail []string `json:"tail,omitempty"`
}

// ErrNoAgent is returned for a machine without a desired-state record: no agent ever ran there.
var ErrNoAgent = errors.New("no agent has registered this machine's roles")

// ReadDesired returns machine's desired state and its etcd mod revision.
func ReadDesired(ctx context.Context, cli *clientv3.Client, machine string) (*Desired, int64, error) {
	resp, err := cli.Get(ctx, DesiredKey(machine))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", DesiredKey(machine), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("machine %s: %w", machine, ErrNoAgent)
	}
	d, err := DecodeDesired(resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", DesiredKey(machine), err)
	}
	return d, resp.Kvs[0].ModRevision, nil
}

// DecodeDesired parses a desired-state record.
func DecodeDesired(b []byte) (*Desired, error) {
	var d Desired
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if d.Machine == "" || d.Version < 1 {
		return nil, fmt.Errorf("not a desired-state record: machine %q, version %d", d.Machine, d.Version)
	}
	return &d, nil
}

// Seed creates machine's desired state from roles (each to run) unless a record exists; it
// returns the record in etcd either way.
func Seed(ctx context.Context, cli *clientv3.Client, machine string, roles []string) (*Desired, error) {
	d := &Desired{Machine: machine, Version: 1, Updated: time.Now().UTC(), By: "agent"}
	for _, r := range roles {
		d.Roles = append(d.Roles, Want{Role: r, Run: true})
	}
	val, _ := json.Marshal(d)
	key := DesiredKey(machine)
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", key, err)
	}
	if resp.Succeeded {
		return d, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("seed %s: the record vanished; try again", key)
	}
	return DecodeDesired(kvs[0].Value)
}

// Update applies change to machine's desired state and writes it with the next version, if
// nobody changed it meanwhile (else it reads again and retries, up to 20 times, after a short
// random pause). change may refuse with an error, which Update returns unchanged.
func Update(ctx context.Context, cli *clientv3.Client, machine, by string, change func(*Desired) error) (*Desired, error) {
	key := DesiredKey(machine)
	for attempt := range 20 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(1+rand.IntN(10*attempt)) * time.Millisecond):
			}
		}
		d, rev, err := ReadDesired(ctx, cli, machine)
		if err != nil {
			return nil, err
		}
		if err := change(d); err != nil {
			return nil, err
		}
		d.Version++
		d.Updated = time.Now().UTC()
		d.By = by
		val, _ := json.Marshal(d)
		resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", key, err)
		}
		if resp.Succeeded {
			return d, nil
		}
	}
	return nil, fmt.Errorf("write %s: changed concurrently too often; try again", key)
}

// Machine is one machine's desired and reported state; Actual is nil while its agent is down.
type Machine struct {
	Machine string   `json:"machine"`
	Desired *Desired `json:"desired"`
	Actual  *Actual  `json:"actual,omitempty"`
}

// List returns every machine that has a desired state, with its agent's report, by name.
func List(ctx context.Context, cli *clientv3.Client) ([]Machine, error) {
	resp, err := cli.Get(ctx, keyspace.Agents, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", keyspace.Agents, err)
	}
	byName := map[string]*Machine{}
	var names []string
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), keyspace.Agents)
		name, kind, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		m := byName[name]
		if m == nil {
			m = &Machine{Machine: name}
			byName[name] = m
			names = append(names, name)
		}
		switch "/" + kind {
		case desiredSuffix:
			if m.Desired, err = DecodeDesired(kv.Value); err != nil {
				return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
			}
		case actualSuffix:
			var a Actual
			if err := json.Unmarshal(kv.Value, &a); err != nil {
				return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			m.Actual = &a
		}
	}
	slices.Sort(names)
	out := make([]Machine, 0, len(names))
	for _, n := range names {
		if byName[n].Desired != nil {
			out = append(out, *byName[n])
		}
	}
	return out, nil
}

// Get returns one machine's desired and reported state.
func Get(ctx context.Context, cli *clientv3.Client, machine string) (*Machine, error) {
	d, _, err := ReadDesired(ctx, cli, machine)
	if err != nil {
		return nil, err
	}
	m := &Machine{Machine: machine, Desired: d}
	resp, err := cli.Get(ctx, ActualKey(machine))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ActualKey(machine), err)
	}
	if len(resp.Kvs) == 1 {
		var a Actual
		if err := json.Unmarshal(resp.Kvs[0].Value, &a); err != nil {
			return nil, fmt.Errorf("decode %s: %w", ActualKey(machine), err)
		}
		m.Actual = &a
	}
	return m, nil
}
