package s3

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/minio/crc64nvme"
)

// fullObjectCRC describes the CRCs S3 can give a multipart object as a FULL_OBJECT checksum:
// reflected CRCs (the polynomial in its reversed form, as Go's packages take it) whose
// initial value and final xor are all ones, so the CRC of two pieces one after the other
// follows from the CRCs of the pieces and the second's length.
var fullObjectCRC = map[string]struct {
	poly  uint64
	width int
}{
	"crc32":     {crc32.IEEE, 32},
	"crc32c":    {crc32.Castagnoli, 32},
	"crc64nvme": {crc64nvme.NVME, 64},
}

// FullObjectAlgorithm reports whether algo (lower case) has FULL_OBJECT checksums of
// multipart uploads.
func FullObjectAlgorithm(algo string) bool { _, ok := fullObjectCRC[algo]; return ok }

// FullObjectChecksum is the FULL_OBJECT checksum of a multipart object: the CRC of the whole
// object, computed from its parts' CRCs (base64, as S3 shows them) and sizes.
func FullObjectChecksum(algo string, parts []string, sizes []int64) (string, error) {
	c, ok := fullObjectCRC[algo]
	if !ok {
		return "", fmt.Errorf("full object checksum: %q is not a CRC algorithm", algo)
	}
	if len(parts) != len(sizes) || len(parts) == 0 {
		return "", fmt.Errorf("full object checksum: %d part checksums for %d parts", len(parts), len(sizes))
	}
	var crc uint64
	for i, p := range parts {
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(b) != c.width/8 {
			return "", fmt.Errorf("full object checksum: part %d's %s %q is not one", i+1, algo, p)
		}
		var v uint64
		if c.width == 32 {
			v = uint64(binary.BigEndian.Uint32(b))
		} else {
			v = binary.BigEndian.Uint64(b)
		}
		if i == 0 {
			crc = v
		} else {
			crc = crcCombine(c.poly, c.width, crc, v, sizes[i])
		}
	}
	out := make([]byte, c.width/8)
	if c.width == 32 {
		binary.BigEndian.PutUint32(out, uint32(crc))
	} else {
		binary.BigEndian.PutUint64(out, crc)
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// crcCombine returns the CRC of A then B from crcA, crcB and B's length, as zlib's
// crc32_combine does: crcA is carried through len(b) zero bytes by squaring, in GF(2), the
// operator of one zero bit, then B's CRC is added.
func crcCombine(poly uint64, width int, crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [64]uint64
	odd[0] = poly // the operator of one zero bit
	row := uint64(1)
	for n := 1; n < width; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(even[:width], odd[:width]) // two zero bits
	gf2Square(odd[:width], even[:width]) // four
	for {
		gf2Square(even[:width], odd[:width]) // one zero byte, then 4, 16, ...
		if lenB&1 != 0 {
			crcA = gf2Times(even[:width], crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
		gf2Square(odd[:width], even[:width])
		if lenB&1 != 0 {
			crcA = gf2Times(odd[:width], crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

func gf2Times(mat []uint64, vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat []uint64) {
	for n := range mat {
		square[n] = gf2Times(mat, mat[n])
	}
}
