package adminapi

import "time"

// Role states in GET /v1/machines.
const (
	// RoleRunning: the role process is registered (its lease is alive).
	RoleRunning = "running"
	// RoleDown: the role should run (or nothing says otherwise) and is not registered: it was
	// seen registered by the answering controller, is in its machine's desired state, or is an
	// etcd member (controller).
	RoleDown = "down"
	// RoleStopped: the machine's desired state says the role is stopped (hanode node stop).
	RoleStopped = "stopped"
	// RoleStarting, RoleStopping: its agent is starting or stopping the process.
	RoleStarting = "starting"
	RoleStopping = "stopping"
	// RoleCrashLooping: the process exited more than once in a row unasked; its agent waits
	// (backoff) before each start.
	RoleCrashLooping = "crash-looping"
)

// Machine states in GET /v1/machines.
const (
	MachineUp       = "up"       // every known role running
	MachineDegraded = "degraded" // some roles down
	MachineDown     = "down"     // every known role down
	MachineStopped  = "stopped"  // every role stopped on purpose
)

// Machines is the answer of GET /v1/machines: every machine the answering controller knows of,
// with each role's state. A role is known when it is registered now, when the controller saw it
// registered since TrackedSince, or (controllers) when it is an etcd member.
type Machines struct {
	AnsweredBy   string         `json:"answered_by"`
	TrackedSince time.Time      `json:"tracked_since"`
	Machines     []MachineState `json:"machines"`
}

// MachineState is one machine in GET /v1/machines and GET /v1/machines/{name}.
type MachineState struct {
	Name     string      `json:"name"`
	State    string      `json:"state"` // up, degraded, down, stopped (roles stopped on purpose do not count)
	Zone     string      `json:"zone,omitempty"`
	Draining *DrainMark  `json:"draining,omitempty"`
	Capacity int64       `json:"capacity,omitempty"` // the datanode's chunk filesystem
	Free     int64       `json:"free,omitempty"`
	Roles    []RoleState `json:"roles"`
	// Events are the machine's recent role transitions seen by the answering controller, newest
	// first (GET /v1/machines/{name} only).
	Events []MachineEvent `json:"events,omitempty"`
}

// DrainMark is the drain mark of a machine (POST /v1/nodes/{id}/drain).
type DrainMark struct {
	By    string    `json:"by,omitempty"`
	Since time.Time `json:"since"`
}

// RoleState is one role of a machine.
type RoleState struct {
	Role    string    `json:"role"`
	State   string    `json:"state"` // running, down
	Since   time.Time `json:"since,omitzero"`
	Address string    `json:"address,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// LastHeartbeat is when the role's process last renewed its registration's lease (to the
	// second: etcd reports lease time in seconds); LeaseTTL is the lease's length in seconds.
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	LeaseTTL      int64     `json:"lease_ttl,omitempty"`
	// Supervision by the machine's agent, when it has one (GET /v1/agents has all of it):
	// Desired is "run" or "stop" (empty: no desired state for the role), Agent the state its
	// agent reports (starting, running, stopping, stopped, backoff), Restarts and Failures its
	// counters, LastExit how the process last ended.
	Desired  string `json:"desired,omitempty"`
	Agent    string `json:"agent,omitempty"`
	Restarts int    `json:"restarts,omitempty"`
	Failures int    `json:"failures,omitempty"`
	LastExit string `json:"last_exit,omitempty"`
}

// MachineEvent is a role transition of a machine.
type MachineEvent struct {
	Time  time.Time `json:"time"`
	Role  string    `json:"role"`
	Event string    `json:"event"` // up, down
}

// Buckets is the answer of GET /v1/buckets.
type Buckets struct {
	Buckets []BucketInfo `json:"buckets"`
}

// BucketInfo is one bucket.
type BucketInfo struct {
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Replicas int       `json:"replicas,omitempty"` // 0: the cluster's default
}

// Objects is the answer of GET /v1/buckets/{bucket}/objects: one page of a listing delimited
// by "/".
type Objects struct {
	Bucket    string       `json:"bucket"`
	Prefix    string       `json:"prefix"`
	Prefixes  []string     `json:"prefixes"`
	Objects   []ObjectInfo `json:"objects"`
	Truncated bool         `json:"truncated"`
	// Next is the after= of the next page when Truncated; NextIsPrefix says it is a common
	// prefix (pass after_prefix=true), whose whole range the next page skips.
	Next         string `json:"next,omitempty"`
	NextIsPrefix bool   `json:"next_is_prefix,omitempty"`
}

// ObjectInfo is one listed object.
type ObjectInfo struct {
	Key      string    `json:"key"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	ETag     string    `json:"etag"`
	Chunks   int       `json:"chunks"`
	Inline   bool      `json:"inline,omitempty"` // data in the metadata record, no chunks
}
