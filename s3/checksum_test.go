package s3

import (
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"net/http"
	"testing"
)

// The vectors are ceph/s3-tests' (test_multipart_use_cksum_helper_*): three 5 MiB parts of
// 'A', 'B' and 'C'.
func TestCompositeChecksum(t *testing.T) {
	for _, tc := range []struct {
		algo  string
		parts []string
		want  string
	}{
		{"sha256", []string{"275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=", "mrHwOfjTL5Zwfj74F05HOQGLdUb7E5szdCbxgUSq6NM=", "Vw7oB/nKQ5xWb3hNgbyfkvDiivl+U+/Dft48nfJfDow="},
			"uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3"},
		{"sha1", []string{"iIaTCGbm+vdVjNqIMF2S0T7ibMk=", "LS/TJ32bAVKEwRu+sE3X7awh/lk=", "6DDwovUaHwrKNXDMzOGbuvj9kxI="},
			"sizjvY4eud3MrcHdZM3cQ/ol39o=-3"},
		// One part: the digest of that part's digest (s3-tests' test_multipart_checksum_sha256).
		{"sha256", []string{"arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="}, "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1"},
	} {
		got, err := CompositeChecksum(tc.algo, tc.parts)
		if err != nil || got != tc.want {
			t.Errorf("CompositeChecksum(%s, %v) = %q, %v; want %q", tc.algo, tc.parts, got, err, tc.want)
		}
	}
	if _, err := CompositeChecksum("md5", []string{"AAAA"}); err == nil {
		t.Error("an unknown algorithm gave a checksum")
	}
	if _, err := CompositeChecksum("sha1", []string{"not base64!"}); err == nil {
		t.Error("a part checksum that is not base64 gave a checksum")
	}
}

func TestUploadChecksumAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		algo, typ string
		want      string
		full      bool
		code      string
	}{
		{"", "", "", false, ""},
		{"SHA256", "", "sha256", false, ""},
		{"crc32c", "COMPOSITE", "crc32c", false, ""},
		{"SHA1", "composite", "sha1", false, ""},
		{"CRC32", "FULL_OBJECT", "crc32", true, ""},
		{"CRC32", "", "crc32", false, ""},
		{"CRC64NVME", "", "crc64nvme", true, ""},
		{"CRC64NVME", "FULL_OBJECT", "crc64nvme", true, ""},
		{"CRC64NVME", "COMPOSITE", "", false, CodeInvalidRequest},
		{"SHA256", "FULL_OBJECT", "", false, CodeInvalidRequest},
		{"MD5", "", "", false, CodeInvalidRequest},
		{"", "COMPOSITE", "", false, CodeInvalidRequest},
		{"SHA256", "PARTIAL", "", false, CodeInvalidRequest},
	} {
		h := http.Header{}
		if tc.algo != "" {
			h.Set("X-Amz-Checksum-Algorithm", tc.algo)
		}
		if tc.typ != "" {
			h.Set("X-Amz-Checksum-Type", tc.typ)
		}
		got, full, err := UploadChecksumAlgorithm(h)
		var se *Error
		code := ""
		if errors.As(err, &se) {
			code = se.Code
		} else if err != nil {
			code = err.Error()
		}
		if got != tc.want || full != tc.full || code != tc.code {
			t.Errorf("UploadChecksumAlgorithm(%q, %q) = %q, %v, %q; want %q, %v, %q", tc.algo, tc.typ, got, full, code, tc.want, tc.full, tc.code)
		}
	}
	for v, want := range map[string]string{"uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3": "COMPOSITE", "WgDhBQ==": "FULL_OBJECT"} {
		if got := ChecksumType(v); got != want {
			t.Errorf("ChecksumType(%q) = %s, want %s", v, got, want)
		}
	}
}

// The suite's FULL_OBJECT vectors (test_multipart_use_cksum_helper_crc32, _crc32c, _crc64nvme),
// and random splits of random data against the CRC of the whole.
func TestFullObjectChecksum(t *testing.T) {
	mib5 := int64(5 << 20)
	sizes := []int64{mib5, mib5, mib5}
	for _, tc := range []struct {
		algo  string
		parts []string
		want  string
	}{
		{"crc32", []string{"JRTCyQ==", "QoZTGg==", "YAgjqw=="}, "WgDhBQ=="},
		{"crc32c", []string{"MDaLrw==", "TH4EZg==", "Z7mBIQ=="}, "xU+Krw=="},
		{"crc64nvme", []string{"L/E4WYn8v98=", "xW1l19VobYM=", "cK5MnNaWrW4="}, "i+6LR0y3eFo="},
	} {
		got, err := FullObjectChecksum(tc.algo, tc.parts, sizes)
		if err != nil || got != tc.want {
			t.Errorf("FullObjectChecksum(%s) = %q, %v; want %q", tc.algo, got, err, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sum := func(algo string, b []byte) string {
		h := NewChecksum(algo)
		h.Write(b)
		return base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	for _, algo := range []string{"crc32", "crc32c", "crc64nvme"} {
		for range 20 {
			var parts []string
			var sizes []int64
			for off := 0; off < len(data); {
				n := min(1+rng.IntN(30000), len(data)-off)
				parts, sizes = append(parts, sum(algo, data[off:off+n])), append(sizes, int64(n))
				off += n
			}
			got, err := FullObjectChecksum(algo, parts, sizes)
			if want := sum(algo, data); err != nil || got != want {
				t.Fatalf("%s of %d parts: %q, %v; want %q", algo, len(parts), got, err, want)
			}
		}
	}
	if _, err := FullObjectChecksum("sha256", []string{"AAAA"}, []int64{1}); err == nil {
		t.Error("a full object SHA-256 was combined")
	}
	if _, err := FullObjectChecksum("crc32", []string{"AAAA"}, []int64{1}); err == nil {
		t.Error("a CRC-32 of three bytes was combined")
	}
}
