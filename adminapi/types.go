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
	BadReplicas    int64 `json:"bad_replicas"`    // damaged replicas recorded (not repaired yet)
	GarbageRecords int64 `json:"garbage_records"` // deletions queued for the collector
	Writes         int64 `json:"writes_in_flight"`
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

// Locate is the answer of GET /v1/locate/{bucket}/{key}.
type Locate struct {
	Bucket   string          `json:"bucket"`
	Key      string          `json:"key"`
	Size     int64           `json:"size"`
	ETag     string          `json:"etag"`
	Modified time.Time       `json:"modified"`
	Chunks   []LocatedChunk  `json:"chunks"`
	Machines map[string]bool `json:"machines"` // every machine holding a replica: live or not
}

// LocatedChunk is one chunk and where its replicas are.
type LocatedChunk struct {
	ID       string   `json:"id"`
	Offset   int64    `json:"offset"`
	Size     int64    `json:"size"`
	SHA256   string   `json:"sha256"`
	Replicas []string `json:"replicas"`
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
