package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// refSign is an independent, spelled-out SigV4 signature of a string to sign.
func refSign(secret, date, region, sts string) string {
	mac := func(k []byte, s string) []byte {
		h := hmac.New(sha256.New, k)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	k := mac(mac(mac(mac([]byte("AWS4"+secret), date), region), "s3"), "aws4_request")
	return hex.EncodeToString(mac(k, sts))
}

// Example credentials and time of the AWS S3 SigV4 documentation.
const (
	awsAK = "AKIAIOSFODNN7EXAMPLE"
	awsSK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

func awsVerifier() *Verifier {
	return &Verifier{
		Lookup: func(_ context.Context, ak string) (string, error) {
			if ak == awsAK {
				return awsSK, nil
			}
			return "", ErrUnknownAccessKey
		},
		Region: "us-east-1",
		Now:    func() time.Time { return time.Date(2013, 5, 24, 0, 5, 0, 0, time.UTC) },
	}
}

func rawRequest(t *testing.T, s string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The worked examples from "Signature Calculations for the Authorization
// Header" / "Query String Authentication" / "Chunked Upload" in the S3 API
// reference.
func TestAWSDocumentedExamples(t *testing.T) {
	t.Run("GET object", func(t *testing.T) {
		r := rawRequest(t, "GET /test.txt HTTP/1.1\r\n"+
			"Host: examplebucket.s3.amazonaws.com\r\n"+
			"Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r\n"+
			"Range: bytes=0-9\r\n"+
			"x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n"+
			"x-amz-date: 20130524T000000Z\r\n\r\n")
		if _, err := awsVerifier().Verify(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("presigned GET", func(t *testing.T) {
		r := rawRequest(t, "GET /test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404 HTTP/1.1\r\n"+
			"Host: examplebucket.s3.amazonaws.com\r\n\r\n")
		if _, err := awsVerifier().Verify(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("chunked PUT", func(t *testing.T) {
		var body bytes.Buffer
		body.WriteString("10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n")
		body.Write(bytes.Repeat([]byte("a"), 65536))
		body.WriteString("\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n")
		body.Write(bytes.Repeat([]byte("a"), 1024))
		body.WriteString("\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n")
		if body.Len() != 66824 {
			t.Fatalf("example body length %d", body.Len())
		}
		r := rawRequest(t, "PUT /examplebucket/chunkObject.txt HTTP/1.1\r\n"+
			"Host: s3.amazonaws.com\r\n"+
			"x-amz-date: 20130524T000000Z\r\n"+
			"x-amz-storage-class: REDUCED_REDUNDANCY\r\n"+
			"Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\r\n"+
			"x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n"+
			"Content-Encoding: aws-chunked\r\n"+
			"x-amz-decoded-content-length: 66560\r\n"+
			"Content-Length: 66824\r\n\r\n"+body.String())
		_, got, err := verifyAndRead(awsVerifier(), r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, bytes.Repeat([]byte("a"), 66560)) {
			t.Fatalf("decoded %d bytes", len(got))
		}
	})
}

// TestCanonicalEscaping pins the canonical form of an escaped path (with an
// encoded slash, which must not be decoded), '+' in the path, and query
// escaping ('+' as space, valueless keys), against a hand-written canonical
// request.
func TestCanonicalEscaping(t *testing.T) {
	const date = "20130524"
	const amzDate = date + "T000000Z"
	path := "/bucket/a%2Fb%20c+d/%E6%97%A5%2a"
	canon := "GET\n" +
		"/bucket/a%2Fb%20c+d/%E6%97%A5%2a\n" +
		"empty=&list-type=2&prefix=a%2Fb&sp=a%20b%2Bc&tilde=~%2A\n" +
		"host:example.com\n" +
		"x-amz-content-sha256:UNSIGNED-PAYLOAD\n" +
		"x-amz-date:" + amzDate + "\n" +
		"x-amz-meta-m:a b c\n" +
		"\n" +
		"host;x-amz-content-sha256;x-amz-date;x-amz-meta-m\n" +
		"UNSIGNED-PAYLOAD"
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + date + "/us-east-1/s3/aws4_request\n" + hexSHA256([]byte(canon))
	sig := refSign(awsSK, date, "us-east-1", sts)
	r := rawRequest(t, "GET "+path+"?prefix=a%2Fb&list-type=2&empty&sp=a+b%2bc&tilde=~* HTTP/1.1\r\n"+
		"Host: example.com\r\n"+
		"X-Amz-Date: "+amzDate+"\r\n"+
		"X-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n"+
		"X-Amz-Meta-M:   a   b\t c  \r\n"+
		"Authorization: AWS4-HMAC-SHA256 Credential="+awsAK+"/"+date+"/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-m, Signature="+sig+"\r\n\r\n")
	a, err := awsVerifier().Verify(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Body(r)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, b); n != 0 || err != nil {
		t.Fatal(n, err)
	}
}
