package s3

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const hdr = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// Go's encoder writes the quote in an ETag as &#34; where AWS writes &quot;;
// both are the same character to every XML parser.
const q = "&#34;"

var t0 = time.Date(2009, 10, 12, 17, 50, 30, 123456789, time.FixedZone("X", 3600))

func marshal(t *testing.T, v any) string {
	t.Helper()
	w := httptest.NewRecorder()
	if err := WriteXML(w, 200, v); err != nil {
		t.Fatal(err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/xml" {
		t.Errorf("Content-Type = %q", ct)
	}
	return w.Body.String()
}

func TestMarshalResponses(t *testing.T) {
	ts := Timestamp{t0}
	one := int64(1)
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{
			name: "ListAllMyBucketsResult",
			v: &ListAllMyBucketsResult{
				Owner:   Owner{ID: "id1", DisplayName: "me"},
				Buckets: []Bucket{{Name: "a", CreationDate: ts}, {Name: "b", CreationDate: ts}},
			},
			want: `<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Owner><ID>id1</ID><DisplayName>me</DisplayName></Owner>` +
				`<Buckets><Bucket><Name>a</Name><CreationDate>2009-10-12T16:50:30.123Z</CreationDate></Bucket>` +
				`<Bucket><Name>b</Name><CreationDate>2009-10-12T16:50:30.123Z</CreationDate></Bucket></Buckets>` +
				`</ListAllMyBucketsResult>`,
		},
		{
			name: "ListAllMyBucketsResult empty",
			v:    &ListAllMyBucketsResult{Owner: Owner{ID: "id1", DisplayName: "me"}},
			want: `<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Owner><ID>id1</ID><DisplayName>me</DisplayName></Owner><Buckets></Buckets>` +
				`</ListAllMyBucketsResult>`,
		},
		{
			// The AWS ListObjectsV2 example with a delimiter.
			name: "ListBucketResult V2",
			v: &ListBucketResult{
				Name: "example-bucket", Prefix: "photos/2006/", KeyCount: 3, MaxKeys: 1000, Delimiter: "/",
				Contents: []Object{{
					Key: "photos/2006/x.jpg", LastModified: Timestamp{time.Date(2009, 10, 12, 17, 50, 30, 0, time.UTC)},
					ETag: `"fba9dede5f27731c9771645a39863328"`, Size: 434234, StorageClass: "STANDARD",
				}},
				CommonPrefixes: []CommonPrefix{{Prefix: "photos/2006/February/"}, {Prefix: "photos/2006/January/"}},
			},
			want: `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Name>example-bucket</Name><Prefix>photos/2006/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>` +
				`<Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>` +
				`<Contents><Key>photos/2006/x.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>` +
				`<ETag>` + q + `fba9dede5f27731c9771645a39863328` + q + `</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>` +
				`<CommonPrefixes><Prefix>photos/2006/February/</Prefix></CommonPrefixes>` +
				`<CommonPrefixes><Prefix>photos/2006/January/</Prefix></CommonPrefixes>` +
				`</ListBucketResult>`,
		},
		{
			name: "ListBucketResult V2 truncated with tokens",
			v: &ListBucketResult{
				Name: "bucket", ContinuationToken: ptr("tok1"), NextContinuationToken: "tok2", StartAfter: "a",
				KeyCount: 0, MaxKeys: 2, EncodingType: "url", IsTruncated: true,
			},
			want: `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Name>bucket</Name><Prefix></Prefix><ContinuationToken>tok1</ContinuationToken>` +
				`<NextContinuationToken>tok2</NextContinuationToken><StartAfter>a</StartAfter>` +
				`<KeyCount>0</KeyCount><MaxKeys>2</MaxKeys><EncodingType>url</EncodingType>` +
				`<IsTruncated>true</IsTruncated></ListBucketResult>`,
		},
		{
			name: "ListBucketResult V2 echoes an empty continuation token",
			v:    &ListBucketResult{Name: "bucket", ContinuationToken: ptr(""), MaxKeys: 2},
			want: `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Name>bucket</Name><Prefix></Prefix><ContinuationToken></ContinuationToken>` +
				`<KeyCount>0</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`,
		},
		{
			name: "ListVersionsResult of null versions",
			v: &ListVersionsResult{Name: "bucket", KeyMarker: "a", VersionIDMarker: "null", NextKeyMarker: "c", NextVersionIDMarker: "null",
				MaxKeys: 1, IsTruncated: true, Versions: []ObjectVersion{{Key: "c", VersionID: "null", IsLatest: true, LastModified: ts, ETag: `"e"`, Size: &one, StorageClass: "STANDARD"}}},
			want: `<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Name>bucket</Name><Prefix></Prefix><KeyMarker>a</KeyMarker><VersionIdMarker>null</VersionIdMarker>` +
				`<NextKeyMarker>c</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated>` +
				`<Version><Key>c</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>2009-10-12T16:50:30.123Z</LastModified>` +
				`<ETag>` + q + `e` + q + `</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Version></ListVersionsResult>`,
		},
		{
			name: "ListBucketResult V1",
			v: &ListBucketResultV1{
				Name: "bucket", MaxKeys: 1000, Delimiter: "/", NextMarker: "b/", IsTruncated: true,
				Contents: []Object{{
					Key: "my-image.jpg", LastModified: ts, ETag: `"e"`, Size: 1, StorageClass: "STANDARD",
					Owner: &Owner{ID: "id", DisplayName: "mtd"},
				}},
			},
			want: `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Name>bucket</Name><Prefix></Prefix><Marker></Marker><NextMarker>b/</NextMarker><MaxKeys>1000</MaxKeys>` +
				`<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>` +
				`<Contents><Key>my-image.jpg</Key><LastModified>2009-10-12T16:50:30.123Z</LastModified>` +
				`<ETag>` + q + `e` + q + `</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass>` +
				`<Owner><ID>id</ID><DisplayName>mtd</DisplayName></Owner></Contents></ListBucketResult>`,
		},
		{
			name: "LocationConstraint us-east-1",
			v:    &LocationConstraint{},
			want: `<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></LocationConstraint>`,
		},
		{
			name: "LocationConstraint",
			v:    &LocationConstraint{Location: "eu-west-1"},
			want: `<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">eu-west-1</LocationConstraint>`,
		},
		{
			name: "InitiateMultipartUploadResult",
			v:    &InitiateMultipartUploadResult{Bucket: "b", Key: "k/x", UploadID: "VXBsb2FkIElE"},
			want: `<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Bucket>b</Bucket><Key>k/x</Key><UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>`,
		},
		{
			name: "CompleteMultipartUploadResult",
			v: &CompleteMultipartUploadResult{
				Location: "http://b.s3.example.com/k", Bucket: "b", Key: "k",
				ETag: `"3858f62230ac3c915f300c664312c11f-9"`,
			},
			want: `<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Location>http://b.s3.example.com/k</Location><Bucket>b</Bucket><Key>k</Key>` +
				`<ETag>` + q + `3858f62230ac3c915f300c664312c11f-9` + q + `</ETag></CompleteMultipartUploadResult>`,
		},
		{
			name: "ListPartsResult",
			v: &ListPartsResult{
				Bucket: "example-bucket", Key: "example-object", UploadID: "U",
				Initiator: &Owner{ID: "i", DisplayName: "d"}, Owner: &Owner{ID: "o", DisplayName: "d"},
				StorageClass: "STANDARD", PartNumberMarker: 1, NextPartNumberMarker: 3, MaxParts: 2, IsTruncated: true,
				Parts: []Part{
					{PartNumber: 2, LastModified: ts, ETag: `"7778aef83f66abc1fa1e8477f296d394"`, Size: 10485760},
					{PartNumber: 3, LastModified: ts, ETag: `"aaaa18db4cc2f85cedef654fccc4a4x8"`, Size: 10485760},
				},
			},
			want: `<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Bucket>example-bucket</Bucket><Key>example-object</Key><UploadId>U</UploadId>` +
				`<Initiator><ID>i</ID><DisplayName>d</DisplayName></Initiator><Owner><ID>o</ID><DisplayName>d</DisplayName></Owner>` +
				`<StorageClass>STANDARD</StorageClass><PartNumberMarker>1</PartNumberMarker>` +
				`<NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>` +
				`<Part><PartNumber>2</PartNumber><LastModified>2009-10-12T16:50:30.123Z</LastModified>` +
				`<ETag>` + q + `7778aef83f66abc1fa1e8477f296d394` + q + `</ETag><Size>10485760</Size></Part>` +
				`<Part><PartNumber>3</PartNumber><LastModified>2009-10-12T16:50:30.123Z</LastModified>` +
				`<ETag>` + q + `aaaa18db4cc2f85cedef654fccc4a4x8` + q + `</ETag><Size>10485760</Size></Part>` +
				`</ListPartsResult>`,
		},
		{
			name: "ListMultipartUploadsResult",
			v: &ListMultipartUploadsResult{
				Bucket: "bucket", NextKeyMarker: "my-movie.m2ts", NextUploadIDMarker: "YW55", Delimiter: "/",
				MaxUploads: 3, IsTruncated: true,
				Uploads: []Upload{{
					Key: "my-divisor", UploadID: "XMgb", Initiator: &Owner{ID: "i", DisplayName: "d"},
					Owner: &Owner{ID: "o", DisplayName: "d"}, StorageClass: "STANDARD", Initiated: ts,
				}},
				CommonPrefixes: []CommonPrefix{{Prefix: "photos/"}},
			},
			want: `<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
				`<NextKeyMarker>my-movie.m2ts</NextKeyMarker><NextUploadIdMarker>YW55</NextUploadIdMarker>` +
				`<Delimiter>/</Delimiter><Prefix></Prefix><MaxUploads>3</MaxUploads><IsTruncated>true</IsTruncated>` +
				`<Upload><Key>my-divisor</Key><UploadId>XMgb</UploadId><Initiator><ID>i</ID><DisplayName>d</DisplayName></Initiator>` +
				`<Owner><ID>o</ID><DisplayName>d</DisplayName></Owner><StorageClass>STANDARD</StorageClass>` +
				`<Initiated>2009-10-12T16:50:30.123Z</Initiated></Upload>` +
				`<CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes></ListMultipartUploadsResult>`,
		},
		{
			name: "CopyObjectResult",
			v:    &CopyObjectResult{LastModified: ts, ETag: `"9b2cf535f27731c974343645a3985328"`},
			want: `<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<LastModified>2009-10-12T16:50:30.123Z</LastModified>` +
				`<ETag>` + q + `9b2cf535f27731c974343645a3985328` + q + `</ETag></CopyObjectResult>`,
		},
		{
			name: "CopyPartResult",
			v:    &CopyPartResult{LastModified: ts, ETag: `"9b2cf535f27731c974343645a3985328"`},
			want: `<CopyPartResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<LastModified>2009-10-12T16:50:30.123Z</LastModified>` +
				`<ETag>` + q + `9b2cf535f27731c974343645a3985328` + q + `</ETag></CopyPartResult>`,
		},
		{
			name: "DeleteResult",
			v: &DeleteResult{
				Deleted: []Deleted{{Key: "sample1.txt"}},
				Errors:  []DeleteError{{Key: "sample2.txt", Code: "AccessDenied", Message: "Access Denied"}},
			},
			want: `<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
				`<Deleted><Key>sample1.txt</Key></Deleted>` +
				`<Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>` +
				`</DeleteResult>`,
		},
		{
			name: "DeleteResult quiet, nothing failed",
			v:    &DeleteResult{},
			want: `<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := marshal(t, tc.v); got != hdr+tc.want {
				t.Errorf("\n got %s\nwant %s", got, hdr+tc.want)
			}
			// Round trip: the body decodes back into the same type and value.
			back := reflect.New(reflect.TypeOf(tc.v).Elem())
			if err := DecodeXML(strings.NewReader(hdr+tc.want), 1<<20, back.Interface()); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := marshal(t, back.Interface()); got != hdr+tc.want {
				t.Errorf("round trip:\n got %s\nwant %s", got, hdr+tc.want)
			}
		})
	}
}

func TestWriteXMLMarshalError(t *testing.T) {
	w := httptest.NewRecorder()
	if err := WriteXML(w, 200, map[string]string{"a": "b"}); err == nil {
		t.Fatal("marshalling a map should fail")
	}
	if w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" {
		t.Error("WriteXML wrote something before failing")
	}
}

func TestDecodeCompleteMultipartUpload(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
	}{
		{"aws doc, no namespace", `<CompleteMultipartUpload>
  <Part><PartNumber>1</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag></Part>
  <Part><PartNumber>2</PartNumber><ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag></Part>
</CompleteMultipartUpload>`},
		{"namespace and checksums (SDK v2)", `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
			`<Part><ChecksumCRC32C>yZRlqg==</ChecksumCRC32C><ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag><PartNumber>1</PartNumber></Part>` +
			`<Part><ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag><PartNumber>2</PartNumber><Unknown>x</Unknown></Part>` +
			`</CompleteMultipartUpload>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c CompleteMultipartUpload
			if err := DecodeXML(strings.NewReader(tc.body), 1<<20, &c); err != nil {
				t.Fatal(err)
			}
			if len(c.Parts) != 2 || c.Parts[0].PartNumber != 1 || c.Parts[1].PartNumber != 2 ||
				c.Parts[0].ETag != `"a54357aff0632cce46d942af68356b38"` || c.Parts[1].ETag != `"0c78aef83f66abc1fa1e8477f296d394"` {
				t.Fatalf("parts = %+v", c.Parts)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCompleteMultipartUploadValidate(t *testing.T) {
	parts := func(ns ...int) *CompleteMultipartUpload {
		c := &CompleteMultipartUpload{}
		for _, n := range ns {
			c.Parts = append(c.Parts, CompletePart{PartNumber: n, ETag: `"x"`})
		}
		return c
	}
	for _, tc := range []struct {
		c    *CompleteMultipartUpload
		code string
	}{
		{parts(1, 2, 5), ""},
		{parts(10000), ""},
		{parts(), CodeMalformedXML},
		{parts(2, 1), CodeInvalidPartOrder},
		{parts(1, 1), CodeInvalidPartOrder},
		{parts(0), CodeInvalidPart},
		{parts(10001), CodeInvalidPart},
		{parts(-1), CodeInvalidPart},
	} {
		checkCode(t, tc.c.Validate(), tc.code, "Validate(%v)", tc.c.Parts)
	}
}

func TestDecodeDelete(t *testing.T) {
	body := `<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <Quiet>true</Quiet>
    <Object><Key>sample1.txt</Key></Object>
    <Object><Key>a &amp; b</Key><VersionId>v2</VersionId></Object>
</Delete>`
	var d Delete
	if err := DecodeXML(strings.NewReader(body), 1<<20, &d); err != nil {
		t.Fatal(err)
	}
	want := []ObjectIdentifier{{Key: "sample1.txt"}, {Key: "a & b", VersionID: "v2"}}
	if !d.Quiet || !reflect.DeepEqual(d.Objects, want) {
		t.Fatalf("got %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	checkCode(t, (&Delete{}).Validate(), CodeMalformedXML, "empty Delete")
	checkCode(t, (&Delete{Objects: []ObjectIdentifier{{Key: ""}}}).Validate(), CodeMalformedXML, "empty key")
	checkCode(t, (&Delete{Objects: make([]ObjectIdentifier, 1001)}).Validate(), CodeMalformedXML, "1001 keys")
	many := &Delete{Objects: make([]ObjectIdentifier, 1000)}
	for i := range many.Objects {
		many.Objects[i].Key = "k"
	}
	checkCode(t, many.Validate(), "", "1000 keys")
}

func TestDecodeCreateBucketConfiguration(t *testing.T) {
	for _, body := range []string{
		`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>`,
		`<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>`,
	} {
		var c CreateBucketConfiguration
		if err := DecodeXML(strings.NewReader(body), 1<<10, &c); err != nil || c.LocationConstraint != "eu-west-1" {
			t.Errorf("%s: %+v, %v", body, c, err)
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestDecodeXMLErrors(t *testing.T) {
	good := `<Delete><Object><Key>k</Key></Object></Delete>`
	for _, tc := range []struct {
		name  string
		r     io.Reader
		limit int64
		code  string
	}{
		{"ok", strings.NewReader(good), int64(len(good)), ""},
		{"ok trailing space and comment", strings.NewReader(good + "\n <!-- c -->\n"), 1 << 10, ""},
		{"over limit by one", strings.NewReader(good), int64(len(good)) - 1, CodeMalformedXML},
		{"zero limit", strings.NewReader(good), 0, CodeMalformedXML},
		{"negative limit", strings.NewReader(good), -5, CodeMalformedXML},
		{"empty", strings.NewReader(""), 1 << 10, CodeMalformedXML},
		{"whitespace", strings.NewReader("  \n"), 1 << 10, CodeMalformedXML},
		{"not xml", strings.NewReader("{}"), 1 << 10, CodeMalformedXML},
		{"truncated", strings.NewReader(good[:20]), 1 << 10, CodeMalformedXML},
		{"wrong root", strings.NewReader(`<Foo><Object><Key>k</Key></Object></Foo>`), 1 << 10, CodeMalformedXML},
		{"trailing element", strings.NewReader(good + "<Delete/>"), 1 << 10, CodeMalformedXML},
		{"trailing text", strings.NewReader(good + "junk"), 1 << 10, CodeMalformedXML},
		{"unknown entity", strings.NewReader(`<Delete><Object><Key>&foo;</Key></Object></Delete>`), 1 << 10, CodeMalformedXML},
		{"mismatched tags", strings.NewReader(`<Delete><Object><Key>k</Object></Key></Delete>`), 1 << 10, CodeMalformedXML},
		{"bad bool", strings.NewReader(`<Delete><Quiet>maybe</Quiet></Delete>`), 1 << 10, CodeMalformedXML},
		{"short body", errReader{io.ErrUnexpectedEOF}, 1 << 10, CodeIncompleteBody},
		{"s3 error from reader", errReader{ErrorFor(CodeSignatureDoesNotMatch, "")}, 1 << 10, CodeSignatureDoesNotMatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Delete
			checkCode(t, DecodeXML(tc.r, tc.limit, &d), tc.code, "DecodeXML")
		})
	}
	// A plain read error is passed on (WriteError turns it into a 500).
	boom := errors.New("boom")
	err := DecodeXML(errReader{boom}, 10, &Delete{})
	var e *Error
	if !errors.Is(err, boom) || errors.As(err, &e) {
		t.Errorf("read error = %v", err)
	}
}

// TestDecodeXMLReadsBounded checks DecodeXML stops reading just past the limit.
func TestDecodeXMLReadsBounded(t *testing.T) {
	r := &countingReader{}
	checkCode(t, DecodeXML(r, 100, &Delete{}), CodeMalformedXML, "endless body")
	if r.n > 101 { // the limit plus the one byte that proves the body is over it
		t.Errorf("read %d bytes for a 100-byte limit", r.n)
	}
}

type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += len(p)
	return len(p), nil
}

func TestTimestamp(t *testing.T) {
	b, _ := Timestamp{time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)}.MarshalText()
	if string(b) != "2024-02-03T04:05:06.000Z" {
		t.Errorf("MarshalText = %s", b)
	}
	var ts Timestamp
	for _, s := range []string{"2024-02-03T04:05:06.000Z", "2024-02-03T04:05:06Z", "2024-02-03T05:05:06+01:00"} {
		if err := ts.UnmarshalText([]byte(s)); err != nil || !ts.Equal(time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)) {
			t.Errorf("UnmarshalText(%s) = %v, %v", s, ts, err)
		}
	}
	if err := ts.UnmarshalText([]byte("yesterday")); err == nil {
		t.Error("bad time accepted")
	}
}

func TestURLEncodeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"photos/2006/a.jpg", "photos/2006/a.jpg"},
		{"sample 1.jpg", "sample%201.jpg"},
		{"a+b", "a%2Bb"},
		{"a~b*c", "a%7Eb*c"},
		{"%", "%25"},
		{"é", "%C3%A9"},
		{"\x01<&>", "%01%3C%26%3E"},
	} {
		got := URLEncodeName(tc.in)
		if got != tc.want {
			t.Errorf("URLEncodeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// Clients decode with a query unescape (minio-go, botocore) or a path
		// unescape; both give the key back.
		if back, err := url.QueryUnescape(got); err != nil || back != tc.in {
			t.Errorf("QueryUnescape(%q) = %q, %v", got, back, err)
		}
		if back, err := url.PathUnescape(got); err != nil || back != tc.in {
			t.Errorf("PathUnescape(%q) = %q, %v", got, back, err)
		}
	}
}

func TestURLEncodeKeys(t *testing.T) {
	v2 := &ListBucketResult{
		Name: "b c", Prefix: "p q", StartAfter: "s t", Delimiter: " ", ContinuationToken: ptr("t+k"), EncodingType: "url",
		Contents: []Object{{Key: "k l"}}, CommonPrefixes: []CommonPrefix{{Prefix: "c d"}},
	}
	v2.URLEncodeKeys()
	if v2.Name != "b c" || v2.Prefix != "p%20q" || v2.StartAfter != "s%20t" || v2.Delimiter != "%20" ||
		*v2.ContinuationToken != "t+k" || v2.Contents[0].Key != "k%20l" || v2.CommonPrefixes[0].Prefix != "c%20d" {
		t.Errorf("V2: %+v", v2)
	}
	plain := &ListBucketResult{Prefix: "p q"}
	plain.URLEncodeKeys()
	if plain.Prefix != "p q" {
		t.Error("encoded without encoding-type")
	}
	v1 := &ListBucketResultV1{Prefix: "\n", Marker: "m n", NextMarker: "n o", EncodingType: "url", Contents: []Object{{Key: "k l"}}}
	v1.URLEncodeKeys()
	if v1.Prefix != "\n" || v1.Marker != "m%20n" || v1.NextMarker != "n%20o" || v1.Contents[0].Key != "k%20l" {
		t.Errorf("V1: %+v", v1)
	}
	mu := &ListMultipartUploadsResult{KeyMarker: "a b", NextKeyMarker: "c d", UploadIDMarker: "u+1", EncodingType: "url",
		Uploads: []Upload{{Key: "e f"}}, CommonPrefixes: []CommonPrefix{{Prefix: "g h"}}}
	mu.URLEncodeKeys()
	if mu.KeyMarker != "a%20b" || mu.NextKeyMarker != "c%20d" || mu.UploadIDMarker != "u+1" ||
		mu.Uploads[0].Key != "e%20f" || mu.CommonPrefixes[0].Prefix != "g%20h" {
		t.Errorf("uploads: %+v", mu)
	}
}

func TestParseEncodingType(t *testing.T) {
	for _, v := range []string{"", "url"} {
		if got, err := ParseEncodingType(v); err != nil || got != v {
			t.Errorf("ParseEncodingType(%q) = %q, %v", v, got, err)
		}
	}
	_, err := ParseEncodingType("URL")
	checkCode(t, err, CodeInvalidArgument, "ParseEncodingType(URL)")
}

// TestRequestBodiesMarshal: the request types also marshal (for tests and
// internal clients) without a namespace, as SDKs send Delete.
func TestRequestBodiesMarshal(t *testing.T) {
	b, err := xml.Marshal(&Delete{Quiet: true, Objects: []ObjectIdentifier{{Key: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object></Delete>`
	if string(b) != want {
		t.Errorf("got %s want %s", b, want)
	}
}

// checkCode fails unless err is an *Error with code, or nil when code is "".
func checkCode(t *testing.T, err error, code string, format string, args ...any) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Errorf(format+": unexpected error %v", append(args, err)...)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Errorf(format+": error %v, want %s", append(args, err, code)...)
		return
	}
	if want := ErrorFor(code, "").Status; e.Status != want {
		t.Errorf(format+": status %d, want %d", append(args, e.Status, want)...)
	}
}

func ptr[T any](v T) *T { return &v }
