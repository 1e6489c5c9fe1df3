package s3

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Namespace is the XML namespace of S3 response bodies.
const Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

// TimeFormat is how S3 writes timestamps in XML bodies: RFC 3339, UTC, always
// with milliseconds (some clients parse exactly this layout).
const TimeFormat = "2006-01-02T15:04:05.000Z"

// MaxXMLBodySize is a generous bound for the XML request bodies S3 accepts:
// a CompleteMultipartUpload of 10,000 parts with checksums, or a Delete of
// 1,000 keys of 1,024 bytes each even when every byte is escaped.
const MaxXMLBodySize = 8 << 20

// MaxDeleteObjects is the most keys one DeleteObjects request may name.
const MaxDeleteObjects = 1000

// MaxPartNumber is the highest part number of a multipart upload.
const MaxPartNumber = 10000

// Timestamp is a time that marshals in TimeFormat. Use omitzero on optional
// fields: the zero Timestamp reports IsZero.
type Timestamp struct{ time.Time }

// MarshalText writes t in UTC with milliseconds.
func (t Timestamp) MarshalText() ([]byte, error) {
	return []byte(t.UTC().Format(TimeFormat)), nil
}

// UnmarshalText accepts RFC 3339 with or without fractional seconds.
func (t *Timestamp) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// Owner is the owner (or initiator) element of several responses.
type Owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

// Bucket is one entry of ListAllMyBucketsResult.
type Bucket struct {
	Name         string    `xml:"Name"`
	CreationDate Timestamp `xml:"CreationDate"`
	BucketRegion string    `xml:"BucketRegion,omitempty"`
}

// ListAllMyBucketsResult is the ListBuckets response.
type ListAllMyBucketsResult struct {
	XMLName           xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListAllMyBucketsResult"`
	Owner             Owner    `xml:"Owner"`
	Buckets           []Bucket `xml:"Buckets>Bucket"`
	ContinuationToken string   `xml:"ContinuationToken,omitempty"`
	Prefix            string   `xml:"Prefix,omitempty"`
}

// Object is one Contents entry of a listing.
type Object struct {
	Key          string    `xml:"Key"`
	LastModified Timestamp `xml:"LastModified"`
	ETag         string    `xml:"ETag"` // quoted, as S3 sends it
	Size         int64     `xml:"Size"`
	StorageClass string    `xml:"StorageClass"`
	Owner        *Owner    `xml:"Owner,omitempty"` // V2 only with fetch-owner=true
}

// CommonPrefix is one CommonPrefixes entry of a delimited listing.
type CommonPrefix struct {
	Prefix string `xml:"Prefix"`
}

// ListBucketResult is the ListObjectsV2 response, elements in AWS's order.
type ListBucketResult struct {
	XMLName               xml.Name       `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name                  string         `xml:"Name"`
	Prefix                string         `xml:"Prefix"`
	ContinuationToken     *string        `xml:"ContinuationToken,omitempty"` // as sent, even empty
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	StartAfter            string         `xml:"StartAfter,omitempty"`
	KeyCount              int            `xml:"KeyCount"`
	MaxKeys               int            `xml:"MaxKeys"`
	Delimiter             string         `xml:"Delimiter,omitempty"`
	EncodingType          string         `xml:"EncodingType,omitempty"`
	IsTruncated           bool           `xml:"IsTruncated"`
	Contents              []Object       `xml:"Contents"`
	CommonPrefixes        []CommonPrefix `xml:"CommonPrefixes"`
}

// URLEncodeKeys applies EncodingType=url to the fields S3 encodes in a V2
// listing (keys, prefixes, delimiter, start-after). Call it once, after
// filling the result with raw keys; it does nothing for other encodings.
func (r *ListBucketResult) URLEncodeKeys() {
	if r.EncodingType != EncodingTypeURL {
		return
	}
	r.Prefix = URLEncodeName(r.Prefix)
	r.Delimiter = URLEncodeName(r.Delimiter)
	r.StartAfter = URLEncodeName(r.StartAfter)
	encodeObjects(r.Contents, r.CommonPrefixes)
}

// ListBucketResultV1 is the ListObjects (version 1) response.
type ListBucketResultV1 struct {
	XMLName        xml.Name       `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name           string         `xml:"Name"`
	Prefix         string         `xml:"Prefix"`
	Marker         string         `xml:"Marker"`
	NextMarker     string         `xml:"NextMarker,omitempty"` // S3 sends it only when truncated with a delimiter
	MaxKeys        int            `xml:"MaxKeys"`
	Delimiter      string         `xml:"Delimiter,omitempty"`
	EncodingType   string         `xml:"EncodingType,omitempty"`
	IsTruncated    bool           `xml:"IsTruncated"`
	Contents       []Object       `xml:"Contents"`
	CommonPrefixes []CommonPrefix `xml:"CommonPrefixes"`
}

// URLEncodeKeys is ListBucketResult.URLEncodeKeys for V1 (markers instead of
// start-after, and the Prefix left alone).
func (r *ListBucketResultV1) URLEncodeKeys() {
	if r.EncodingType != EncodingTypeURL {
		return
	}
	// The V1 Prefix stays as sent, as in AWS: SDKs (botocore) decode Delimiter, Marker,
	// NextMarker and the listed keys of a V1 listing, never its Prefix.
	r.Delimiter = URLEncodeName(r.Delimiter)
	r.Marker = URLEncodeName(r.Marker)
	r.NextMarker = URLEncodeName(r.NextMarker)
	encodeObjects(r.Contents, r.CommonPrefixes)
}

func encodeObjects(objs []Object, prefixes []CommonPrefix) {
	for i := range objs {
		objs[i].Key = URLEncodeName(objs[i].Key)
	}
	for i := range prefixes {
		prefixes[i].Prefix = URLEncodeName(prefixes[i].Prefix)
	}
}

// CreateBucketConfiguration is the optional CreateBucket request body.
// Request types carry no namespace in their tags so that bodies with or
// without xmlns both decode.
type CreateBucketConfiguration struct {
	XMLName            xml.Name `xml:"CreateBucketConfiguration"`
	LocationConstraint string   `xml:"LocationConstraint"`
}

// LocationConstraint is the GetBucketLocation response; empty means
// us-east-1, as in S3.
type LocationConstraint struct {
	XMLName  xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ LocationConstraint"`
	Location string   `xml:",chardata"`
}

// InitiateMultipartUploadResult is the CreateMultipartUpload response.
type InitiateMultipartUploadResult struct {
	XMLName  xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ InitiateMultipartUploadResult"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

// CompletePart is one Part of a CompleteMultipartUpload request. A checksum element of the
// upload's algorithm must be the part's checksum (the others are ignored).
type CompletePart struct {
	PartNumber int    `xml:"PartNumber"`
	ETag       string `xml:"ETag"`
	ChecksumFields
}

// CompleteMultipartUpload is the CompleteMultipartUpload request body.
type CompleteMultipartUpload struct {
	XMLName xml.Name       `xml:"CompleteMultipartUpload"`
	Parts   []CompletePart `xml:"Part"`
}

// Validate checks what S3 checks before looking at the parts themselves:
// at least one part (MalformedXML), part numbers in 1..MaxPartNumber
// (InvalidPart) and strictly ascending (InvalidPartOrder).
func (c *CompleteMultipartUpload) Validate() error {
	if len(c.Parts) == 0 {
		return ErrorFor(CodeMalformedXML, "")
	}
	prev := 0
	for _, p := range c.Parts {
		if p.PartNumber < 1 || p.PartNumber > MaxPartNumber {
			return ErrorFor(CodeInvalidPart, "")
		}
		if p.PartNumber <= prev {
			return ErrorFor(CodeInvalidPartOrder, "")
		}
		prev = p.PartNumber
	}
	return nil
}

// CompleteMultipartUploadResult is the CompleteMultipartUpload response.
type CompleteMultipartUploadResult struct {
	XMLName  xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ CompleteMultipartUploadResult"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
	ChecksumFields
	ChecksumType string `xml:"ChecksumType,omitempty"`
}

// Part is one Part of a ListParts response.
type Part struct {
	PartNumber   int       `xml:"PartNumber"`
	LastModified Timestamp `xml:"LastModified"`
	ETag         string    `xml:"ETag"`
	Size         int64     `xml:"Size"`
	ChecksumFields
}

// ListPartsResult is the ListParts response.
type ListPartsResult struct {
	XMLName              xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListPartsResult"`
	Bucket               string   `xml:"Bucket"`
	Key                  string   `xml:"Key"`
	UploadID             string   `xml:"UploadId"`
	Initiator            *Owner   `xml:"Initiator,omitempty"`
	Owner                *Owner   `xml:"Owner,omitempty"`
	StorageClass         string   `xml:"StorageClass"`
	PartNumberMarker     int      `xml:"PartNumberMarker"`
	NextPartNumberMarker int      `xml:"NextPartNumberMarker"`
	MaxParts             int      `xml:"MaxParts"`
	IsTruncated          bool     `xml:"IsTruncated"`
	Parts                []Part   `xml:"Part"`
	ChecksumAlgorithm    string   `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType         string   `xml:"ChecksumType,omitempty"`
}

// Upload is one Upload of a ListMultipartUploads response.
type Upload struct {
	Key          string    `xml:"Key"`
	UploadID     string    `xml:"UploadId"`
	Initiator    *Owner    `xml:"Initiator,omitempty"`
	Owner        *Owner    `xml:"Owner,omitempty"`
	StorageClass string    `xml:"StorageClass"`
	Initiated    Timestamp `xml:"Initiated"`
}

// ListMultipartUploadsResult is the ListMultipartUploads response.
type ListMultipartUploadsResult struct {
	XMLName            xml.Name       `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListMultipartUploadsResult"`
	Bucket             string         `xml:"Bucket"`
	KeyMarker          string         `xml:"KeyMarker"`
	UploadIDMarker     string         `xml:"UploadIdMarker"`
	NextKeyMarker      string         `xml:"NextKeyMarker"`
	NextUploadIDMarker string         `xml:"NextUploadIdMarker"`
	Delimiter          string         `xml:"Delimiter,omitempty"`
	Prefix             string         `xml:"Prefix"`
	EncodingType       string         `xml:"EncodingType,omitempty"`
	MaxUploads         int            `xml:"MaxUploads"`
	IsTruncated        bool           `xml:"IsTruncated"`
	Uploads            []Upload       `xml:"Upload"`
	CommonPrefixes     []CommonPrefix `xml:"CommonPrefixes"`
}

// URLEncodeKeys applies EncodingType=url to the fields S3 encodes in this
// listing (keys, key markers, prefixes, delimiter).
func (r *ListMultipartUploadsResult) URLEncodeKeys() {
	if r.EncodingType != EncodingTypeURL {
		return
	}
	r.KeyMarker = URLEncodeName(r.KeyMarker)
	r.NextKeyMarker = URLEncodeName(r.NextKeyMarker)
	r.Prefix = URLEncodeName(r.Prefix)
	r.Delimiter = URLEncodeName(r.Delimiter)
	for i := range r.Uploads {
		r.Uploads[i].Key = URLEncodeName(r.Uploads[i].Key)
	}
	for i := range r.CommonPrefixes {
		r.CommonPrefixes[i].Prefix = URLEncodeName(r.CommonPrefixes[i].Prefix)
	}
}

// CopyObjectResult is the CopyObject response.
type CopyObjectResult struct {
	XMLName      xml.Name  `xml:"http://s3.amazonaws.com/doc/2006-03-01/ CopyObjectResult"`
	LastModified Timestamp `xml:"LastModified"`
	ETag         string    `xml:"ETag"`
}

// CopyPartResult is the UploadPartCopy response.
type CopyPartResult struct {
	XMLName      xml.Name  `xml:"http://s3.amazonaws.com/doc/2006-03-01/ CopyPartResult"`
	LastModified Timestamp `xml:"LastModified"`
	ETag         string    `xml:"ETag"`
}

// ObjectIdentifier is one Object of a DeleteObjects request.
type ObjectIdentifier struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId,omitempty"`
	// Conditions on the object deleted (AWS's conditional deletes).
	ETag             string `xml:"ETag,omitempty"`
	LastModifiedTime string `xml:"LastModifiedTime,omitempty"`
	Size             string `xml:"Size,omitempty"`
}

// Delete is the DeleteObjects request body.
type Delete struct {
	XMLName xml.Name           `xml:"Delete"`
	Quiet   bool               `xml:"Quiet"`
	Objects []ObjectIdentifier `xml:"Object"`
}

// Validate applies S3's limits: 1..MaxDeleteObjects objects, each with a
// key; S3 answers MalformedXML for all of these.
func (d *Delete) Validate() error {
	if len(d.Objects) == 0 || len(d.Objects) > MaxDeleteObjects {
		return ErrorFor(CodeMalformedXML, "")
	}
	for _, o := range d.Objects {
		if o.Key == "" {
			return ErrorFor(CodeMalformedXML, "")
		}
	}
	return nil
}

// Deleted is one success entry of a DeleteResult.
type Deleted struct {
	Key                   string `xml:"Key"`
	VersionID             string `xml:"VersionId,omitempty"`
	DeleteMarker          bool   `xml:"DeleteMarker,omitempty"`
	DeleteMarkerVersionID string `xml:"DeleteMarkerVersionId,omitempty"`
}

// DeleteError is one failure entry of a DeleteResult.
type DeleteError struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId,omitempty"`
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
}

// DeleteResult is the DeleteObjects response. In quiet mode S3 lists only
// the errors; leaving Deleted empty is the caller's part.
type DeleteResult struct {
	XMLName xml.Name      `xml:"http://s3.amazonaws.com/doc/2006-03-01/ DeleteResult"`
	Deleted []Deleted     `xml:"Deleted"`
	Errors  []DeleteError `xml:"Error"`
}

// WriteXML marshals v and writes it with the XML declaration, Content-Type
// and Content-Length. It marshals before writing anything, so on error the
// response is untouched and the caller can still WriteError.
func WriteXML(w http.ResponseWriter, status int, v any) error {
	b, err := xml.Marshal(v)
	if err != nil {
		return fmt.Errorf("s3: marshal %T: %w", v, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(xml.Header)+len(b)))
	w.WriteHeader(status)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// DecodeXML reads at most limit bytes of XML from r into v. A body over the
// limit, empty, not well-formed, with a different root element or with
// trailing elements is MalformedXML. A read error that is an *Error (say a
// signature check in the body reader) is returned as is; a short body is
// IncompleteBody; other read errors are returned wrapped.
func DecodeXML(r io.Reader, limit int64, v any) error {
	if limit < 0 {
		limit = 0
	}
	n := limit
	if n < math.MaxInt64 {
		n++ // one byte past the limit tells "exactly limit" from "over"
	}
	data, err := io.ReadAll(io.LimitReader(r, n))
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrorFor(CodeIncompleteBody, "")
		}
		return fmt.Errorf("s3: reading XML body: %w", err)
	}
	if int64(len(data)) > limit {
		return ErrorFor(CodeMalformedXML, "")
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(v); err != nil {
		return ErrorFor(CodeMalformedXML, "")
	}
	// Only whitespace, comments and processing instructions may follow.
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return ErrorFor(CodeMalformedXML, "")
		}
		switch t := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return ErrorFor(CodeMalformedXML, "")
			}
		default:
			return ErrorFor(CodeMalformedXML, "")
		}
	}
}

// EncodingTypeURL is the only encoding-type S3 supports for listings.
const EncodingTypeURL = "url"

// ParseEncodingType validates the encoding-type query parameter: "" or "url",
// anything else is InvalidArgument as in S3.
func ParseEncodingType(v string) (string, error) {
	switch v {
	case "", EncodingTypeURL:
		return v, nil
	}
	return "", ErrorFor(CodeInvalidArgument, "Invalid Encoding Method specified in Request")
}

// URLEncodeName encodes a key or prefix the way S3 does for
// encoding-type=url: every byte but unreserved ones, '/' and '*' as %XX (a
// space as %20, never '+', which a client's path unescape would keep), so
// clients decode it with either a query or a path unescape.
func URLEncodeName(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '/', c == '*':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// NullVersion is the version id S3 gives an object written while its bucket's versioning was
// never enabled (or suspended).
const NullVersion = "null"

// ObjectVersion is one Version entry of a ListVersionsResult.
type ObjectVersion struct {
	XMLName      xml.Name  // Version, or DeleteMarker for a delete marker (which has no ETag, Size and StorageClass)
	Key          string    `xml:"Key"`
	VersionID    string    `xml:"VersionId"`
	IsLatest     bool      `xml:"IsLatest"`
	LastModified Timestamp `xml:"LastModified"`
	ETag         string    `xml:"ETag,omitempty"` // quoted
	Size         *int64    `xml:"Size,omitempty"`
	Owner        *Owner    `xml:"Owner,omitempty"`
	StorageClass string    `xml:"StorageClass,omitempty"`
}

// ListVersionsResult is the ListObjectVersions response, elements in AWS's order.
type ListVersionsResult struct {
	XMLName             xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListVersionsResult"`
	Name                string   `xml:"Name"`
	Prefix              string   `xml:"Prefix"`
	KeyMarker           string   `xml:"KeyMarker"`
	VersionIDMarker     string   `xml:"VersionIdMarker"`
	NextKeyMarker       string   `xml:"NextKeyMarker,omitempty"`
	NextVersionIDMarker string   `xml:"NextVersionIdMarker,omitempty"`
	MaxKeys             int      `xml:"MaxKeys"`
	Delimiter           string   `xml:"Delimiter,omitempty"`
	EncodingType        string   `xml:"EncodingType,omitempty"`
	IsTruncated         bool     `xml:"IsTruncated"`
	// Versions holds the Version and DeleteMarker entries interleaved in listing order, as
	// AWS sends them (clients keep that order): a delete marker is an ObjectVersion named
	// DeleteMarker (NewDeleteMarker).
	Versions       []ObjectVersion `xml:"Version"`
	CommonPrefixes []CommonPrefix  `xml:"CommonPrefixes"`
}

// URLEncodeKeys applies EncodingType=url to the keys, prefixes, delimiter and key markers.
func (r *ListVersionsResult) URLEncodeKeys() {
	if r.EncodingType != EncodingTypeURL {
		return
	}
	r.Prefix = URLEncodeName(r.Prefix)
	r.Delimiter = URLEncodeName(r.Delimiter)
	r.KeyMarker = URLEncodeName(r.KeyMarker)
	r.NextKeyMarker = URLEncodeName(r.NextKeyMarker)
	for i := range r.Versions {
		r.Versions[i].Key = URLEncodeName(r.Versions[i].Key)
	}
	for i := range r.CommonPrefixes {
		r.CommonPrefixes[i].Prefix = URLEncodeName(r.CommonPrefixes[i].Prefix)
	}
}
