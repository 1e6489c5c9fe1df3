package meta

import (
	"crypto/sha256"
	"fmt"
)

// Small objects are kept inline: their data is a field of their object record, committed in
// the one transaction that writes the record. Such a write needs no intent (meta/commit.go: the
// intent exists so that chunks stored before a commit that never happens are found and
// collected; an inline write stores nothing before its commit), and its durability is etcd's:
// the record is in the Raft log of a quorum of controllers, fsynced, before the commit returns.
//
// Everything that moves or copies records carries the data along (a noncurrent version under
// v/ is the same record bytes), and everything that collects or repairs chunks finds none.

// NewInline returns the inline form of data, its checksum computed. id is "" for data stored as
// sent, the id its bytes were sealed under otherwise.
func NewInline(id string, data []byte) *Inline {
	return &Inline{ID: id, Data: data, SHA256: sha256.Sum256(data)}
}

// Verify checks the data against its checksum.
func (in *Inline) Verify() error {
	if sha256.Sum256(in.Data) != in.SHA256 {
		return fmt.Errorf("%w: inline data (%d bytes) does not match its SHA-256", ErrCorrupt, len(in.Data))
	}
	return nil
}

// Optional trailing fields of an object record holding inline data: both or neither.
const (
	tagInline    = 40 // the seal id (hexish), then the stored bytes (length-prefixed)
	tagInlineSum = 41 // 32 bytes: SHA-256 of the stored bytes
)

func (e *enc) inline(in *Inline) {
	e.byte(tagInline)
	e.hexish(in.ID)
	e.uvarint(uint64(len(in.Data)))
	e.b = append(e.b, in.Data...)
	e.byte(tagInlineSum)
	e.b = append(e.b, in.SHA256[:]...)
}

func (d *dec) inlineData() *Inline {
	in := &Inline{ID: d.hexish()}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("inline length")
	}
	if d.err != nil {
		return nil
	}
	in.Data = d.b[:n:n] // no copy: a listing page decodes up to 1,000 of these and uses none
	d.b = d.b[n:]
	return in
}

func (d *dec) inlineSum(in *Inline) {
	if d.err == nil && (in == nil || len(d.b) < 32) {
		d.fail("inline checksum")
	}
	if d.err != nil {
		return
	}
	copy(in.SHA256[:], d.b[:32])
	d.b = d.b[32:]
}

// inlineSize is what in adds to a record, from above.
func inlineSize(in *Inline) int {
	if in == nil {
		return 0
	}
	return len(in.Data) + len(in.ID) + 64
}
