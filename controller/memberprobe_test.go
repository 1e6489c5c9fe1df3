package controller

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/hanode/hanode/internal/etcdtest"
)

// hanode status probes each etcd member within a budget; a member that did not answer (its
// machine partitioned: connections hang) gets the short budget next time, and is forgotten once
// it leaves the cluster.
func TestMemberProbes(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.79.30")
	silent, err := net.Listen("tcp", "127.0.79.31:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() }) // never accepted: the handshake completes, nothing answers
	members := []*etcdserverpb.Member{
		{ID: 1, Name: "m1", ClientURLs: []string{"http://127.0.79.30:2379"}},
		{ID: 2, Name: "m2", ClientURLs: []string{"http://" + silent.Addr().String()}},
		{ID: 3, Name: "m3"},
	}
	p := newMemberProbes()
	ctx := context.Background()
	for round, budget := range []time.Duration{memberProbeTimeout, silentProbeTimeout} {
		got := p.probe(ctx, cli, members)
		if !got[0].Healthy || got[0].Error != "" {
			t.Fatalf("round %d: the live member: %+v", round, got[0])
		}
		if want := "within " + budget.String(); got[1].Healthy || !strings.Contains(got[1].Error, want) {
			t.Fatalf("round %d: the silent member: %+v, want an error %q", round, got[1], want)
		}
		if got[2].Healthy || got[2].Error != "not started" {
			t.Fatalf("round %d: the member without a client URL: %+v", round, got[2])
		}
	}
	if p.budget(1) != memberProbeTimeout || p.budget(2) != silentProbeTimeout {
		t.Fatalf("budgets %s and %s", p.budget(1), p.budget(2))
	}
	p.probe(ctx, cli, members[:1])
	if p.budget(2) != memberProbeTimeout || len(p.silent) != 0 {
		t.Fatalf("a removed member is still remembered: %v", p.silent)
	}
}
