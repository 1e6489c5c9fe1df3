// Package cluster is hanode's cluster state in etcd: the keyspace, and the lease-backed
// registration through which every role process announces itself.
//
// Keyspace (all under /hanode/):
//
//	/hanode/election/master/<lease>     active-master election (package election)
//	/hanode/master                      the active master's record, written only under its fence
//	/hanode/nodes/<machine>/<role>      one registration per running role process, on a lease
//	/hanode/drain/<machine>             drain mark: no new chunks go to the machine
//	/hanode/s3/...                      object metadata (package meta)
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/hanode/hanode/internal/keyspace"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Keys and prefixes of the keyspace.
const (
	Root        = keyspace.Root
	MasterKey   = keyspace.Master
	NodesPrefix = keyspace.Nodes
	// DrainPrefix marks machines being drained (hanode node drain): placement avoids them.
	DrainPrefix = keyspace.Drain
)

// Registration is what a role process publishes about itself.
type Registration struct {
	Machine string    `json:"machine"`
	Role    string    `json:"role"`
	Address string    `json:"address"` // base URL of the role's listener
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	Zone    string    `json:"zone,omitempty"` // zone or rack label, for placement
	// Datanodes: the chunk filesystem's size and free bytes, refreshed while registered.
	Capacity int64 `json:"capacity,omitempty"`
	Free     int64 `json:"free,omitempty"`
	// Store is a datanode's store identity (datanode.Store.Identity): a new one under the same
	// machine means its chunk directory was wiped or replaced.
	Store string `json:"store,omitempty"`
	// Scrub is a datanode's background verification progress.
	Scrub *ScrubReport `json:"scrub,omitempty"`
}

// ScrubReport is a datanode scrub's progress: the pass under way and the last complete one.
type ScrubReport struct {
	Passes           int64     `json:"passes"`
	PassStarted      time.Time `json:"pass_started,omitzero"`
	PassChunks       int64     `json:"pass_chunks"`
	PassBytes        int64     `json:"pass_bytes"`
	LastPassStarted  time.Time `json:"last_pass_started,omitzero"`
	LastPassFinished time.Time `json:"last_pass_finished,omitzero"`
	LastPassChunks   int64     `json:"last_pass_chunks"`
	LastPassBytes    int64     `json:"last_pass_bytes"`
	// Corrupt counts the corrupt chunks found (and quarantined) since the datanode started.
	Corrupt int64 `json:"corrupt"`
}

// Key is the registration's etcd key.
func (r Registration) Key() string { return NodesPrefix + r.Machine + "/" + r.Role }

// Registrar keeps a registration alive on an etcd lease. When the process dies the lease
// expires and the key disappears: that absence is how the cluster learns a role is down.
type Registrar struct {
	sess *concurrency.Session
	reg  Registration
}

// Register writes reg under a new lease of ttl and keeps it alive until Close or until the
// session is lost (see Done).
func Register(ctx context.Context, cli *clientv3.Client, reg Registration, ttl time.Duration) (*Registrar, error) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(math.Ceil(ttl.Seconds()))), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("register %s: create lease: %w", reg.Key(), err)
	}
	val, _ := json.Marshal(reg)
	if _, err := cli.Put(ctx, reg.Key(), string(val), clientv3.WithLease(sess.Lease())); err != nil {
		sess.Close()
		return nil, fmt.Errorf("register %s: %w", reg.Key(), err)
	}
	return &Registrar{sess: sess, reg: reg}, nil
}

// Update rewrites the registration's value (same key, same lease), e.g. with fresh free space.
func (r *Registrar) Update(ctx context.Context, cli *clientv3.Client, reg Registration) error {
	if reg.Key() != r.reg.Key() {
		return fmt.Errorf("update registration %s with %s: the key may not change", r.reg.Key(), reg.Key())
	}
	val, _ := json.Marshal(reg)
	if _, err := cli.Put(ctx, reg.Key(), string(val), clientv3.WithLease(r.sess.Lease())); err != nil {
		return fmt.Errorf("update registration %s: %w", reg.Key(), err)
	}
	r.reg = reg
	return nil
}

// Done is closed when the lease is lost (etcd unreachable for longer than the TTL).
func (r *Registrar) Done() <-chan struct{} { return r.sess.Done() }

// Close deletes the registration by revoking its lease.
func (r *Registrar) Close() error { return r.sess.Close() }

// Nodes lists the live registrations, sorted by machine then role.
func Nodes(ctx context.Context, cli *clientv3.Client) ([]Registration, error) {
	resp, err := cli.Get(ctx, NodesPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", NodesPrefix, err)
	}
	out := make([]Registration, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r Registration
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Machine != out[j].Machine {
			return out[i].Machine < out[j].Machine
		}
		return out[i].Role < out[j].Role
	})
	return out, nil
}

// Addresses returns the addresses of the registrations of role, in the order of regs.
func Addresses(regs []Registration, role string) []string {
	var out []string
	for _, r := range regs {
		if r.Role == role {
			out = append(out, r.Address)
		}
	}
	return out
}

// Machine groups a machine's registrations.
type Machine struct {
	Name    string         `json:"name"`
	Roles   []string       `json:"roles"`
	Members []Registration `json:"processes"`
}

// Machines groups registrations by machine.
func Machines(regs []Registration) []Machine {
	var out []Machine
	for _, r := range regs {
		if len(out) == 0 || out[len(out)-1].Name != r.Machine {
			out = append(out, Machine{Name: r.Machine})
		}
		m := &out[len(out)-1]
		m.Roles = append(m.Roles, r.Role)
		m.Members = append(m.Members, r)
	}
	return out
}

// MasterRecord is written by the active master, under its fence, when it takes office and
// periodically after: it shows which epoch last acted.
type MasterRecord struct {
	Name      string    `json:"name"`
	Epoch     int64     `json:"epoch"`
	Since     time.Time `json:"since"`
	Heartbeat time.Time `json:"heartbeat"`
}

// ReadMaster returns the last master record, or nil when none was written.
func ReadMaster(ctx context.Context, cli *clientv3.Client) (*MasterRecord, error) {
	resp, err := cli.Get(ctx, MasterKey)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", MasterKey, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var m MasterRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", MasterKey, err)
	}
	return &m, nil
}
