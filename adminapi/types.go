package adminapi

import (
	"time"

	"github.com/hanode/hanode/agent/state"
	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/security/s3users"
	"github.com/hanode/hanode/security/secrets"
	"github.com/hanode/hanode/security/tokens"
)

// Paths of the admin API that other roles call.
const (
	// PKISignPath signs a CSR for a proxy's public names.
	PKISignPath = "/v1/pki/sign"
	// ProxyKeyringPath hands out the proxy keyring.
	ProxyKeyringPath = "/v1/proxy/keyring"
	// EtcdAccessPath admits the calling machine to etcd as its certificate says: its etcd user
	// gets the permissions of the certificate's roles (docs/security.md).
	EtcdAccessPath = "/v1/pki/etcd-access"
)

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
	Machines    []cluster.Machine  `json:"machines"`
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
	// Repair summarises the active master's repair (GET /v1/repair has the whole of it).
	Repair *RepairSummary `json:"repair,omitempty"`
	// ScrubCorrupt sums the corrupt chunks the live datanodes' scrubs found since they started;
	// ScrubOldestPass is the oldest of their last complete passes (zero: one has none yet).
	ScrubCorrupt    int64      `json:"scrub_corrupt"`
	ScrubOldestPass *time.Time `json:"scrub_oldest_pass,omitempty"`
}

// Scrub is GET /v1/scrub: every live datanode's scrub.
type Scrub struct {
	Interval  string          `json:"interval"` // scrub-interval of the answering controller
	Rate      int64           `json:"rate"`
	Datanodes []ScrubDatanode `json:"datanodes"`
}

// ScrubDatanode is one datanode's scrub progress.
type ScrubDatanode struct {
	Machine string `json:"machine"`
	cluster.ScrubReport
}

// RepairSummary is the repair line of hanode status.
type RepairSummary struct {
	AtRiskChunks  int64     `json:"at_risk_chunks"`
	AtRiskBytes   int64     `json:"at_risk_bytes"`
	Critical      int64     `json:"critical_chunks"`
	Waiting       int64     `json:"waiting_chunks"`
	Unrecoverable int64     `json:"unrecoverable_chunks"`
	Rate          float64   `json:"rate"`
	ETASeconds    float64   `json:"eta_seconds"`
	LastSweep     time.Time `json:"last_sweep,omitzero"`
	Updated       time.Time `json:"updated"`
	// Draining lists the draining machines with the replicas left on them.
	Draining []RepairMachine `json:"draining,omitempty"`
	// Rebalance summarises the applied rebalance plan (nil: none).
	Rebalance *RebalanceSummary `json:"rebalance,omitempty"`
}

// RebalanceSummary is the applied plan's progress in hanode status.
type RebalanceSummary struct {
	Moves int   `json:"moves"`
	Bytes int64 `json:"bytes"`
	Moved int64 `json:"moved"`
}

// Summary condenses a repair status for hanode status.
func (r *Repair) Summary() *RepairSummary {
	s := &RepairSummary{Waiting: r.Waiting.Chunks, Unrecoverable: r.Unrecoverable, Rate: r.Rate, ETASeconds: r.ETASeconds, Updated: r.Updated}
	for _, c := range r.AtRisk {
		s.AtRiskChunks += c.Chunks
		s.AtRiskBytes += c.Bytes
		if c.Priority == "critical" {
			s.Critical = c.Chunks
		}
	}
	if r.Sweep != nil {
		s.LastSweep = r.Sweep.Finished
	}
	for _, m := range r.Machines {
		if m.State == "draining" {
			s.Draining = append(s.Draining, m)
		}
	}
	if p := r.Rebalance; p != nil {
		s.Rebalance = &RebalanceSummary{Moves: len(p.Moves), Bytes: p.Bytes}
		for _, mv := range p.Moves {
			s.Rebalance.Moved += min(mv.Moved, mv.Bytes)
		}
	}
	return s
}

// TokenCreate is the body of POST /v1/tokens.
type TokenCreate struct {
	Roles       []string `json:"roles"`
	TTL         string   `json:"ttl"`  // Go duration; "" or "0" never expires
	Uses        int      `json:"uses"` // 0 = unlimited
	Description string   `json:"description"`
}

// TokenCreated is its answer: the only time the token string is shown.
type TokenCreated struct {
	tokens.Record
	Token string `json:"token"`
}

// CredentialCreate is the body of POST /v1/credentials.
type CredentialCreate struct {
	Level       string `json:"level"`
	Description string `json:"description"`
}

// CARotation is the body of POST /v1/pki/rotate and its answer.
type CARotation struct {
	Phase   string `json:"phase"`
	Signer  string `json:"signer,omitempty"`  // key id of the CA that signs after this phase
	Trusted int    `json:"trusted,omitempty"` // CAs in the trust bundle
	Next    string `json:"next,omitempty"`    // what the operator does next
}

// RotateResult is the answer of POST /v1/secrets/rotate.
type RotateResult struct {
	KeyID       string   `json:"key_id"`
	Controllers []string `json:"controllers"`
	Resealed    int      `json:"resealed"`
	// DataKeys is how many SSE-S3 objects and uploads had their data key re-sealed.
	DataKeys int `json:"data_keys"`
}

// PKISignRequest is the body of POST /v1/pki/sign.
type PKISignRequest struct {
	CSR string `json:"csr"` // PEM
}

// PKISignResponse is its answer.
type PKISignResponse struct {
	Certificate string `json:"certificate"` // PEM
}

// ProxyKeyringResponse is the answer of GET /v1/proxy/keyring.
type ProxyKeyringResponse struct {
	Keyring *secrets.Keyring `json:"keyring"`
}

// UserCreate is the body of POST /v1/s3/users.
type UserCreate struct {
	AccessKey   string `json:"access_key,omitempty"`
	SecretKey   string `json:"secret_key,omitempty"`
	Description string `json:"description,omitempty"`
}

// UserCreated is its answer: the only time the secret key is shown.
type UserCreated struct {
	s3users.User
	SecretKey string `json:"secret_key"`
}

// GrantSet is the body of PUT /v1/s3/grants/{bucket}/{access key}: read, write or owner.
type GrantSet struct {
	Level string `json:"level"`
}

// Locate is the answer of GET /v1/locate/{bucket}/{key}.
type Locate struct {
	Bucket   string          `json:"bucket"`
	Key      string          `json:"key"`
	Size     int64           `json:"size"`
	ETag     string          `json:"etag"`
	Modified time.Time       `json:"modified"`
	Chunks   []LocatedChunk  `json:"chunks"`
	Machines map[string]bool `json:"machines"` // every machine holding a replica: live or not
	// Inline: the object's data is in its metadata record (etcd), not in chunks; InlineBytes is
	// how many bytes the record holds (sealed ones when encrypted), InlineSHA256 their checksum.
	Inline       bool   `json:"inline,omitempty"`
	InlineBytes  int64  `json:"inline_bytes,omitempty"`
	InlineSHA256 string `json:"inline_sha256,omitempty"`
}

// LocatedChunk is one chunk and where its replicas are.
type LocatedChunk struct {
	ID       string   `json:"id"`
	Offset   int64    `json:"offset"`
	Size     int64    `json:"size"`
	SHA256   string   `json:"sha256"`
	Replicas []string `json:"replicas"`
}

// Repair is the active master's repair progress: GET /v1/repair, `hanode repair`.
type Repair struct {
	Master  string    `json:"master"`
	Epoch   int64     `json:"epoch"`
	Updated time.Time `json:"updated"`
	// Sweep is the last complete sweep of the records; Sweeping the one under way.
	Sweep    *RepairSweep `json:"sweep,omitempty"`
	Sweeping *RepairSweep `json:"sweeping,omitempty"`
	// AtRisk counts chunks needing repair by priority, most urgent first, as of the last sweep.
	AtRisk []RepairClass `json:"at_risk"`
	// Waiting: chunks with replicas on machines down for less than repair-grace (not yet
	// repaired); Unrecoverable: chunks with no readable replica left.
	Waiting       RepairClass `json:"waiting"`
	Unrecoverable int64       `json:"unrecoverable"`
	Queued        int         `json:"queued"`
	InFlight      int         `json:"in_flight"`
	// Repaired counts replicas created in this master's term.
	RepairedChunks int64 `json:"repaired_chunks"`
	RepairedBytes  int64 `json:"repaired_bytes"`
	Failures       int64 `json:"failures"`
	// Rate is bytes per second repaired over the last minute; ETASeconds is the bytes left
	// at that rate (-1: unknown).
	Rate       float64         `json:"rate"`
	BytesLeft  int64           `json:"bytes_left"`
	ETASeconds float64         `json:"eta_seconds"`
	Machines   []RepairMachine `json:"machines"`
	// Rebalance is the applied rebalance plan with the bytes moved (nil: none).
	Rebalance *RebalancePlan `json:"rebalance,omitempty"`
}

// RepairSweep describes one pass over every object and part record.
type RepairSweep struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Records  int64     `json:"records"`
	Chunks   int64     `json:"chunks"`
}

// RepairClass counts chunks and their bytes in one repair priority.
type RepairClass struct {
	Priority string `json:"priority"`
	Chunks   int64  `json:"chunks"`
	Bytes    int64  `json:"bytes"`
}

// RepairMachine is a datanode machine as repair sees it.
type RepairMachine struct {
	Name string `json:"name"`
	// State: live, draining, down (within repair-grace), dead, or checking (a new or wiped
	// store whose recorded replicas are being checked against its inventory).
	State     string     `json:"state"`
	DownSince *time.Time `json:"down_since,omitempty"`
	// Replicas and Bytes recorded on the machine as of the last complete sweep; Left and
	// LeftBytes discount the replicas repair took off it since that sweep began (an estimate
	// between sweeps: what the sweep read after such a move is discounted too).
	Replicas  int64 `json:"replicas"`
	Bytes     int64 `json:"bytes"`
	Left      int64 `json:"left"`
	LeftBytes int64 `json:"left_bytes"`
}

// RebalancePlan is GET /v1/rebalance/plan and the plan `apply` stores (POST /v1/rebalance).
type RebalancePlan struct {
	// Threshold is the allowed distance, in percentage points of capacity, between a
	// machine's used fraction and the cluster's.
	Threshold float64            `json:"threshold"`
	Mean      float64            `json:"mean"` // the cluster's used fraction, 0..1
	Machines  []RebalanceMachine `json:"machines"`
	Moves     []RebalanceMove    `json:"moves"`
	Bytes     int64              `json:"bytes"`
	// Feasible says whether the moves can be made: Problems says why not.
	Feasible bool      `json:"feasible"`
	Problems []string  `json:"problems,omitempty"`
	Created  time.Time `json:"created"`
	// Based is the finish of the sweep whose counts the plan uses.
	Based time.Time `json:"based"`
}

// RebalanceMachine is a machine's share before and after a plan.
type RebalanceMachine struct {
	Name     string  `json:"name"`
	Capacity int64   `json:"capacity"`
	Free     int64   `json:"free"`
	Used     int64   `json:"used"` // bytes of the replicas recorded on it
	Before   float64 `json:"before"`
	After    float64 `json:"after"`
}

// RebalanceMove moves Bytes of replicas from one machine to another.
type RebalanceMove struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Bytes int64  `json:"bytes"`
	// Moved counts the bytes moved so far (GET /v1/rebalance).
	Moved int64 `json:"moved"`
}

// Agents is the answer of GET /v1/agents: every machine's desired state and its agent's report.
type Agents struct {
	Machines []state.Machine `json:"machines"`
}

// RolesChange is the body of POST /v1/nodes/{id}/roles: roles to add (to run) and to remove.
type RolesChange struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}
