package coordinator

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/hanode/hanode/s3"
)

// getObjectAttributesResponse is GetObjectAttributes' body; only the attributes asked for
// (x-amz-object-attributes) are set.
type getObjectAttributesResponse struct {
	XMLName      xml.Name           `xml:"GetObjectAttributesResponse"`
	Xmlns        string             `xml:"xmlns,attr"`
	ETag         string             `xml:"ETag,omitempty"`
	Checksum     *attributeChecksum `xml:"Checksum,omitempty"`
	ObjectParts  *attributeParts    `xml:"ObjectParts,omitempty"`
	StorageClass string             `xml:"StorageClass,omitempty"`
	ObjectSize   *int64             `xml:"ObjectSize,omitempty"`
}

type attributeChecksum struct {
	CRC32     string `xml:"ChecksumCRC32,omitempty"`
	CRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	CRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	SHA1      string `xml:"ChecksumSHA1,omitempty"`
	SHA256    string `xml:"ChecksumSHA256,omitempty"`
	Type      string `xml:"ChecksumType,omitempty"`
}

type attributeParts struct {
	TotalPartsCount      int             `xml:"PartsCount"` // AWS's element name (its SDKs' member is TotalPartsCount)
	PartNumberMarker     int             `xml:"PartNumberMarker"`
	NextPartNumberMarker int             `xml:"NextPartNumberMarker"`
	MaxParts             int             `xml:"MaxParts"`
	IsTruncated          bool            `xml:"IsTruncated"`
	Parts                []attributePart `xml:"Part"`
}

type attributePart struct {
	PartNumber int   `xml:"PartNumber"`
	Size       int64 `xml:"Size"`
	s3.ChecksumFields
}

// getObjectAttributes serves GetObjectAttributes: ETag, Checksum, ObjectParts (paged by
// x-amz-max-parts and x-amz-part-number-marker), StorageClass and ObjectSize.
func (c *Coordinator) getObjectAttributes(rq *request) error {
	version := versionID(rq)
	var err error
	want := map[string]bool{}
	for _, v := range rq.r.Header.Values("X-Amz-Object-Attributes") {
		for _, a := range strings.Split(v, ",") {
			switch a = strings.TrimSpace(a); a {
			case "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize":
				want[a] = true
			case "":
			default:
				return s3.ErrorFor(s3.CodeInvalidArgument, "Invalid attribute name specified: "+a)
			}
		}
	}
	if len(want) == 0 {
		return s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-object-attributes names at least one attribute")
	}
	maxParts, marker := 1000, 0
	if v := rq.r.Header.Get("X-Amz-Max-Parts"); v != "" {
		if maxParts, err = strconv.Atoi(v); err != nil || maxParts < 0 {
			return s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-max-parts must be a non-negative integer")
		}
		maxParts = min(maxParts, 1000)
	}
	if v := rq.r.Header.Get("X-Amz-Part-Number-Marker"); v != "" {
		if marker, err = strconv.Atoi(v); err != nil || marker < 0 {
			return s3.ErrorFor(s3.CodeInvalidArgument, "x-amz-part-number-marker must be a non-negative integer")
		}
	}
	obj, err := c.namedVersion(rq)
	if err != nil {
		return err
	}
	if err := rq.recheckObject(obj); err != nil {
		return err
	}
	// An SSE-C object's attributes need its key, as its HEAD does (no data key is opened).
	if _, _, err := c.objectKey(rq.r.Context(), rq.r.Header, obj.SSE, false, false); err != nil {
		return err
	}
	out := getObjectAttributesResponse{Xmlns: s3.Namespace}
	if want["ETag"] {
		out.ETag = obj.ETag
	}
	if want["StorageClass"] {
		out.StorageClass = "STANDARD"
	}
	if want["ObjectSize"] {
		out.ObjectSize = &obj.Size
	}
	if algo, v, ok := strings.Cut(obj.Checksum, ":"); ok && want["Checksum"] {
		ck := &attributeChecksum{}
		switch strings.ToLower(algo) {
		case "crc32":
			ck.CRC32 = v
		case "crc32c":
			ck.CRC32C = v
		case "crc64nvme":
			ck.CRC64NVME = v
		case "sha1":
			ck.SHA1 = v
		case "sha256":
			ck.SHA256 = v
		}
		ck.Type = s3.ChecksumType(v)
		out.Checksum = ck
	}
	if want["ObjectParts"] && len(obj.Parts) > 0 {
		p := &attributeParts{TotalPartsCount: len(obj.Parts), PartNumberMarker: marker, MaxParts: maxParts}
		for i := marker; i < len(obj.Parts); i++ {
			if len(p.Parts) == maxParts {
				p.IsTruncated = true
				break
			}
			ap := attributePart{PartNumber: i + 1, Size: obj.Parts[i]}
			if algo, _, ok := strings.Cut(obj.Checksum, ":"); ok && i < len(obj.PartChecksums) {
				if f := ap.Field(algo); f != nil {
					*f = obj.PartChecksums[i]
				}
			}
			p.Parts = append(p.Parts, ap)
			p.NextPartNumberMarker = i + 1
		}
		out.ObjectParts = p
	}
	h := rq.w.Header()
	if obj.Version != "" || version != "" { // as GET and HEAD name the version read
		h.Set("X-Amz-Version-Id", obj.VersionID())
	}
	h.Set("Last-Modified", obj.Modified.Format(http.TimeFormat))
	return s3.WriteXML(rq.w, http.StatusOK, out)
}
