// Package s3access decides who may do what to which bucket. S3 access is denied by default
// (as in Garage, MinIO and SeaweedFS):
//
//   - root (an access key whose index record says root) may do everything;
//   - a bucket's owner — the access key that created it — may do everything to it, and the
//     buckets made before owners existed (no owner recorded) belong to root alone;
//   - any other access key may do what a grant gives it on one bucket: read, write or owner
//     (Garage's per-key-per-bucket model), granted with `hanode user grant`;
//   - an anonymous request may read objects (and list, when the policy says so) of a bucket
//     whose bucket policy is the public-read statement, and nothing else.
//
// Grants and policies live under keyspace.S3Access, one prefix per bucket, deleted with the
// bucket.
package s3access

import (
	"fmt"
	"strings"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

// Level is what an access key may do to a bucket. Each level includes the ones below it.
type Level int

// The levels, weakest first.
const (
	None Level = iota
	// Read: GET and HEAD objects, list objects, HeadBucket, the bucket's location and
	// versioning.
	Read
	// Write: Read, plus put, copy into, delete objects and multipart uploads (listing them
	// included).
	Write
	// Owner: Write, plus deleting the bucket and its bucket policy.
	Owner
)

var levelNames = []string{"none", "read", "write", "owner"}

func (l Level) String() string {
	if l < None || l > Owner {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levelNames[l]
}

// ParseLevel parses read, write or owner.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames[1:] {
		if strings.EqualFold(s, n) {
			return Level(i + 1), nil
		}
	}
	return None, fmt.Errorf("access level %q: want read, write or owner", s)
}

// GrantKey is the etcd key of accessKey's grant on bucket.
func GrantKey(bucket, accessKey string) string { return grantPrefix(bucket) + accessKey }

func grantPrefix(bucket string) string { return BucketPrefix(bucket) + "grant/" }

// PolicyKey is the etcd key of bucket's policy.
func PolicyKey(bucket string) string { return BucketPrefix(bucket) + "policy" }

// CORSKey is the etcd key of bucket's CORS configuration.
func CORSKey(bucket string) string { return BucketPrefix(bucket) + "cors" }

// TaggingKey is the etcd key of bucket's tag set.
func TaggingKey(bucket string) string { return BucketPrefix(bucket) + "tagging" }

// BucketPrefix holds everything that gives access to bucket (bucket names have no '/').
func BucketPrefix(bucket string) string { return keyspace.S3Access + bucket + "/" }

// BucketOfKey returns the bucket an S3Access key concerns.
func BucketOfKey(key string) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(key, keyspace.S3Access), "/")
	return b
}

// Bucket is everything that decides access to one bucket.
type Bucket struct {
	Name   string
	Exists bool
	Owner  string // empty: root's
	Grants map[string]Level
	Policy *Policy // nil: no bucket policy
	// ACL is the bucket's S3 ACL; nil: the default (the owner alone).
	ACL *meta.ACL
	// Ownership is the object ownership control; "" when none is set.
	Ownership string
	// Block is the public access block; nil: none.
	Block *meta.PublicAccessBlock
	// CORS is the bucket's CORS configuration; nil: none.
	CORS *s3.CORSConfiguration
}

// Level returns what accessKey may do to b; root may do everything.
func (b *Bucket) Level(accessKey string, root bool) Level {
	switch {
	case root:
		return Owner
	case !b.Exists || accessKey == "":
		return None
	case b.Owner != "" && b.Owner == accessKey:
		return Owner
	}
	return b.Grants[accessKey]
}

// Allows reports whether accessKey may do what needs level need.
func (b *Bucket) Allows(accessKey string, root bool, need Level) bool {
	return b.Level(accessKey, root) >= need
}

// Visible reports whether accessKey may see b in ListBuckets: it owns it or holds a grant.
func (b *Bucket) Visible(accessKey string, root bool) bool { return b.Level(accessKey, root) > None }
