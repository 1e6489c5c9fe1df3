package s3

import "encoding/xml"

// PublicAccessBlockConfiguration is the body of Get/PutPublicAccessBlock.
type PublicAccessBlockConfiguration struct {
	XMLName               xml.Name `xml:"PublicAccessBlockConfiguration"`
	Xmlns                 string   `xml:"xmlns,attr,omitempty"`
	BlockPublicAcls       bool     `xml:"BlockPublicAcls"`
	IgnorePublicAcls      bool     `xml:"IgnorePublicAcls"`
	BlockPublicPolicy     bool     `xml:"BlockPublicPolicy"`
	RestrictPublicBuckets bool     `xml:"RestrictPublicBuckets"`
}

// OwnershipControls is the body of Get/PutBucketOwnershipControls.
type OwnershipControls struct {
	XMLName xml.Name               `xml:"OwnershipControls"`
	Xmlns   string                 `xml:"xmlns,attr,omitempty"`
	Rules   []OwnershipControlRule `xml:"Rule"`
}

// OwnershipControlRule is the one rule of OwnershipControls.
type OwnershipControlRule struct {
	ObjectOwnership string `xml:"ObjectOwnership"`
}

// ValidOwnership reports an ObjectOwnership value S3 defines.
func ValidOwnership(v string) bool {
	return v == "BucketOwnerEnforced" || v == "BucketOwnerPreferred" || v == "ObjectWriter"
}
