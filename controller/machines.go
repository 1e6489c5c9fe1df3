package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/agent/state"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/service"
)

// Bounds of what a controller remembers about role processes it saw.
const (
	maxTrackedRoles = 4096 // machine/role pairs; the longest-down ones are forgotten first
	maxRoleEvents   = 512  // role transitions, newest kept
	heartbeatProbe  = 500 * time.Millisecond
)

// trackedRole is a role process the controller saw registered.
type trackedRole struct {
	reg   cluster.Registration
	lease clientv3.LeaseID
	up    bool
	since time.Time // up since, or down since
}

// roleTracker follows the registrations under keyspace.Nodes with a watch and remembers roles
// that went away, so that a killed machine shows as down instead of vanishing from the list. It
// knows what it saw since it started; a controller started later learns controllers from the
// etcd member list and other roles only once they register.
type roleTracker struct {
	cli   *clientv3.Client
	log   *slog.Logger
	now   func() time.Time
	start time.Time

	mu     sync.Mutex
	roles  map[string]*trackedRole // by machine/role
	events []roleEvent             // oldest first, at most maxRoleEvents
	synced bool
}

type roleEvent struct {
	machine string
	adminapi.MachineEvent
}

func newRoleTracker(cli *clientv3.Client, log *slog.Logger) *roleTracker {
	return &roleTracker{cli: cli, log: log, now: time.Now, start: time.Now().UTC(), roles: map[string]*trackedRole{}}
}

// run lists the registrations, then follows them with a watch, until ctx ends; it lists again
// after a watch error (a compaction, a lost connection).
func (t *roleTracker) run(ctx context.Context) {
	for ctx.Err() == nil {
		rev, err := t.list(ctx)
		if err == nil {
			err = t.watch(ctx, rev)
		}
		if ctx.Err() != nil {
			return
		}
		t.log.Debug("role tracker: listing again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (t *roleTracker) list(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := t.cli.Get(lctx, cluster.NodesPrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", cluster.NodesPrefix, err)
	}
	present := map[string]bool{}
	for _, kv := range resp.Kvs {
		var reg cluster.Registration
		if json.Unmarshal(kv.Value, &reg) != nil {
			continue
		}
		present[string(kv.Key)] = true
		t.put(string(kv.Key), reg, clientv3.LeaseID(kv.Lease))
	}
	t.mu.Lock()
	for key, tr := range t.roles {
		if tr.up && !present[cluster.NodesPrefix+key] {
			t.downLocked(tr)
		}
	}
	t.synced = true
	t.mu.Unlock()
	return resp.Header.Revision, nil
}

func (t *roleTracker) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range t.cli.Watch(wctx, cluster.NodesPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch %s: %w", cluster.NodesPrefix, err)
		}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			if ev.Type == clientv3.EventTypeDelete {
				t.mu.Lock()
				if tr, ok := t.roles[strings.TrimPrefix(key, cluster.NodesPrefix)]; ok && tr.up {
					t.downLocked(tr)
				}
				t.mu.Unlock()
				continue
			}
			var reg cluster.Registration
			if json.Unmarshal(ev.Kv.Value, &reg) == nil {
				t.put(key, reg, clientv3.LeaseID(ev.Kv.Lease))
			}
		}
	}
	return errors.New("watch ended")
}

// put records a registration seen at key.
func (t *roleTracker) put(key string, reg cluster.Registration, lease clientv3.LeaseID) {
	id := strings.TrimPrefix(key, cluster.NodesPrefix)
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, ok := t.roles[id]
	if !ok {
		t.evictLocked()
		tr = &trackedRole{}
		t.roles[id] = tr
	}
	if !tr.up {
		tr.up, tr.since = true, t.now().UTC()
		t.eventLocked(reg.Machine, reg.Role, "up")
	}
	tr.reg, tr.lease = reg, lease
}

func (t *roleTracker) downLocked(tr *trackedRole) {
	tr.up, tr.since = false, t.now().UTC()
	t.eventLocked(tr.reg.Machine, tr.reg.Role, "down")
}

func (t *roleTracker) eventLocked(machine, role, what string) {
	if len(t.events) >= maxRoleEvents {
		t.events = append(t.events[:0], t.events[len(t.events)-maxRoleEvents+1:]...)
	}
	t.events = append(t.events, roleEvent{machine: machine, MachineEvent: adminapi.MachineEvent{Time: t.now().UTC(), Role: role, Event: what}})
}

// evictLocked makes room for one more role: the one down the longest goes first.
func (t *roleTracker) evictLocked() {
	if len(t.roles) < maxTrackedRoles {
		return
	}
	victim := ""
	var oldest time.Time
	for id, tr := range t.roles {
		if !tr.up && (victim == "" || tr.since.Before(oldest)) {
			victim, oldest = id, tr.since
		}
	}
	if victim != "" {
		delete(t.roles, victim)
	}
}

// forget drops a machine that left the cluster for good (DELETE /v1/nodes/{id}).
func (t *roleTracker) forget(machine string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, tr := range t.roles {
		if tr.reg.Machine == machine && !tr.up {
			delete(t.roles, id)
		}
	}
}

// snapshot returns the tracked roles and, for machine (if not ""), its events newest first.
func (t *roleTracker) snapshot(machine string) ([]trackedRole, []adminapi.MachineEvent, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]trackedRole, 0, len(t.roles))
	for _, tr := range t.roles {
		out = append(out, *tr)
	}
	var evs []adminapi.MachineEvent
	if machine != "" {
		for i := len(t.events) - 1; i >= 0; i-- {
			if t.events[i].machine == machine {
				evs = append(evs, t.events[i].MachineEvent)
			}
		}
	}
	return out, evs, t.synced
}

// machines builds GET /v1/machines: the tracked roles (read fresh from etcd when the tracker
// has not listed yet), etcd members that are not registered as down controllers, drain marks,
// and each running role's last lease renewal.
func (c *Role) machines(ctx context.Context, only string) ([]adminapi.MachineState, error) {
	tracked, events, synced := c.tracker.snapshot(only)
	if !synced {
		resp, err := c.cli.Get(ctx, cluster.NodesPrefix, clientv3.WithPrefix())
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", cluster.NodesPrefix, err)
		}
		for _, kv := range resp.Kvs {
			var reg cluster.Registration
			if json.Unmarshal(kv.Value, &reg) == nil {
				tracked = append(tracked, trackedRole{reg: reg, lease: clientv3.LeaseID(kv.Lease), up: true})
			}
		}
	}
	byName := map[string]*adminapi.MachineState{}
	get := func(name string) *adminapi.MachineState {
		m, ok := byName[name]
		if !ok {
			m = &adminapi.MachineState{Name: name, Roles: []adminapi.RoleState{}}
			byName[name] = m
		}
		return m
	}
	has := map[string]bool{}
	leases := map[clientv3.LeaseID][]*adminapi.RoleState{}
	for _, tr := range tracked {
		if only != "" && tr.reg.Machine != only {
			continue
		}
		m := get(tr.reg.Machine)
		rs := adminapi.RoleState{Role: tr.reg.Role, State: adminapi.RoleDown, Since: tr.since, Address: tr.reg.Address}
		if tr.up {
			rs.State, rs.PID, rs.Version, rs.Started = adminapi.RoleRunning, tr.reg.PID, tr.reg.Version, tr.reg.Started
			if tr.reg.Zone != "" {
				m.Zone = tr.reg.Zone
			}
			if tr.reg.Role == config.RoleDatanode {
				m.Capacity, m.Free = tr.reg.Capacity, tr.reg.Free
			}
		}
		m.Roles = append(m.Roles, rs)
		has[tr.reg.Machine+"/"+tr.reg.Role] = true
	}
	agents, err := state.List(ctx, c.cli)
	if err != nil {
		return nil, err
	}
	for _, a := range agents {
		if only != "" && a.Machine != only {
			continue
		}
		supervise(get(a.Machine), a, has)
	}
	ml, err := c.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	for _, mem := range ml.Members {
		if mem.Name == "" || has[mem.Name+"/"+config.RoleController] || (only != "" && mem.Name != only) {
			continue
		}
		m := get(mem.Name)
		m.Roles = append(m.Roles, adminapi.RoleState{Role: config.RoleController, State: adminapi.RoleDown})
	}
	drains, err := c.cli.Get(ctx, cluster.DrainPrefix+only, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", cluster.DrainPrefix, err)
	}
	for _, kv := range drains.Kvs {
		name := strings.TrimPrefix(string(kv.Key), cluster.DrainPrefix)
		if only != "" && name != only {
			continue
		}
		var mark struct {
			By    string    `json:"by"`
			Since time.Time `json:"since"`
		}
		_ = json.Unmarshal(kv.Value, &mark)
		get(name).Draining = &adminapi.DrainMark{By: mark.By, Since: mark.Since}
	}
	out := make([]adminapi.MachineState, 0, len(byName))
	for _, m := range byName {
		sort.Slice(m.Roles, func(i, j int) bool { return roleOrder(m.Roles[i].Role) < roleOrder(m.Roles[j].Role) })
		up, wanted := 0, 0
		for _, r := range m.Roles {
			if r.State != adminapi.RoleStopped {
				wanted++
			}
			if r.State == adminapi.RoleRunning {
				up++
			}
		}
		switch {
		case len(m.Roles) > 0 && wanted == 0:
			m.State = adminapi.MachineStopped
		case up == wanted:
			m.State = adminapi.MachineUp
		case up == 0:
			m.State = adminapi.MachineDown
		default:
			m.State = adminapi.MachineDegraded
		}
		if only != "" {
			m.Events = events
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := range out {
		for j := range out[i].Roles {
			if tr := findLease(tracked, out[i].Name, out[i].Roles[j]); tr != 0 {
				leases[tr] = append(leases[tr], &out[i].Roles[j])
			}
		}
	}
	c.heartbeats(ctx, leases)
	return out, nil
}

func findLease(tracked []trackedRole, machine string, rs adminapi.RoleState) clientv3.LeaseID {
	if rs.State != adminapi.RoleRunning {
		return 0
	}
	for _, tr := range tracked {
		if tr.up && tr.reg.Machine == machine && tr.reg.Role == rs.Role {
			return tr.lease
		}
	}
	return 0
}

// heartbeats asks etcd, in parallel and within heartbeatProbe, how much of each lease is left:
// the lease was last renewed (granted TTL - remaining TTL) seconds ago.
func (c *Role) heartbeats(ctx context.Context, leases map[clientv3.LeaseID][]*adminapi.RoleState) {
	ctx, cancel := context.WithTimeout(ctx, heartbeatProbe)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for id, rss := range leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.cli.TimeToLive(ctx, id)
			if err != nil || resp.TTL < 0 {
				return
			}
			at := time.Now().UTC().Add(-time.Duration(resp.GrantedTTL-resp.TTL) * time.Second).Truncate(time.Second)
			mu.Lock()
			for _, rs := range rss {
				rs.LastHeartbeat, rs.LeaseTTL = at, resp.GrantedTTL
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// supervise adds what a machine's agent says to its roles: the desired state of each, the
// agent's report, and the state of a role that is not registered — stopped on purpose,
// starting, stopping, crash-looping, or down. Roles only the desired state names are added.
func supervise(m *adminapi.MachineState, a state.Machine, has map[string]bool) {
	if a.Desired == nil {
		return
	}
	for _, want := range a.Desired.Roles {
		i := slices.IndexFunc(m.Roles, func(r adminapi.RoleState) bool { return r.Role == want.Role })
		if i < 0 {
			m.Roles = append(m.Roles, adminapi.RoleState{Role: want.Role, State: adminapi.RoleDown})
			i = len(m.Roles) - 1
			has[m.Name+"/"+want.Role] = true
		}
		rs := &m.Roles[i]
		rs.Desired = "stop"
		if want.Run {
			rs.Desired = "run"
		}
		var rep *state.RoleState
		if a.Actual != nil {
			rep = a.Actual.Role(want.Role)
		}
		if rep != nil {
			rs.Agent, rs.Restarts, rs.Failures = rep.State, rep.Restarts, rep.Failures
			if rep.LastExit != nil {
				rs.LastExit = rep.LastExit.Status + " (" + rep.LastExit.Reason + ") at " + rep.LastExit.At.UTC().Format(time.RFC3339)
			}
		}
		if rs.State == adminapi.RoleRunning {
			continue
		}
		switch {
		case !want.Run:
			rs.State = adminapi.RoleStopped
		case rep != nil && rep.State == state.StateBackoff && rep.Failures > 1:
			rs.State = adminapi.RoleCrashLooping
		case rep != nil && rep.State == state.StateStarting:
			rs.State = adminapi.RoleStarting
		case rep != nil && rep.State == state.StateStopping:
			rs.State = adminapi.RoleStopping
		}
	}
}

// roleOrder sorts roles as config.AllRoles lists them.
func roleOrder(role string) int {
	for i, r := range config.AllRoles {
		if r == role {
			return i
		}
	}
	return len(config.AllRoles)
}

func (c *Role) handleMachines(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	ms, err := c.machines(ctx, "")
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, adminapi.Machines{AnsweredBy: c.m.Config.Name, TrackedSince: c.tracker.start, Machines: ms})
}

func (c *Role) handleMachine(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	name := r.PathValue("name")
	ms, err := c.machines(ctx, name)
	switch {
	case err != nil:
		service.WriteError(w, http.StatusServiceUnavailable, err)
	case len(ms) == 0:
		service.WriteError(w, http.StatusNotFound, fmt.Errorf("no machine %q is known to this controller", name))
	default:
		service.WriteJSON(w, http.StatusOK, ms[0])
	}
}

// handleUndrain removes a machine's drain mark: placement may send it new chunks again.
func (c *Role) handleUndrain(w http.ResponseWriter, r *http.Request) {
	machine := r.PathValue("id")
	resp, err := c.cli.Delete(r.Context(), DrainPrefix+machine)
	switch {
	case err != nil:
		service.WriteError(w, http.StatusServiceUnavailable, err)
	case resp.Deleted == 0:
		service.WriteError(w, http.StatusNotFound, fmt.Errorf("machine %q is not draining", machine))
	default:
		service.WriteJSON(w, http.StatusOK, map[string]any{"machine": machine, "draining": false})
	}
}
