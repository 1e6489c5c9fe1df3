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

// KMSDataKey is the body of POST /v1/sse/kms/datakey (KeyID and Context) and of POST
// /v1/sse/kms/open (all three): a data key made or sealed under the built-in KMS's key KeyID,
// bound to the encryption context Context ("" for none). The answer is a DataKey. An unknown
// key answers 404, a disabled one 409. Coordinator certificates only.
type KMSDataKey struct {
	KeyID   string `json:"key_id"`
	Context string `json:"context,omitempty"`
	Sealed  []byte `json:"sealed,omitempty"`
}

// KMSKeyCreate is the body of POST /v1/kms/keys.
type KMSKeyCreate struct {
	Name string `json:"name"`
}
