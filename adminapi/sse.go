package adminapi

// DataKey is the answer of POST /v1/sse/datakey (a fresh object data key, plain and sealed with
// the cluster keyring) and of POST /v1/sse/open (Key only). Coordinator certificates only.
type DataKey struct {
	Key    []byte `json:"key"`
	Sealed []byte `json:"sealed,omitempty"`
}

// DataKeyOpen is the body of POST /v1/sse/open: a data key sealed by /v1/sse/datakey.
type DataKeyOpen struct {
	Sealed []byte `json:"sealed"`
}
