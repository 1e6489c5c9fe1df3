package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/join"
	"github.com/hanode/hanode/security/secrets"
)

// Keyring rotation runs through etcd in two acknowledged steps, so that no controller is ever
// asked to open a value sealed with a key it does not hold:
//
//  1. the rotating controller publishes a keyring holding a new key at keyringNext, sealed with
//     the current primary key; every controller merges it into its keyring file and acks;
//  2. it publishes the new key's id at keyringPrimary; every controller makes it primary and acks;
//
// then it re-seals every value under /hanode/secrets/ with the new key and deletes the rotation
// state, so the new key does not stay in etcd.
const (
	keyringPrefix  = keyspace.Keyring
	keyringNext    = keyspace.KeyringNext
	keyringPrimary = keyspace.KeyringPrimary
	keyringAcks    = keyspace.KeyringAcks
	secretsPrefix  = keyspace.Secrets
)

func (s *security) keyringPath() string { return filepath.Join(s.pkiDir, join.KeyringFile) }

// syncKeyring applies rotation steps published in etcd to this controller's keyring, until ctx ends.
func (s *security) syncKeyring(ctx context.Context, cli *clientv3.Client, name string, log *slog.Logger) {
	if s.keyring == nil {
		return
	}
	for ctx.Err() == nil {
		resp, err := cli.Get(ctx, keyringPrefix, clientv3.WithPrefix())
		if err == nil {
			for _, kv := range resp.Kvs {
				s.applyKeyringStep(ctx, cli, name, log, string(kv.Key), kv.Value)
			}
			wch := cli.Watch(clientv3.WithRequireLeader(ctx), keyringPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
			for wr := range wch {
				if wr.Err() != nil {
					break
				}
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypePut {
						s.applyKeyringStep(ctx, cli, name, log, string(ev.Kv.Key), ev.Kv.Value)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *security) applyKeyringStep(ctx context.Context, cli *clientv3.Client, name string, log *slog.Logger, key string, val []byte) {
	var stage, id string
	switch key {
	case keyringNext:
		plain, err := s.keyring.Open(val, []byte(keyringNext))
		if err != nil {
			log.Warn("cannot open the published keyring; this controller cannot take part in the rotation", "err", err)
			return
		}
		var next secrets.Keyring
		if err := json.Unmarshal(plain, &next); err != nil {
			log.Warn("malformed published keyring", "err", err)
			return
		}
		if _, err := s.keyring.Merge(&next); err != nil {
			log.Warn("cannot merge the published keyring", "err", err)
			return
		}
		stage, id = "next", next.PrimaryID()
	case keyringPrimary:
		id = string(val)
		if err := s.keyring.SetPrimary(id); err != nil {
			log.Warn("cannot switch to the new primary key", "key", id, "err", err)
			return
		}
		stage = "primary"
	default:
		return
	}
	if err := s.keyring.Save(s.keyringPath()); err != nil {
		log.Warn("cannot save the keyring", "err", err)
		return
	}
	if _, err := cli.Put(ctx, keyringAcks+stage+"/"+name, id); err != nil {
		log.Warn("cannot acknowledge the keyring step", "stage", stage, "err", err)
		return
	}
	log.Info("keyring rotation step applied", "stage", stage, "key", id)
}

func (c *Role) handleSecretsRotate(w http.ResponseWriter, r *http.Request) {
	if c.sec.keyring == nil {
		service.WriteError(w, http.StatusServiceUnavailable, errors.New("this controller holds no keyring"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	res, err := c.rotateKeyring(ctx)
	// Leave no rotation state behind, finished or not: the next attempt starts clean, and the
	// new key (sealed with the old one) does not stay in etcd.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer dcancel()
	_, _ = c.cli.Delete(dctx, keyringPrefix, clientv3.WithPrefix())
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, res)
}

func (c *Role) rotateKeyring(ctx context.Context) (*adminapi.RotateResult, error) {
	ring := c.sec.keyring
	next := ring.Clone()
	id, err := next.Rotate()
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	sealed, err := ring.Seal(data, []byte(keyringNext))
	if err != nil {
		return nil, err
	}
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(keyringNext), "=", 0)).
		Then(clientv3.OpPut(keyringNext, string(sealed))).Commit()
	if err != nil {
		return nil, fmt.Errorf("publish the new key: %w", err)
	}
	if !resp.Succeeded {
		return nil, errors.New("another keyring rotation is in progress")
	}
	ml, err := c.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list controllers: %w", err)
	}
	var voters []string
	for _, m := range ml.Members {
		if !m.IsLearner {
			voters = append(voters, m.Name)
		}
	}
	if err := c.waitAcks(ctx, "next", id, voters); err != nil {
		return nil, err
	}
	if _, err := c.cli.Put(ctx, keyringPrimary, id); err != nil {
		return nil, fmt.Errorf("publish the new primary key: %w", err)
	}
	if err := c.waitAcks(ctx, "primary", id, voters); err != nil {
		return nil, err
	}
	n, err := secrets.Reencrypt(ctx, c.cli, ring, secretsPrefix)
	if err != nil {
		return nil, fmt.Errorf("re-seal the secrets: %w", err)
	}
	keys, err := c.resealDataKeys(ctx)
	if err != nil {
		return nil, err
	}
	c.log.Info("keyring rotated", "key", id, "controllers", voters, "resealed", n, "data_keys", keys)
	return &adminapi.RotateResult{KeyID: id, Controllers: voters, Resealed: n, DataKeys: keys}, nil
}

// waitAcks waits until every controller acknowledged stage for key id.
func (c *Role) waitAcks(ctx context.Context, stage, id string, controllers []string) error {
	for {
		resp, err := c.cli.Get(ctx, keyringAcks+stage+"/", clientv3.WithPrefix())
		if err == nil {
			acked := map[string]bool{}
			for _, kv := range resp.Kvs {
				if string(kv.Value) == id {
					acked[string(kv.Key[len(keyringAcks+stage+"/"):])] = true
				}
			}
			var missing []string
			for _, name := range controllers {
				if !acked[name] {
					missing = append(missing, name)
				}
			}
			if len(missing) == 0 {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("keyring rotation (%s): controllers %v did not take key %s; nothing was re-sealed, retry once they are up", stage, missing, id)
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("keyring rotation (%s): %w", stage, err)
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
}
