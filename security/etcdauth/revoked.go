package etcdauth

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/security/pki"
)

// Revocation is the record of a removed machine, under keyspace.Revoked.
type Revocation struct {
	Machine string    `json:"machine"`
	Removed time.Time `json:"removed"`
	By      string    `json:"by"`
}

// Revoke records machine as removed now. The record lives on a lease of ttl, which must
// outlast every certificate issued to the machine before now; it then goes by itself.
func Revoke(ctx context.Context, cli *clientv3.Client, machine, by string, ttl time.Duration) (Revocation, error) {
	rec := Revocation{Machine: machine, Removed: time.Now().UTC(), By: by}
	val, _ := json.Marshal(rec)
	lease, err := cli.Grant(ctx, int64(ttl.Seconds())+1)
	if err != nil {
		return rec, fmt.Errorf("revoke machine %s: lease: %w", machine, err)
	}
	if _, err := cli.Put(ctx, keyspace.Revoked+machine, string(val), clientv3.WithLease(lease.ID)); err != nil {
		return rec, fmt.Errorf("revoke machine %s: %w", machine, err)
	}
	return rec, nil
}

// Revoked returns machine's revocation record, if it was removed.
func Revoked(ctx context.Context, cli *clientv3.Client, machine string) (*Revocation, error) {
	resp, err := cli.Get(ctx, keyspace.Revoked+machine)
	if err != nil {
		return nil, fmt.Errorf("read the revocation of machine %s: %w", machine, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var rec Revocation
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return nil, fmt.Errorf("decode the revocation of machine %s: %w", machine, err)
	}
	return &rec, nil
}

// CheckRevoked refuses cert when etcd says its machine was removed after it was issued. It
// reads etcd, so that a renewal is refused even before a watch delivered the removal.
func CheckRevoked(ctx context.Context, cli *clientv3.Client, machine string, issued time.Time) error {
	rec, err := Revoked(ctx, cli, machine)
	if err != nil || rec == nil {
		return err
	}
	if issued.After(rec.Removed) {
		return nil
	}
	return fmt.Errorf("machine %s was removed from the cluster at %s (by %s): its certificates are revoked; join it again with a token",
		machine, rec.Removed.Format(time.RFC3339), rec.By)
}

// FollowRevocations keeps b's revocations equal to the records in etcd — listed, then
// watched, listed again after a broken watch — until ctx ends. Until the first listing
// succeeds b revokes nothing; etcd refuses a removed machine's user regardless.
func FollowRevocations(ctx context.Context, cli *clientv3.Client, b *pki.Bundle, log *slog.Logger) {
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := cli.Get(lctx, keyspace.Revoked, clientv3.WithPrefix())
		cancel()
		if err != nil {
			log.Debug("cannot list revoked machines; retrying", "err", err)
			sleepCtx(ctx, 2*time.Second)
			continue
		}
		removed := map[string]time.Time{}
		for _, kv := range resp.Kvs {
			addRecord(removed, kv.Value)
		}
		b.SetRevocations(pki.NewRevocations(removed))
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range cli.Watch(wctx, keyspace.Revoked, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				switch ev.Type {
				case clientv3.EventTypePut:
					addRecord(removed, ev.Kv.Value)
					log.Info("a machine was removed: its certificates are refused", "machine", strings.TrimPrefix(string(ev.Kv.Key), keyspace.Revoked))
				case clientv3.EventTypeDelete:
					delete(removed, strings.TrimPrefix(string(ev.Kv.Key), keyspace.Revoked))
				}
			}
			b.SetRevocations(pki.NewRevocations(removed))
		}
		wcancel()
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

func addRecord(removed map[string]time.Time, val []byte) {
	var rec Revocation
	if json.Unmarshal(val, &rec) == nil && rec.Machine != "" {
		removed[rec.Machine] = rec.Removed
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
