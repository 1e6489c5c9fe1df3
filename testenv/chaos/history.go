package chaos

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op is one operation of a history as a client recorded it.
type Op struct {
	// Process is the porcupine client id. A client takes a new one after an unknown outcome,
	// as in Jepsen: the old process may still be acting, so the next call is not after it.
	Process  int    `json:"process"`
	Input    Input  `json:"input"`
	Output   Output `json:"output"`
	Call     int64  `json:"call"`   // nanoseconds since the run's start
	Return   int64  `json:"return"` // when the client saw the outcome, even an unknown one
	Endpoint string `json:"endpoint,omitempty"`
}

// History collects the operations of concurrent clients; it is safe for concurrent use.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
	procs int
}

// NewHistory starts a history whose times count from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the time since the history's start, in nanoseconds (monotonic).
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Start is the wall time of the history's time 0.
func (h *History) Start() time.Time { return h.start }

// NewProcess returns a fresh porcupine client id.
func (h *History) NewProcess() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.procs++
	return h.procs - 1
}

// Add records a completed operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// Ops is a copy of the operations recorded so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Operations is ops in porcupine's form. A write with an unknown outcome returns after every
// other operation: it may have taken effect at any time after its call, or not yet (which is
// the same as never, since nothing follows it). An unknown read keeps its real return: it
// accepts any state and changes none, so where it ends cannot matter, and leaving it open to
// the end would only widen the search.
func Operations(ops []Op) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		end = max(end, op.Return, op.Call)
	}
	end++
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		ret := op.Return
		if op.Output.Result == ResultUnknown && (op.Input.Op == OpPut || op.Input.Op == OpDelete) {
			ret = end
		}
		out = append(out, porcupine.Operation{ClientId: op.Process, Input: op.Input, Call: op.Call,
			Output: op.Output, Return: ret, Metadata: op.Endpoint})
	}
	return out
}

// Check checks ops for linearizability against the model within timeout (0: no limit).
func Check(ops []Op, timeout time.Duration) porcupine.CheckResult {
	return porcupine.CheckOperationsTimeout(NewModel(), Operations(ops), timeout)
}

// Visualize checks ops and writes porcupine's HTML view of them to path, with the faults as
// annotations on a "nemesis" row; it returns the check's result.
func Visualize(ops []Op, faults []Event, path string, timeout time.Duration) (porcupine.CheckResult, error) {
	model := NewModel()
	res, info := porcupine.CheckOperationsVerbose(model, Operations(ops), timeout)
	var notes []porcupine.Annotation
	for _, f := range faults {
		notes = append(notes, porcupine.Annotation{Tag: "nemesis", Start: f.At, End: f.End,
			Description: f.Kind + " " + f.Target, Details: f.String()})
	}
	info.AddAnnotations(notes)
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return res, fmt.Errorf("write the visualisation %s: %w", path, err)
	}
	return res, nil
}
