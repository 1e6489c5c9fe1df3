package s3

import (
	"encoding/xml"
	"net/url"
	"sort"
	"unicode/utf8"
)

// Object tagging limits, as AWS documents them.
const (
	MaxObjectTags  = 10
	MaxTagKeyLen   = 128 // Unicode characters
	MaxTagValueLen = 256
)

// CodeInvalidTag is S3's error for a tag set over its limits.
const CodeInvalidTag = "InvalidTag"

// Tag is one tag of a tag set.
type Tag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

// Tagging is the PutObjectTagging request body (no namespace, so bodies with or without one
// decode).
type Tagging struct {
	XMLName xml.Name `xml:"Tagging"`
	TagSet  []Tag    `xml:"TagSet>Tag"`
}

// TaggingResult is the GetObjectTagging response.
type TaggingResult struct {
	XMLName xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ Tagging"`
	TagSet  []Tag    `xml:"TagSet>Tag"`
}

// Tags returns the request's tag set as a map, checked against S3's limits.
func (t *Tagging) Tags() (map[string]string, error) {
	if len(t.TagSet) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(t.TagSet))
	for _, tg := range t.TagSet {
		if _, dup := m[tg.Key]; dup {
			return nil, ErrorFor(CodeInvalidTag, "Cannot provide multiple Tags with the same key")
		}
		m[tg.Key] = tg.Value
	}
	return m, CheckTags(m)
}

// NewTaggingResult lists tags sorted by key (the order S3 keeps is not promised; a stable one
// is).
func NewTaggingResult(tags map[string]string) TaggingResult {
	res := TaggingResult{TagSet: []Tag{}}
	for k, v := range tags {
		res.TagSet = append(res.TagSet, Tag{Key: k, Value: v})
	}
	sort.Slice(res.TagSet, func(i, j int) bool { return res.TagSet[i].Key < res.TagSet[j].Key })
	return res
}

// ParseTaggingHeader parses x-amz-tagging (a URL query: k1=v1&k2=v2, a key without '=' has an
// empty value); "" is no tags.
func ParseTaggingHeader(v string) (map[string]string, error) {
	if v == "" {
		return nil, nil
	}
	q, err := url.ParseQuery(v)
	if err != nil {
		return nil, ErrorFor(CodeInvalidArgument, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")
	}
	m := make(map[string]string, len(q))
	for k, vs := range q {
		if len(vs) != 1 {
			return nil, ErrorFor(CodeInvalidTag, "Cannot provide multiple Tags with the same key")
		}
		m[k] = vs[0]
	}
	return m, CheckTags(m)
}

// CheckTags applies S3's limits on an object's tag set.
func CheckTags(m map[string]string) error {
	if len(m) > MaxObjectTags {
		return ErrorFor(CodeInvalidTag, "Object tags cannot be greater than 10")
	}
	for k, v := range m {
		if k == "" || !utf8.ValidString(k) || utf8.RuneCountInString(k) > MaxTagKeyLen {
			return ErrorFor(CodeInvalidTag, "The TagKey you have provided is invalid")
		}
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > MaxTagValueLen {
			return ErrorFor(CodeInvalidTag, "The TagValue you have provided is invalid")
		}
	}
	return nil
}
