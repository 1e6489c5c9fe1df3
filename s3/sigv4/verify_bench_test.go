package sigv4

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// benchRequest signs a PUT of data in mode m and returns it as a server sees it, with its
// encoded body (what the client sent after the headers), so that each iteration re-reads the
// same bytes.
func benchRequest(b *testing.B, m payloadMode, data []byte) (*http.Request, []byte) {
	b.Helper()
	req := signPut(b, m, testAK, testSK, objectURL(b, "dir/object.bin", ""), data)
	sr := toServer(b, req)
	body, err := io.ReadAll(sr.Body)
	if err != nil {
		b.Fatal(err)
	}
	return sr, body
}

// BenchmarkVerify measures authenticating a header-signed request: parsing Authorization, the
// canonical request, the signing key and the HMAC chain. It reads no body.
func BenchmarkVerify(b *testing.B) {
	r, _ := benchRequest(b, modeSHA256, []byte("hello"))
	v := newVerifier()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBody measures Verify plus reading a 1 MiB body through Auth.Body in the payload
// modes clients use: a signed SHA-256 of the whole body (TLS clients), aws-chunked with a
// signature per 64 KiB chunk (minio-go over plain HTTP), and aws-chunked unsigned with a CRC32
// trailer (newer SDKs).
func BenchmarkVerifyBody(b *testing.B) {
	data := randBytes(1 << 20)
	for _, m := range []payloadMode{modeSHA256, modeStreaming, modeUnsignedTrailer} {
		b.Run(m.String(), func(b *testing.B) {
			r, body := benchRequest(b, m, data)
			v := newVerifier()
			rd := bytes.NewReader(body)
			r.Body = io.NopCloser(rd)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(body)
				a, err := v.Verify(r)
				if err != nil {
					b.Fatal(err)
				}
				rc, err := a.Body(r)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				if err != nil || n != int64(len(data)) {
					b.Fatalf("decoded %d bytes: %v", n, err)
				}
			}
		})
	}
}
