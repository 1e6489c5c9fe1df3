package gc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/etcdtest"
	"github.com/hanode/hanode/meta"
)

// upload creates an upload initiated at `at` with one part of one chunk.
func upload(t *testing.T, s *meta.Store, key string, at time.Time) *meta.Upload {
	t.Helper()
	ctx := context.Background()
	u := &meta.Upload{Bucket: "b", Key: key, ID: meta.NewUploadID(), Initiated: at.UTC()}
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	w := meta.NewWriteID()
	if err := s.BeginWrite(ctx, meta.Intent{ID: w, Bucket: "b", Key: key}); err != nil {
		t.Fatal(err)
	}
	p := &meta.Part{Number: 1, Size: 1, ETag: "e", Chunks: []meta.Chunk{{ID: meta.ChunkID(w, 0), Size: 1, Replicas: []string{"m1"}}}}
	if err := s.PutPart(ctx, u, p, w, 0); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUploadsExpire(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.86.1")
	ctx := context.Background()
	s := meta.New(cli)
	if err := s.CreateBucket(ctx, meta.Bucket{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := upload(t, s, "old", now.Add(-8*24*time.Hour))
	fresh := upload(t, s, "fresh", now.Add(-time.Hour))
	// An abort that stopped after removing its upload: only its marker and parts are left.
	stopped := upload(t, s, "stopped", now)
	if _, err := cli.Txn(ctx).Then(
		clientv3.OpDelete(meta.UploadPrefix+"b/stopped\x00"+stopped.ID),
		clientv3.OpPut(meta.AbortPrefix+stopped.ID, string(meta.EncodeUpload(stopped))),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	x := &Uploads{Meta: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Expiry: 7 * 24 * time.Hour, Now: func() time.Time { return now }}

	// A deposed master's fence fails: it aborts nothing.
	fence := clientv3.Compare(clientv3.Version("term"), ">", 0)
	if _, err := x.Round(ctx, fence); !errors.Is(err, meta.ErrConflict) {
		t.Fatalf("fenced round: %v, want ErrConflict", err)
	}
	if _, err := s.GetUpload(ctx, "b", "old", old.ID); err != nil {
		t.Fatalf("a fenced round aborted an upload: %v", err)
	}
	if _, err := cli.Put(ctx, "term", "1"); err != nil {
		t.Fatal(err)
	}
	n, err := x.Round(ctx, fence)
	if err != nil || n != 1 {
		t.Fatalf("round: %d aborted, %v; want 1", n, err)
	}
	if _, err := s.GetUpload(ctx, "b", "old", old.ID); !errors.Is(err, meta.ErrNoSuchUpload) {
		t.Fatalf("expired upload still there: %v", err)
	}
	if _, err := s.GetUpload(ctx, "b", "fresh", fresh.ID); err != nil {
		t.Fatalf("fresh upload: %v", err)
	}
	for _, id := range []string{old.ID, stopped.ID} {
		resp, err := cli.Get(ctx, meta.PartPrefix+id+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 0 {
			t.Fatalf("parts of %s left: %d, %v", id, resp.Count, err)
		}
	}
	if resp, err := cli.Get(ctx, meta.AbortPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("abort markers left: %v", err)
	}
	// The old and the stopped uploads' chunks are queued, due now; the fresh one's are not.
	due, err := s.DueGarbage(ctx, 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("due garbage: %d records, %v; want 2", len(due), err)
	}
	// A week later the other upload expires too.
	now = now.Add(7 * 24 * time.Hour)
	if n, err := x.Round(ctx, fence); err != nil || n != 1 {
		t.Fatalf("second round: %d, %v", n, err)
	}
	if _, err := s.GetUpload(ctx, "b", "fresh", fresh.ID); !errors.Is(err, meta.ErrNoSuchUpload) {
		t.Fatalf("upload past its expiry: %v", err)
	}
}
