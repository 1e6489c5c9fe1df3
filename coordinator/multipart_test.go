package coordinator

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hanode/hanode/s3"
)

// TestMultipartChecksums: an upload created with x-amz-checksum-algorithm sums every part
// (sent or not, the server computes it), gives the completed object the composite checksum of
// its parts (checked against the request's, 400 BadDigest when they differ), and returns it on
// the completion, its retry, HEAD and GET with x-amz-checksum-mode, per part by partNumber, in
// ListParts and in GetObjectAttributes. A FULL_OBJECT upload's object gets the CRC of the whole
// object, combined from its parts'.
func TestMultipartChecksums(t *testing.T) {
	tc := newTestCluster(t, clusterOpts{machines: 1, replicas: 1, etcdHost: "127.0.134.34"})
	mustBucket(t, tc.minio(), "mpck")
	b64 := func(p []byte) string { s := sha256.Sum256(p); return base64.StdEncoding.EncodeToString(s[:]) }

	for _, h := range []http.Header{{"X-Amz-Checksum-Algorithm": {"SHA256"}, "X-Amz-Checksum-Type": {"FULL_OBJECT"}}, {"X-Amz-Checksum-Algorithm": {"CRC64NVME"}, "X-Amz-Checksum-Type": {"COMPOSITE"}}} {
		if r := tc.do(http.MethodPost, "/mpck/k?uploads", h, nil); r.status != http.StatusBadRequest {
			t.Fatalf("create with %v: %d %s", h, r.status, r.body)
		}
	}
	r := tc.do(http.MethodPost, "/mpck/k?uploads", http.Header{"X-Amz-Checksum-Algorithm": {"SHA256"}}, nil)
	if r.status != 200 || r.header.Get("X-Amz-Checksum-Algorithm") != "SHA256" {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	var init s3.InitiateMultipartUploadResult
	if err := xml.Unmarshal(r.body, &init); err != nil {
		t.Fatal(err)
	}
	q := "uploadId=" + init.UploadID
	p1, p2 := bytes.Repeat([]byte("A"), 5<<20), []byte("the last part")
	// Part 1 sends its checksum, part 2 does not: the server sums both.
	r = tc.do(http.MethodPut, "/mpck/k?partNumber=1&"+q, http.Header{"X-Amz-Checksum-Sha256": {b64(p1)}}, p1)
	if r.status != 200 || r.header.Get("X-Amz-Checksum-Sha256") != b64(p1) {
		t.Fatalf("part 1: %d %v %s", r.status, r.header, r.body)
	}
	etag1 := r.header.Get("ETag")
	if r = tc.do(http.MethodPut, "/mpck/k?partNumber=2&"+q, http.Header{"X-Amz-Checksum-Crc32": {"AAAAAA=="}}, p2); r.status != 400 {
		t.Fatalf("a part with another algorithm's checksum: %d %s", r.status, r.body)
	}
	r = tc.do(http.MethodPut, "/mpck/k?partNumber=2&"+q, nil, p2)
	if r.status != 200 || r.header.Get("X-Amz-Checksum-Sha256") != b64(p2) {
		t.Fatalf("part 2: %d %v %s", r.status, r.header, r.body)
	}
	etag2 := r.header.Get("ETag")
	if r = tc.do(http.MethodGet, "/mpck/k?"+q, nil, nil); r.status != 200 || !strings.Contains(string(r.body), "<ChecksumSHA256>"+b64(p2)+"</ChecksumSHA256>") ||
		!strings.Contains(string(r.body), "<ChecksumAlgorithm>SHA256</ChecksumAlgorithm>") {
		t.Fatalf("ListParts: %d %s", r.status, r.body)
	}
	want, err := s3.CompositeChecksum("sha256", []string{b64(p1), b64(p2)})
	if err != nil {
		t.Fatal(err)
	}
	complete := func(part1Sum string) []byte {
		return []byte(fmt.Sprintf(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag>%s</Part><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>`,
			etag1, part1Sum, etag2))
	}
	if r = tc.do(http.MethodPost, "/mpck/k?"+q, http.Header{"X-Amz-Checksum-Sha256": {"bad"}}, complete("")); r.status != 400 || r.code() != s3.CodeBadDigest {
		t.Fatalf("completion with a wrong checksum: %d %s", r.status, r.body)
	}
	if r = tc.do(http.MethodPost, "/mpck/k?"+q, nil, complete("<ChecksumSHA256>"+b64(p2)+"</ChecksumSHA256>")); r.status != 400 || r.code() != s3.CodeInvalidPart {
		t.Fatalf("completion naming a wrong part checksum: %d %s", r.status, r.body)
	}
	for i := range 2 { // the completion, then its retry
		r = tc.do(http.MethodPost, "/mpck/k?"+q, http.Header{"X-Amz-Checksum-Sha256": {want}}, complete("<ChecksumSHA256>"+b64(p1)+"</ChecksumSHA256>"))
		if r.status != 200 || !strings.Contains(string(r.body), "<ChecksumSHA256>"+want+"</ChecksumSHA256>") {
			t.Fatalf("completion %d: %d %s", i, r.status, r.body)
		}
	}
	mode := http.Header{"X-Amz-Checksum-Mode": {"ENABLED"}}
	if r = tc.do(http.MethodHead, "/mpck/k", nil, nil); r.header.Get("X-Amz-Checksum-Sha256") != "" {
		t.Fatalf("HEAD without the checksum mode: %v", r.header)
	}
	if r = tc.do(http.MethodHead, "/mpck/k", mode, nil); r.header.Get("X-Amz-Checksum-Sha256") != want || r.header.Get("X-Amz-Checksum-Type") != "COMPOSITE" {
		t.Fatalf("HEAD: %v", r.header)
	}
	if r = tc.do(http.MethodGet, "/mpck/k?partNumber=2", mode, nil); r.status != 206 || r.header.Get("X-Amz-Checksum-Sha256") != b64(p2) || string(r.body) != string(p2) {
		t.Fatalf("GET part 2: %d %v", r.status, r.header)
	}
	r = tc.do(http.MethodGet, "/mpck/k?attributes", http.Header{"X-Amz-Object-Attributes": {"Checksum,ObjectParts"}}, nil)
	if body := string(r.body); r.status != 200 || !strings.Contains(body, "<ChecksumSHA256>"+want+"</ChecksumSHA256><ChecksumType>COMPOSITE</ChecksumType>") ||
		!strings.Contains(body, "<PartNumber>1</PartNumber><Size>5242880</Size><ChecksumSHA256>"+b64(p1)+"</ChecksumSHA256>") {
		t.Fatalf("GetObjectAttributes: %d %s", r.status, body)
	}
	// FULL_OBJECT: the CRC-32C of the whole object, from the parts' CRCs.
	r = tc.do(http.MethodPost, "/mpck/full?uploads", http.Header{"X-Amz-Checksum-Algorithm": {"CRC32C"}, "X-Amz-Checksum-Type": {"FULL_OBJECT"}}, nil)
	if r.status != 200 || r.header.Get("X-Amz-Checksum-Type") != "FULL_OBJECT" {
		t.Fatalf("create FULL_OBJECT: %d %v %s", r.status, r.header, r.body)
	}
	if err := xml.Unmarshal(r.body, &init); err != nil {
		t.Fatal(err)
	}
	q = "uploadId=" + init.UploadID
	var etags []string
	for i, p := range [][]byte{p1, p2} {
		if r = tc.do(http.MethodPut, fmt.Sprintf("/mpck/full?partNumber=%d&%s", i+1, q), nil, p); r.status != 200 {
			t.Fatalf("FULL_OBJECT part %d: %d %s", i+1, r.status, r.body)
		}
		etags = append(etags, r.header.Get("ETag"))
	}
	whole := s3.NewChecksum("crc32c")
	whole.Write(p1)
	whole.Write(p2)
	wantFull := base64.StdEncoding.EncodeToString(whole.Sum(nil))
	r = tc.do(http.MethodPost, "/mpck/full?"+q, http.Header{"X-Amz-Checksum-Crc32c": {wantFull}}, []byte(fmt.Sprintf(
		`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>`, etags[0], etags[1])))
	if r.status != 200 || !strings.Contains(string(r.body), "<ChecksumCRC32C>"+wantFull+"</ChecksumCRC32C><ChecksumType>FULL_OBJECT</ChecksumType>") {
		t.Fatalf("FULL_OBJECT completion: %d %s", r.status, r.body)
	}
	if r = tc.do(http.MethodHead, "/mpck/full", mode, nil); r.header.Get("X-Amz-Checksum-Crc32c") != wantFull || r.header.Get("X-Amz-Checksum-Type") != "FULL_OBJECT" {
		t.Fatalf("HEAD FULL_OBJECT: %v", r.header)
	}
	// A copy of the FULL_OBJECT object keeps its checksum (the same bytes); a copy of the
	// composite one is one part: the composite checksum is not its checksum.
	if r = tc.do(http.MethodPut, "/mpck/fullcopy", http.Header{"X-Amz-Copy-Source": {"/mpck/full"}}, nil); r.status != 200 {
		t.Fatalf("copy: %d %s", r.status, r.body)
	}
	if r = tc.do(http.MethodHead, "/mpck/fullcopy", mode, nil); r.header.Get("X-Amz-Checksum-Crc32c") != wantFull {
		t.Fatalf("the copy of the FULL_OBJECT object: %v", r.header)
	}
	if r = tc.do(http.MethodPut, "/mpck/copy", http.Header{"X-Amz-Copy-Source": {"/mpck/k"}}, nil); r.status != 200 {
		t.Fatalf("copy: %d %s", r.status, r.body)
	}
	if r = tc.do(http.MethodHead, "/mpck/copy", mode, nil); r.header.Get("X-Amz-Checksum-Sha256") != "" {
		t.Fatalf("the copy has the source's composite checksum: %v", r.header)
	}
}
