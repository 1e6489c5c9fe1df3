package meta

import (
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// MaxRequestBytes is the largest etcd request the controllers accept (etcd's
// --max-request-bytes, set by etcdembed). Every metadata change is one request, so it bounds
// an object's record (its chunk list) and what one transaction may replace.
const MaxRequestBytes = 8 << 20

// ErrTooLarge is returned, before anything is written, for a change that etcd would refuse as
// too large: an object whose record lists too many chunks, or the replacement of such an
// object in one transaction.
var ErrTooLarge = errors.New("metadata change larger than one etcd request")

// txnSlack is room in a transaction for what sizeOf does not count exactly: the request's
// framing and the Raft entry's header.
const txnSlack = 4096

// recordLimit is the largest object record the store writes: half of a request, so that any
// object can later be replaced by any other in one transaction (the new record, plus the old
// one's chunks queued as garbage, a little smaller than its record).
func (s *Store) recordLimit() int { return (s.lim.request - 2*txnSlack) / 2 }

// sizeOf estimates, from above, a transaction's encoded size.
func sizeOf(conds []clientv3.Cmp, ops []clientv3.Op) int {
	n := 0
	for i := range conds {
		n += proto.Size(conds[i].GetCompare()) + 8
	}
	for _, op := range ops {
		// A RequestOp wrapping a Put/DeleteRange/RangeRequest: tags, lengths and options.
		n += len(op.KeyBytes()) + len(op.ValueBytes()) + len(op.RangeBytes()) + 32
	}
	return n
}

// fits checks that a transaction is within etcd's request limit.
func (s *Store) fits(conds []clientv3.Cmp, ops []clientv3.Op) error {
	if n := sizeOf(conds, ops); n > s.lim.request-txnSlack {
		return fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrTooLarge, n, s.lim.request-txnSlack)
	}
	return nil
}

// recordFits checks a new object record against recordLimit.
func (s *Store) recordFits(val []byte) error {
	if len(val) > s.recordLimit() {
		return fmt.Errorf("%w: the object's record takes %d bytes (~63 per chunk), over the %d-byte limit", ErrTooLarge, len(val), s.recordLimit())
	}
	return nil
}
