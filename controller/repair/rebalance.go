package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
)

// Rebalancing evens out the bytes each live, undrained datanode machine holds, relative to its
// capacity: a machine whose used fraction is more than the threshold above the cluster's sheds
// replicas to machines below it. Nothing moves by itself: `hanode rebalance plan` shows the
// moves and whether they are feasible, `apply` stores the plan, and the master's sweeps then
// queue moves (priority: after draining) until each move's bytes are done. Filling a new
// machine is the same operation, run when the operator chooses (moving data costs the disks and
// the network the clients use).

// PlanRebalance computes the moves that bring every machine within threshold percentage points
// of the cluster's used fraction, from the replica bytes st's last sweep recorded per machine
// and the registered capacities.
func PlanRebalance(st *adminapi.Repair, regs []cluster.Registration, draining map[string]bool, replicas int, threshold float64) adminapi.RebalancePlan {
	p := adminapi.RebalancePlan{Threshold: threshold, Created: time.Now().UTC(), Machines: []adminapi.RebalanceMachine{}, Moves: []adminapi.RebalanceMove{}}
	if st == nil || st.Sweep == nil {
		p.Problems = append(p.Problems, "no repair sweep has finished yet: the bytes per machine are unknown")
		return p
	}
	p.Based = st.Sweep.Finished
	used := map[string]int64{}
	for _, m := range st.Machines {
		used[m.Name] = m.Bytes
	}
	var capSum, usedSum int64
	for _, r := range regs {
		if r.Role != "datanode" || draining[r.Machine] || r.Capacity <= 0 {
			continue
		}
		p.Machines = append(p.Machines, adminapi.RebalanceMachine{Name: r.Machine, Capacity: r.Capacity, Free: r.Free, Used: used[r.Machine]})
		capSum += r.Capacity
		usedSum += used[r.Machine]
	}
	sort.Slice(p.Machines, func(i, j int) bool { return p.Machines[i].Name < p.Machines[j].Name })
	if len(p.Machines) < replicas {
		p.Problems = append(p.Problems, fmt.Sprintf("%d live undrained datanodes, fewer than the replication factor %d", len(p.Machines), replicas))
	}
	if capSum == 0 {
		p.Problems = append(p.Problems, "no live datanode reports its capacity")
		return p
	}
	p.Mean = float64(usedSum) / float64(capSum)
	var over, under []side
	for i, m := range p.Machines {
		m.Before = float64(m.Used) / float64(m.Capacity)
		p.Machines[i].Before = m.Before
		target := int64(p.Mean * float64(m.Capacity))
		switch {
		case (m.Before-p.Mean)*100 > threshold:
			over = append(over, side{i, m.Used - target})
		case (p.Mean-m.Before)*100 > threshold:
			under = append(under, side{i, target - m.Used})
		}
	}
	// Machines within the threshold may take or give too when one side has no partner.
	// (Which side lacks partners is decided once, before any is added.)
	if noOver, noUnder := len(over) == 0, len(under) == 0; noOver != noUnder {
		for i, m := range p.Machines {
			target := int64(p.Mean * float64(m.Capacity))
			if noUnder && m.Used < target && !hasSide(over, i) {
				under = append(under, side{i, target - m.Used})
			}
			if noOver && m.Used > target && !hasSide(under, i) {
				over = append(over, side{i, m.Used - target})
			}
		}
	}
	sort.Slice(over, func(a, b int) bool { return over[a].bytes > over[b].bytes })
	sort.Slice(under, func(a, b int) bool { return under[a].bytes > under[b].bytes })
	after := map[int]int64{}
	for oi, ui := 0, 0; oi < len(over) && ui < len(under); {
		n := min(over[oi].bytes, under[ui].bytes)
		if n > 0 {
			p.Moves = append(p.Moves, adminapi.RebalanceMove{From: p.Machines[over[oi].i].Name, To: p.Machines[under[ui].i].Name, Bytes: n})
			p.Bytes += n
			after[over[oi].i] -= n
			after[under[ui].i] += n
		}
		over[oi].bytes -= n
		under[ui].bytes -= n
		if over[oi].bytes <= 0 {
			oi++
		}
		if under[ui].bytes <= 0 {
			ui++
		}
	}
	for i, m := range p.Machines {
		p.Machines[i].After = float64(m.Used+after[i]) / float64(m.Capacity)
		if in := after[i]; in > 0 && in > m.Free {
			p.Problems = append(p.Problems, fmt.Sprintf("%s would take %d bytes but has %d free", m.Name, in, m.Free))
		}
	}
	p.Feasible = len(p.Problems) == 0
	return p
}

// side is a machine's excess (over) or room (under) relative to the mean, in bytes.
type side struct {
	i     int
	bytes int64
}

func hasSide(s []side, i int) bool {
	for _, x := range s {
		if x.i == i {
			return true
		}
	}
	return false
}

// StorePlan makes plan the one the master applies (none: delete). The progress saved for an
// earlier plan names that plan's creation time, so it never counts for this one.
func StorePlan(ctx context.Context, cli *clientv3.Client, plan *adminapi.RebalancePlan) error {
	if plan == nil {
		if _, err := cli.Delete(ctx, keyspace.RepairRebalance); err != nil {
			return fmt.Errorf("cancel the rebalance plan: %w", err)
		}
		return nil
	}
	val, _ := json.Marshal(plan)
	if _, err := cli.Put(ctx, keyspace.RepairRebalance, string(val)); err != nil {
		return fmt.Errorf("store the rebalance plan: %w", err)
	}
	return nil
}

// readPlan returns the applied plan (nil: none).
func readPlan(ctx context.Context, cli *clientv3.Client) (*adminapi.RebalancePlan, error) {
	p, _, err := readPlanRev(ctx, cli)
	return p, err
}

// readPlanRev returns the applied plan (nil: none) and its key's mod revision.
func readPlanRev(ctx context.Context, cli *clientv3.Client) (*adminapi.RebalancePlan, int64, error) {
	resp, err := cli.Get(ctx, keyspace.RepairRebalance)
	if err != nil {
		return nil, 0, fmt.Errorf("read the rebalance plan: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	var p adminapi.RebalancePlan
	if err := json.Unmarshal(resp.Kvs[0].Value, &p); err != nil {
		return nil, 0, fmt.Errorf("decode the rebalance plan: %w", err)
	}
	return &p, resp.Kvs[0].ModRevision, nil
}

func moveKey(m *adminapi.RebalanceMove) string { return m.From + ">" + m.To }

// movedRecord is keyspace.RepairMoved: the bytes moved under the plan created at Plan.
type movedRecord struct {
	Plan  time.Time        `json:"plan"`
	Moved map[string]int64 `json:"moved"`
}

// loadPlan reads the applied plan at the start of a round. A plan this term has not seen yet
// starts from the counts the last master saved for it (none: from zero).
func (r *Repairer) loadPlan(ctx context.Context) error {
	p, rev, err := readPlanRev(ctx, r.Etcd)
	if err != nil {
		return err
	}
	var saved *movedRecord
	r.mu.Lock()
	fresh := p != nil && (r.plan == nil || !p.Created.Equal(r.plan.Created))
	r.mu.Unlock()
	if fresh {
		if saved, err = readMoved(ctx, r.Etcd); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p == nil || fresh {
		r.moved = map[string]int64{}
	}
	if fresh && saved != nil && saved.Plan.Equal(p.Created) {
		for k, v := range saved.Moved {
			r.moved[k] = v
		}
		r.Log.Info("rebalance plan resumed from the saved progress", "moved", saved.Moved)
	}
	r.plan, r.planRev, r.moveCands = p, rev, 0
	r.reserved = map[string]int64{}
	for k, v := range r.moved {
		r.reserved[k] = v
	}
	return nil
}

func readMoved(ctx context.Context, cli *clientv3.Client) (*movedRecord, error) {
	resp, err := cli.Get(ctx, keyspace.RepairMoved)
	if err != nil {
		return nil, fmt.Errorf("read the rebalance progress: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var m movedRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		return nil, nil // unreadable: the counts start anew (the plan moves again at most what they said)
	}
	return &m, nil
}

// movedOps are the writes that save the applied plan's progress (none: no plan).
func (r *Repairer) movedOps() []clientv3.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.plan == nil {
		return nil
	}
	val, _ := json.Marshal(movedRecord{Plan: r.plan.Created, Moved: r.moved})
	return []clientv3.Op{clientv3.OpPut(keyspace.RepairMoved, string(val))}
}

// queueMove queues a healthy chunk for the applied plan while a move it fits has bytes left. A
// move that would put the chunk in a zone another of its replicas uses is not made with it
// (the chunk would be misplaced).
func (r *Repairer) queueMove(v *view, rec record, ch meta.Chunk, vd verdict) {
	if r.plan == nil {
		return
	}
	for i := range r.plan.Moves {
		mv := &r.plan.Moves[i]
		k := moveKey(mv)
		if r.reserved[k] >= mv.Bytes || !slices.Contains(vd.readable, mv.From) || slices.Contains(ch.Replicas, mv.To) {
			continue
		}
		if slices.ContainsFunc(vd.readable, func(m string) bool { return m != mv.From && v.zoneOf(m) == v.zoneOf(mv.To) }) {
			continue
		}
		r.moveCands++
		if r.queue.Push(Task{Key: rec.key, Rev: rec.rev, Chunk: ch, Want: rec.want, Priority: Rebalance, Move: mv, Plan: r.plan.Created}) {
			r.reserved[k] += ch.Size
		}
		return
	}
}

// inPlan reports whether the plan created at created is still the applied one (as of the
// last round's start, or a later one poked by the plan's change).
func (r *Repairer) inPlan(created time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.plan != nil && r.plan.Created.Equal(created)
}

// finishPlan deletes the applied plan once every move is done, or once a complete sweep found
// no chunk that could go on with it (every chunk of a move's source is on its target already,
// say, or would share a zone there) while its machines are live and undrained: queued and
// in-flight moves are found again by each sweep, so none is left then. It deletes the plan it read at the round's start only.
func (r *Repairer) finishPlan(ctx context.Context) error {
	r.mu.Lock()
	p, rev := r.plan, r.planRev
	done, stuck := p != nil, p != nil && r.moveCands == 0
	var moved int64
	if p != nil {
		for i := range p.Moves {
			m := r.moved[moveKey(&p.Moves[i])]
			moved += min(m, p.Moves[i].Bytes)
			if m < p.Moves[i].Bytes {
				done = false
			}
		}
	}
	r.mu.Unlock()
	// A machine of the plan down or draining may hold back its moves for a while: not stuck.
	if v := r.cur.Load(); stuck && v != nil {
		for _, mv := range p.Moves {
			_, from := v.live[mv.From]
			_, to := v.live[mv.To]
			if !from || !to || v.draining[mv.From] || v.draining[mv.To] {
				stuck = false
			}
		}
	}
	if stuck && !done {
		r.Log.Warn("rebalance plan ended: no more chunks can move", "moved", moved, "bytes", p.Bytes)
		done = true
	}
	if !done {
		if ops := r.movedOps(); len(ops) > 0 {
			if _, _, err := r.txn(ctx, nil, ops); err != nil {
				return fmt.Errorf("save the rebalance progress: %w", err)
			}
		}
		return nil
	}
	cmp := clientv3.Compare(clientv3.ModRevision(keyspace.RepairRebalance), "=", rev)
	if _, _, err := r.txn(ctx, []clientv3.Cmp{cmp}, []clientv3.Op{clientv3.OpDelete(keyspace.RepairRebalance), clientv3.OpDelete(keyspace.RepairMoved)}); err != nil {
		return fmt.Errorf("finish the rebalance plan: %w", err)
	}
	r.mu.Lock()
	r.plan, r.planDone = nil, time.Now().UTC()
	r.mu.Unlock()
	r.Log.Info("rebalance plan done", "moves", len(p.Moves), "bytes", p.Bytes)
	return nil
}

// rebalanceStatus is the applied plan with the bytes moved so far (nil: none).
func (r *Repairer) rebalanceStatus() *adminapi.RebalancePlan {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.plan == nil {
		return nil
	}
	p := *r.plan
	p.Moves = slices.Clone(p.Moves)
	for i := range p.Moves {
		p.Moves[i].Moved = r.moved[moveKey(&p.Moves[i])]
	}
	return &p
}

// autoThreshold is the threshold of the plans AutoRebalance applies (the CLI's default).
const autoThreshold = 10

// autoPlan applies a rebalance plan by itself (rebalance-auto) when the sweep c just finished
// found nothing at risk, no plan is applied, the sweep began after the last plan of this term
// finished (its counts include that plan's moves), and the machines differ by more than
// autoThreshold. The plan is stored under the fence, only if no operator applied one meanwhile.
func (r *Repairer) autoPlan(ctx context.Context, v *view, c *counts) error {
	r.mu.Lock()
	busy := r.plan != nil || c.started.Before(r.planDone)
	r.mu.Unlock()
	if busy || c.waiting.chunks > 0 || c.unrecoverable > 0 {
		return nil
	}
	for _, a := range c.atRisk {
		if a.chunks > 0 {
			return nil
		}
	}
	st := r.Status()
	regs := make([]cluster.Registration, 0, len(v.live))
	for _, reg := range v.live {
		regs = append(regs, reg)
	}
	p := PlanRebalance(&st, regs, v.draining, r.Replicas, autoThreshold)
	if !p.Feasible || len(p.Moves) == 0 {
		return nil
	}
	val, _ := json.Marshal(p)
	ok, _, err := r.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.Version(keyspace.RepairRebalance), "=", 0)}, []clientv3.Op{clientv3.OpPut(keyspace.RepairRebalance, string(val))})
	if err != nil {
		return fmt.Errorf("apply a rebalance plan: %w", err)
	}
	if ok {
		r.Log.Info("rebalance plan applied by itself (rebalance-auto)", "moves", len(p.Moves), "bytes", p.Bytes, "mean", p.Mean)
		r.poke()
	}
	return nil
}
