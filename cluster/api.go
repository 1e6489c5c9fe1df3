package cluster

import "time"

// LeaderInfo is the answer of GET /v1/cluster/leader.
type LeaderInfo struct {
	Name    string    `json:"name"`
	Address string    `json:"address"`
	Epoch   int64     `json:"epoch"`
	Since   time.Time `json:"since"`
}

// ControllerStatus is one etcd member in GET /v1/cluster/status.
type ControllerStatus struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	Learner    bool     `json:"learner"`
	RaftLeader bool     `json:"raft_leader"`
	Healthy    bool     `json:"healthy"`
	Error      string   `json:"error,omitempty"`
}

// Status is the answer of GET /v1/cluster/status.
type Status struct {
	Cluster     string             `json:"cluster"`
	AnsweredBy  string             `json:"answered_by"`
	Leader      *LeaderInfo        `json:"leader"`
	Controllers []ControllerStatus `json:"controllers"`
	Machines    []Machine          `json:"machines"`
	Replication *Replication       `json:"replication,omitempty"`
	Problems    []string           `json:"problems,omitempty"`
}

// Replication is the data path's state in GET /v1/cluster/status.
type Replication struct {
	Replicas       int   `json:"replicas"`        // the answering controller's configured default
	DatanodesLive  int   `json:"datanodes_live"`  // live datanode machines
	Draining       int   `json:"draining"`        // of them, drained
	BadReplicas    int64 `json:"bad_replicas"`    // damaged replicas recorded, awaiting repair
	GarbageRecords int64 `json:"garbage_records"` // deletions queued for the collector
	Writes         int64 `json:"writes_in_flight"`
}
