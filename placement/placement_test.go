package placement

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestChoose(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	three := []Node{{Machine: "m1", Free: 100 << 30}, {Machine: "m2", Free: 100 << 30}, {Machine: "m3", Free: 100 << 30}}
	tests := []struct {
		name    string
		nodes   []Node
		n       int
		exclude []string
		minFree int64
		wantErr bool
	}{
		{"two of three", three, 2, nil, 0, false},
		{"all three", three, 3, nil, 0, false},
		{"four of three", three, 4, nil, 0, true},
		{"excluded", three, 3, []string{"m2"}, 0, true},
		{"full node skipped", append([]Node{{Machine: "m4", Free: 10}}, three...), 4, nil, 1 << 20, true},
		{"duplicate machine counts once", append([]Node{{Machine: "m1", Free: 1 << 40}}, three...), 4, nil, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				got, err := Choose(tc.nodes, tc.n, tc.exclude, tc.minFree, rng)
				if tc.wantErr {
					var ne *NotEnoughError
					if !errors.As(err, &ne) {
						t.Fatalf("want NotEnoughError, got %v", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]bool{}
				for _, g := range got {
					if seen[g.Machine] {
						t.Fatalf("two replicas on %s: %v", g.Machine, got)
					}
					seen[g.Machine] = true
				}
				if len(got) != tc.n {
					t.Fatalf("got %d nodes", len(got))
				}
			}
		})
	}
}

func TestZonesSpreadFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nodes := []Node{
		{Machine: "a1", Zone: "a", Free: 1 << 40}, {Machine: "a2", Zone: "a", Free: 1 << 40}, {Machine: "a3", Zone: "a", Free: 1 << 40},
		{Machine: "b1", Zone: "b", Free: 1 << 30},
	}
	for range 500 {
		got, err := Choose(nodes, 2, nil, 0, rng)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Zone == got[1].Zone {
			t.Fatalf("both replicas in zone %s although zone b has room: %v", got[0].Zone, got)
		}
	}
}

func TestFreeSpaceWeighting(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	nodes := []Node{{Machine: "big", Free: 900 << 30}, {Machine: "small", Free: 100 << 30}}
	count := map[string]int{}
	for range 10000 {
		got, _ := Choose(nodes, 1, nil, 0, rng)
		count[got[0].Machine]++
	}
	// Expect about 90 % on the big node; a wide margin keeps this from flaking.
	if count["big"] < 8500 || count["big"] > 9500 {
		t.Fatalf("big node got %d of 10000 placements, want about 9000", count["big"])
	}
}

func TestSuspectsLast(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	nodes := []Node{
		{Machine: "m1", Free: 1 << 30}, {Machine: "m2", Free: 1 << 40, Suspect: true}, {Machine: "m3", Free: 1 << 30},
	}
	for range 500 {
		got, err := Choose(nodes, 2, nil, 0, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			if g.Suspect {
				t.Fatalf("a suspect datanode chosen although two healthy ones have room: %v", got)
			}
		}
	}
	// Not enough healthy nodes: the suspect one makes up the rest rather than failing the write.
	got, err := Choose(nodes, 3, nil, 0, rng)
	if err != nil || len(got) != 3 {
		t.Fatalf("three of two healthy and one suspect: %v %v", got, err)
	}
	if got, err := Choose(nodes, 2, []string{"m1"}, 0, rng); err != nil || !slices.ContainsFunc(got, func(n Node) bool { return n.Suspect }) {
		t.Fatalf("two with one healthy excluded: %v %v", got, err)
	}
}
