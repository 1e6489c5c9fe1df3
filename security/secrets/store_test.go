package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStore(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.81.1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := mustKeyring(t)

	t.Run("PutGet", func(t *testing.T) {
		const key, secret = "/hanode/secrets/s3-admin", "AKIA-very-secret-value"
		if err := Put(ctx, cli, k, key, []byte(secret)); err != nil {
			t.Fatal(err)
		}
		raw, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if v := raw.Kvs[0].Value; bytes.Contains(v, []byte(secret)) || !IsSealed(v) {
			t.Fatalf("raw etcd value is not sealed: %q", v)
		}
		got, found, err := Get(ctx, cli, k, key)
		if err != nil || !found || string(got) != secret {
			t.Fatalf("Get = %q, %v, %v", got, found, err)
		}
		if _, found, err := Get(ctx, cli, k, "/hanode/secrets/absent"); err != nil || found {
			t.Fatalf("Get absent = %v, %v", found, err)
		}
	})

	t.Run("MovedValueDoesNotOpen", func(t *testing.T) {
		if err := Put(ctx, cli, k, "/hanode/secrets/a", []byte("for a")); err != nil {
			t.Fatal(err)
		}
		raw, err := cli.Get(ctx, "/hanode/secrets/a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, "/hanode/secrets/b", string(raw.Kvs[0].Value)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Get(ctx, cli, k, "/hanode/secrets/b"); !errors.Is(err, ErrAuth) {
			t.Fatalf("Get of a value copied from another key: err = %v, want ErrAuth", err)
		}
		if _, err := cli.Delete(ctx, "/hanode/secrets/b"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PutWithLease", func(t *testing.T) {
		lease, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		if err := Put(ctx, cli, k, "/hanode/leased/x", []byte("v"), clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
		raw, err := cli.Get(ctx, "/hanode/leased/x")
		if err != nil {
			t.Fatal(err)
		}
		if raw.Kvs[0].Lease != int64(lease.ID) {
			t.Fatalf("lease %d, want %d", raw.Kvs[0].Lease, lease.ID)
		}
	})

	t.Run("Reencrypt", func(t *testing.T) {
		const prefix = "/hanode/reenc/"
		lease, err := cli.Grant(ctx, 600)
		if err != nil {
			t.Fatal(err)
		}
		// More values than one page, one of them leased.
		const count = reencryptPage + 10
		for i := range count {
			var opts []clientv3.OpOption
			if i == 0 {
				opts = append(opts, clientv3.WithLease(lease.ID))
			}
			if err := Put(ctx, cli, k, fmt.Sprintf("%s%04d", prefix, i), []byte(fmt.Sprint("value-", i)), opts...); err != nil {
				t.Fatal(err)
			}
		}
		// A neighbour outside the prefix must not be touched.
		outside := "/hanode/reenc"
		if err := Put(ctx, cli, k, outside, []byte("outside")); err != nil {
			t.Fatal(err)
		}
		oldID := k.PrimaryID()
		newID, err := k.Rotate()
		if err != nil {
			t.Fatal(err)
		}
		// One value is already under the new key and must not be rewritten.
		if err := Put(ctx, cli, k, prefix+"9999", []byte("fresh")); err != nil {
			t.Fatal(err)
		}
		n, err := Reencrypt(ctx, cli, k, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if n != count {
			t.Fatalf("Reencrypt rewrote %d, want %d", n, count)
		}
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			if _, id, _, _ := split(kv.Value); id != newID {
				t.Fatalf("%s sealed with %q after Reencrypt, want %q", kv.Key, id, newID)
			}
		}
		if got, _, err := Get(ctx, cli, k, prefix+"0007"); err != nil || string(got) != "value-7" {
			t.Fatalf("Get after Reencrypt = %q, %v", got, err)
		}
		if r, _ := cli.Get(ctx, prefix+"0000"); r.Kvs[0].Lease != int64(lease.ID) {
			t.Fatalf("Reencrypt dropped the lease: %d", r.Kvs[0].Lease)
		}
		if r, _ := cli.Get(ctx, outside); func() string { _, id, _, _ := split(r.Kvs[0].Value); return id }() != oldID {
			t.Fatal("Reencrypt touched a key outside its prefix")
		}
		// Idempotent.
		if n, err := Reencrypt(ctx, cli, k, prefix); err != nil || n != 0 {
			t.Fatalf("second Reencrypt = %d, %v", n, err)
		}
		// A value it cannot open stops it, naming the key.
		if _, err := cli.Put(ctx, prefix+"plain", "not sealed"); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Rotate(); err != nil {
			t.Fatal(err)
		}
		if _, err := Reencrypt(ctx, cli, k, prefix); !errors.Is(err, ErrNotSealed) {
			t.Fatalf("Reencrypt over a plaintext value: err = %v, want ErrNotSealed", err)
		}
		if _, err := Reencrypt(ctx, cli, k, ""); err == nil {
			t.Fatal("Reencrypt with an empty prefix succeeded")
		}
	})

	t.Run("ReencryptConflict", func(t *testing.T) {
		// A concurrent writer between the read and the CAS must win: the CAS
		// fails, the fresh value is re-read and re-sealed, not overwritten.
		const key = "/hanode/conflict/a"
		if err := Put(ctx, cli, k, key, []byte("v1")); err != nil {
			t.Fatal(err)
		}
		raw, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		staleVal, staleRev := raw.Kvs[0].Value, raw.Kvs[0].ModRevision
		// A controller that has not yet seen the rotation writes with the old
		// primary, so the fresh value still needs re-sealing.
		stale := &Keyring{}
		if b, err := json.Marshal(k); err != nil || stale.UnmarshalJSON(b) != nil {
			t.Fatalf("copy keyring: %v", err)
		}
		if _, err := k.Rotate(); err != nil {
			t.Fatal(err)
		}
		if err := Put(ctx, cli, stale, key, []byte("v2")); err != nil {
			t.Fatal(err)
		}
		rewrote, err := reencryptOne(ctx, cli, k, k.PrimaryID(), key, staleVal, staleRev)
		if err != nil || !rewrote {
			t.Fatalf("reencryptOne after a concurrent write = %v, %v", rewrote, err)
		}
		raw, err = cli.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, id, _, _ := split(raw.Kvs[0].Value); id != k.PrimaryID() {
			t.Fatalf("sealed with %q, want primary %q", id, k.PrimaryID())
		}
		if got, _, err := Get(ctx, cli, k, key); err != nil || string(got) != "v2" {
			t.Fatalf("after conflict: %q, %v (want the concurrent write v2)", got, err)
		}
		// Deleted meanwhile: nothing to do.
		if _, err := cli.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if rewrote, err := reencryptOne(ctx, cli, k, k.PrimaryID(), key, staleVal, staleRev); err != nil || rewrote {
			t.Fatalf("deleted key: %v, %v", rewrote, err)
		}
		if r, _ := cli.Get(ctx, key); len(r.Kvs) != 0 {
			t.Fatal("reencryptOne resurrected a deleted key")
		}
	})
}
