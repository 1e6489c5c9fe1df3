package sigv4

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// PostSignatureV4 is the signature of a browser upload's POST policy (the base64 document as
// sent) under a credential scope "<access key>/<date>/<region>/s3/aws4_request": the hex
// HMAC-SHA256 of the policy with the scope's signing key. ok is false for a scope that is
// not of that form.
func PostSignatureV4(secret, credential, policy string) (accessKey, sig string, ok bool) {
	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[0] == "" || len(parts[1]) != 8 || parts[3] != "s3" || parts[4] != "aws4_request" {
		return "", "", false
	}
	if secret == "" { // the caller only wants the access key
		return parts[0], "", true
	}
	return parts[0], hex.EncodeToString(hmacSHA256(signingKey(secret, parts[1], parts[2]), policy)), true
}

// PostSignatureV2 is the legacy signature of a POST policy: the base64 HMAC-SHA1 of the
// policy with the secret key. Browser upload forms made by older SDKs (and ceph/s3-tests)
// sign this way; hanode accepts it for POST policies only, never for other requests.
func PostSignatureV2(secret, policy string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(policy))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
