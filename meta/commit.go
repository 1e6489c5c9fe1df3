package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrCommitUnknown: a commit call failed in a way that leaves its outcome open (a timeout, a
// leader change, a cancelled request) and resolving it could not tell whether it applied.
// Nothing was collected: whatever applied stays readable. S3 answers 503 and clients retry.
var ErrCommitUnknown = errors.New("the commit's outcome is unknown")

// resolveTimeout bounds the etcd calls that settle a failed commit. They run detached from
// the request: a client that went away must not leave its write unsettled.
const resolveTimeout = 10 * time.Second

// A commit error may hide a transaction that etcd applied (the client gave up waiting, the
// leader changed after the proposal, the request was cancelled in flight). Guessing either way
// is wrong: taking it for a failure and collecting the write's chunks loses an object that
// lists, taking it for a success acknowledges a write that is not there. So every failed
// commit of a write with an intent is settled by one transaction that etcd orders after the
// commit, whatever happened to the commit's call:
//
//   - the intent still exists: the commit did not apply and now never can (it requires the
//     intent, which this transaction deletes); the write's chunks are queued as garbage;
//   - the intent is gone and the key holds exactly the record this write tried to put: the
//     commit applied; the write succeeded;
//   - the intent is gone and the key holds something else: the commit applied and was
//     replaced since, or the collector expired the intent; either way whoever removed the
//     intent accounted for the chunks, and the caller gets ErrCommitUnknown.
//
// The chunks of a write are thus collected only when etcd proves no commit can reference them.

// resolveWrite settles a failed commit of the write whose intent is intent and which tried to
// put want under key. It returns nil when the commit applied, cause when it did not (the write
// is aborted), and an error wrapping ErrCommitUnknown otherwise.
func (s *Store) resolveWrite(ctx context.Context, intent, key string, want []byte, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	ik := IntentPrefix + intent
	g := &Garbage{After: s.now().UTC(), Intent: intent}
	resp, err := s.cli.Txn(ctx).If(versionGT0(ik)).
		Then(clientv3.OpDelete(ik), clientv3.OpPut(GCPrefix+intent, string(EncodeGarbage(g)))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		// The intent stays (or went with an applied commit); if it stays, the collector expires
		// it after write-timeout, which is as safe as this transaction.
		return fmt.Errorf("%w: %w; settling it failed too: %v", ErrCommitUnknown, cause, err)
	}
	if resp.Succeeded {
		return cause
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 && bytes.Equal(kvs[0].Value, want) {
		return nil
	}
	if isDefinite(cause) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrCommitUnknown, cause)
}

// resolvePut settles a failed commit without an intent (CompleteMultipartUpload): it applied
// when key holds exactly want. No chunks depend on the answer (the upload's parts stay until a
// commit or an abort removes them in a transaction), so an unapplied commit needs no cleanup.
func (s *Store) resolvePut(ctx context.Context, key string, want []byte, cause error) error {
	if isDefinite(cause) {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("%w: %w; reading it back failed too: %v", ErrCommitUnknown, cause, err)
	}
	if len(resp.Kvs) > 0 && bytes.Equal(resp.Kvs[0].Value, want) {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrCommitUnknown, cause)
}

// isDefinite reports whether err says a transaction was evaluated and refused, as opposed to a
// call whose outcome is open.
func isDefinite(err error) bool {
	for _, e := range []error{ErrNoSuchBucket, ErrNoSuchUpload, ErrNoSuchKey, ErrPreconditionFailed, ErrIntentLost, ErrConflict, errTooManyWriters, ErrTooLarge, rpctypes.ErrRequestTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
