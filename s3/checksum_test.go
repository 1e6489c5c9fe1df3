package s3

import (
	"errors"
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
		code      string
	}{
		{"", "", "", ""},
		{"SHA256", "", "sha256", ""},
		{"crc32c", "COMPOSITE", "crc32c", ""},
		{"SHA1", "composite", "sha1", ""},
		{"CRC32", "FULL_OBJECT", "", CodeNotImplemented},
		{"CRC64NVME", "", "", CodeNotImplemented},
		{"MD5", "", "", CodeInvalidRequest},
		{"", "COMPOSITE", "", CodeInvalidRequest},
		{"SHA256", "PARTIAL", "", CodeInvalidRequest},
	} {
		h := http.Header{}
		if tc.algo != "" {
			h.Set("X-Amz-Checksum-Algorithm", tc.algo)
		}
		if tc.typ != "" {
			h.Set("X-Amz-Checksum-Type", tc.typ)
		}
		got, err := UploadChecksumAlgorithm(h)
		var se *Error
		code := ""
		if errors.As(err, &se) {
			code = se.Code
		} else if err != nil {
			code = err.Error()
		}
		if got != tc.want || code != tc.code {
			t.Errorf("UploadChecksumAlgorithm(%q, %q) = %q, %q; want %q, %q", tc.algo, tc.typ, got, code, tc.want, tc.code)
		}
	}
}
