package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/config"
)

// adminClient builds the failover admin client from the configuration: the machine's own
// certificate when it has one (a controller machine), else trust in the CA file alone.
func adminClient(cfg *config.Config, origins config.Origins) (*adminapi.Client, *adminTrust, error) {
	t, err := resolveTrust(cfg, origins)
	if err != nil {
		return nil, nil, err
	}
	cl, err := adminapi.New(cfg.Controllers, t.tls, t.credential)
	return cl, t, err
}

type leaderCmd struct {
	JSON bool `help:"Print JSON."`
}

func (c leaderCmd) Run(e *Env) error {
	var l adminapi.LeaderInfo
	if err := adminCall(e, http.MethodGet, "/v1/cluster/leader", nil, &l); err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(e.Stdout, l)
	}
	fmt.Fprintf(e.Stdout, "%s  %s  epoch %d  since %s (%s ago)\n", l.Name, l.Address, l.Epoch,
		l.Since.Format(time.RFC3339), time.Since(l.Since).Round(time.Second))
	return nil
}

type statusCmd struct {
	JSON bool `help:"Print JSON."`
}

func (c statusCmd) Run(e *Env) error {
	var st adminapi.Status
	if err := adminCall(e, http.MethodGet, "/v1/cluster/status", nil, &st); err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(e.Stdout, st)
	}
	w := e.Stdout
	fmt.Fprintf(w, "cluster %s (answered by %s)\n", st.Cluster, st.AnsweredBy)
	if st.Leader != nil {
		fmt.Fprintf(w, "active master: %s  epoch %d  since %s\n", st.Leader.Name, st.Leader.Epoch, st.Leader.Since.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "active master: NONE")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTROLLER\tRAFT\tHEALTH\tPEER URL")
	for _, m := range st.Controllers {
		raft := "follower"
		switch {
		case m.Learner:
			raft = "learner"
		case m.RaftLeader:
			raft = "leader"
		}
		health := "healthy"
		if !m.Healthy {
			health = "UNHEALTHY"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, raft, health, strings.Join(m.PeerURLs, ","))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tROLES")
	for _, m := range st.Machines {
		fmt.Fprintf(tw, "%s\t%s\n", m.Name, strings.Join(m.Roles, ", "))
	}
	tw.Flush()
	agentsSection(e, w)
	if r := st.Replication; r != nil {
		fmt.Fprintf(w, "\nreplication: %d copies per chunk; %d datanodes live (%d draining); %d damaged replicas awaiting repair; %d deletions queued; %d writes in flight\n",
			r.Replicas, r.DatanodesLive, r.Draining, r.BadReplicas, r.GarbageRecords, r.Writes)
		if rp := r.Repair; rp != nil {
			fmt.Fprintf(w, "repair: %d chunks (%s) at risk, %d critical, %d waiting for repair-grace, %d unrecoverable; rate %s/s, ETA %s\n",
				rp.AtRiskChunks, config.HumanBytes(rp.AtRiskBytes), rp.Critical, rp.Waiting, rp.Unrecoverable, config.HumanBytes(int64(rp.Rate)), eta(rp.ETASeconds))
			for _, m := range rp.Draining {
				fmt.Fprintf(w, "drain: %s has %d replicas (%s) left\n", m.Name, m.Left, config.HumanBytes(m.LeftBytes))
			}
			if rb := rp.Rebalance; rb != nil {
				fmt.Fprintf(w, "rebalance: %s of %s moved (%d moves; hanode rebalance status)\n", config.HumanBytes(rb.Moved), config.HumanBytes(rb.Bytes), rb.Moves)
			}
		}
		oldest := "not every datanode has finished a pass yet"
		if p := r.ScrubOldestPass; p != nil && !p.IsZero() {
			oldest = "oldest last full pass " + p.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "scrub: %d corrupt chunks found (quarantined and repaired); %s\n", r.ScrubCorrupt, oldest)
	}
	if len(st.Problems) > 0 {
		fmt.Fprintln(w)
		for _, p := range st.Problems {
			fmt.Fprintf(w, "problem: %s\n", p)
		}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
