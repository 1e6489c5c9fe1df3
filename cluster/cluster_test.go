package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hanode/hanode/internal/etcdtest"
)

const etcdHost = "127.0.89.2"

func register(t *testing.T, cli *clientv3.Client, reg Registration, ttl time.Duration) *Registrar {
	t.Helper()
	r, err := Register(context.Background(), cli, reg, ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func keys(regs []Registration) []string {
	var out []string
	for _, r := range regs {
		out = append(out, r.Machine+"/"+r.Role)
	}
	return out
}

// waitNodes polls Nodes until it lists want (machine/role keys) or the deadline passes.
func waitNodes(t *testing.T, cli *clientv3.Client, within time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		regs, err := Nodes(context.Background(), cli)
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(regs); slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registrations %q after %v, want %q", keys(regs), within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRegistrations(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Start(t, etcdHost)

	// Registered out of order; listed by machine, then role.
	coord := register(t, cli, Registration{Machine: "m2", Role: "coordinator", Address: "https://10.0.0.2:9000"}, 3*time.Second)
	register(t, cli, Registration{Machine: "m1", Role: "datanode", Address: "https://10.0.0.1:8911", Free: 10 << 30}, 3*time.Second)
	register(t, cli, Registration{Machine: "m1", Role: "coordinator", Address: "https://10.0.0.1:9000", Zone: "rack-1"}, 3*time.Second)
	regs, err := Nodes(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(regs); !slices.Equal(got, []string{"m1/coordinator", "m1/datanode", "m2/coordinator"}) {
		t.Fatalf("Nodes: %q", got)
	}
	if regs[0].Zone != "rack-1" || regs[1].Free != 10<<30 {
		t.Fatalf("the values were not kept: %+v", regs)
	}
	if got := Addresses(regs, "coordinator"); !slices.Equal(got, []string{"https://10.0.0.1:9000", "https://10.0.0.2:9000"}) {
		t.Fatalf("Addresses: %q", got)
	}
	if got := Addresses(regs, "proxy"); got != nil {
		t.Fatalf("Addresses of a role nobody runs: %q", got)
	}
	ms := Machines(regs)
	if len(ms) != 2 || ms[0].Name != "m1" || !slices.Equal(ms[0].Roles, []string{"coordinator", "datanode"}) || len(ms[0].Members) != 2 ||
		ms[1].Name != "m2" || !slices.Equal(ms[1].Roles, []string{"coordinator"}) {
		t.Fatalf("Machines: %+v", ms)
	}

	// Update rewrites the value under the same lease; the key may not change.
	before, err := cli.Get(ctx, coord.reg.Key())
	if err != nil {
		t.Fatal(err)
	}
	if err := coord.Update(ctx, cli, Registration{Machine: "m2", Role: "coordinator", Address: "https://10.0.0.22:9000"}); err != nil {
		t.Fatal(err)
	}
	after, err := cli.Get(ctx, coord.reg.Key())
	if err != nil {
		t.Fatal(err)
	}
	var got Registration
	if err := json.Unmarshal(after.Kvs[0].Value, &got); err != nil || got.Address != "https://10.0.0.22:9000" {
		t.Fatalf("after Update: %+v, %v", got, err)
	}
	if after.Kvs[0].Lease != before.Kvs[0].Lease || after.Kvs[0].Lease == 0 {
		t.Fatalf("Update moved the key from lease %x to %x", before.Kvs[0].Lease, after.Kvs[0].Lease)
	}
	if err := coord.Update(ctx, cli, Registration{Machine: "m3", Role: "coordinator"}); err == nil || !strings.Contains(err.Error(), "may not change") {
		t.Fatalf("Update to another key: %v", err)
	}

	// Close revokes the lease: the registration is gone at once.
	if err := coord.Close(); err != nil {
		t.Fatal(err)
	}
	waitNodes(t, cli, 0, "m1/coordinator", "m1/datanode")
}

// A process that dies stops renewing its lease: its registration disappears once the TTL has
// passed, without anyone deleting it.
func TestRegistrationExpires(t *testing.T) {
	cli := etcdtest.Start(t, etcdHost)
	// The dying process has a client of its own, closed without revoking anything.
	proc, err := clientv3.New(clientv3.Config{Endpoints: cli.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dying, err := Register(ctx, proc, Registration{Machine: "m1", Role: "datanode"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	register(t, cli, Registration{Machine: "m2", Role: "datanode"}, time.Second)
	// Past the TTL etcd granted (it raises 1s to its minimum), the keep-alives hold both.
	ttl, err := cli.TimeToLive(ctx, dying.sess.Lease())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(ttl.GrantedTTL)*time.Second + 500*time.Millisecond)
	waitNodes(t, cli, 0, "m1/datanode", "m2/datanode")
	proc.Close()
	waitNodes(t, cli, 5*time.Second, "m2/datanode")
}

// Done reports a lost lease: here it is revoked behind the registrar's back.
func TestRegistrarDone(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Start(t, etcdHost)
	r := register(t, cli, Registration{Machine: "m1", Role: "agent"}, 3*time.Second)
	select {
	case <-r.Done():
		t.Fatal("Done closed while the lease is alive")
	default:
	}
	resp, err := cli.Get(ctx, r.reg.Key())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get: %v", err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed 10s after the lease was revoked")
	}
}

func TestReadMaster(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Start(t, etcdHost)
	if m, err := ReadMaster(ctx, cli); err != nil || m != nil {
		t.Fatalf("before any master: %+v, %v", m, err)
	}
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	want := MasterRecord{Name: "m2", Epoch: 7, Since: since, Heartbeat: since.Add(time.Minute)}
	val, _ := json.Marshal(want)
	if _, err := cli.Put(ctx, MasterKey, string(val)); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMaster(ctx, cli)
	if err != nil || m == nil || *m != want {
		t.Fatalf("ReadMaster: %+v, %v; want %+v", m, err, want)
	}
	if _, err := cli.Put(ctx, MasterKey, "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMaster(ctx, cli); err == nil || !strings.Contains(err.Error(), MasterKey) {
		t.Fatalf("a corrupt record: %v", err)
	}
}
