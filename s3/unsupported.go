package s3

import (
	"net/http"
	"net/url"
	"strings"
)

// A request asking for something hanode does not do must fail, never succeed with the
// request's intent silently dropped (data stored in the clear under an encryption header, an
// object that "is" locked but can be deleted). These checks name what is refused.

// Operation classes for CheckHeaders.
const (
	OpCreateBucket = "CreateBucket"
	OpWriteObject  = "WriteObject" // PutObject, CopyObject, CreateMultipartUpload
	OpWritePart    = "WritePart"   // UploadPart, UploadPartCopy
	OpReadObject   = "ReadObject"  // GetObject, HeadObject
)

func notImplemented(what string) error {
	return ErrorFor(CodeNotImplemented, what+" is not implemented by hanode")
}

// CheckHeaders refuses request headers of op that ask for a feature hanode does not have:
// server-side encryption other than SSE-S3, SSE-KMS and SSE-C (ParseSSE), website redirects
// and storage classes other than STANDARD. It returns nil when every header is one hanode honours or that changes nothing.
func CheckHeaders(h http.Header, op string) error {
	for name := range h {
		k := strings.ToLower(name)
		v := strings.TrimSpace(h.Get(name))
		switch {
		case strings.HasPrefix(k, "x-amz-server-side-encryption-customer-"),
			strings.HasPrefix(k, "x-amz-copy-source-server-side-encryption-customer-"):
			// SSE-C: the coordinator serves it (ParseSSECustomer).
		case op == OpReadObject || op == OpWritePart:
		case strings.HasPrefix(k, "x-amz-server-side-encryption"):
			// SSE-S3 and SSE-KMS are served; anything else is refused by ParseSSE.
			if _, err := ParseSSE(h); err != nil {
				return err
			}
		case op == OpCreateBucket && k == "x-amz-object-ownership" && v != "BucketOwnerEnforced" && v != "BucketOwnerPreferred" && v != "ObjectWriter":
			return ErrorFor(CodeInvalidArgument, "unknown object ownership "+v)
		case op == OpWriteObject && k == "x-amz-website-redirect-location":
			return notImplemented("website redirects")
		case op == OpWriteObject && k == "x-amz-storage-class" && v != "STANDARD":
			return notImplemented("the storage class " + v)
		}
	}
	return nil
}

// Subresources of buckets and objects in AWS's API. A request naming one that its handler does
// not serve is refused (NotImplemented), never answered as the plain operation: GET ?acl is
// not a GetObject, GET ?policyStatus not a listing.
var subresources = map[string]bool{
	"accelerate": true, "acl": true, "analytics": true, "attributes": true, "cors": true, "delete": true,
	"encryption": true, "intelligent-tiering": true, "inventory": true, "legal-hold": true, "lifecycle": true,
	"location": true, "logging": true, "metadataTable": true, "metrics": true, "notification": true,
	"object-lock": true, "ownershipControls": true, "policy": true, "policyStatus": true,
	"publicAccessBlock": true, "renameObject": true, "replication": true, "requestPayment": true,
	"restore": true, "retention": true, "select": true, "session": true, "tagging": true, "torrent": true,
	"uploads": true, "versioning": true, "versions": true, "website": true,
}

// UnservedSubresource returns the first query parameter of q that names a subresource not in
// served: one of AWS's subresources, or any unknown parameter without a value (how
// subresources are sent). Parameters with values that S3 defines for the operations
// (prefix=, uploadId=, response-content-type=, the presign X-Amz-* ones...) are the caller's
// to list in served too; unknown parameters with a value are ignored, as AWS does.
func UnservedSubresource(q url.Values, served ...string) string {
	for k, vs := range q {
		if strings.HasPrefix(k, "X-Amz-") || strings.HasPrefix(k, "x-amz-") || strings.HasPrefix(k, "response-") || k == "x-id" {
			continue
		}
		known := false
		for _, s := range served {
			if s == k {
				known = true
				break
			}
		}
		if known {
			continue
		}
		if subresources[k] || len(vs) == 0 || len(vs) == 1 && vs[0] == "" {
			return k
		}
	}
	return ""
}
