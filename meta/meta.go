// Package meta is the object store's metadata in etcd: buckets, objects, multipart uploads,
// write intents and the garbage-collection queue. Coordinators write it; the active master's
// garbage collector consumes the queue.
//
// Keyspace (under /hanode/s3/):
//
//	b/<bucket>                      bucket record
//	o/<bucket>/<key>                object record (one per key; bucket names have no '/')
//	v/<bucket>/<key>\x00<version>   noncurrent version or delete marker (versions.go)
//	bc/<bucket>                     versioning and object lock configuration (versions.go)
//	u/<bucket>/<key>\x00<upload>    multipart upload in progress
//	p/<upload>/<part, 5 digits>     uploaded part
//	a/<upload>                      an aborted upload whose parts are still being deleted
//	i/<write id>                    write intent: chunks named <write id>-<n> may exist
//	g/<write id>                    chunks to delete once their grace period has passed
//	bad/<chunk id>/<machine>        a replica found damaged (by a read or a scrub); repair replaces it
//
// Object keys sort within their bucket exactly as S3 lists them (byte order), so a listing is
// a paged etcd range read; nothing ever loads a whole bucket. Values use a compact binary
// encoding (encode.go): about 100 bytes plus the key for a small object.
//
// Atomicity: an object becomes visible in the one transaction that writes its record, after
// every replica of every chunk is on disk. Overwrites and deletes swap the record and queue
// the old chunks for collection in the same transaction, so a reader sees the old object or
// the new one, never a mix.
package meta

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/hanode/hanode/internal/keyspace"
)

// Key prefixes.
const (
	Prefix        = keyspace.S3
	BucketPrefix  = keyspace.S3Buckets
	ObjectPrefix  = keyspace.S3Objects
	UploadPrefix  = keyspace.S3Uploads
	PartPrefix    = keyspace.S3Parts
	AbortPrefix   = keyspace.S3Aborts
	VersionPrefix = keyspace.S3Versions
	ConfigPrefix  = keyspace.S3BucketConfig
	IntentPrefix  = keyspace.S3Intents
	GCPrefix      = keyspace.S3Garbage
	BadPrefix     = keyspace.S3Bad
	UserPrefix    = keyspace.S3Users
	SettingsKey   = keyspace.S3Settings
	MaxObjectKey  = 1024
	MaxPartNumber = 10000
)

// Errors the store returns; the S3 layer maps them to S3 error codes.
var (
	ErrNoSuchBucket   = errors.New("no such bucket")
	ErrBucketExists   = errors.New("bucket already exists")
	ErrBucketNotEmpty = errors.New("bucket not empty")
	ErrNoSuchKey      = errors.New("no such key")
	ErrNoSuchUpload   = errors.New("no such upload")
	ErrIntentLost     = errors.New("write intent expired before commit")
	ErrCorrupt        = errors.New("corrupt metadata record")
	ErrConflict       = errors.New("conflicting concurrent change")
	// ErrPartsPending: an aborted upload is gone, but deleting its parts stopped part way;
	// the active master finishes it.
	ErrPartsPending = errors.New("upload aborted; its parts are still being deleted")
)

// Bucket is a bucket's record.
type Bucket struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Owner is the access key that created the bucket; empty for buckets made before owners
	// existed, which belong to root (security/s3access).
	Owner string `json:"owner,omitempty"`
	// Replicas overrides the cluster's replication factor for new objects; 0 = cluster default.
	Replicas int `json:"replicas,omitempty"`
	// ACL is the bucket's access control list; nil: the default (the owner alone).
	ACL *ACL `json:"acl,omitempty"`
	// Ownership is the bucket's object ownership control (BucketOwnerEnforced,
	// BucketOwnerPreferred, ObjectWriter); empty: none set, objects belong to their writers.
	Ownership string `json:"ownership,omitempty"`
	// PublicAccessBlock is the bucket's public access block; nil: none.
	PublicAccessBlock *PublicAccessBlock `json:"public_access_block,omitempty"`
	// Encryption is the bucket's default encryption (PutBucketEncryption): SSES3 or SSEKMS
	// for objects written without an encryption header, "" for none.
	Encryption string `json:"encryption,omitempty"`
	// KMSKeyID is the KMS key of the default encryption SSEKMS (its KMSMasterKeyID), and the
	// key of a write that asks for aws:kms without naming one.
	KMSKeyID string `json:"kms_key_id,omitempty"`
}

// PublicAccessBlock is S3's PublicAccessBlockConfiguration of a bucket.
type PublicAccessBlock struct {
	BlockPublicAcls       bool `json:"block_public_acls,omitempty"`
	IgnorePublicAcls      bool `json:"ignore_public_acls,omitempty"`
	BlockPublicPolicy     bool `json:"block_public_policy,omitempty"`
	RestrictPublicBuckets bool `json:"restrict_public_buckets,omitempty"`
}

// Chunk is one stored piece of an object. Its ID names the chunk file on every replica.
type Chunk struct {
	ID       string
	Size     int64
	SHA256   [32]byte
	Replicas []string // machine names, one datanode per machine
}

// Object is an object's record.
type Object struct {
	Size     int64
	Modified time.Time
	ETag     string // as S3 returns it, without quotes
	// Headers are stored response headers: content-type, cache-control, content-disposition,
	// content-encoding, content-language, expires and x-amz-meta-*; names in lower case.
	Headers map[string]string
	Chunks  []Chunk
	// Parts holds, for a multipart object, the size of each part (for partNumber reads and
	// the ETag's part count).
	Parts []int64
	// Upload is the id of the multipart upload that made the object: a retried completion of
	// that upload finds the object it already made. The object's record is the only memory
	// of a completed upload, so it lasts exactly as long as the object does.
	Upload string
	// Tags is the object's tag set (S3 object tagging), nil when it has none.
	Tags map[string]string
	// Checksum is the additional checksum the object was written with, "<algorithm>:<base64
	// value>" (e.g. "crc32:AAAAAA=="), verified when the data arrived; "" when none.
	Checksum string
	// ACL is the object's access control list; nil: the default (owned by the bucket's owner,
	// who alone has access).
	ACL *ACL
	// SSE is how the object is encrypted at rest; nil when it is stored as sent.
	SSE *SSE
	// Version is the version's sort key in a versioned bucket (versions.go): 16 hex digits of
	// the inverted version sequence, then 8 hex digits of a version id or "null". "" for an
	// object written while its bucket was never versioned: the null version.
	Version string
	// DeleteMarker: the record is a delete marker (no data), kept under VersionPrefix only.
	DeleteMarker bool
	// Lock is the version's object lock retention and legal hold (objectlock.go).
	Lock Lock
	// PartChecksums holds, for a multipart object made by an upload with an additional
	// checksum, each part's checksum (base64); Checksum is then their composite checksum.
	PartChecksums []string
	// Inline holds the object's data in the record itself, for a small object written whole
	// (a single PUT, POST or copy of at most the coordinators' inline-max bytes): it has no
	// chunks, no intent preceded it and no datanode holds it. nil for an object stored as chunks.
	Inline *Inline
}

// Inline is an object's data kept in its record (inline.go).
type Inline struct {
	// ID names the data for sealing: an encrypted object's bytes are sealed with the chunk key
	// of this id (internal/sealstream), a fresh write id, so no two inline objects share a key
	// even under one SSE-C key. "" when the object is stored as sent.
	ID string
	// Data is the stored bytes: the plaintext, or the sealed bytes of an encrypted object.
	Data []byte
	// SHA256 is the checksum of Data, verified on every read (Verify).
	SHA256 [32]byte
}

// Upload is a multipart upload in progress.
type Upload struct {
	Bucket    string
	Key       string
	ID        string
	Initiated time.Time
	Headers   map[string]string
	// Tags is the tag set the completed object gets (x-amz-tagging at creation).
	Tags map[string]string
	// ACL is the ACL the completed object gets.
	ACL *ACL
	// SSE is the encryption of the upload's parts and of the object it makes; nil: none.
	SSE *SSE
	// ChecksumAlgorithm is the additional checksum (s3 algorithm name, e.g. "sha256") every
	// part is summed with; "": none. The completed object gets the composite checksum of the
	// parts' or, with ChecksumFullObject, the CRC of the whole object.
	ChecksumAlgorithm  string
	ChecksumFullObject bool
}

// Part is an uploaded part of a multipart upload.
type Part struct {
	Number   int
	Size     int64
	ETag     string // hex MD5, no quotes
	Modified time.Time
	Chunks   []Chunk
	// Checksum is the part's additional checksum (base64) when its upload has an algorithm.
	Checksum string
}

// Intent announces a write in progress: its chunks are named <ID>-<n>.
type Intent struct {
	ID      string    `json:"id"`
	Bucket  string    `json:"bucket"`
	Key     string    `json:"key"`
	Writer  string    `json:"writer"` // coordinator machine
	Started time.Time `json:"started"`
	Touched time.Time `json:"touched"`
}

// Garbage is a set of chunks to delete no earlier than After.
type Garbage struct {
	After  time.Time
	Chunks []Chunk
	// Intent, when set, means "every chunk named <Intent>-<n>", found by listing datanodes.
	Intent string
}

// NewWriteID returns a fresh random write id (32 hex digits), the prefix of a write's chunk ids.
func NewWriteID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ChunkID names chunk n of a write.
func ChunkID(writeID string, n int) string { return writeID + "-" + strconv.Itoa(n) }

// NewUploadID returns a fresh multipart upload id.
func NewUploadID() string { return NewWriteID() }

// ObjectKey is the etcd key of an object.
func ObjectKey(bucket, key string) string { return ObjectPrefix + bucket + "/" + key }

// BucketKey is the etcd key of a bucket.
func BucketKey(bucket string) string { return BucketPrefix + bucket }

func uploadKey(bucket, key, id string) string { return UploadPrefix + bucket + "/" + key + "\x00" + id }

func partKey(upload string, n int) string {
	s := strconv.Itoa(n)
	for len(s) < 5 {
		s = "0" + s
	}
	return PartPrefix + upload + "/" + s
}
