package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/keyspace"
)

// MachineState is what the active master keeps in etcd about a datanode machine
// (keyspace.RepairMachines), so that a new master resumes where the last one stopped: the clock
// of a dead machine keeps running across failovers, and a wiped store is checked once.
type MachineState struct {
	// Store is the store identity last seen registered on the machine.
	Store string `json:"store,omitempty"`
	// Checked: a complete sweep compared the replicas recorded on the machine with that
	// store's inventory. Until then missing replicas are lost replicas (a wiped store).
	Checked bool `json:"checked"`
	// DownSince is when the master first saw the machine with no registered datanode.
	DownSince *time.Time `json:"down_since,omitempty"`

	rev int64 // mod revision of the key (0: absent)
}

// view is one round's picture of the datanode machines.
type view struct {
	at       time.Time
	live     map[string]cluster.Registration // registered datanodes
	states   map[string]*MachineState
	draining map[string]bool
	grace    time.Duration
	zones    int // distinct zones of the live, undrained datanodes
}

// zoneOf is machine m's zone label; a machine without one is its own zone (as placement has it).
func (v *view) zoneOf(m string) string {
	if z := v.live[m].Zone; z != "" {
		return "zone:" + z
	}
	return "machine:" + m
}

// countZones sets v.zones from the live, undrained datanodes.
func (v *view) countZones() {
	zs := map[string]bool{}
	for m := range v.live {
		if !v.draining[m] {
			zs[v.zoneOf(m)] = true
		}
	}
	v.zones = len(zs)
}

func (v *view) dead(m string) bool {
	if _, ok := v.live[m]; ok {
		return false
	}
	st := v.states[m]
	return st != nil && st.DownSince != nil && v.at.Sub(*st.DownSince) >= v.grace
}

// suspect: live, but its store's inventory has not been checked against the records.
func (v *view) suspect(m string) bool {
	if _, ok := v.live[m]; !ok {
		return false
	}
	st := v.states[m]
	return st == nil || !st.Checked
}

func (v *view) state(m string) string {
	_, live := v.live[m]
	switch {
	case live && v.suspect(m):
		return "checking"
	case live && v.draining[m]:
		return "draining"
	case live:
		return "live"
	case v.dead(m):
		return "dead"
	}
	return "down"
}

// machines reads the datanode registrations, the drain marks and the machine states, and
// brings the states up to date under guard: a registered datanode clears DownSince, and one
// with a store identity the state does not know starts unchecked; a machine with a state but
// no datanode gets DownSince = now. extra names machines the records mention that have no
// state yet (they get one, down from now).
func (r *Repairer) machines(ctx context.Context, extra map[string]bool) (*view, error) {
	now := time.Now().UTC()
	regs, err := cluster.Nodes(ctx, r.Etcd)
	if err != nil {
		return nil, err
	}
	v := &view{at: now, live: map[string]cluster.Registration{}, states: map[string]*MachineState{}, draining: map[string]bool{}, grace: r.Grace}
	for _, reg := range regs {
		if reg.Role == config.RoleDatanode {
			v.live[reg.Machine] = reg
		}
	}
	resp, err := r.Etcd.Get(ctx, keyspace.Drain, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("read drain marks: %w", err)
	}
	for _, kv := range resp.Kvs {
		v.draining[string(kv.Key[len(keyspace.Drain):])] = true
	}
	resp, err = r.Etcd.Get(ctx, keyspace.RepairMachines, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read machine states: %w", err)
	}
	for _, kv := range resp.Kvs {
		st := &MachineState{}
		if json.Unmarshal(kv.Value, st) != nil {
			st = &MachineState{} // unreadable: rewritten below
		}
		st.rev = kv.ModRevision
		v.states[string(kv.Key[len(keyspace.RepairMachines):])] = st
	}
	names := map[string]bool{}
	for m := range v.live {
		names[m] = true
	}
	for m := range v.states {
		names[m] = true
	}
	for m := range extra {
		names[m] = true
	}
	for m := range names {
		old := v.states[m]
		st := MachineState{}
		if old != nil {
			st = *old
		}
		if reg, ok := v.live[m]; ok {
			st.DownSince = nil
			if reg.Store != "" && reg.Store != st.Store {
				st.Store, st.Checked = reg.Store, false
			}
		} else if st.DownSince == nil {
			st.DownSince = &now
		}
		if old != nil && old.Store == st.Store && old.Checked == st.Checked && equalTime(old.DownSince, st.DownSince) {
			continue
		}
		rev, err := r.putState(ctx, m, st, stateRev(old))
		if err != nil {
			return nil, err
		}
		st.rev = rev
		v.states[m] = &st
		if old == nil || old.Store != st.Store {
			r.Log.Info("datanode store seen; its recorded replicas will be checked against its inventory", "machine", m, "store", st.Store)
		}
		if st.DownSince != nil && (old == nil || old.DownSince == nil) {
			r.Log.Info("datanode down; its replicas are re-created if it stays down", "machine", m, "grace", r.Grace)
		}
	}
	if err := r.removals(ctx, v); err != nil {
		return nil, err
	}
	v.countZones()
	return v, nil
}

func stateRev(s *MachineState) int64 {
	if s == nil {
		return 0
	}
	return s.rev
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// putState writes a machine's state if its key is still at rev (0: absent), under the fence,
// with the extra ops.
func (r *Repairer) putState(ctx context.Context, m string, st MachineState, rev int64, extra ...clientv3.Op) (int64, error) {
	val, _ := json.Marshal(st)
	k := keyspace.RepairMachines + m
	ok, resp, err := r.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", rev)}, append([]clientv3.Op{clientv3.OpPut(k, string(val))}, extra...))
	if err != nil {
		return 0, fmt.Errorf("record the state of machine %s: %w", m, err)
	}
	if !ok {
		return 0, fmt.Errorf("record the state of machine %s: changed meanwhile", m)
	}
	return resp.Header.Revision, nil
}

// markChecked records that a complete sweep checked the replicas on the machines of checked
// against their store, unless their state changed since (a store replaced again).
func (r *Repairer) markChecked(ctx context.Context, v *view, checked []string) error {
	sort.Strings(checked)
	for _, m := range checked {
		st := v.states[m]
		if st == nil || st.Checked {
			continue
		}
		nst := *st
		nst.Checked = true
		if _, err := r.putState(ctx, m, nst, st.rev); err != nil {
			r.Log.Info("store state changed during the sweep; checking it again", "machine", m, "err", err)
			continue
		}
		r.Log.Info("replicas recorded on the datanode checked against its store", "machine", m, "store", st.Store)
	}
	return nil
}

// MarkRemoved asks the active master to count machine m's replicas lost at once, without
// waiting for repair-grace (hanode node remove --force, from any controller's admin API). It
// writes a request, not the machine's state: the master alone writes that, under its fence,
// at its next round (a watch starts one), and deletes the request in the same transaction.
func MarkRemoved(ctx context.Context, cli *clientv3.Client, m string) error {
	if _, err := cli.Put(ctx, keyspace.RepairRemoved+m, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("ask the master to count machine %s's replicas lost: %w", m, err)
	}
	return nil
}

// removals carries out the requests of MarkRemoved: a machine with no registered datanode is
// down since the epoch (dead at once); a request for a machine whose datanode registered again
// is dropped. Each state write and its request's deletion are one fenced transaction.
func (r *Repairer) removals(ctx context.Context, v *view) error {
	resp, err := r.Etcd.Get(ctx, keyspace.RepairRemoved, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read removal requests: %w", err)
	}
	gone := time.Unix(0, 0).UTC()
	for _, kv := range resp.Kvs {
		m := string(kv.Key[len(keyspace.RepairRemoved):])
		done := clientv3.OpDelete(string(kv.Key))
		held := clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)
		if _, live := v.live[m]; live {
			if _, _, err := r.txn(ctx, []clientv3.Cmp{held}, []clientv3.Op{done}); err != nil {
				return fmt.Errorf("drop the removal request of live machine %s: %w", m, err)
			}
			continue
		}
		st := MachineState{}
		if old := v.states[m]; old != nil {
			st = *old
		}
		st.DownSince = &gone
		rev, err := r.putState(ctx, m, st, stateRev(v.states[m]), done)
		if err != nil {
			return err
		}
		st.rev = rev
		v.states[m] = &st
		r.Log.Info("machine removed: its replicas are lost, repaired at once", "machine", m)
	}
	return nil
}
