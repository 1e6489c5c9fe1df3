package s3

import (
	"encoding/xml"
	"io"
	"net/http"
	"strings"

	"github.com/hanode/hanode/meta"
)

// S3 ACLs: the AccessControlPolicy document, canned ACLs (x-amz-acl) and grant headers
// (x-amz-grant-*), read into meta.ACL. Users are named by their access keys (an ACL's
// CanonicalUser ID is an access key); the groups are AllUsers and AuthenticatedUsers.

// Error codes of ACLs.
const (
	CodeMalformedACLError               = "MalformedACLError"
	CodeUnresolvableGrantByEmailAddress = "UnresolvableGrantByEmailAddress"
	CodeAccessControlListNotSupported   = "AccessControlListNotSupported"
)

// The group URIs of S3 ACLs.
const (
	URIAllUsers           = "http://acs.amazonaws.com/groups/global/AllUsers"
	URIAuthenticatedUsers = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
	uriLogDelivery        = "http://acs.amazonaws.com/groups/s3/LogDelivery"
	xsiNamespace          = "http://www.w3.org/2001/XMLSchema-instance"
)

var groupURIs = map[string]string{URIAllUsers: meta.GroupAllUsers, URIAuthenticatedUsers: meta.GroupAuthenticatedUsers}

var aclPermissions = map[string]bool{"FULL_CONTROL": true, "READ": true, "WRITE": true, "READ_ACP": true, "WRITE_ACP": true}

// AccessControlPolicy is the body of GetBucketAcl/GetObjectAcl and PutBucketAcl/PutObjectAcl.
type AccessControlPolicy struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	Xmlns   string   `xml:"xmlns,attr,omitempty"`
	Owner   *Owner   `xml:"Owner"`
	Grants  []Grant  `xml:"AccessControlList>Grant"`
}

// Grant is one grant of an AccessControlPolicy.
type Grant struct {
	Grantee    Grantee `xml:"Grantee"`
	Permission string  `xml:"Permission"`
}

// Grantee is who a grant is for. Type is the xsi:type attribute: CanonicalUser, Group or
// AmazonCustomerByEmail.
type Grantee struct {
	Type         string
	ID           string
	DisplayName  string
	URI          string
	EmailAddress string
}

type granteeXML struct {
	XMLName      xml.Name `xml:"Grantee"`
	XMLNSXsi     string   `xml:"xmlns:xsi,attr"`
	Type         string   `xml:"xsi:type,attr"`
	ID           string   `xml:"ID,omitempty"`
	DisplayName  string   `xml:"DisplayName,omitempty"`
	URI          string   `xml:"URI,omitempty"`
	EmailAddress string   `xml:"EmailAddress,omitempty"`
}

// MarshalXML writes the grantee with its xsi:type, as S3 does.
func (g Grantee) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.Encode(granteeXML{XMLNSXsi: xsiNamespace, Type: g.Type, ID: g.ID, DisplayName: g.DisplayName, URI: g.URI, EmailAddress: g.EmailAddress})
}

// UnmarshalXML reads a grantee; its type is the attribute named type in any namespace
// (clients write xsi:type).
func (g *Grantee) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var v struct {
		ID           string `xml:"ID"`
		DisplayName  string `xml:"DisplayName"`
		URI          string `xml:"URI"`
		EmailAddress string `xml:"EmailAddress"`
	}
	if err := d.DecodeElement(&v, &start); err != nil {
		return err
	}
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			g.Type = a.Value
		}
	}
	g.ID, g.DisplayName, g.URI, g.EmailAddress = v.ID, v.DisplayName, v.URI, v.EmailAddress
	return nil
}

// ACLPolicy renders acl (nil: the default, owner alone) of a resource owned by owner as
// the AccessControlPolicy S3 returns.
func ACLPolicy(acl *meta.ACL, owner string) AccessControlPolicy {
	out := AccessControlPolicy{Xmlns: Namespace, Owner: &Owner{ID: owner, DisplayName: owner}, Grants: []Grant{}}
	if acl == nil {
		acl = &meta.ACL{Grants: []meta.Grant{{Grantee: owner, Permission: "FULL_CONTROL"}}}
	}
	// Groups first, then users, each in the order set (as RGW answers).
	grants := make([]meta.Grant, 0, len(acl.Grants))
	for _, g := range acl.Grants {
		if g.Grantee == meta.GroupAllUsers || g.Grantee == meta.GroupAuthenticatedUsers {
			grants = append(grants, g)
		}
	}
	for _, g := range acl.Grants {
		if g.Grantee != meta.GroupAllUsers && g.Grantee != meta.GroupAuthenticatedUsers {
			grants = append(grants, g)
		}
	}
	for _, g := range grants {
		var ge Grantee
		switch g.Grantee {
		case meta.GroupAllUsers:
			ge = Grantee{Type: "Group", URI: URIAllUsers}
		case meta.GroupAuthenticatedUsers:
			ge = Grantee{Type: "Group", URI: URIAuthenticatedUsers}
		default:
			ge = Grantee{Type: "CanonicalUser", ID: g.Grantee, DisplayName: g.Grantee}
		}
		out.Grants = append(out.Grants, Grant{Grantee: ge, Permission: g.Permission})
	}
	return out
}

// maxGrants bounds an ACL (AWS: 100 grants).
const maxGrants = 100

// ParseACL reads a PutBucketAcl/PutObjectAcl body into grants. It returns the owner the
// document names ("" when it names none) for the caller to compare with the resource's.
// Grantees must be users (CanonicalUser, ID = access key) or the AllUsers and
// AuthenticatedUsers groups: an e-mail grantee is UnresolvableGrantByEmailAddress (hanode
// users have no e-mail address), another group NotImplemented. The caller checks that the
// users exist.
func ParseACL(body io.Reader) (owner string, grants []meta.Grant, err error) {
	var p AccessControlPolicy
	if err := DecodeXML(body, 64<<10, &p); err != nil {
		if e, ok := err.(*Error); ok && e.Code == CodeMalformedXML {
			return "", nil, ErrorFor(CodeMalformedACLError, "")
		}
		return "", nil, err
	}
	if len(p.Grants) > maxGrants {
		return "", nil, ErrorFor(CodeMalformedACLError, "an ACL holds at most 100 grants")
	}
	if p.Owner != nil {
		owner = p.Owner.ID
	}
	for _, g := range p.Grants {
		mg, err := parseGrantee(g.Grantee)
		if err != nil {
			return "", nil, err
		}
		if !aclPermissions[g.Permission] {
			return "", nil, ErrorFor(CodeMalformedACLError, "unknown permission "+g.Permission)
		}
		mg.Permission = g.Permission
		grants = append(grants, mg)
	}
	return owner, grants, nil
}

func parseGrantee(g Grantee) (meta.Grant, error) {
	switch g.Type {
	case "CanonicalUser":
		if g.ID == "" {
			return meta.Grant{}, ErrorFor(CodeInvalidArgument, "a CanonicalUser grantee needs an ID")
		}
		return meta.Grant{Grantee: g.ID}, nil
	case "Group":
		if grp, ok := groupURIs[g.URI]; ok {
			return meta.Grant{Grantee: grp}, nil
		}
		if g.URI == uriLogDelivery {
			return meta.Grant{}, ErrorFor(CodeNotImplemented, "the LogDelivery group is not implemented by hanode (no server access logging)")
		}
		return meta.Grant{}, ErrorFor(CodeInvalidArgument, "unknown group "+g.URI)
	case "AmazonCustomerByEmail":
		return meta.Grant{}, ErrorFor(CodeUnresolvableGrantByEmailAddress, "The e-mail address you provided does not match any account on record (hanode users have no e-mail address).")
	}
	return meta.Grant{}, ErrorFor(CodeMalformedACLError, "unknown grantee type "+g.Type)
}

// CannedACL returns the grants of a canned ACL for a resource owned by owner in a bucket
// owned by bucketOwner. ok is false for a name hanode does not serve: log-delivery-write and
// aws-exec-read (NotImplemented) or an unknown one (InvalidArgument); err says which.
func CannedACL(name, owner, bucketOwner string) ([]meta.Grant, error) {
	full := meta.Grant{Grantee: owner, Permission: "FULL_CONTROL"}
	switch name {
	case "private":
		return []meta.Grant{full}, nil
	case "public-read":
		return []meta.Grant{{Grantee: meta.GroupAllUsers, Permission: "READ"}, full}, nil
	case "public-read-write":
		return []meta.Grant{{Grantee: meta.GroupAllUsers, Permission: "READ"}, {Grantee: meta.GroupAllUsers, Permission: "WRITE"}, full}, nil
	case "authenticated-read":
		return []meta.Grant{{Grantee: meta.GroupAuthenticatedUsers, Permission: "READ"}, full}, nil
	case "bucket-owner-read":
		if bucketOwner == owner || bucketOwner == "" {
			return []meta.Grant{full}, nil
		}
		return []meta.Grant{full, {Grantee: bucketOwner, Permission: "READ"}}, nil
	case "bucket-owner-full-control":
		if bucketOwner == owner || bucketOwner == "" {
			return []meta.Grant{full}, nil
		}
		return []meta.Grant{full, {Grantee: bucketOwner, Permission: "FULL_CONTROL"}}, nil
	case "log-delivery-write", "aws-exec-read":
		return nil, ErrorFor(CodeNotImplemented, "the canned ACL "+name+" is not implemented by hanode")
	}
	return nil, ErrorFor(CodeInvalidArgument, "unknown canned ACL "+name)
}

var grantHeaders = []struct{ header, perm string }{
	{"X-Amz-Grant-Read", "READ"}, {"X-Amz-Grant-Write", "WRITE"}, {"X-Amz-Grant-Read-Acp", "READ_ACP"},
	{"X-Amz-Grant-Write-Acp", "WRITE_ACP"}, {"X-Amz-Grant-Full-Control", "FULL_CONTROL"},
}

// RequestACL reads the ACL a request asks for: x-amz-acl or x-amz-grant-* headers (not
// both: InvalidRequest). set is false when it asks for none. The grants of a canned ACL are
// for owner in a bucket owned by bucketOwner.
func RequestACL(h http.Header, owner, bucketOwner string) (grants []meta.Grant, set bool, err error) {
	canned := h.Get("X-Amz-Acl")
	for _, gh := range grantHeaders {
		for _, v := range h.Values(gh.header) {
			for _, item := range strings.Split(v, ",") {
				item = strings.TrimSpace(item)
				if item == "" {
					continue
				}
				k, val, ok := strings.Cut(item, "=")
				if !ok {
					return nil, false, ErrorFor(CodeInvalidArgument, gh.header+": want id=, uri= or emailAddress=")
				}
				val = strings.Trim(strings.TrimSpace(val), `"`)
				var g Grantee
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "id":
					g = Grantee{Type: "CanonicalUser", ID: val}
				case "uri":
					g = Grantee{Type: "Group", URI: val}
				case "emailaddress":
					g = Grantee{Type: "AmazonCustomerByEmail", EmailAddress: val}
				default:
					return nil, false, ErrorFor(CodeInvalidArgument, gh.header+": want id=, uri= or emailAddress=")
				}
				mg, err := parseGrantee(g)
				if err != nil {
					return nil, false, err
				}
				mg.Permission = gh.perm
				grants = append(grants, mg)
			}
		}
	}
	switch {
	case canned != "" && grants != nil:
		return nil, false, ErrorFor(CodeInvalidRequest, "Specifying both Canned ACLs and Header Grants is not allowed")
	case canned != "":
		grants, err = CannedACL(canned, owner, bucketOwner)
		return grants, err == nil, err
	}
	return grants, grants != nil, nil
}
