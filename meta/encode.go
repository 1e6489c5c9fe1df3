package meta

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Records are encoded as a version byte and then fields in a fixed order: varints for
// numbers, length-prefixed bytes for strings. It is several times smaller than JSON and needs
// no schema compiler; a new field goes at the end with a new version byte.
const (
	verObject  = 1
	verPart    = 2
	verUpload  = 3
	verGarbage = 4
)

// Optional trailing fields of an object record: a tag byte, then the value. A record without
// them has the bytes it had before they existed.
const (
	tagUpload   = 1 // string: the multipart upload that made the object
	tagTags     = 2 // headers-like map: the object's tag set
	tagChecksum = 3 // string: the additional checksum, "<algorithm>:<base64>"
	// Versioning and object lock take tags from 16 up, leaving the low ones to other fields.
	tagVersion      = 16 // string: the version sort key (Object.Version)
	tagDeleteMarker = 17 // no value: the record is a delete marker
	tagLockMode     = 18 // string: GOVERNANCE or COMPLIANCE
	tagLockUntil    = 19 // time: retain until
	tagLegalHold    = 20 // no value: a legal hold is on
	// SSE takes 24 (sse.go), the KMS helper 25–27, inline data 40–41 (inline.go).
)

// Optional trailing fields of an upload record, as for objects.
const (
	tagUploadTags = 1 // headers-like map: the tag set the completed object gets
)

// Additional checksums of multipart uploads take tags 48 to 50: in an upload record the
// algorithm its parts are summed with, in a part record the part's checksum (a part record had
// no optional fields before), in an object record the checksum of each of its parts.
const (
	tagUploadChecksum = 48 // string, then a byte: Upload.ChecksumAlgorithm, ChecksumFullObject
	tagPartChecksum   = 49 // string: Part.Checksum
	tagPartChecksums  = 50 // count, then strings: Object.PartChecksums
)

// maxCount bounds decoded list lengths so a corrupt record cannot ask for a huge allocation.
const maxCount = 1 << 24

type enc struct{ b []byte }

func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// hexish stores a string's leading lower-case hex digits as bytes (half the size) and the rest
// as is: ETags and chunk ids are mostly hex.
func (e *enc) hexish(s string) {
	n := 0
	for n < len(s) && (s[n] >= '0' && s[n] <= '9' || s[n] >= 'a' && s[n] <= 'f') {
		n++
	}
	n &^= 1
	e.uvarint(uint64(n / 2))
	e.b, _ = hex.AppendDecode(e.b, []byte(s[:n])) // only hex digits, cannot fail
	e.str(s[n:])
}

func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.varint(math.MinInt64)
		return
	}
	e.varint(t.UnixNano())
}

func (e *enc) headers(h map[string]string) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic bytes
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(h[k])
	}
}

// chunks shares replica names through a small table: a bucket of many chunks names the same
// few machines over and over.
func (e *enc) chunks(cs []Chunk) {
	var table []string
	for _, c := range cs {
		for _, r := range c.Replicas {
			if !slices.Contains(table, r) {
				table = append(table, r)
			}
		}
	}
	e.uvarint(uint64(len(table)))
	for _, r := range table {
		e.str(r)
	}
	e.uvarint(uint64(len(cs)))
	for _, c := range cs {
		e.hexish(c.ID)
		e.varint(c.Size)
		e.b = append(e.b, c.SHA256[:]...)
		e.uvarint(uint64(len(c.Replicas)))
		for _, r := range c.Replicas {
			e.uvarint(uint64(slices.Index(table, r)))
		}
	}
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
}

func (d *dec) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) count() int {
	n := d.uvarint()
	if n > maxCount || n > uint64(len(d.b)) { // every element takes at least one byte
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *dec) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string length")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *dec) hexish() string {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("hex length")
	}
	if d.err != nil {
		return ""
	}
	h := hex.EncodeToString(d.b[:n])
	d.b = d.b[n:]
	return h + d.str()
}

func (d *dec) time() time.Time {
	v := d.varint()
	if v == math.MinInt64 || d.err != nil {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func (d *dec) headers() map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	h := make(map[string]string, n)
	for range n {
		k := d.str()
		h[k] = d.str()
	}
	return h
}

func (d *dec) chunks() []Chunk {
	nt := d.count()
	table := make([]string, 0, nt)
	for range nt {
		table = append(table, d.str())
	}
	n := d.count()
	if d.err != nil || n == 0 {
		return nil
	}
	cs := make([]Chunk, 0, n)
	for range n {
		var c Chunk
		c.ID = d.hexish()
		c.Size = d.varint()
		if d.err == nil && len(d.b) < 32 {
			d.fail("checksum")
		}
		if d.err != nil {
			return nil
		}
		copy(c.SHA256[:], d.b[:32])
		d.b = d.b[32:]
		nr := d.count()
		for range nr {
			i := d.uvarint()
			if i >= uint64(len(table)) {
				d.fail("replica index")
				return nil
			}
			c.Replicas = append(c.Replicas, table[i])
		}
		cs = append(cs, c)
	}
	return cs
}

func (d *dec) version(want byte) {
	if v := d.byte(); d.err == nil && v != want {
		d.err = fmt.Errorf("%w: record version %d, want %d", ErrCorrupt, v, want)
	}
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// EncodeObject encodes an object record.
func EncodeObject(o *Object) []byte {
	e := enc{b: make([]byte, 0, 64+len(o.Chunks)*64+inlineSize(o.Inline))}
	e.byte(verObject)
	e.varint(o.Size)
	e.time(o.Modified)
	e.hexish(o.ETag)
	e.headers(o.Headers)
	e.chunks(o.Chunks)
	e.uvarint(uint64(len(o.Parts)))
	for _, p := range o.Parts {
		e.varint(p)
	}
	if o.Upload != "" {
		e.byte(tagUpload)
		e.hexish(o.Upload)
	}
	if len(o.Tags) > 0 {
		e.byte(tagTags)
		e.headers(o.Tags)
	}
	if o.Checksum != "" {
		e.byte(tagChecksum)
		e.str(o.Checksum)
	}
	if o.ACL != nil {
		e.acl(o.ACL)
	}
	if o.SSE != nil {
		e.sse(o.SSE)
	}
	if o.Version != "" {
		e.byte(tagVersion)
		e.hexish(o.Version)
	}
	if o.DeleteMarker {
		e.byte(tagDeleteMarker)
	}
	if o.Lock.Mode != "" {
		e.byte(tagLockMode)
		e.str(o.Lock.Mode)
		e.byte(tagLockUntil)
		e.time(o.Lock.Until)
	}
	if o.Lock.LegalHold {
		e.byte(tagLegalHold)
	}
	if len(o.PartChecksums) > 0 {
		e.byte(tagPartChecksums)
		e.uvarint(uint64(len(o.PartChecksums)))
		for _, c := range o.PartChecksums {
			e.str(c)
		}
	}
	if o.Inline != nil {
		e.inline(o.Inline)
	}
	return e.b
}

// DecodeObject decodes an object record. An inline object's data (Object.Inline) is b's bytes,
// not a copy: b must not change while the object is in use.
func DecodeObject(b []byte) (*Object, error) {
	d := dec{b: b}
	d.version(verObject)
	o := &Object{Size: d.varint(), Modified: d.time(), ETag: d.hexish(), Headers: d.headers(), Chunks: d.chunks()}
	if n := d.count(); n > 0 {
		o.Parts = make([]int64, 0, n)
		for range n {
			o.Parts = append(o.Parts, d.varint())
		}
	}
	sum := true // an inline field is followed by its checksum
	for d.err == nil && len(d.b) > 0 {
		switch tag := d.byte(); tag {
		case tagUpload:
			o.Upload = d.hexish()
		case tagTags:
			o.Tags = d.headers()
		case tagChecksum:
			o.Checksum = d.str()
		case tagACL:
			o.ACL = d.acl()
		case tagSSE:
			o.SSE = d.sse()
		case tagVersion:
			o.Version = d.hexish()
		case tagDeleteMarker:
			o.DeleteMarker = true
		case tagLockMode:
			o.Lock.Mode = d.str()
		case tagLockUntil:
			o.Lock.Until = d.time()
		case tagLegalHold:
			o.Lock.LegalHold = true
		case tagPartChecksums:
			n := d.count()
			o.PartChecksums = make([]string, 0, n)
			for range n {
				o.PartChecksums = append(o.PartChecksums, d.str())
			}
		case tagInline:
			o.Inline = d.inlineData()
			sum = false
		case tagInlineSum:
			d.inlineSum(o.Inline)
			sum = true
		default:
			d.err = fmt.Errorf("%w: unknown object field %d", ErrCorrupt, tag)
		}
	}
	if d.err == nil && o.Inline != nil && (!sum || len(o.Chunks) > 0) {
		d.fail("inline data (without its checksum, or beside chunks)")
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return o, nil
}

// EncodePart encodes a part record.
func EncodePart(p *Part) []byte {
	e := enc{}
	e.byte(verPart)
	e.uvarint(uint64(p.Number))
	e.varint(p.Size)
	e.str(p.ETag)
	e.time(p.Modified)
	e.chunks(p.Chunks)
	if p.Checksum != "" {
		e.byte(tagPartChecksum)
		e.str(p.Checksum)
	}
	return e.b
}

// DecodePart decodes a part record.
func DecodePart(b []byte) (*Part, error) {
	d := dec{b: b}
	d.version(verPart)
	p := &Part{Number: int(d.uvarint()), Size: d.varint(), ETag: d.str(), Modified: d.time(), Chunks: d.chunks()}
	for d.err == nil && len(d.b) > 0 {
		switch tag := d.byte(); tag {
		case tagPartChecksum:
			p.Checksum = d.str()
		default:
			d.err = fmt.Errorf("%w: unknown part field %d", ErrCorrupt, tag)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return p, nil
}

// EncodeUpload encodes an upload record.
func EncodeUpload(u *Upload) []byte {
	e := enc{}
	e.byte(verUpload)
	e.str(u.Bucket)
	e.str(u.Key)
	e.str(u.ID)
	e.time(u.Initiated)
	e.headers(u.Headers)
	if len(u.Tags) > 0 {
		e.byte(tagUploadTags)
		e.headers(u.Tags)
	}
	if u.ACL != nil {
		e.acl(u.ACL)
	}
	if u.SSE != nil {
		e.sse(u.SSE)
	}
	if u.ChecksumAlgorithm != "" {
		e.byte(tagUploadChecksum)
		e.str(u.ChecksumAlgorithm)
		full := byte(0)
		if u.ChecksumFullObject {
			full = 1
		}
		e.byte(full)
	}
	return e.b
}

// DecodeUpload decodes an upload record.
func DecodeUpload(b []byte) (*Upload, error) {
	d := dec{b: b}
	d.version(verUpload)
	u := &Upload{Bucket: d.str(), Key: d.str(), ID: d.str(), Initiated: d.time(), Headers: d.headers()}
	for d.err == nil && len(d.b) > 0 {
		switch tag := d.byte(); tag {
		case tagUploadTags:
			u.Tags = d.headers()
		case tagACL:
			u.ACL = d.acl()
		case tagSSE:
			u.SSE = d.sse()
		case tagUploadChecksum:
			u.ChecksumAlgorithm = d.str()
			u.ChecksumFullObject = d.byte() == 1
		default:
			d.err = fmt.Errorf("%w: unknown upload field %d", ErrCorrupt, tag)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return u, nil
}

// EncodeGarbage encodes a garbage record.
func EncodeGarbage(g *Garbage) []byte {
	e := enc{}
	e.byte(verGarbage)
	e.time(g.After)
	e.str(g.Intent)
	e.chunks(g.Chunks)
	return e.b
}

// DecodeGarbage decodes a garbage record.
func DecodeGarbage(b []byte) (*Garbage, error) {
	d := dec{b: b}
	d.version(verGarbage)
	g := &Garbage{After: d.time(), Intent: d.str(), Chunks: d.chunks()}
	if err := d.done(); err != nil {
		return nil, err
	}
	return g, nil
}
