package repair

import (
	"container/list"
	"sync"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/meta"
)

// Priority orders repairs, most urgent first (HDFS's LowRedundancyBlocks, CockroachDB's
// allocator): a chunk one failure away from loss before one merely short of R, before a
// damaged replica, before a replica that only has to leave a draining machine, before replicas
// that share a zone while another zone could take one.
type Priority int

const (
	// Critical: one readable replica left of more than one wanted.
	Critical Priority = iota
	// UnderReplicated: fewer readable replicas than wanted (dead, wiped or removed machines).
	UnderReplicated
	// Damaged: a replica recorded damaged (its chunk still has others).
	Damaged
	// Draining: enough replicas, but one is on a draining machine and must move.
	Draining
	// Misplaced: enough healthy replicas, but in fewer zones than they could be (two in one
	// zone while another zone has a live machine): one moves to a new zone.
	Misplaced
	// numPriorities counts the priorities of chunks at risk (the status reports each).
	numPriorities
	// Rebalance: a healthy replica moved by an applied rebalance plan, after everything else.
	Rebalance = numPriorities
	numQueues = numPriorities + 1
)

var priorityNames = [numQueues]string{"critical", "under-replicated", "damaged", "draining", "misplaced", "rebalance"}

func (p Priority) String() string {
	if p < 0 || p >= numQueues {
		return "unknown"
	}
	return priorityNames[p]
}

// Task is one chunk to repair, as a sweep found it.
type Task struct {
	Key      string // etcd key of the object or part record
	Rev      int64  // the record's mod revision when swept
	Chunk    meta.Chunk
	Want     int // replicas wanted
	Priority Priority
	// Lost names machines whose store's inventory lacks the chunk (wiped or replaced).
	Lost []string
	// Move, for a rebalance task, names the machine the replica leaves and the one it goes to;
	// Plan is the creation time of the plan it belongs to (cancelled or replaced: not done).
	Move *adminapi.RebalanceMove
	Plan time.Time
}

// Queue is a bounded priority queue of tasks, FIFO within a priority, holding each chunk at
// most once (queued or in flight). When full, a task displaces the newest task of a lower
// priority, or is refused; what is refused or displaced is found again by the next sweep.
type Queue struct {
	mu       sync.Mutex
	cap      int
	lists    [numQueues]*list.List
	queued   map[string]*list.Element // chunk id → its element
	inFlight map[string]bool
	ready    chan struct{} // signalled (non-blocking) when a task is pushed
}

// NewQueue returns a queue of at most capacity tasks.
func NewQueue(capacity int) *Queue {
	q := &Queue{cap: max(capacity, 1), queued: map[string]*list.Element{}, inFlight: map[string]bool{}, ready: make(chan struct{}, 1)}
	for i := range q.lists {
		q.lists[i] = list.New()
	}
	return q
}

// Push queues t; it reports whether t was taken (false: its chunk is queued or in flight
// already, or the queue is full of tasks at least as urgent).
func (q *Queue) Push(t Task) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	id := t.Chunk.ID
	if q.inFlight[id] {
		return false
	}
	if e, ok := q.queued[id]; ok {
		old := e.Value.(Task)
		if t.Priority >= old.Priority {
			return false
		}
		q.lists[old.Priority].Remove(e) // more urgent now: requeue at its new priority
		delete(q.queued, id)
	}
	if len(q.queued) >= q.cap {
		victim := -1
		for p := Priority(numQueues - 1); p > t.Priority; p-- {
			if q.lists[p].Len() > 0 {
				victim = int(p)
				break
			}
		}
		if victim < 0 {
			return false
		}
		e := q.lists[victim].Back()
		delete(q.queued, e.Value.(Task).Chunk.ID)
		q.lists[victim].Remove(e)
	}
	q.queued[id] = q.lists[t.Priority].PushBack(t)
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// Pop takes the most urgent task and marks its chunk in flight until Done.
func (q *Queue) Pop() (Task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, l := range q.lists {
		if e := l.Front(); e != nil {
			t := l.Remove(e).(Task)
			delete(q.queued, t.Chunk.ID)
			q.inFlight[t.Chunk.ID] = true
			return t, true
		}
	}
	return Task{}, false
}

// Done ends the task of chunk id.
func (q *Queue) Done(id string) {
	q.mu.Lock()
	delete(q.inFlight, id)
	q.mu.Unlock()
}

// Ready is signalled when a task is pushed.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Len returns the tasks queued and in flight.
func (q *Queue) Len() (queued, inFlight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queued), len(q.inFlight)
}
