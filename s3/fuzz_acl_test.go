package s3

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/meta"
)

// isS3Error reports an *Error with a known code (never InternalError): parsers of outside
// input answer client errors only.
func isS3Error(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code != CodeInternalError && e.Status >= 400 && e.Status < 600
}

func FuzzParseACL(f *testing.F) {
	f.Add([]byte(`<AccessControlPolicy><Owner><ID>a</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>b</ID></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>`))
	f.Add([]byte(`<AccessControlPolicy><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>WRITE</Permission></Grant></AccessControlList></AccessControlPolicy>`))
	f.Add([]byte(`<AccessControlPolicy><AccessControlList><Grant><Grantee xsi:type="AmazonCustomerByEmail"><EmailAddress>x@y</EmailAddress></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>`))
	f.Add([]byte(`<AccessControlPolicy/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, grants, err := ParseACL(bytes.NewReader(data))
		if err != nil {
			if !isS3Error(err) {
				t.Fatalf("ParseACL: %v is not an S3 client error", err)
			}
			return
		}
		for _, g := range grants {
			if g.Grantee == "" || !aclPermissions[g.Permission] {
				t.Fatalf("ParseACL accepted %+v", g)
			}
		}
		// What it accepted renders and parses back to the same grants.
		rec := httptest.NewRecorder()
		if err := WriteXML(rec, 200, ACLPolicy(&meta.ACL{Grants: grants}, "owner")); err != nil {
			t.Fatal(err)
		}
		_, again, err := ParseACL(rec.Body)
		if err != nil || len(again) != len(grants) {
			t.Fatalf("round trip of %+v: %+v, %v", grants, again, err)
		}
	})
}

func FuzzRequestACL(f *testing.F) {
	for _, s := range []string{"id=alice", `id="alice", uri="http://acs.amazonaws.com/groups/global/AllUsers"`, "emailAddress=a@b", "nonsense", ""} {
		f.Add(s, "")
		f.Add(s, "public-read")
	}
	f.Fuzz(func(t *testing.T, grant, canned string) {
		h := http.Header{}
		h.Set("X-Amz-Grant-Read", grant)
		if canned != "" {
			h.Set("X-Amz-Acl", canned)
		}
		grants, set, err := RequestACL(h, "o", "b")
		if err != nil {
			if !isS3Error(err) {
				t.Fatalf("RequestACL: %v", err)
			}
			return
		}
		if set != (len(grants) > 0) && canned == "" {
			t.Fatalf("set=%v with %d grants", set, len(grants))
		}
	})
}

func FuzzParsePostPolicy(f *testing.F) {
	exp := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	for _, doc := range []string{
		`{"expiration":"` + exp + `","conditions":[{"bucket":"b"},["starts-with","$key","u/"],["content-length-range",0,1024],["eq","$acl","private"]]}`,
		`{"expiration":"` + exp + `","conditions":[{}]}`,
		`{"expiration":"2000-01-01T00:00:00Z","conditions":[]}`,
		`{"conditions":[]}`,
		`{"expiration":"` + exp + `","conditions":[["content-length-range","5","1"]]}`,
	} {
		f.Add(base64.StdEncoding.EncodeToString([]byte(doc)), "u/k", "private")
	}
	f.Add("not base64", "", "")
	f.Fuzz(func(t *testing.T, b64, key, acl string) {
		p, err := ParsePostPolicy(b64, time.Now())
		if err != nil {
			if !isS3Error(err) {
				t.Fatalf("ParsePostPolicy: %v", err)
			}
			return
		}
		if lo, hi, ok := p.SizeRange(); ok && (lo < 0 || hi < lo) {
			t.Fatalf("content-length-range %d..%d accepted", lo, hi)
		}
		if err := p.Check(map[string]string{"key": key, "acl": acl, "bucket": "b"}); err != nil && !isS3Error(err) {
			t.Fatalf("Check: %v", err)
		}
	})
}

func FuzzParseCORS(f *testing.F) {
	f.Add([]byte(`<CORSConfiguration><CORSRule><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedHeader>*</AllowedHeader><MaxAgeSeconds>60</MaxAgeSeconds></CORSRule></CORSConfiguration>`), "https://a.example.com", "GET")
	f.Add([]byte(`<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>`), "x", "PATCH")
	f.Add([]byte(`<CORSConfiguration/>`), "", "")
	f.Fuzz(func(t *testing.T, data []byte, origin, method string) {
		c, err := ParseCORS(bytes.NewReader(data))
		if err != nil {
			if !isS3Error(err) {
				t.Fatalf("ParseCORS: %v", err)
			}
			return
		}
		if r := c.Match(origin, method, strings.Split(origin, ",")); r != nil && !contains(r.AllowedMethods, method) {
			t.Fatalf("rule %+v matched method %q", r, method)
		}
	})
}
