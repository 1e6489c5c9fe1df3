package s3

import (
	"net"
	"net/http"
	"strings"
)

// ParseRequest finds the bucket and key a request addresses.
//
// Virtual-host style: when the Host (port ignored, case-insensitive) is
// "<bucket>.<domain>" for one of domains, the bucket comes from the host and
// the whole path after the first '/' is the key. The longest matching domain
// wins, so "s3.example.com" beats "example.com" for b.s3.example.com.
//
// Path style otherwise (including a Host equal to a domain, or an IP): the
// first path segment is the bucket and the rest, slashes included, the key.
//
// It uses the decoded r.URL.Path. bucket == "" means the service itself
// (ListBuckets); key == "" means a bucket operation. The bucket must pass
// ValidBucketName (InvalidBucketName) and a non-empty key ValidObjectKey.
func ParseRequest(r *http.Request, domains []string) (bucket, key string, err error) {
	path := ""
	if r.URL != nil {
		path = r.URL.Path
	}
	path = strings.TrimPrefix(path, "/")
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	if b, ok := hostBucket(host, domains); ok {
		bucket, key = b, path
	} else {
		bucket, key, _ = strings.Cut(path, "/")
		if bucket == "" && key != "" {
			// "//key": an empty bucket segment in front of a key.
			return "", "", invalidBucketName()
		}
	}
	if bucket == "" {
		return "", "", nil
	}
	if err := ValidBucketName(bucket); err != nil {
		return "", "", err
	}
	if key != "" {
		if err := ValidObjectKey(key); err != nil {
			return "", "", err
		}
	}
	return bucket, key, nil
}

// hostBucket returns the bucket label of a virtual-host style Host. ok is
// true only when host is strictly below one of domains; the bucket may then
// still be invalid (ParseRequest checks).
func hostBucket(host string, domains []string) (bucket string, ok bool) {
	host = strings.ToLower(stripPort(host))
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return "", false
	}
	best := -1
	for _, d := range domains {
		d = strings.TrimSuffix(strings.ToLower(stripPort(strings.TrimSpace(d))), ".")
		if d == "" {
			continue
		}
		if host == d {
			return "", false // the bare endpoint: path style
		}
		if len(host) > len(d)+1 && strings.HasSuffix(host, d) && host[len(host)-len(d)-1] == '.' && len(d) > best {
			best = len(d)
		}
	}
	if best < 0 {
		return "", false
	}
	return host[:len(host)-best-1], true
}

// stripPort removes a ":port" suffix, leaving IPv6 literals intact.
func stripPort(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
