package coordinator

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/controller/gc"
	"github.com/hanode/hanode/meta"
)

// lyingKV is the coordinator's etcd KV with one kind of fault: the next transaction whose
// Then branch matches is sent to etcd (or not, when apply is false) and then reported as
// failed with "request timed out" — what etcd's client returns when a commit's answer is lost
// to a timeout, a leader change or a cancelled request.
type lyingKV struct {
	clientv3.KV
	mu    sync.Mutex
	match func(op clientv3.Op) bool
	apply bool
	lied  int
}

func (k *lyingKV) arm(apply bool, match func(op clientv3.Op) bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.match, k.apply = match, apply
}

// matches reports whether ops match the armed fault, and whether to apply them first.
func (k *lyingKV) matches(ops []clientv3.Op) (lie, apply bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.match == nil {
		return false, false
	}
	for _, op := range ops {
		if k.match(op) {
			return true, k.apply
		}
	}
	return false, false
}

func (k *lyingKV) disarm() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.match = nil
	k.lied++
}

func (k *lyingKV) Txn(ctx context.Context) clientv3.Txn {
	return &lyingTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type lyingTxn struct {
	clientv3.Txn
	kv  *lyingKV
	ops []clientv3.Op
}

func (t *lyingTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.Txn = t.Txn.If(cs...); return t }
func (t *lyingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}
func (t *lyingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.ops = append(t.ops, ops...)
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *lyingTxn) Commit() (*clientv3.TxnResponse, error) {
	lie, apply := t.kv.matches(t.ops)
	if !lie {
		return t.Txn.Commit()
	}
	if apply {
		// Lie only about a transaction that took its Then branch: one whose guard failed (an
		// optimistic first attempt at an existing key) was not a commit.
		resp, err := t.Txn.Commit()
		if err != nil || !resp.Succeeded {
			return resp, err
		}
	}
	t.kv.disarm()
	return nil, rpctypes.ErrTimeout
}

func putsUnder(prefix string) func(clientv3.Op) bool {
	return func(op clientv3.Op) bool { return op.IsPut() && strings.HasPrefix(string(op.KeyBytes()), prefix) }
}

func deletesUnder(prefix string) func(clientv3.Op) bool {
	return func(op clientv3.Op) bool {
		return op.IsDelete() && strings.HasPrefix(string(op.KeyBytes()), prefix)
	}
}

// TestAmbiguousCommits applies each commit path's transaction and reports it failed (and, for
// the write paths, fails one without applying it). Whatever the client was told, an object
// that lists must read back whole after the collector ran, and a commit that did not apply
// must leave nothing behind once collected.
func TestAmbiguousCommits(t *testing.T) {
	kv := &lyingKV{}
	tc := newTestCluster(t, clusterOpts{machines: 3, replicas: 2, chunkSize: 64 << 10, etcdHost: "127.0.88.9",
		wrapKV: func(inner clientv3.KV) clientv3.KV { kv.KV = inner; return kv }})
	ctx := context.Background()
	// One attempt per call: minio-go's own retries would hide what the first answer was.
	u, _ := url.Parse(tc.s3.URL)
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(tc.access, tc.secret, ""), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: mc}
	mustBucket(t, mc, "amb")
	col := &gc.Collector{Etcd: tc.etcd, Meta: meta.New(tc.etcd), Datanodes: tc.coord.o.Datanodes, Log: tc.coord.log, WriteTimeout: time.Hour, GiveUp: time.Hour}
	collect := func(t *testing.T) {
		t.Helper()
		for range 3 { // records queued by a round's own work are collected by the next
			if _, err := col.Round(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// checkWhole: key lists and reads back as want, after collection.
	checkWhole := func(t *testing.T, key string, want []byte) {
		t.Helper()
		collect(t)
		found := false
		for o := range mc.ListObjects(ctx, "amb", minio.ListObjectsOptions{Prefix: key}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			found = found || o.Key == key
		}
		if !found {
			t.Fatalf("%s does not list", key)
		}
		got, err := get(t, mc, "amb", key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("%s lists but does not read: %v", key, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s read back %d bytes, want %d", key, len(got), len(want))
		}
	}
	data := func(seed uint64) []byte { return randData(200<<10, seed) } // four chunks

	t.Run("PutObject new key", func(t *testing.T) {
		kv.arm(true, putsUnder(meta.ObjectPrefix))
		d := data(1)
		if _, err := mc.PutObject(ctx, "amb", "new", bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err != nil {
			t.Errorf("a commit that applied was reported to the client as failed: %v", err)
		}
		checkWhole(t, "new", d)
	})
	t.Run("PutObject overwrite", func(t *testing.T) {
		old := data(2)
		if _, err := mc.PutObject(ctx, "amb", "over", bytes.NewReader(old), int64(len(old)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		kv.arm(true, putsUnder(meta.ObjectPrefix))
		d := data(3)
		if _, err := mc.PutObject(ctx, "amb", "over", bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err != nil {
			t.Errorf("a commit that applied was reported to the client as failed: %v", err)
		}
		checkWhole(t, "over", d)
	})
	t.Run("CopyObject", func(t *testing.T) {
		kv.arm(true, putsUnder(meta.ObjectPrefix))
		if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "amb", Object: "copy"}, minio.CopySrcOptions{Bucket: "amb", Object: "new"}); err != nil {
			t.Errorf("a commit that applied was reported to the client as failed: %v", err)
		}
		checkWhole(t, "copy", data(1))
	})
	t.Run("UploadPart and CompleteMultipartUpload", func(t *testing.T) {
		id, err := core.NewMultipartUpload(ctx, "amb", "mpu", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p1 := randData(5<<20, 4)
		p2 := data(5)
		kv.arm(true, putsUnder(meta.PartPrefix))
		a, err := core.PutObjectPart(ctx, "amb", "mpu", id, 1, bytes.NewReader(p1), int64(len(p1)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatalf("a part commit that applied was reported to the client as failed: %v", err)
		}
		b, err := core.PutObjectPart(ctx, "amb", "mpu", id, 2, bytes.NewReader(p2), int64(len(p2)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		collect(t) // a part's chunks must survive collection before the upload completes
		kv.arm(true, putsUnder(meta.ObjectPrefix))
		if _, err := core.CompleteMultipartUpload(ctx, "amb", "mpu", id, []minio.CompletePart{{PartNumber: 1, ETag: a.ETag}, {PartNumber: 2, ETag: b.ETag}}, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("a completion that applied was reported to the client as failed: %v", err)
		}
		checkWhole(t, "mpu", append(append([]byte{}, p1...), p2...))
	})
	t.Run("DeleteObject", func(t *testing.T) {
		kv.arm(true, deletesUnder(meta.ObjectPrefix))
		if err := mc.RemoveObject(ctx, "amb", "copy", minio.RemoveObjectOptions{}); err != nil {
			t.Errorf("a delete that applied was reported to the client as failed: %v", err)
		}
		if _, err := mc.StatObject(ctx, "amb", "copy", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
			t.Fatalf("stat after delete: %v", err)
		}
		checkWhole(t, "new", data(1)) // the copy's source is untouched
	})
	t.Run("PutObject not applied", func(t *testing.T) {
		collect(t)
		before := tc.chunkCount()
		kv.arm(false, putsUnder(meta.ObjectPrefix))
		d := data(6)
		if _, err := mc.PutObject(ctx, "amb", "lost", bytes.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err == nil {
			t.Fatal("a commit that did not apply was reported to the client as done")
		}
		if _, err := mc.StatObject(ctx, "amb", "lost", minio.StatObjectOptions{}); s3code(err) != "NoSuchKey" {
			t.Fatalf("stat of a write that failed: %v", err)
		}
		collect(t)
		if after := tc.chunkCount(); after != before {
			t.Fatalf("chunk files %d before the failed write, %d after collection: its chunks leaked", before, after)
		}
	})
	if kv.lied != 7 {
		t.Fatalf("the fault was injected %d times, want 7", kv.lied)
	}
}
