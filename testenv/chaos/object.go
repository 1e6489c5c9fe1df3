package chaos

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
)

// Objects: the bytes of a version are a function of its key and version, so a reader checks
// every byte it receives against the version the object claims (in x-amz-meta-version), and
// the ETag against their MD5 (what a single PUT's ETag is).

// VersionHeader is the user metadata that carries an object's version.
const VersionHeader = "X-Amz-Meta-Version"

// bodySize is the size of a version's body: mostly small, 1 in 16 of 1 to 3 MiB and 1 in 64
// of 8 to 10 MiB (more than one 8 MiB chunk).
func bodySize(key, version string) int {
	h := fnv.New64a()
	h.Write([]byte(key + "\x00" + version))
	x := h.Sum64()
	switch {
	case x%64 == 0:
		return 8<<20 + int(x>>8%(2<<20))
	case x%16 == 0:
		return 1<<20 + int(x>>8%(2<<20))
	default:
		return 256 + int(x>>8%(64<<10))
	}
}

// Body is the content of version of key: a line naming both, then pseudo-random bytes seeded
// by them.
func Body(key, version string) []byte {
	n := bodySize(key, version)
	head := fmt.Sprintf("hanode-chaos key=%s version=%s size=%d\n", key, version, n)
	b := make([]byte, n)
	i := copy(b, head)
	h := fnv.New64a()
	h.Write([]byte(key + "\x00" + version))
	r := rand.New(rand.NewPCG(h.Sum64(), 0x6861))
	for ; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// ETag is the S3 ETag (hex MD5, unquoted) of version of key.
func ETag(key, version string) string {
	sum := md5.Sum(Body(key, version))
	return hex.EncodeToString(sum[:])
}

// verifyBody reads a GET's body and checks it is version of key, whole, with the given ETag.
// A transport error cutting the stream makes the outcome unknown — unless the bytes that did
// arrive are already wrong, which is corrupt whatever follows.
func verifyBody(key, version, etag string, body io.Reader) Output {
	if version == "" {
		return Output{Result: ResultCorrupt, Detail: "the object has no " + VersionHeader}
	}
	want := Body(key, version)
	// At most one byte more than the version has: a longer body is wrong already.
	got, err := io.ReadAll(io.LimitReader(body, int64(len(want))+1))
	if i := firstDiff(got, want); i >= 0 {
		return Output{Result: ResultCorrupt, Version: version, Detail: fmt.Sprintf(
			"byte %d of %d received differs from version %s (%d bytes); received starts %q",
			i, len(got), version, len(want), firstLine(got))}
	}
	if err != nil {
		return Output{Result: ResultUnknown, Detail: fmt.Sprintf("read failed after %d of %d bytes: %v", len(got), len(want), err)}
	}
	switch {
	case len(got) < len(want):
		return Output{Result: ResultCorrupt, Version: version, Detail: fmt.Sprintf("short body: %d of %d bytes, then a clean end", len(got), len(want))}
	case len(got) > len(want):
		return Output{Result: ResultCorrupt, Version: version, Detail: fmt.Sprintf("long body: more than the %d bytes of the version", len(want))}
	}
	sum := md5.Sum(got)
	if e := hex.EncodeToString(sum[:]); etag != e {
		return Output{Result: ResultCorrupt, Version: version, Detail: fmt.Sprintf("ETag %q, the bytes' MD5 is %s", etag, e)}
	}
	return Output{Result: ResultFound, Version: version}
}

// firstDiff is the first index where got differs from want's prefix, or -1.
func firstDiff(got, want []byte) int {
	for i := range got {
		if i >= len(want) || got[i] != want[i] {
			return i
		}
	}
	return -1
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return string(b[:min(len(b), 120)])
}
