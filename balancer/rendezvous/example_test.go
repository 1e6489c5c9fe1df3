package rendezvous_test

import (
	"fmt"

	"github.com/hanode/hanode/balancer/rendezvous"
)

// Every proxy ranks the coordinators for a client the same way, from the client's key and the
// coordinators' IDs alone. When a coordinator leaves, only the clients it served move: each to
// its next choice.
func Example() {
	p := rendezvous.New(rendezvous.Options{SlowStart: -1}) // no ramp: placement depends on the keys alone
	p.Set([]rendezvous.Node{{ID: "coord-a"}, {ID: "coord-b"}, {ID: "coord-c"}})

	clients := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}
	before := map[string]string{}
	for _, c := range clients {
		before[c] = p.Order(c)[0]
	}

	p.Set([]rendezvous.Node{{ID: "coord-a"}, {ID: "coord-c"}}) // coord-b is gone
	for _, c := range clients {
		fmt.Printf("%s: %s -> %s\n", c, before[c], p.Order(c)[0])
	}
	// Output:
	// 10.0.0.1: coord-c -> coord-c
	// 10.0.0.2: coord-c -> coord-c
	// 10.0.0.3: coord-c -> coord-c
	// 10.0.0.4: coord-a -> coord-a
	// 10.0.0.5: coord-b -> coord-c
	// 10.0.0.6: coord-c -> coord-c
}

// Bounded loads: sessions that all hash to the same first choice (one office behind one NAT
// address) fill it only up to its share times the load factor, then spill to the next
// coordinator in the key's order.
func ExamplePicker_Pick() {
	p := rendezvous.New(rendezvous.Options{SlowStart: -1, LoadFactor: 1.25})
	p.Set([]rendezvous.Node{{ID: "coord-a"}, {ID: "coord-b"}, {ID: "coord-c"}})

	fmt.Println("order for the office:", p.Order("203.0.113.7"))
	var picked []string
	for range 6 {
		id, err := p.Pick("203.0.113.7") // a new session; Done(id) when it ends
		if err != nil {
			fmt.Println(err)
			return
		}
		picked = append(picked, id)
	}
	fmt.Println("six sessions:", picked)
	fmt.Println("open sessions:", p.Loads())
	// Output:
	// order for the office: [coord-c coord-a coord-b]
	// six sessions: [coord-c coord-a coord-c coord-a coord-c coord-a]
	// open sessions: map[coord-a:3 coord-b:0 coord-c:3]
}
