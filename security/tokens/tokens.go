// Package tokens implements hanode join tokens in the k3s "secure" form,
// K10<sha256 of the CA bundle>::<id>.<secret>. The CA hash lets a joining
// machine pin the cluster CA before it trusts anything the server says; the
// id names a Record in etcd and the secret proves possession of the token.
package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

const (
	prefix    = "K10"
	sep       = "::"
	idLen     = 6
	secretLen = 16
	hashLen   = 2 * sha256.Size
	alphabet  = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// ErrMalformed is wrapped by every Parse error.
var ErrMalformed = errors.New("malformed join token")

// Token is a parsed join token. Its String form contains the secret.
type Token struct {
	CAHash string // lower-case hex sha256 of the CA bundle PEM
	ID     string // public half: names the Record
	Secret string // private half
}

// CAHash returns the lower-case hex sha256 of caPEM exactly as served (no
// re-encoding), so a joiner can hash the bytes it received.
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// HashSecret returns the hex sha256 of secret, the form stored in a Record.
// An unsalted fast hash is enough because secrets are random (~82 bits), not
// chosen by people.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// randomString returns n characters of alphabet from crypto/rand, without
// modulo bias (bytes >= 252 are rejected).
func randomString(n int) (string, error) {
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// Generate returns a fresh token pinned to caPEM.
func Generate(caPEM []byte) (Token, error) {
	if len(caPEM) == 0 {
		return Token{}, errors.New("tokens: generate: empty CA bundle")
	}
	id, err := randomString(idLen)
	if err != nil {
		return Token{}, fmt.Errorf("tokens: generate id: %w", err)
	}
	secret, err := randomString(secretLen)
	if err != nil {
		return Token{}, fmt.Errorf("tokens: generate secret: %w", err)
	}
	return Token{CAHash: CAHash(caPEM), ID: id, Secret: secret}, nil
}

// String returns the token in its wire form, secret included.
func (t Token) String() string {
	return prefix + t.CAHash + sep + t.ID + "." + t.Secret
}

func inAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(alphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidID reports whether id has the form of a token id (6 of [a-z0-9]).
func ValidID(id string) bool { return len(id) == idLen && inAlphabet(id) }

// Parse decodes a token, ignoring surrounding whitespace (tokens are pasted).
// It is strict: exactly one form is accepted, so anything it accepts
// round-trips through String. Errors wrap ErrMalformed and describe the
// problem without echoing the token, which would leak the secret to logs.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	bad := func(format string, args ...any) (Token, error) {
		return Token{}, fmt.Errorf("tokens: %w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	if s == "" {
		return bad("empty")
	}
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return bad("does not start with %q (want %s<ca-hash>%s<id>.<secret>)", prefix, prefix, sep)
	}
	hash, cred, ok := strings.Cut(rest, sep)
	if !ok {
		return bad("missing %q between CA hash and credentials", sep)
	}
	if len(hash) != hashLen {
		return bad("CA hash is %d characters, want %d", len(hash), hashLen)
	}
	if !isLowerHex(hash) {
		return bad("CA hash is not lower-case hex")
	}
	if strings.Contains(cred, sep) {
		return bad("more than one %q", sep)
	}
	id, secret, ok := strings.Cut(cred, ".")
	if !ok {
		return bad("credentials lack the '.' between id and secret")
	}
	if !ValidID(id) {
		return bad("id must be %d characters of [a-z0-9] (got %d characters)", idLen, len(id))
	}
	if strings.Contains(secret, ".") {
		return bad("credentials have more than one '.'")
	}
	if len(secret) != secretLen || !inAlphabet(secret) {
		return bad("secret must be %d characters of [a-z0-9] (got %d characters)", secretLen, len(secret))
	}
	return Token{CAHash: hash, ID: id, Secret: secret}, nil
}

// MatchesCA reports whether caPEM is the CA bundle t pins. The compare is
// constant-time out of habit: the hash is not secret, but it costs nothing.
func (t Token) MatchesCA(caPEM []byte) bool {
	return subtle.ConstantTimeCompare([]byte(t.CAHash), []byte(CAHash(caPEM))) == 1
}
