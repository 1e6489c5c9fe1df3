package s3

import "encoding/xml"

// LifecycleConfiguration is the body of Put/GetBucketLifecycleConfiguration. Transitions are
// read so that a request asking for one can be refused.
type LifecycleConfiguration struct {
	XMLName xml.Name        `xml:"LifecycleConfiguration"`
	Xmlns   string          `xml:"xmlns,attr,omitempty"`
	Rules   []LifecycleRule `xml:"Rule"`
}

// LifecycleRule is one rule: a filter (the legacy Prefix, or Filter), a status and actions.
type LifecycleRule struct {
	ID                             string                          `xml:"ID,omitempty"`
	Prefix                         *string                         `xml:"Prefix"`
	Filter                         *LifecycleFilter                `xml:"Filter"`
	Status                         string                          `xml:"Status"`
	Expiration                     *LifecycleExpiration            `xml:"Expiration"`
	NoncurrentVersionExpiration    *NoncurrentVersionExpiration    `xml:"NoncurrentVersionExpiration"`
	AbortIncompleteMultipartUpload *AbortIncompleteMultipartUpload `xml:"AbortIncompleteMultipartUpload"`
	Transitions                    []LifecycleTransition           `xml:"Transition"`
	NoncurrentVersionTransitions   []LifecycleTransition           `xml:"NoncurrentVersionTransition"`
}

// LifecycleTransition is read only to be checked and refused (there is one storage class).
type LifecycleTransition struct {
	Days         *int    `xml:"Days"`
	Date         *string `xml:"Date"`
	StorageClass string  `xml:"StorageClass"`
}

// LifecycleFilter selects objects by prefix, tags and size, alone or under And.
type LifecycleFilter struct {
	Prefix                *string             `xml:"Prefix"`
	Tag                   *Tag                `xml:"Tag"`
	ObjectSizeGreaterThan *int64              `xml:"ObjectSizeGreaterThan"`
	ObjectSizeLessThan    *int64              `xml:"ObjectSizeLessThan"`
	And                   *LifecycleFilterAnd `xml:"And"`
}

// LifecycleFilterAnd is a conjunction of a prefix, tags and size bounds.
type LifecycleFilterAnd struct {
	Prefix                *string `xml:"Prefix"`
	Tags                  []Tag   `xml:"Tag"`
	ObjectSizeGreaterThan *int64  `xml:"ObjectSizeGreaterThan"`
	ObjectSizeLessThan    *int64  `xml:"ObjectSizeLessThan"`
}

// LifecycleExpiration expires current versions after Days or on Date, or removes lone delete
// markers.
type LifecycleExpiration struct {
	Days                      *int    `xml:"Days"`
	Date                      *string `xml:"Date"`
	ExpiredObjectDeleteMarker *bool   `xml:"ExpiredObjectDeleteMarker"`
}

// NoncurrentVersionExpiration removes noncurrent versions.
type NoncurrentVersionExpiration struct {
	NoncurrentDays          *int `xml:"NoncurrentDays"`
	NewerNoncurrentVersions *int `xml:"NewerNoncurrentVersions"`
}

// AbortIncompleteMultipartUpload aborts uploads some days after they began.
type AbortIncompleteMultipartUpload struct {
	DaysAfterInitiation *int `xml:"DaysAfterInitiation"`
}
