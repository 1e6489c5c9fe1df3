package testenv_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/testenv"
	"github.com/hanode/hanode/testenv/chaos"
)

// TestLabChaos is the short fault suite: six clients record S3 histories on a three-machine
// process lab while one fault family at a time kills or freezes controllers, datanodes and
// coordinators; every history must be linearizable and every key must read back whole.
// `hanode lab chaos` runs the long version (docs/lab.md).
func TestLabChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite takes about two minutes")
	}
	dir := t.TempDir()
	ctx := context.Background()
	drv, err := testenv.NewDriver("process")
	if err != nil {
		t.Fatal(err)
	}
	l, err := testenv.Up(ctx, testenv.Spec{Machines: 3, Dir: dir, Binary: testenv.LabBinary(),
		AddressPrefix: "127.0.35", ReadyTimeout: 60 * time.Second}, nil)
	if l != nil {
		t.Cleanup(func() { _ = l.Down(drv, true) })
	}
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	// A failed family's history and visualisation outlive the test; a passing run leaves nothing.
	out, err := os.MkdirTemp("", "hanode-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(out)
		}
	})
	fams, err := chaos.ParseFamilies("kill-master,kill-datanode,kill-coordinator,pause-leader,pause-datanode,pause-coordinator", drv)
	if err != nil {
		t.Fatal(err)
	}
	reports, err := chaos.Run(ctx, chaos.Config{Lab: l, Driver: drv, Families: fams, Duration: 14 * time.Second,
		OutDir: out, Log: testLog{t}})
	for _, r := range reports {
		t.Logf("%s: %d operations checked, %d failed requests (indeterminate), %d faults, %d keys read back: %s",
			r.Family, r.Ops, r.Unknown, len(r.Faults), r.Keys, r.Verdict)
		if len(r.Faults) == 0 {
			t.Errorf("%s: no fault was injected", r.Family)
		}
		if r.Verdict != chaos.VerdictOK {
			t.Errorf("%s: %s:\n  %s\nhistory, fault timeline and porcupine's visualisation in %s",
				r.Family, r.Verdict, strings.Join(r.Problems, "\n  "), r.Dir)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != len(fams) {
		t.Fatalf("%d reports for %d fault families", len(reports), len(fams))
	}
}

// testLog writes the run's progress lines to the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
