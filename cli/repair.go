package cli

import (
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
)

type repairCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run prints the active master's repair: chunks and bytes at risk by priority, rate, ETA,
// and the replicas recorded on each machine.
func (c repairCmd) Run(e *Env) error {
	var st adminapi.Repair
	if err := adminCall(e, http.MethodGet, "/v1/repair", nil, &st); err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(e.Stdout, st)
	}
	printRepair(e.Stdout, &st)
	return nil
}

func printRepair(w io.Writer, st *adminapi.Repair) {
	fmt.Fprintf(w, "repair by %s (epoch %d), as of %s\n", st.Master, st.Epoch, st.Updated.Format(time.RFC3339))
	switch {
	case st.Sweep != nil:
		fmt.Fprintf(w, "last sweep: %d records, %d chunks in %s (finished %s)\n", st.Sweep.Records, st.Sweep.Chunks,
			st.Sweep.Finished.Sub(st.Sweep.Started).Round(time.Millisecond), st.Sweep.Finished.Format(time.RFC3339))
	default:
		fmt.Fprintln(w, "first sweep under way: counts are partial")
	}
	if s := st.Sweeping; s != nil {
		fmt.Fprintf(w, "sweeping: %d records so far\n", s.Records)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRIORITY\tCHUNKS\tBYTES")
	for _, c := range st.AtRisk {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", c.Priority, c.Chunks, config.HumanBytes(c.Bytes))
	}
	fmt.Fprintf(tw, "waiting (down < repair-grace)\t%d\t%s\n", st.Waiting.Chunks, config.HumanBytes(st.Waiting.Bytes))
	fmt.Fprintf(tw, "unrecoverable\t%d\t\n", st.Unrecoverable)
	tw.Flush()
	fmt.Fprintf(w, "\nqueued %d, in flight %d; repaired %d replicas (%s) this term, %d failures\n", st.Queued, st.InFlight, st.RepairedChunks, config.HumanBytes(st.RepairedBytes), st.Failures)
	fmt.Fprintf(w, "rate %s/s, %s left, ETA %s\n\n", config.HumanBytes(int64(st.Rate)), config.HumanBytes(st.BytesLeft), eta(st.ETASeconds))
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tSTATE\tREPLICAS\tBYTES\tLEFT\tDOWN SINCE")
	for _, m := range st.Machines {
		down := ""
		if m.DownSince != nil {
			down = m.DownSince.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", m.Name, m.State, m.Replicas, config.HumanBytes(m.Bytes), m.Left, down)
	}
	tw.Flush()
}

func eta(s float64) string {
	switch {
	case s < 0:
		return "unknown"
	case s == 0:
		return "done"
	}
	return (time.Duration(s) * time.Second).String()
}

// waitDrained polls the repair status until a sweep that began after start finds no replica
// on machine, printing a line every `every`: replicas left, bytes left, rate, ETA.
func waitDrained(e *Env, machine string, start time.Time, every, timeout time.Duration) error {
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ELAPSED\tREPLICAS LEFT\tBYTES LEFT\tRATE\tETA")
	tw.Flush()
	// The rate is measured from the most bytes seen left (the first sweep after the drain
	// began counts them; earlier ones may predate the data).
	var peak int64
	var peakAt time.Time
	for {
		var st adminapi.Repair
		err := adminCall(e, http.MethodGet, "/v1/repair", nil, &st)
		if err == nil && st.Sweep != nil {
			row := adminapi.RepairMachine{Name: machine}
			for _, m := range st.Machines {
				if m.Name == machine {
					row = m
				}
			}
			now := time.Now()
			fresh := st.Sweep.Started.After(start)
			if row.LeftBytes >= peak {
				peak, peakAt = row.LeftBytes, now
			}
			rate := 0.0
			if d := now.Sub(peakAt).Seconds(); d > 0 && peak > row.LeftBytes {
				rate = float64(peak-row.LeftBytes) / d
			}
			left := "counting"
			switch {
			case !fresh:
				left = "first sweep pending"
			case row.Left == 0:
				left = "done"
			case rate > 0:
				left = eta(float64(row.LeftBytes) / rate)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s/s\t%s\n", time.Since(start).Round(time.Second), row.Left, config.HumanBytes(row.LeftBytes), config.HumanBytes(int64(rate)), left)
			tw.Flush()
			if row.Replicas == 0 && fresh {
				fmt.Fprintf(e.Stdout, "%s is drained: no replica left on it\n", machine)
				return nil
			}
		} else if err != nil {
			fmt.Fprintf(e.Stderr, "hanode: reading the repair status: %v\n", err)
		}
		if timeout > 0 && time.Since(start) > timeout {
			return fmt.Errorf("%s not drained after %v", machine, timeout)
		}
		time.Sleep(every)
	}
}

type scrubCmd struct {
	Status scrubStatusCmd `cmd:"" help:"Show each datanode's background verification: the pass under way, the last complete pass, corrupt chunks found."`
}

type scrubStatusCmd struct {
	JSON bool `help:"Print JSON."`
}

func (c scrubStatusCmd) Run(e *Env) error {
	var st adminapi.Scrub
	if err := adminCall(e, http.MethodGet, "/v1/scrub", nil, &st); err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(e.Stdout, st)
	}
	fmt.Fprintf(e.Stdout, "scrub-interval %s, scrub-rate %s/s\n\n", st.Interval, config.HumanBytes(st.Rate))
	tw := tabwriter.NewWriter(e.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATANODE\tPASSES\tLAST PASS FINISHED\tLAST PASS\tTHIS PASS\tCORRUPT FOUND")
	for _, d := range st.Datanodes {
		last := "never"
		if !d.LastPassFinished.IsZero() {
			last = d.LastPassFinished.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d chunks, %s in %s\t%d chunks, %s\t%d\n", d.Machine, d.Passes, last,
			d.LastPassChunks, config.HumanBytes(d.LastPassBytes), d.LastPassFinished.Sub(d.LastPassStarted).Round(time.Millisecond),
			d.PassChunks, config.HumanBytes(d.PassBytes), d.Corrupt)
	}
	return tw.Flush()
}

type rebalanceCmd struct {
	Plan   rebalancePlanCmd   `cmd:"" help:"Show the moves that would bring every machine within the threshold of the cluster's used fraction, and whether they are feasible. Nothing moves."`
	Apply  rebalanceApplyCmd  `cmd:"" help:"Plan, and have the active master carry out the plan (throttled by repair-rate)."`
	Status rebalanceStatusCmd `cmd:"" help:"Show the applied plan and the bytes moved."`
	Cancel rebalanceCancelCmd `cmd:"" help:"Stop the applied plan (what moved stays)."`
}

type rebalancePlanCmd struct {
	Threshold float64 `help:"Allowed distance from the cluster's used fraction, in percentage points." default:"10"`
	JSON      bool    `help:"Print JSON."`
}

func (c rebalancePlanCmd) Run(e *Env) error {
	var p adminapi.RebalancePlan
	if err := adminCall(e, http.MethodGet, fmt.Sprintf("/v1/rebalance/plan?threshold=%g", c.Threshold), nil, &p); err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(e.Stdout, p)
	}
	printPlan(e.Stdout, &p)
	return nil
}

type rebalanceApplyCmd struct {
	Threshold float64 `help:"Allowed distance from the cluster's used fraction, in percentage points." default:"10"`
}

func (c rebalanceApplyCmd) Run(e *Env) error {
	var p adminapi.RebalancePlan
	err := adminCall(e, http.MethodPost, fmt.Sprintf("/v1/rebalance?threshold=%g", c.Threshold), nil, &p)
	if err != nil {
		return err
	}
	printPlan(e.Stdout, &p)
	if len(p.Moves) == 0 {
		fmt.Fprintln(e.Stdout, "nothing to move")
		return nil
	}
	fmt.Fprintln(e.Stdout, "applied: the active master moves the replicas (hanode rebalance status)")
	return nil
}

type rebalanceStatusCmd struct{}

func (rebalanceStatusCmd) Run(e *Env) error {
	var st adminapi.Repair
	if err := adminCall(e, http.MethodGet, "/v1/repair", nil, &st); err != nil {
		return err
	}
	if st.Rebalance == nil {
		fmt.Fprintln(e.Stdout, "no rebalance plan applied")
		return nil
	}
	printPlan(e.Stdout, st.Rebalance)
	return nil
}

type rebalanceCancelCmd struct{}

func (rebalanceCancelCmd) Run(e *Env) error {
	if err := adminCall(e, http.MethodDelete, "/v1/rebalance", nil, nil); err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, "rebalance cancelled")
	return nil
}

func printPlan(w io.Writer, p *adminapi.RebalancePlan) {
	fmt.Fprintf(w, "cluster used %.1f%%, threshold %g points; based on the sweep of %s\n\n", 100*p.Mean, p.Threshold, p.Based.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tCAPACITY\tFREE\tUSED\tBEFORE\tAFTER")
	for _, m := range p.Machines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f%%\t%.1f%%\n", m.Name, config.HumanBytes(m.Capacity), config.HumanBytes(m.Free), config.HumanBytes(m.Used), 100*m.Before, 100*m.After)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tBYTES\tMOVED")
	for _, mv := range p.Moves {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", mv.From, mv.To, config.HumanBytes(mv.Bytes), config.HumanBytes(mv.Moved))
	}
	tw.Flush()
	feas := "feasible"
	if !p.Feasible {
		feas = "NOT feasible"
	}
	fmt.Fprintf(w, "\n%d moves, %s in all: %s\n", len(p.Moves), config.HumanBytes(p.Bytes), feas)
	for _, pr := range p.Problems {
		fmt.Fprintf(w, "problem: %s\n", pr)
	}
}
