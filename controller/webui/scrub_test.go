package webui

import (
	"testing"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/cluster"
)

func TestScrubView(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dn := func(name string, r cluster.ScrubReport) adminapi.ScrubDatanode {
		return adminapi.ScrubDatanode{Machine: name, ScrubReport: r}
	}
	cases := []struct {
		name string
		in   adminapi.Scrub
		want scrubView
	}{
		{"first passes under way: no ETA to go by", adminapi.Scrub{Rate: 100, Datanodes: []adminapi.ScrubDatanode{
			dn("m1", cluster.ScrubReport{PassStarted: t0, PassBytes: 50}),
			dn("m2", cluster.ScrubReport{PassStarted: t0, PassBytes: 70, Corrupt: 2}),
		}}, scrubView{Datanodes: 2, InPass: 2, Verified: 120, ETASeconds: -1, NoPass: 2, Corrupt: 2}},
		{"second passes: the slowest sets the ETA; the oldest full pass", adminapi.Scrub{Rate: 100, Datanodes: []adminapi.ScrubDatanode{
			dn("m1", cluster.ScrubReport{PassStarted: t0, PassBytes: 100, LastPassBytes: 1100, LastPassFinished: t0.Add(-time.Hour)}),
			dn("m2", cluster.ScrubReport{PassStarted: t0, PassBytes: 100, LastPassBytes: 300, LastPassFinished: t0.Add(-2 * time.Hour)}),
			dn("m3", cluster.ScrubReport{LastPassBytes: 300, LastPassFinished: t0.Add(-3 * time.Hour)}),
		}}, scrubView{Datanodes: 3, InPass: 2, Verified: 200, ETASeconds: 10, Oldest: t0.Add(-3 * time.Hour)}},
	}
	for _, c := range cases {
		if got := *newScrubView(c.in); got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}
