package meta

import (
	"errors"
	"fmt"
	"time"
)

// Object lock (S3 WORM retention): a version may carry a retention (a mode and a date until
// which it may not be deleted) and a legal hold (no deletion until it is taken off). The
// record holds both (Object.Lock); every path that removes a version for good goes through
// deleteOne, which refuses a locked one in the transaction's read (the transaction compares
// the record's revision, so a lock added meanwhile is seen). Nothing else queues a version's
// chunks: overwrites in a versioned bucket keep the old version, and a bucket with object
// lock cannot have versioning suspended.

// Retention modes.
const (
	LockGovernance = "GOVERNANCE"
	LockCompliance = "COMPLIANCE"
)

// ErrLocked: the version is under retention or legal hold (S3: 403 AccessDenied).
var ErrLocked = errors.New("the object version is locked")

// Lock is a version's retention and legal hold.
type Lock struct {
	Mode      string    // LockGovernance, LockCompliance or "" (no retention)
	Until     time.Time // retain until
	LegalHold bool
}

// DefaultRetention is a bucket's default retention for new versions.
type DefaultRetention struct {
	Mode  string `json:"mode"`
	Days  int    `json:"days,omitempty"`
	Years int    `json:"years,omitempty"`
}

func (r *DefaultRetention) until(from time.Time) time.Time {
	return from.AddDate(r.Years, 0, r.Days).UTC()
}

// allowsDelete says whether a version with lock l may be removed at now.
func (l Lock) allowsDelete(now time.Time, bypassGovernance bool) error {
	if l.LegalHold {
		return fmt.Errorf("%w: legal hold", ErrLocked)
	}
	if l.Mode == "" || !now.Before(l.Until) {
		return nil
	}
	if l.Mode == LockGovernance && bypassGovernance {
		return nil
	}
	return fmt.Errorf("%w: %s retention until %s", ErrLocked, l.Mode, l.Until.Format(time.RFC3339))
}

// Retained reports whether the version's retention is still running at now.
func (l Lock) Retained(now time.Time) bool { return l.Mode != "" && now.Before(l.Until) }
