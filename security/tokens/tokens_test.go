package tokens

import (
	"errors"
	"strings"
	"testing"
)

var testCA = []byte("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n")

func TestGenerateStringParse(t *testing.T) {
	tok, err := Generate(testCA)
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAHash != CAHash(testCA) || len(tok.CAHash) != 64 {
		t.Fatalf("CAHash = %q", tok.CAHash)
	}
	if !ValidID(tok.ID) || len(tok.Secret) != secretLen || !inAlphabet(tok.Secret) {
		t.Fatalf("bad id/secret shape: %q / %d chars", tok.ID, len(tok.Secret))
	}
	s := tok.String()
	if want := "K10" + tok.CAHash + "::" + tok.ID + "." + tok.Secret; s != want {
		t.Fatalf("String() = %q, want %q", s, want)
	}
	for _, in := range []string{s, "  " + s + "\n", "\t" + s + "\r\n"} {
		got, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got != tok {
			t.Fatalf("Parse = %+v, want %+v", got, tok)
		}
	}
	other, err := Generate(testCA)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == tok.ID && other.Secret == tok.Secret {
		t.Fatal("two Generate calls returned the same credentials")
	}
	if _, err := Generate(nil); err == nil {
		t.Fatal("Generate(nil) succeeded")
	}
}

func TestParseMalformed(t *testing.T) {
	hash := CAHash(testCA)
	const id, secret = "abc123", "0123456789abcdef"
	for name, in := range map[string]string{
		"empty":               "",
		"blank":               " \n",
		"no prefix":           hash + "::" + id + "." + secret,
		"wrong prefix":        "K11" + hash + "::" + id + "." + secret,
		"lower prefix":        "k10" + hash + "::" + id + "." + secret,
		"short hash":          "K10" + hash[:63] + "::" + id + "." + secret,
		"long hash":           "K10" + hash + "0::" + id + "." + secret,
		"non-hex hash":        "K10" + strings.Repeat("g", 64) + "::" + id + "." + secret,
		"upper-case hash":     "K10" + strings.ToUpper(hash) + "::" + id + "." + secret,
		"missing ::":          "K10" + hash + id + "." + secret,
		"single colon":        "K10" + hash + ":" + id + "." + secret,
		"missing dot":         "K10" + hash + "::" + id + secret,
		"short id":            "K10" + hash + "::abc12." + secret,
		"long id":             "K10" + hash + "::abc1234." + secret,
		"upper-case id":       "K10" + hash + "::ABC123." + secret,
		"id charset":          "K10" + hash + "::abc-12." + secret,
		"short secret":        "K10" + hash + "::" + id + "." + secret[:15],
		"long secret":         "K10" + hash + "::" + id + "." + secret + "0",
		"secret charset":      "K10" + hash + "::" + id + ".0123456789abcde_",
		"upper-case secret":   "K10" + hash + "::" + id + ".0123456789ABCDEF",
		"extra dot part":      "K10" + hash + "::" + id + "." + secret + ".x",
		"extra :: part":       "K10" + hash + "::" + id + "." + secret + "::x",
		"k3s user form":       "K10" + hash + "::server:" + secret,
		"inner space":         "K10" + hash + "::" + id + ". " + secret[1:],
		"empty credentials":   "K10" + hash + "::",
		"bare k3s-style pair": id + "." + secret,
	} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("%s: Parse(%q) succeeded", name, in)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
		if strings.Contains(err.Error(), "0123456789") {
			t.Errorf("%s: error echoes the secret: %v", name, err)
		}
	}
}

func TestMatchesCA(t *testing.T) {
	tok, err := Generate(testCA)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.MatchesCA(testCA) {
		t.Fatal("token does not match its own CA")
	}
	// Bytes exactly as served: any change, even whitespace, is another CA.
	for _, other := range [][]byte{nil, testCA[:len(testCA)-1], append([]byte(" "), testCA...)} {
		if tok.MatchesCA(other) {
			t.Fatalf("token matches %q", other)
		}
	}
}

func FuzzParse(f *testing.F) {
	hash := CAHash(testCA)
	f.Add("K10" + hash + "::abc123.0123456789abcdef")
	f.Add(" K10" + hash + "::abc123.0123456789abcdef\n")
	f.Add("K10" + hash + "::abc123.0123456789abcdef.x")
	f.Add("K10" + hash + "::::abc123.0123456789abcdef")
	f.Add("K10::")
	f.Add("K10")
	f.Add("")
	f.Add("K10" + hash + "::server:0123456789abcdef")
	f.Add("K10" + hash + "::\u00e9bc123.0123456789abcdef")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		str := tok.String()
		if str != strings.TrimSpace(s) {
			t.Fatalf("String() = %q, input %q", str, s)
		}
		again, err := Parse(str)
		if err != nil || again != tok {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}
