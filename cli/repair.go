package cli

import (
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/adminapi"
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
		fmt.Fprintf(tw, "%s\t%d\t%s\n", c.Priority, c.Chunks, humanBytes(c.Bytes))
	}
	fmt.Fprintf(tw, "waiting (down < repair-grace)\t%d\t%s\n", st.Waiting.Chunks, humanBytes(st.Waiting.Bytes))
	fmt.Fprintf(tw, "unrecoverable\t%d\t\n", st.Unrecoverable)
	tw.Flush()
	fmt.Fprintf(w, "\nqueued %d, in flight %d; repaired %d replicas (%s) this term, %d failures\n", st.Queued, st.InFlight, st.RepairedChunks, humanBytes(st.RepairedBytes), st.Failures)
	fmt.Fprintf(w, "rate %s/s, %s left, ETA %s\n\n", humanBytes(int64(st.Rate)), humanBytes(st.BytesLeft), eta(st.ETASeconds))
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tSTATE\tREPLICAS\tBYTES\tDOWN SINCE")
	for _, m := range st.Machines {
		down := ""
		if m.DownSince != nil {
			down = m.DownSince.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", m.Name, m.State, m.Replicas, humanBytes(m.Bytes), down)
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

// humanBytes prints n with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
