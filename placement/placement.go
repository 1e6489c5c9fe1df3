// Package placement chooses the datanodes a chunk's replicas go to. Rules, in order: every
// replica on a distinct machine (always); no suspect datanode (one that recently missed a
// deadline) unless the others are too few; spread across zone labels when machines have them
// (a machine without a label is its own zone); then favour free space, at random weighted by
// free bytes so that concurrent writers do not all pile onto the emptiest machine.
package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Node is a live datanode that may receive chunks.
type Node struct {
	Machine string
	Address string // base URL of its chunk API
	Zone    string
	Free    int64
	// Suspect: the datanode missed a deadline and has not answered since; it is chosen only
	// when the others cannot make up the replicas.
	Suspect bool
}

// NotEnoughError says why a placement is impossible.
type NotEnoughError struct {
	Want, Have int
	Excluded   int
}

func (e *NotEnoughError) Error() string {
	msg := fmt.Sprintf("need %d datanodes on distinct machines, %d are live with free space", e.Want, e.Have)
	if e.Excluded > 0 {
		msg += fmt.Sprintf(" (%d more excluded: draining or failed in this write)", e.Excluded)
	}
	return msg
}

// Choose returns n nodes on distinct machines, none of them on a machine in exclude, each with
// at least minFree bytes free. rng may be nil (the global source).
func Choose(nodes []Node, n int, exclude []string, minFree int64, rng *rand.Rand) ([]Node, error) {
	cands := make([]Node, 0, len(nodes))
	excluded := 0
	for _, nd := range nodes {
		switch {
		case slices.Contains(exclude, nd.Machine):
			excluded++
		case nd.Free < minFree:
		case slices.ContainsFunc(cands, func(c Node) bool { return c.Machine == nd.Machine }):
		default:
			cands = append(cands, nd)
		}
	}
	if len(cands) < n {
		return nil, &NotEnoughError{Want: n, Have: len(cands), Excluded: excluded}
	}
	// Healthy nodes first; suspects only for what the healthy ones cannot cover.
	healthy, suspect := make([]Node, 0, len(cands)), []Node(nil)
	for _, c := range cands {
		if c.Suspect {
			suspect = append(suspect, c)
		} else {
			healthy = append(healthy, c)
		}
	}
	out := make([]Node, 0, n)
	var zones []string
	out, zones = pick(out, zones, healthy, min(n, len(healthy)), rng)
	out, _ = pick(out, zones, suspect, n-len(out), rng)
	return out, nil
}

// pick appends k of cands to out, spreading over zones not yet in zones, weighted by free space.
func pick(out []Node, zones []string, cands []Node, k int, rng *rand.Rand) ([]Node, []string) {
	cands = slices.Clone(cands)
	for ; k > 0; k-- {
		// Prefer machines in zones that hold no replica yet; once every zone has one, any.
		pool := make([]int, 0, len(cands))
		for i, c := range cands {
			if !slices.Contains(zones, zoneOf(c)) {
				pool = append(pool, i)
			}
		}
		if len(pool) == 0 {
			for i := range cands {
				pool = append(pool, i)
			}
		}
		i := pool[weighted(cands, pool, rng)]
		out = append(out, cands[i])
		zones = append(zones, zoneOf(cands[i]))
		cands = slices.Delete(cands, i, i+1)
	}
	return out, zones
}

func zoneOf(n Node) string {
	if n.Zone == "" {
		return "machine:" + n.Machine
	}
	return "zone:" + n.Zone
}

// weighted picks an index into pool with probability proportional to free space.
func weighted(cands []Node, pool []int, rng *rand.Rand) int {
	var sum float64
	for _, i := range pool {
		sum += weight(cands[i])
	}
	x := float64n(rng) * sum
	for j, i := range pool {
		x -= weight(cands[i])
		if x < 0 {
			return j
		}
	}
	return len(pool) - 1
}

// weight is free GiB with a floor, so nodes reporting no figures still take a share.
func weight(n Node) float64 { return max(float64(n.Free)/(1<<30), 0.01) }

func float64n(rng *rand.Rand) float64 {
	if rng == nil {
		return rand.Float64()
	}
	return rng.Float64()
}
