// Package chaos is the fault suite: concurrent S3 clients (minio-go) record a history of
// PUTs, GETs (plain and conditional) and DELETEs against a lab while a nemesis injects faults
// of one family (kill -9, SIGSTOP, partition of controllers, datanodes, coordinators or
// machines); after a quiet final phase that reads back every key and lists the bucket, the
// history is checked for linearizability with porcupine (model.go).
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/minio/minio-go/v7"

	"github.com/hanode/hanode/testenv"
)

// Config is what to run.
type Config struct {
	Lab    *testenv.Lab
	Driver testenv.Driver
	// Families are run one after another, each on a bucket of its own.
	Families []Family
	// Duration is each family's fault phase (default 30 s).
	Duration time.Duration
	// Clients is how many concurrent clients record operations (default 6).
	Clients int
	// Keys is how many keys all clients share (default 4); each client also creates its own.
	Keys int
	// OpTimeout bounds one operation (default 5 s); one that runs out has an unknown outcome.
	OpTimeout time.Duration
	// FinalTimeout bounds the final phase's retries to read each key (default 2 min).
	FinalTimeout time.Duration
	// CheckTimeout bounds porcupine's check of one history (default 2 min).
	CheckTimeout time.Duration
	// Hold and Quiet are the longest a fault lasts and the longest pause between faults
	// (defaults 6 s and 3 s); each is drawn between half and all of it.
	Hold, Quiet time.Duration
	// OutDir receives, for a family whose check fails, a directory with the history, the
	// fault timeline and porcupine's visualisation.
	OutDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Seed makes the workload's and the nemesis's choices repeatable (0: random).
	Seed uint64
}

// Verdict is the outcome of one family's run.
type Verdict string

const (
	VerdictOK        Verdict = "ok"        // linearizable and every key read back whole
	VerdictViolation Verdict = "violation" // porcupine rejected the history, or the final check failed
	VerdictUnknown   Verdict = "unknown"   // porcupine could not decide within CheckTimeout
)

// Report is one family's outcome.
type Report struct {
	Family  string `json:"family"`
	Bucket  string `json:"bucket"`
	Ops     int    `json:"ops"`     // operations checked, final reads included
	Unknown int    `json:"unknown"` // of them, failed or timed out (indeterminate) during the faults
	// FinalUnknown counts the final phase's failed reads (each retried until the key reads back).
	FinalUnknown int           `json:"final_unknown"`
	Faults       []Event       `json:"faults"`
	Keys         int           `json:"keys"` // keys read back in the final phase
	Verdict      Verdict       `json:"verdict"`
	Problems     []string      `json:"problems,omitempty"`
	Dir          string        `json:"dir,omitempty"` // where the history and visualisation are, when written
	Elapsed      time.Duration `json:"elapsed"`
}

func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Clients <= 0 {
		c.Clients = 6
	}
	if c.Keys <= 0 {
		c.Keys = 4
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 5 * time.Second
	}
	if c.FinalTimeout <= 0 {
		c.FinalTimeout = 2 * time.Minute
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Minute
	}
	if c.Hold <= 0 {
		c.Hold = 6 * time.Second
	}
	if c.Quiet <= 0 {
		c.Quiet = 3 * time.Second
	}
	if c.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, x := range b {
			c.Seed = c.Seed<<8 | uint64(x)
		}
	}
}

// Run runs each family in turn. An error means the run could not be carried out (the lab
// would not come back, a bucket could not be made); violations are in the reports.
func Run(ctx context.Context, cfg Config) ([]Report, error) {
	cfg.defaults()
	eps, err := endpoints(cfg.Lab)
	if err != nil {
		return nil, err
	}
	var id [3]byte
	_, _ = rand.Read(id[:])
	runID := hex.EncodeToString(id[:])
	cfg.logf("chaos run %s: seed %d, %d clients, %d shared keys, %s of faults per family", runID, cfg.Seed, cfg.Clients, cfg.Keys, cfg.Duration)
	var reports []Report
	for i, f := range cfg.Families {
		r, err := runFamily(ctx, cfg, eps, f, "chaos-"+runID+"-"+f.Name, cfg.Seed+uint64(i))
		if r != nil {
			reports = append(reports, *r)
		}
		if err != nil {
			return reports, fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return reports, nil
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

func runFamily(ctx context.Context, cfg Config, eps []endpoint, f Family, bucket string, seed uint64) (*Report, error) {
	start := time.Now()
	rep := &Report{Family: f.Name, Bucket: bucket}
	cfg.logf("%s: bucket %s", f.Name, bucket)
	if err := makeBucket(ctx, eps, bucket, cfg.OpTimeout); err != nil {
		return nil, err
	}
	h := NewHistory()
	shared := make([]string, cfg.Keys)
	for i := range shared {
		shared[i] = fmt.Sprintf("k%d", i)
	}
	// The workload.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var done atomic.Int64
	for i := range cfg.Clients {
		w := &worker{rec: newRecorder(h, eps, i, bucket, cfg.OpTimeout), id: i,
			rng: mrand.New(mrand.NewPCG(seed, uint64(i))), shared: shared, seen: map[string]string{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, stop, func(Output) { done.Add(1) })
		}()
	}
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()

	// The fault phase.
	rng := mrand.New(mrand.NewPCG(seed, 0xfa))
	between := func(d time.Duration) func() time.Duration {
		return func() time.Duration { return d/2 + time.Duration(rng.Int64N(int64(d/2)+1)) }
	}
	nem := &nemesis{lab: cfg.Lab, drv: cfg.Driver, family: f, h: h, rng: rng,
		hold: between(cfg.Hold), quiet: between(cfg.Quiet), log: func(s string) { cfg.logf("%s", s) }}
	events, nemErr := nem.run(ctx, time.Now().Add(cfg.Duration))
	rep.Faults = events
	// Clients stop before the lab is restored: the final phase runs on a quiet lab.
	halt()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if err := restore(rctx, cfg.Lab, cfg.Driver); err != nil {
		return rep, errors.Join(nemErr, fmt.Errorf("restore the lab after the faults: %w", err))
	}
	if nemErr != nil {
		return rep, nemErr
	}
	if err := ctx.Err(); err != nil { // interrupted: the lab is restored, the run is not checked
		return rep, err
	}
	cfg.logf("  %d operations during the faults; final phase", done.Load())

	// The final phase: every key read back, then the listing.
	finalStart := h.Now()
	keys := touchedKeys(h.Ops())
	rep.Keys = len(keys)
	found, problems := finalReads(ctx, h, eps, bucket, cfg.Clients, cfg.OpTimeout, keys, time.Now().Add(cfg.FinalTimeout))
	problems = append(problems, checkListing(ctx, eps, bucket, found, cfg.OpTimeout, time.Now().Add(cfg.FinalTimeout))...)

	// The check.
	ops := h.Ops()
	rep.Ops = len(ops)
	for _, op := range ops {
		if op.Output.Result == ResultUnknown {
			if op.Call < finalStart {
				rep.Unknown++
			} else {
				rep.FinalUnknown++
			}
		}
		if op.Output.Result == ResultCorrupt {
			problems = append(problems, fmt.Sprintf("corrupt read at %.3fs from %s: %s", float64(op.Call)/1e9, op.Endpoint, describeOperation(op.Input, op.Output)))
		}
	}
	res := Check(ops, cfg.CheckTimeout)
	switch res {
	case porcupine.Ok:
		rep.Verdict = VerdictOK
	case porcupine.Illegal:
		rep.Verdict = VerdictViolation
		problems = append(problems, "porcupine: the history is not linearizable; keys: "+strings.Join(illegalKeys(ops, cfg.CheckTimeout), ", "))
	default:
		rep.Verdict = VerdictUnknown
		problems = append(problems, fmt.Sprintf("porcupine could not decide within %s", cfg.CheckTimeout))
	}
	if len(problems) > 0 && rep.Verdict == VerdictOK {
		rep.Verdict = VerdictViolation
	}
	rep.Problems = problems
	if rep.Verdict != VerdictOK {
		dir, err := writeArtifacts(cfg, rep, ops, events)
		rep.Dir = dir
		if err != nil {
			rep.Problems = append(rep.Problems, "writing the history: "+err.Error())
		}
	} else {
		removeBucket(ctx, eps, bucket, keys, cfg.OpTimeout)
	}
	rep.Elapsed = time.Since(start)
	cfg.logf("  %s: %d ops checked, %d failed requests during the faults, %d faults, %d keys read back (%d failed reads retried): %s",
		f.Name, rep.Ops, rep.Unknown, len(events), rep.Keys, rep.FinalUnknown, rep.Verdict)
	for _, p := range rep.Problems {
		cfg.logf("    %s", p)
	}
	if rep.Dir != "" {
		cfg.logf("    history, timeline and visualisation in %s", rep.Dir)
	}
	return rep, nil
}

// illegalKeys names the keys whose own histories porcupine rejects.
func illegalKeys(ops []Op, timeout time.Duration) []string {
	byKey := map[string][]Op{}
	for _, op := range ops {
		byKey[op.Input.Key] = append(byKey[op.Input.Key], op)
	}
	var keys []string
	for k, kops := range byKey {
		if Check(kops, timeout) == porcupine.Illegal {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// touchedKeys is every key an operation of ops named, sorted.
func touchedKeys(ops []Op) []string {
	set := map[string]bool{}
	for _, op := range ops {
		set[op.Input.Key] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// finalReads reads every key, with n clients in parallel, each retrying a key until a read
// has a definite outcome or the deadline passes. It returns the version found per key (absent
// ones are not in the map) and, for each key that never read back, a problem: after the
// faults, on a healthy lab, every GET must answer.
func finalReads(ctx context.Context, h *History, eps []endpoint, bucket string, n int, timeout time.Duration, keys []string, deadline time.Time) (map[string]string, []string) {
	var mu sync.Mutex
	found := map[string]string{}
	var problems []string
	next := make(chan string)
	var wg sync.WaitGroup
	for i := range n {
		r := newRecorder(h, eps, i, bucket, timeout)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				var last Output
				for {
					last = r.do(ctx, Input{Op: OpGet, Key: k})
					if last.Result != ResultUnknown || time.Now().After(deadline) || ctx.Err() != nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				mu.Lock()
				switch last.Result {
				case ResultFound:
					found[k] = last.Version
				case ResultNotFound, ResultCorrupt: // a corrupt read is reported with the others
				default:
					problems = append(problems, fmt.Sprintf("key %s: no GET succeeded in the final phase; the last: %s", k, strings.ReplaceAll(last.Detail, "\n", " / ")))
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	slices.Sort(problems)
	return found, problems
}

// checkListing lists the bucket (retrying until the deadline) and compares it with the final
// reads: every listed object must have read back, with the size and ETag of its version, and
// every object read back must be listed.
func checkListing(ctx context.Context, eps []endpoint, bucket string, found map[string]string, timeout time.Duration, deadline time.Time) []string {
	var listed map[string]minio.ObjectInfo
	var err error
	for i := 0; ; i++ {
		listed, err = list(ctx, eps[i%len(eps)], bucket, timeout)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return []string{"the final listing failed: " + err.Error()}
	}
	var problems []string
	for k, oi := range listed {
		v, ok := found[k]
		if !ok {
			problems = append(problems, fmt.Sprintf("key %s is listed (size %d, ETag %s) but did not read back", k, oi.Size, oi.ETag))
			continue
		}
		if want := int64(bodySize(k, v)); oi.Size != want {
			problems = append(problems, fmt.Sprintf("key %s is listed with size %d; its version %s has %d bytes", k, oi.Size, v, want))
		}
		if want := ETag(k, v); oi.ETag != want {
			problems = append(problems, fmt.Sprintf("key %s is listed with ETag %s; its version %s has %s", k, oi.ETag, v, want))
		}
	}
	for k, v := range found {
		if _, ok := listed[k]; !ok {
			problems = append(problems, fmt.Sprintf("key %s read back as version %s but is not listed", k, v))
		}
	}
	slices.Sort(problems)
	return problems
}

func list(ctx context.Context, ep endpoint, bucket string, timeout time.Duration) (map[string]minio.ObjectInfo, error) {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := map[string]minio.ObjectInfo{}
	for oi := range ep.s3.Client.ListObjects(lctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("list %s through %s: %w", bucket, ep.url, oi.Err)
		}
		out[oi.Key] = oi
	}
	return out, nil
}

// makeBucket creates the family's bucket, trying each endpoint in turn (the lab may still be
// settling after the previous family).
func makeBucket(ctx context.Context, eps []endpoint, bucket string, timeout time.Duration) error {
	var err error
	deadline := time.Now().Add(time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		bctx, cancel := context.WithTimeout(ctx, timeout)
		err = eps[i%len(eps)].s3.MakeBucket(bctx, bucket, minio.MakeBucketOptions{})
		cancel()
		if err == nil || minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("create bucket %s: %w", bucket, err)
}

// removeBucket deletes a passed family's objects and bucket, so that long runs against a lab
// do not fill it; failures leave them (a later look is no harm).
func removeBucket(ctx context.Context, eps []endpoint, bucket string, keys []string, timeout time.Duration) {
	ep := eps[0]
	for _, k := range keys {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		_ = ep.s3.RemoveObject(dctx, bucket, k, minio.RemoveObjectOptions{})
		cancel()
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	_ = ep.s3.RemoveBucket(dctx, bucket)
	cancel()
}

// writeArtifacts writes a failed family's history (JSON), fault timeline (JSON and text),
// problems and porcupine's visualisation into OutDir/<bucket>.
func writeArtifacts(cfg Config, rep *Report, ops []Op, events []Event) (string, error) {
	out := cfg.OutDir
	if out == "" {
		out = filepath.Join(cfg.Lab.Dir, "chaos")
	}
	dir := filepath.Join(out, rep.Bucket)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var errs []error
	writeJSON := func(name string, v any) {
		b, err := json.MarshalIndent(v, "", " ")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644)
		}
		errs = append(errs, err)
	}
	writeJSON("history.json", ops)
	writeJSON("timeline.json", events)
	writeJSON("report.json", rep)
	var tl strings.Builder
	fmt.Fprintf(&tl, "fault family %s, bucket %s; times are seconds since the history's start\n", rep.Family, rep.Bucket)
	for _, e := range events {
		fmt.Fprintln(&tl, e.String())
	}
	errs = append(errs, os.WriteFile(filepath.Join(dir, "timeline.txt"), []byte(tl.String()), 0o644))
	errs = append(errs, os.WriteFile(filepath.Join(dir, "problems.txt"), []byte(strings.Join(rep.Problems, "\n")+"\n"), 0o644))
	if _, err := Visualize(ops, events, filepath.Join(dir, "visualization.html"), cfg.CheckTimeout); err != nil {
		errs = append(errs, err)
	}
	return dir, errors.Join(errs...)
}
