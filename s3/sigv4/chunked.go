package sigv4

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"strings"
)

// Limits of the aws-chunked decoder. Lines are read through a bufio.Reader
// of maxLineLen bytes, so no line can make it buffer more.
const (
	maxLineLen      = 4096     // chunk-size line or trailer line
	maxTrailerLines = 64       // lines after the final chunk, blank ones included
	maxTrailers     = 16       // names in x-amz-trailer
	maxSignedChunk  = 16 << 20 // signed chunks are held until verified
	maxChunkHex     = 15       // hex digits in a chunk size: < 2^60
	minChunkBuf     = 64 << 10
)

type trailer struct {
	name  string
	h     hash.Hash // nil if not a checksum we verify
	value string
	seen  bool
}

// chunkedReader decodes an aws-chunked body:
//
//	hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n
//	[trailer-name:value\r\n ...] [x-amz-trailer-signature:sig\r\n] \r\n
//
// Signed chunks are buffered (up to maxSignedChunk) and released only once
// their signature is verified; unsigned chunks stream through. Line endings
// may be "\n" as well as "\r\n" because minio-go ends trailer lines with a
// bare "\n"; blank lines in the trailer section are ignored for the same
// reason.
type chunkedReader struct {
	src  *bufio.Reader
	body io.Closer

	signed        bool // chunks carry chunk-signature
	signedTrailer bool // trailer section carries x-amz-trailer-signature
	trailers      bool // trailer section may carry declared trailers
	declared      []trailer

	key     []byte
	prevSig string
	scope   string
	amzDate string

	decoded int64 // x-amz-decoded-content-length, -1 if absent
	n       int64 // decoded bytes delivered or buffered so far

	left     int64 // unsigned chunk bytes still to stream
	needCRLF bool  // an unsigned chunk's data ended; its CRLF is next
	pending  []byte
	buf      []byte
	err      error // sticky; io.EOF once everything verified
}

func (c *chunkedReader) Close() error { return c.body.Close() }

func (c *chunkedReader) find(name string) int {
	for i := range c.declared {
		if c.declared[i].name == name {
			return i
		}
	}
	return -1
}

func (c *chunkedReader) fail(err error) error {
	c.err = err
	c.pending = nil
	return err
}

func incomplete(msg string) error { return newError(CodeIncompleteBody, msg) }

func malformed(msg string) error {
	return newError(CodeIncompleteBody, "malformed aws-chunked body: "+msg)
}

// account hashes decoded bytes into the checksum trailers.
func (c *chunkedReader) account(p []byte) {
	for i := range c.declared {
		if h := c.declared[i].h; h != nil {
			h.Write(p)
		}
	}
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(c.pending) > 0 {
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		if c.left > 0 {
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.src.Read(p)
			c.left -= int64(n)
			c.account(p[:n])
			if c.left == 0 {
				c.needCRLF = true
			}
			if err != nil && (err != io.EOF || c.left > 0) {
				return n, c.fail(c.readErr(err))
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if c.needCRLF {
			if err := c.readCRLF(); err != nil {
				return 0, c.fail(err)
			}
			c.needCRLF = false
		}
		if err := c.nextChunk(); err != nil {
			return 0, c.fail(err)
		}
	}
}

// nextChunk reads a chunk header and, for signed chunks, the verified data.
// At the final chunk it processes the trailer section and returns io.EOF.
func (c *chunkedReader) nextChunk() error {
	line, err := c.readLine()
	if err == io.EOF {
		return incomplete("aws-chunked body ended before the final chunk")
	}
	if err != nil {
		return err
	}
	size, sig, err := c.parseChunkHeader(line)
	if err != nil {
		return err
	}
	if c.decoded >= 0 && size > c.decoded-c.n {
		return incomplete("aws-chunked body is longer than x-amz-decoded-content-length")
	}
	if !c.signed {
		if size == 0 {
			return c.finish()
		}
		c.n += size
		c.left = size
		return nil
	}
	if size > maxSignedChunk {
		return malformed("chunk larger than 16 MiB")
	}
	data, err := c.readData(int(size))
	if err != nil {
		return err
	}
	// The final (empty) chunk has no data and no CRLF of its own: the
	// trailer section follows directly, and finish parses it.
	if size > 0 {
		if err := c.readCRLF(); err != nil {
			return err
		}
	}
	sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.amzDate + "\n" + c.scope + "\n" + c.prevSig + "\n" + emptySHA256 + "\n" + hexSHA256(data)
	want := hmacSHA256(c.key, sts)
	if !hmac.Equal(want, sig) {
		return newError(CodeSignatureDoesNotMatch, "The chunk signature we calculated does not match the signature you provided.")
	}
	c.prevSig = hex.EncodeToString(want)
	if size == 0 {
		return c.finish()
	}
	c.n += size
	c.account(data)
	c.pending = data
	return nil
}

// parseChunkHeader parses "hex-size[;ext...]". The chunk-signature extension
// is required for signed streams and ignored otherwise.
func (c *chunkedReader) parseChunkHeader(line string) (int64, []byte, error) {
	sizeStr, exts, _ := strings.Cut(line, ";")
	if sizeStr == "" || len(sizeStr) > maxChunkHex {
		return 0, nil, malformed("bad chunk size")
	}
	var size int64
	for i := 0; i < len(sizeStr); i++ {
		d := unhex(sizeStr[i])
		if d < 0 {
			return 0, nil, malformed("bad chunk size")
		}
		size = size<<4 | int64(d)
	}
	if !c.signed {
		return size, nil, nil
	}
	var sig []byte
	for exts != "" {
		var ext string
		ext, exts, _ = strings.Cut(exts, ";")
		k, v, _ := strings.Cut(ext, "=")
		if k != "chunk-signature" {
			continue
		}
		if sig != nil {
			return 0, nil, malformed("duplicate chunk-signature")
		}
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != sha256.Size {
			return 0, nil, malformed("bad chunk-signature")
		}
		sig = b
	}
	if sig == nil {
		return 0, nil, newError(CodeSignatureDoesNotMatch, "chunk-signature missing from a signed aws-chunked body")
	}
	return size, sig, nil
}

func unhex(b byte) int {
	switch {
	case '0' <= b && b <= '9':
		return int(b - '0')
	case 'a' <= b && b <= 'f':
		return int(b - 'a' + 10)
	case 'A' <= b && b <= 'F':
		return int(b - 'A' + 10)
	}
	return -1
}

// readData reads exactly size bytes into c.buf. The buffer grows with the
// data actually received, not with the size the client claimed.
func (c *chunkedReader) readData(size int) ([]byte, error) {
	c.buf = c.buf[:0]
	for len(c.buf) < size {
		if len(c.buf) == cap(c.buf) {
			nc := max(2*cap(c.buf), minChunkBuf)
			nb := make([]byte, len(c.buf), min(nc, size))
			copy(nb, c.buf)
			c.buf = nb
		}
		n, err := c.src.Read(c.buf[len(c.buf):min(cap(c.buf), size)])
		c.buf = c.buf[:len(c.buf)+n]
		if err != nil && len(c.buf) < size {
			return nil, c.readErr(err)
		}
	}
	return c.buf, nil
}

func (c *chunkedReader) readErr(err error) error {
	if err == io.EOF {
		return incomplete("aws-chunked body ended inside a chunk")
	}
	return bodyError(err)
}

func (c *chunkedReader) readCRLF() error {
	b1, err := c.src.ReadByte()
	if err != nil {
		return c.readErr(err)
	}
	b2, err := c.src.ReadByte()
	if err != nil {
		return c.readErr(err)
	}
	if b1 != '\r' || b2 != '\n' {
		return malformed("chunk data not followed by CRLF")
	}
	return nil
}

// readLine returns one line without its "\n" or "\r\n". It returns io.EOF
// only at a clean end of input.
func (c *chunkedReader) readLine() (string, error) {
	line, err := c.src.ReadSlice('\n')
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull):
		return "", malformed("line too long")
	case err == io.EOF:
		if len(line) == 0 {
			return "", io.EOF
		}
		return "", incomplete("aws-chunked body ended inside a line")
	default:
		return "", bodyError(err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

// finish consumes everything after the final chunk up to EOF: the trailers,
// the trailer signature, blank lines. It then checks signatures, checksums
// and length, and returns io.EOF only if all of them hold.
func (c *chunkedReader) finish() error {
	var signedPart []byte // the trailer lines, as hashed for the trailer signature
	sigSeen := false
	for i := 0; ; i++ {
		if i == maxTrailerLines {
			return malformed("too many trailer lines")
		}
		line, err := c.readLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if line == "" {
			continue
		}
		if sigSeen {
			return malformed("data after x-amz-trailer-signature")
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return malformed("bad trailer line")
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if name == "x-amz-trailer-signature" {
			if !c.signedTrailer {
				return malformed("unexpected x-amz-trailer-signature")
			}
			sig, err := hex.DecodeString(value)
			if err != nil || len(sig) != sha256.Size {
				return malformed("bad x-amz-trailer-signature")
			}
			sts := "AWS4-HMAC-SHA256-TRAILER\n" + c.amzDate + "\n" + c.scope + "\n" + c.prevSig + "\n" + hexSHA256(signedPart)
			if !hmac.Equal(hmacSHA256(c.key, sts), sig) {
				return newError(CodeSignatureDoesNotMatch, "The trailer signature we calculated does not match the signature you provided.")
			}
			sigSeen = true
			continue
		}
		if !c.trailers {
			return malformed("unexpected trailer " + name)
		}
		j := c.find(name)
		if j < 0 {
			return newError(CodeInvalidArgument, "trailer "+name+" was not declared in x-amz-trailer")
		}
		if c.declared[j].seen {
			return malformed("duplicate trailer " + name)
		}
		c.declared[j].seen, c.declared[j].value = true, value
		// Signers hash "name:value\n" per trailer, whatever the framing.
		signedPart = append(signedPart, name+":"+value+"\n"...)
	}
	if c.signedTrailer && !sigSeen {
		return newError(CodeSignatureDoesNotMatch, "x-amz-trailer-signature missing from a signed aws-chunked body")
	}
	for _, t := range c.declared {
		if !t.seen {
			return incomplete("trailer " + t.name + " declared in x-amz-trailer but not sent")
		}
		if t.h == nil {
			continue
		}
		want, err := base64.StdEncoding.DecodeString(t.value)
		if err != nil || len(want) != t.h.Size() {
			return newError(CodeInvalidArgument, "invalid value for trailer "+t.name)
		}
		if !hmac.Equal(t.h.Sum(nil), want) {
			return newError(CodeBadDigest, "The "+strings.TrimPrefix(t.name, "x-amz-checksum-")+" you specified did not match the calculated checksum.")
		}
	}
	if c.decoded >= 0 && c.n != c.decoded {
		return incomplete("aws-chunked body is shorter than x-amz-decoded-content-length")
	}
	return io.EOF
}
