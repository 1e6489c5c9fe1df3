package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
)

// addDatanode brings a datanode-only machine in as an operator would: a one-use token, `hanode
// join`, then the datanode process with the lab's extra arguments, a flag given in args
// replacing the lab's value of that flag. The machine is recorded in the lab so that Down
// stops it.
func addDatanode(t *testing.T, l *Lab, drv Driver, name, addr string, args ...string) *Process {
	t.Helper()
	ctx := context.Background()
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if _, err := ac.Do(ctx, http.MethodPost, "/v1/tokens", map[string]any{"ttl": "10m", "uses": 1, "roles": []string{"datanode"}}, &tok); err != nil {
		t.Fatal(err)
	}
	m := Machine{Name: name, Address: addr, DataDir: filepath.Join(l.Dir, name), Roles: []string{"datanode"}}
	pargs := l.processArgs(m, "datanode", "--etcd-endpoints", strings.Join(l.Endpoints.Etcd, ","))
	for i := 0; i+1 < len(args); i += 2 {
		if j := slices.Index(pargs, args[i]); j >= 0 && j+1 < len(pargs) {
			pargs[j+1] = args[i+1]
		} else {
			pargs = append(pargs, args[i], args[i+1])
		}
	}
	m.Processes = []Process{{Roles: []string{"datanode"}, Args: pargs,
		Log: filepath.Join(m.DataDir, "logs", "datanode.log"), URL: httpsURL(addr, rolePort("datanode"))}}
	l.Machines = append(l.Machines, m)
	mp := &l.Machines[len(l.Machines)-1]
	jargs := append(l.machineArgs(mp, "join"), "--server", l.Endpoints.Controllers[0])
	if out, err := drv.Run(ctx, l, mp, jargs, []string{"HANODE_TOKEN=" + tok.Token}); err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	if err := drv.Start(ctx, l, mp, &mp.Processes[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitReady(ctx, drv, []*Process{&mp.Processes[0]}, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return &mp.Processes[0]
}

// TestLabRebalance: three machines of 64 MiB capacity each (the `capacity` key: on one host
// they share a filesystem) are filled with R = 2; a fourth machine of 128 MiB joins empty.
// `hanode rebalance plan` shows moves to it (count, bytes, from → to, feasible), `apply` has the
// master carry them out at repair-rate with the progress in `hanode rebalance status`, and at
// the end the machines' used fractions differ by no more than the threshold, both in the
// records and on the disks; every object reads back byte-identical and no machine holds two
// replicas of a chunk.
//
// As a benchmark of the rebalance rate (bytes moved per second against repair-rate), the rate
// and the data can be raised: HANODE_BENCH_REBALANCE_RATE (MiB/s, default 2) and
// HANODE_BENCH_REBALANCE_OBJECTS (400 KiB each, default 48, at most 200).
func TestLabRebalance(t *testing.T) {
	rate, objects := 2<<20, 48
	if v, err := strconv.Atoi(os.Getenv("HANODE_BENCH_REBALANCE_RATE")); err == nil && v > 0 {
		rate = v << 20
	}
	if v, err := strconv.Atoi(os.Getenv("HANODE_BENCH_REBALANCE_OBJECTS")); err == nil && v > 0 && v <= 200 {
		objects = v
	}
	l, drv := startLab(t, "127.0.90", 3, "--chunk-size", "65536", "--gc-grace", "2s",
		"--repair-rate", fmt.Sprint(rate), "--capacity", "64MiB")
	healthy(t, l)
	ctx := context.Background()
	mc := labS3(t, l, l.Endpoints.S3[0])
	if err := mc.MakeBucket(ctx, "spread", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	const size = 400 << 10
	sums := putSummed(ctx, t, mc, "spread", "r%02d", objects, size, 999, 1300)
	ec, err := l.EtcdClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	hanodeCmd := func(args string) (string, error) {
		out, err := exec.Command("bash", "-c", fmt.Sprintf("source %s && %s %s", filepath.Join(l.Dir, EnvFile), binary, args)).CombinedOutput()
		return string(out), err
	}
	ac, err := l.AdminClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	repairStatus := func() *adminapi.Repair {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		var st adminapi.Repair
		if _, err := ac.Get(cctx, "/v1/repair", &st); err != nil {
			return nil
		}
		return &st
	}

	joined := time.Now()
	addDatanode(t, l, drv, "m4", "127.0.90.4", "--capacity", "128MiB")
	// A plan needs a sweep that counted the data and the fourth machine's registration.
	var plan adminapi.RebalancePlan
	waitFor(t, "a plan with moves to m4", 60*time.Second, func() bool {
		st := repairStatus()
		if st == nil || st.Sweep == nil || st.Sweep.Started.Before(joined) {
			return false
		}
		out, err := hanodeCmd("rebalance plan --json")
		if err != nil || json.Unmarshal([]byte(out), &plan) != nil {
			return false
		}
		return len(plan.Machines) == 4 && len(plan.Moves) > 0
	})
	// Each full datanode counts its chunk files against its capacity: what it registers as
	// used (capacity - free) is at least the replica bytes the sweep found on it.
	waitFor(t, "the datanodes' registrations to count their chunks", 20*time.Second, func() bool {
		regs, err := cluster.Nodes(ctx, ec)
		if err != nil {
			return false
		}
		ok := 0
		for _, r := range regs {
			for _, m := range plan.Machines {
				if r.Role == "datanode" && r.Machine == m.Name && m.Used > 0 && r.Capacity-r.Free >= m.Used {
					ok++
				}
			}
		}
		return ok == 3
	})
	out, err := hanodeCmd("rebalance plan")
	if err != nil {
		t.Fatalf("rebalance plan: %v\n%s", err, out)
	}
	t.Logf("hanode rebalance plan:\n%s", out)
	if !plan.Feasible || !strings.Contains(out, "feasible") || !strings.Contains(out, fmt.Sprintf("%d moves", len(plan.Moves))) {
		t.Fatalf("the plan is not feasible or not shown: %+v\n%s", plan, out)
	}
	for _, mv := range plan.Moves {
		if mv.To != "m4" || mv.From == "m4" || mv.Bytes <= 0 || !strings.Contains(out, mv.From) {
			t.Fatalf("unexpected move %+v", mv)
		}
	}
	for _, m := range plan.Machines {
		want := int64(64 << 20)
		if m.Name == "m4" {
			want = 128 << 20
		}
		if m.Capacity != want {
			t.Fatalf("%s reports a capacity of %d, configured %d", m.Name, m.Capacity, want)
		}
	}

	applied := time.Now()
	if out, err := hanodeCmd("rebalance apply"); err != nil || !strings.Contains(out, "applied") {
		t.Fatalf("rebalance apply: %v\n%s", err, out)
	}
	// Progress: the moved bytes grow while the plan runs; the master deletes the plan when done.
	var progress []int64
	var doneAt time.Time
	var cliStatus, statusLine string
	seen := false
	waitFor(t, "the rebalance to finish", 90*time.Second, func() bool {
		st := repairStatus()
		if st == nil {
			return false
		}
		if st.Rebalance == nil {
			if seen {
				doneAt = time.Now()
				return true
			}
			if time.Since(applied) > 30*time.Second {
				t.Fatal("the status never showed the applied plan")
			}
			return false
		}
		seen = true
		var moved int64
		for _, mv := range st.Rebalance.Moves {
			moved += mv.Moved
		}
		if len(progress) == 0 || progress[len(progress)-1] != moved {
			progress = append(progress, moved)
		}
		// What an operator sees mid-way.
		if moved > 0 && cliStatus == "" {
			if out, err := hanodeCmd("rebalance status"); err == nil && strings.Contains(out, "MOVED") {
				cliStatus = out
			}
		}
		if moved > 0 && statusLine == "" {
			if out, err := hanodeCmd("status"); err == nil {
				if i := strings.Index(out, "rebalance: "); i >= 0 {
					statusLine, _, _ = strings.Cut(out[i:], "\n")
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
		return false
	})
	if len(progress) < 3 {
		t.Errorf("progress seen: %v; want the moved bytes to grow in steps", progress)
	}
	out, _ = hanodeCmd("rebalance status")
	t.Logf("progress samples (bytes moved): %v; hanode rebalance status mid-way:\n%s\nand after: %s", progress, cliStatus, strings.TrimSpace(out))
	t.Logf("hanode status mid-way: %s", statusLine)
	if cliStatus == "" || statusLine == "" || !strings.Contains(out, "no rebalance plan applied") {
		t.Errorf("hanode rebalance status (%q) or hanode status (%q) showed no progress mid-way, or still a plan at the end (%q)", cliStatus, statusLine, out)
	}

	// The records: every chunk on two distinct machines, each copy intact on its disk.
	chunks := labChunks(t, ec)
	if ok, why := redundant(l, chunks, 2); !ok {
		t.Fatalf("after the rebalance: %s", why)
	}
	var onM4 int64
	for _, ch := range chunks {
		if slices.Contains(ch.Replicas, "m4") {
			onM4 += ch.Size
		}
	}
	secs := doneAt.Sub(applied).Seconds()
	t.Logf("rebalance moved %.1f MiB to m4 in %.1f s (apply to plan done): %.2f MiB/s at a repair-rate of %d MiB/s per datanode",
		float64(onM4)/(1<<20), secs, float64(onM4)/(1<<20)/secs, rate>>20)
	if float64(onM4) < 0.9*float64(plan.Bytes) {
		t.Fatalf("m4 holds %d bytes of replicas, the plan moved %d", onM4, plan.Bytes)
	}
	spread := func(used map[string]int64) (lo, hi float64) {
		lo, hi = math.Inf(1), math.Inf(-1)
		for _, m := range plan.Machines {
			f := 100 * float64(used[m.Name]) / float64(m.Capacity)
			lo, hi = min(lo, f), max(hi, f)
		}
		return lo, hi
	}
	used := map[string]int64{}
	for _, ch := range chunks {
		for _, m := range ch.Replicas {
			used[m] += ch.Size
		}
	}
	if lo, hi := spread(used); hi-lo > plan.Threshold {
		t.Fatalf("replica bytes per capacity range from %.1f%% to %.1f%% (threshold %g points): %v", lo, hi, plan.Threshold, used)
	}
	// The disks: the moved copies are deleted gc-grace after the records stopped naming them,
	// and each datanode reports its stored bytes as capacity minus free. They end as close as
	// the records (within half the threshold: chunk granularity and the files' checksums).
	waitFor(t, "the disks to be spread within half the threshold", 60*time.Second, func() bool {
		regs, err := cluster.Nodes(ctx, ec)
		if err != nil {
			return false
		}
		disk := map[string]int64{}
		for _, r := range regs {
			if r.Role == "datanode" {
				disk[r.Machine] = r.Capacity - r.Free
			}
		}
		lo, hi := spread(disk)
		if hi-lo <= plan.Threshold/2 {
			t.Logf("on disk after the collection: %.1f%% to %.1f%% of capacity used", lo, hi)
			return true
		}
		return false
	})
	checkSummed(ctx, t, mc, "spread", sums, "after the rebalance")
}
