package repair

import (
	"slices"
	"testing"
	"time"

	"github.com/hanode/hanode/cluster"

	"github.com/hanode/hanode/meta"
)

func task(id string, p Priority) Task {
	return Task{Key: "k/" + id, Chunk: meta.Chunk{ID: id}, Priority: p}
}

// Tasks leave most urgent first, FIFO within a priority; a chunk is held once; a full queue
// lets an urgent task displace the newest of the least urgent, and refuses one that is not
// more urgent than anything queued.
func TestQueueOrder(t *testing.T) {
	q := NewQueue(4)
	for _, tk := range []Task{task("d1", Draining), task("u1", UnderReplicated), task("x1", Damaged), task("c1", Critical)} {
		if !q.Push(tk) {
			t.Fatalf("push %s refused", tk.Chunk.ID)
		}
	}
	if q.Push(task("u1", UnderReplicated)) {
		t.Fatal("a queued chunk was queued twice")
	}
	if q.Push(task("d2", Draining)) {
		t.Fatal("a full queue took a task no more urgent than its least urgent")
	}
	if !q.Push(task("c2", Critical)) {
		t.Fatal("a full queue refused a critical task while a draining one was queued")
	}
	// u1 becomes critical: it moves up, behind c2.
	if !q.Push(task("u1", Critical)) {
		t.Fatal("a chunk that became more urgent was not requeued")
	}
	var got []string
	for {
		tk, ok := q.Pop()
		if !ok {
			break
		}
		got = append(got, tk.Chunk.ID)
	}
	want := []string{"c1", "c2", "u1", "x1"}
	if len(got) != len(want) {
		t.Fatalf("popped %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("popped %q, want %q", got, want)
		}
	}
	// In flight until Done: not queued again meanwhile.
	if q.Push(task("c1", Critical)) {
		t.Fatal("a chunk in flight was queued")
	}
	q.Done("c1")
	if !q.Push(task("c1", Critical)) {
		t.Fatal("a chunk whose task is done could not be queued again")
	}
	if n, f := q.Len(); n != 1 || f != 3 {
		t.Fatalf("Len = %d queued, %d in flight; want 1, 3", n, f)
	}
}

// judge puts chunks in the priorities the issue orders them by: one readable replica left,
// short of R, damaged, on a draining machine; a machine down within the grace is waited for.
func TestJudge(t *testing.T) {
	now := time.Now()
	long, short := now.Add(-time.Hour), now.Add(-time.Second)
	v := &view{at: now, grace: time.Minute,
		live:     map[string]cluster.Registration{"a": {Machine: "a"}, "b": {Machine: "b"}, "c": {Machine: "c"}, "d": {Machine: "d"}},
		states:   map[string]*MachineState{"dead": {DownSince: &long}, "down": {DownSince: &short}},
		draining: map[string]bool{"d": true},
	}
	none := func(string) bool { return false }
	is := func(ms ...string) func(string) bool { return func(m string) bool { return slices.Contains(ms, m) } }
	for _, tc := range []struct {
		name      string
		replicas  []string
		want      int
		lost, bad func(string) bool
		work      bool
		priority  Priority
		readable  int
	}{
		{"healthy", []string{"a", "b"}, 2, none, none, false, 0, 2},
		{"one left of two (dead)", []string{"a", "dead"}, 2, none, none, true, Critical, 1},
		{"one left of two (wiped store)", []string{"a", "b"}, 2, is("b"), none, true, Critical, 1},
		{"one left of two (damaged)", []string{"a", "b"}, 2, none, is("b"), true, Critical, 1},
		{"two of three (dead)", []string{"a", "b", "dead"}, 3, none, none, true, UnderReplicated, 2},
		{"two of three (damaged)", []string{"a", "b", "c"}, 3, none, is("c"), true, Damaged, 2},
		{"down within the grace: wait", []string{"a", "down"}, 2, none, none, false, 0, 1},
		{"on a draining machine", []string{"a", "d"}, 2, none, none, true, Draining, 2},
		{"nothing readable", []string{"dead", "down"}, 2, none, none, false, 0, 0},
	} {
		vd := v.judge(meta.Chunk{ID: "x", Replicas: tc.replicas}, tc.want, tc.lost, tc.bad)
		if vd.work != tc.work || (tc.work && vd.priority != tc.priority) || len(vd.readable) != tc.readable {
			t.Errorf("%s: work %v priority %v readable %q; want %v %v %d", tc.name, vd.work, vd.priority, vd.readable, tc.work, tc.priority, tc.readable)
		}
	}
}
