package meta

import (
	"context"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/hanode/hanode/internal/etcdtest"
)

// TestResolveWrite settles a commit whose call failed in each state etcd can be in afterwards.
func TestResolveWrite(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.85.2")
	s := New(cli)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	lost := rpctypes.ErrTimeout // what a commit whose answer was lost returns
	garbage := func(id string) bool {
		resp, err := cli.Get(ctx, GCPrefix+id)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) == 1
	}
	begin := func(id string) {
		if err := s.BeginWrite(ctx, Intent{ID: id, Bucket: "r", Key: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	key := ObjectKey("r", "k")

	// Not applied: the intent is still there, so the write is aborted and can never commit.
	begin("w1")
	mine := EncodeObject(sampleObject(1))
	if err := s.resolveWrite(ctx, "w1", key, mine, lost); !errors.Is(err, lost) || errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("unapplied commit settled as %v, want the original error", err)
	}
	if !garbage("w1") {
		t.Fatal("an aborted write's chunks were not queued")
	}
	if err := s.PutObject(ctx, "r", "k", sampleObject(1), "w1", 0); !errors.Is(err, ErrIntentLost) {
		t.Fatalf("a commit arriving after the abort: %v, want ErrIntentLost", err)
	}

	// Applied: the intent is gone and the key holds exactly this write's record.
	begin("w2")
	o := sampleObject(2)
	if err := s.PutObject(ctx, "r", "k", o, "w2", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.resolveWrite(ctx, "w2", key, EncodeObject(o), lost); err != nil {
		t.Fatalf("applied commit settled as %v, want success", err)
	}
	if garbage("w2") {
		t.Fatal("a committed write's chunks were queued as garbage")
	}

	// Applied and replaced since (or expired by the collector): nothing to collect, outcome unknown.
	begin("w3")
	if err := s.PutObject(ctx, "r", "k", sampleObject(3), "w3", 0); err != nil {
		t.Fatal(err)
	}
	begin("w4")
	if err := s.PutObject(ctx, "r", "k", sampleObject(4), "w4", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.resolveWrite(ctx, "w3", key, EncodeObject(sampleObject(3)), lost); !errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("replaced commit settled as %v, want ErrCommitUnknown", err)
	}
	if garbage("w3") {
		t.Fatal("settling a replaced write queued its chunks a second time")
	}

	// A definite refusal stays what it was.
	if err := s.resolveWrite(ctx, "never", key, mine, ErrNoSuchBucket); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("definite error settled as %v", err)
	}

	// A cancelled request is still settled: the settling transaction does not use its context.
	begin("w5")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.resolveWrite(cctx, "w5", key, mine, context.Canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write settled as %v", err)
	}
	if !garbage("w5") {
		t.Fatal("a cancelled write's chunks were not queued")
	}
}
