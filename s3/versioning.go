package s3

// The request bodies below are read with or without S3's namespace (SDKs differ); responses set
// Xmlns to Namespace.

import (
	"encoding/xml"
	"time"
)

// VersioningConfiguration is the body of PutBucketVersioning and GetBucketVersioning.
type VersioningConfiguration struct {
	XMLName   xml.Name `xml:"VersioningConfiguration"`
	Xmlns     string   `xml:"xmlns,attr,omitempty"`
	Status    string   `xml:"Status,omitempty"`
	MFADelete string   `xml:"MfaDelete,omitempty"`
}

// NewDeleteMarker is the ListVersionsResult entry of a delete marker.
func NewDeleteMarker(key, versionID string, latest bool, modified time.Time, owner *Owner) ObjectVersion {
	return ObjectVersion{XMLName: xml.Name{Local: "DeleteMarker"}, Key: key, VersionID: versionID, IsLatest: latest,
		LastModified: Timestamp{Time: modified}, Owner: owner}
}

// ObjectLockConfiguration is the body of Put/GetObjectLockConfiguration.
type ObjectLockConfiguration struct {
	XMLName           xml.Name        `xml:"ObjectLockConfiguration"`
	Xmlns             string          `xml:"xmlns,attr,omitempty"`
	ObjectLockEnabled string          `xml:"ObjectLockEnabled,omitempty"`
	Rule              *ObjectLockRule `xml:"Rule,omitempty"`
}

// ObjectLockRule holds a bucket's default retention.
type ObjectLockRule struct {
	DefaultRetention *DefaultRetention `xml:"DefaultRetention"`
}

// DefaultRetention is a mode and a period, in days or in years (exactly one of them).
type DefaultRetention struct {
	Mode  string `xml:"Mode"`
	Days  *int   `xml:"Days,omitempty"`
	Years *int   `xml:"Years,omitempty"`
}

// Retention is the body of Put/GetObjectRetention.
type Retention struct {
	XMLName         xml.Name     `xml:"Retention"`
	Xmlns           string       `xml:"xmlns,attr,omitempty"`
	Mode            string       `xml:"Mode,omitempty"`
	RetainUntilDate *RetainUntil `xml:"RetainUntilDate,omitempty"`
}

// RetainUntil is a retention date: written with milliseconds in UTC, read as any ISO 8601
// date and time (SDKs send their own precision and zone).
type RetainUntil struct{ time.Time }

// MarshalText writes t in UTC with milliseconds.
func (t RetainUntil) MarshalText() ([]byte, error) {
	return []byte(t.UTC().Format(TimeFormat)), nil
}

// UnmarshalText accepts RFC 3339 with or without fractional seconds.
func (t *RetainUntil) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return err
	}
	t.Time = v.UTC()
	return nil
}

// LegalHold is the body of Put/GetObjectLegalHold.
type LegalHold struct {
	XMLName xml.Name `xml:"LegalHold"`
	Xmlns   string   `xml:"xmlns,attr,omitempty"`
	Status  string   `xml:"Status"`
}

// objectVersionFields are an ObjectVersion's elements, without the name it carries.
type objectVersionFields struct {
	Key          string    `xml:"Key"`
	VersionID    string    `xml:"VersionId"`
	IsLatest     bool      `xml:"IsLatest"`
	LastModified Timestamp `xml:"LastModified"`
	ETag         string    `xml:"ETag,omitempty"`
	Size         *int64    `xml:"Size,omitempty"`
	Owner        *Owner    `xml:"Owner,omitempty"`
	StorageClass string    `xml:"StorageClass,omitempty"`
}

// MarshalXML names the entry Version or DeleteMarker in the listing's namespace (encoding/xml
// would put a struct with a Name field in none).
func (v ObjectVersion) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if v.XMLName.Local != "" {
		start.Name = xml.Name{Local: v.XMLName.Local}
	}
	return e.EncodeElement(objectVersionFields{v.Key, v.VersionID, v.IsLatest, v.LastModified, v.ETag, v.Size, v.Owner, v.StorageClass}, start)
}
