package meta

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// TestEncodeMultipartChecksums: the fields of multipart checksums (tags 48 to 50) round-trip,
// and records without them are the bytes they were before the fields existed.
func TestEncodeMultipartChecksums(t *testing.T) {
	p := &Part{Number: 2, Size: 5 << 20, ETag: "abc", Modified: time.Unix(5, 0).UTC(), Chunks: sampleObject(1).Chunks}
	plain := EncodePart(p)
	p.Checksum = "mrHwOfjTL5Zwfj74F05HOQGLdUb7E5szdCbxgUSq6NM="
	withSum := EncodePart(p)
	if got, err := DecodePart(withSum); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("part with a checksum: %v %+v", err, got)
	}
	if !bytes.HasPrefix(withSum, plain) {
		t.Fatal("a part record's checksum is not a trailing field")
	}
	if _, err := DecodePart(append(plain, 99)); err == nil {
		t.Fatal("a part record with an unknown field decoded")
	}

	for _, full := range []bool{false, true} {
		u := &Upload{Bucket: "b", Key: "k", ID: "id", Initiated: time.Unix(9, 0).UTC(), ChecksumAlgorithm: "crc32", ChecksumFullObject: full}
		if got, err := DecodeUpload(EncodeUpload(u)); err != nil || !reflect.DeepEqual(got, u) {
			t.Fatalf("upload with a checksum algorithm: %v %+v", err, got)
		}
	}

	o := sampleObject(3)
	o.Parts = []int64{5 << 20, 5 << 20, 2}
	o.Checksum = "sha256:uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3"
	o.PartChecksums = []string{"275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=", "mrHwOfjTL5Zwfj74F05HOQGLdUb7E5szdCbxgUSq6NM=", "Vw7oB/nKQ5xWb3hNgbyfkvDiivl+U+/Dft48nfJfDow="}
	if got, err := DecodeObject(EncodeObject(o)); err != nil || !reflect.DeepEqual(got, o) {
		t.Fatalf("object with part checksums: %v\n got %+v\nwant %+v", err, got, o)
	}
}
