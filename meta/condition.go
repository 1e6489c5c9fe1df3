package meta

import (
	"errors"
	"fmt"
	"strings"
)

// ErrPreconditionFailed: a conditional write's condition did not hold for the object the key
// held when the write committed.
var ErrPreconditionFailed = errors.New("precondition failed")

// Condition makes a write (PutObject, CompleteUpload) or a delete conditional on the object
// its key holds, as S3's If-Match and If-None-Match do. It is evaluated against the record the
// commit transaction replaces, and the transaction requires that record to be unchanged (its
// mod revision), so no other write can slip between the check and the commit.
type Condition struct {
	// IfMatch, when set, requires an object whose ETag is one of these ("*": any object):
	// ErrNoSuchKey when the key holds none, ErrPreconditionFailed when it holds another.
	IfMatch []string
	// IfNoneMatch, when set, requires that the key hold no object whose ETag is one of these
	// ("*": no object at all), else ErrPreconditionFailed.
	IfNoneMatch []string
}

// IsZero reports an unconditional write.
func (c Condition) IsZero() bool { return len(c.IfMatch) == 0 && len(c.IfNoneMatch) == 0 }

// check evaluates c against the key's current object: exists says the key holds a record, cur
// is its decoded form (nil when it does not decode: it matches no ETag, only "*").
func (c Condition) check(exists bool, cur *Object) error {
	if len(c.IfMatch) > 0 {
		if !exists {
			return fmt.Errorf("if-match: %w", ErrNoSuchKey)
		}
		if !etagIn(c.IfMatch, cur) {
			return fmt.Errorf("if-match: %w", ErrPreconditionFailed)
		}
	}
	if len(c.IfNoneMatch) > 0 && exists && etagIn(c.IfNoneMatch, cur) {
		return fmt.Errorf("if-none-match: %w", ErrPreconditionFailed)
	}
	return nil
}

func etagIn(list []string, o *Object) bool {
	for _, e := range list {
		if e == "*" || o != nil && strings.Trim(e, `"`) == o.ETag {
			return true
		}
	}
	return false
}
