package meta

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
)

// write commits a one-chunk object with etag under key as a real write does (intent first).
func condWrite(t *testing.T, s *Store, key, etag string, cond Condition) (string, error) {
	t.Helper()
	w := NewWriteID()
	if err := s.BeginWrite(context.Background(), Intent{ID: w, Bucket: "c", Key: key}); err != nil {
		t.Fatal(err)
	}
	o := &Object{Size: 1, ETag: etag, Chunks: []Chunk{{ID: ChunkID(w, 0), Size: 1, Replicas: []string{"m1"}}}}
	return w, s.PutObjectIf(context.Background(), "c", key, o, w, 0, cond)
}

func TestConditionalWrites(t *testing.T) {
	s := New(etcdtest.Start(t, "127.0.55.2"))
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	star := []string{"*"}
	steps := []struct {
		name string
		cond Condition
		etag string
		want error // nil: committed
	}{
		{"if-match * on a missing key", Condition{IfMatch: star}, "e0", ErrNoSuchKey},
		{"if-match an etag on a missing key", Condition{IfMatch: []string{"e0"}}, "e0", ErrNoSuchKey},
		{"if-none-match * creates", Condition{IfNoneMatch: star}, "e1", nil},
		{"if-none-match * on an existing key", Condition{IfNoneMatch: star}, "e2", ErrPreconditionFailed},
		{"if-none-match the current etag", Condition{IfNoneMatch: []string{`"e1"`}}, "e2", ErrPreconditionFailed},
		{"if-none-match another etag", Condition{IfNoneMatch: []string{"zz"}}, "e2", nil},
		{"if-match another etag", Condition{IfMatch: []string{"e1"}}, "e3", ErrPreconditionFailed},
		{"if-match the current etag", Condition{IfMatch: []string{"x", "e2"}}, "e3", nil},
		{"if-match *", Condition{IfMatch: star}, "e4", nil},
	}
	for _, st := range steps {
		w, err := condWrite(t, s, "k", st.etag, st.cond)
		if st.want == nil && err != nil || st.want != nil && !errors.Is(err, st.want) || errors.Is(err, ErrCommitUnknown) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
		if st.want != nil {
			// A refused write is aborted: its intent gone, its chunks queued.
			if count(t, s, IntentPrefix+w) != 0 || count(t, s, GCPrefix+w) != 1 {
				t.Fatalf("%s: the refused write was not aborted", st.name)
			}
		}
	}
	if o, err := s.GetObject(ctx, "c", "k"); err != nil || o.ETag != "e4" {
		t.Fatalf("object after the steps: %v %+v", err, o)
	}

	// Deletes: If-Match on the object removed; a missing key is deleted whatever the condition.
	if err := s.DeleteObjectIf(ctx, "c", "k", 0, Condition{IfMatch: []string{"e1"}}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("delete if-match another etag: %v", err)
	}
	if err := s.DeleteObjectIf(ctx, "c", "k", 0, Condition{IfMatch: []string{"e4"}}); err != nil {
		t.Fatalf("delete if-match the current etag: %v", err)
	}
	if err := s.DeleteObjectIf(ctx, "c", "k", 0, Condition{IfMatch: []string{"e4"}}); err != nil {
		t.Fatalf("delete of a missing key: %v", err)
	}

	// CompleteMultipartUpload: a failed condition leaves the upload as it was.
	if _, err := condWrite(t, s, "mp", "old", Condition{}); err != nil {
		t.Fatal(err)
	}
	u, _ := uploadWithParts(t, s, "c", "mp", 1, 1)
	parts, rev, err := s.AllParts(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	o := &Object{Size: 1, ETag: "new-1", Chunks: parts[0].Chunks, Parts: []int64{1}}
	if err := s.CompleteUploadIf(ctx, u, o, nil, rev, 0, Condition{IfNoneMatch: star}); !errors.Is(err, ErrPreconditionFailed) || errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("complete if-none-match * over an object: %v", err)
	}
	if _, err := s.GetUpload(ctx, "c", "mp", u.ID); err != nil {
		t.Fatalf("upload after a refused completion: %v", err)
	}
	if err := s.CompleteUploadIf(ctx, u, o, nil, rev, 0, Condition{IfMatch: []string{"old"}}); err != nil {
		t.Fatalf("complete if-match the current etag: %v", err)
	}
	if got, err := s.GetObject(ctx, "c", "mp"); err != nil || got.ETag != "new-1" {
		t.Fatalf("completed object: %v %+v", err, got)
	}
}

// Writers racing to create one key with If-None-Match: * — exactly one wins, every other is
// refused, and the key holds the winner's object.
func TestIfNoneMatchRace(t *testing.T) {
	s := New(etcdtest.Start(t, "127.0.55.3"))
	if err := s.CreateBucket(context.Background(), Bucket{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		key := "race-" + time.Now().Format("150405.000000") + string(rune('a'+round))
		const n = 8
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = condWrite(t, s, key, "etag-"+string(rune('a'+i)), Condition{IfNoneMatch: []string{"*"}})
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both created %s", round, winner, i, key)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrPreconditionFailed):
				t.Fatalf("round %d: writer %d: %v, want ErrPreconditionFailed", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer created %s", round, key)
		}
		if o, err := s.GetObject(context.Background(), "c", key); err != nil || o.ETag != "etag-"+string(rune('a'+winner)) {
			t.Fatalf("round %d: %s holds %+v (%v), want writer %d's", round, key, o, err, winner)
		}
	}
}
