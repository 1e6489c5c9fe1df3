package tokens

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
)

// newToken creates a record for a fresh token and returns the token.
func newToken(t *testing.T, ctx context.Context, s *Store, rec Record) Token {
	t.Helper()
	tok, err := Generate(testCA)
	if err != nil {
		t.Fatal(err)
	}
	rec.ID, rec.SecretHash = tok.ID, HashSecret(tok.Secret)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestStore(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.81.2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := NewStore(cli)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	t.Run("CreateListRevoke", func(t *testing.T) {
		s := &Store{cli: cli, prefix: "/test/crud/"}
		a := newToken(t, ctx, s, Record{Created: now.Add(time.Hour), Description: "second"})
		b := newToken(t, ctx, s, Record{Created: now, Roles: []string{"datanode"}, MaxUses: 3, CreatedBy: "admin"})
		err := s.Create(ctx, Record{ID: a.ID, SecretHash: HashSecret("x"), Created: now})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("create duplicate: err = %v, want ErrExists", err)
		}
		for name, rec := range map[string]Record{
			"bad id":       {ID: "ABC", SecretHash: HashSecret("x")},
			"bad hash":     {ID: "abc123", SecretHash: "plaintext-secret"},
			"negative max": {ID: "abc123", SecretHash: HashSecret("x"), MaxUses: -1},
		} {
			if err := s.Create(ctx, rec); err == nil {
				t.Errorf("%s: Create succeeded", name)
			}
		}
		recs, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || recs[0].ID != b.ID || recs[1].ID != a.ID {
			t.Fatalf("List = %+v, want [%s %s]", recs, b.ID, a.ID)
		}
		if r := recs[0]; r.SecretHash != HashSecret(b.Secret) || r.MaxUses != 3 || r.CreatedBy != "admin" ||
			len(r.Roles) != 1 || !r.Created.Equal(now) || !r.Expires.IsZero() {
			t.Fatalf("record not stored faithfully: %+v", r)
		}
		if err := s.Revoke(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, a.ID); err != nil {
			t.Fatalf("revoke twice: %v", err)
		}
		if err := s.Revoke(ctx, "zzzzzz"); !errors.Is(err, ErrUnknown) {
			t.Fatalf("revoke unknown: err = %v, want ErrUnknown", err)
		}
		recs, err = s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !recs[1].Revoked || recs[0].Revoked {
			t.Fatalf("after revoke: %+v", recs)
		}
		// Created defaults to now.
		c := newToken(t, ctx, s, Record{})
		recs, _ = s.List(ctx)
		if last := recs[len(recs)-1]; last.ID != c.ID || time.Since(last.Created) > time.Minute {
			t.Fatalf("default Created: %+v", last)
		}
	})

	t.Run("RedeemOK", func(t *testing.T) {
		tok := newToken(t, ctx, s, Record{Created: now, Roles: []string{"datanode", "proxy"}, MaxUses: 2})
		rec, err := s.Redeem(ctx, tok.ID, tok.Secret, []string{"datanode"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Uses != 1 || rec.ID != tok.ID {
			t.Fatalf("Redeem returned %+v", rec)
		}
		rec, err = s.Redeem(ctx, tok.ID, tok.Secret, []string{"proxy", "datanode"}, now)
		if err != nil || rec.Uses != 2 {
			t.Fatalf("second redeem = %+v, %v", rec, err)
		}
		_, err = s.Redeem(ctx, tok.ID, tok.Secret, nil, now)
		if !errors.Is(err, ErrUsedUp) {
			t.Fatalf("third redeem of a 2-use token: err = %v, want ErrUsedUp", err)
		}
		// Any role, unlimited uses.
		open := newToken(t, ctx, s, Record{Created: now})
		for range 3 {
			if _, err := s.Redeem(ctx, open.ID, open.Secret, []string{"controller", "admin"}, now); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("RedeemRefusals", func(t *testing.T) {
		good := newToken(t, ctx, s, Record{Created: now, Roles: []string{"datanode"}})
		expiring := newToken(t, ctx, s, Record{Created: now, Expires: now.Add(time.Hour)})
		revoked := newToken(t, ctx, s, Record{Created: now})
		if err := s.Revoke(ctx, revoked.ID); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name   string
			id     string
			secret string
			roles  []string
			now    time.Time
			want   error
		}{
			{"unknown id", "zzzzz9", good.Secret, nil, now, ErrUnknown},
			{"malformed id", "../x", good.Secret, nil, now, ErrUnknown},
			{"wrong secret", good.ID, "0000000000000000", nil, now, ErrBadSecret},
			{"empty secret", good.ID, "", nil, now, ErrBadSecret},
			{"role not allowed", good.ID, good.Secret, []string{"datanode", "controller"}, now, ErrRoleNotAllowed},
			{"expired", expiring.ID, expiring.Secret, nil, now.Add(time.Hour), ErrExpired},
			{"revoked", revoked.ID, revoked.Secret, nil, now, ErrRevoked},
			// The secret is checked first: without it nothing else leaks.
			{"revoked, wrong secret", revoked.ID, "0000000000000000", nil, now, ErrBadSecret},
		}
		for _, c := range cases {
			_, err := s.Redeem(ctx, c.id, c.secret, c.roles, c.now)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
			}
			if err != nil && c.secret != "" && strings.Contains(err.Error(), c.secret) {
				t.Errorf("%s: error echoes the secret: %v", c.name, err)
			}
		}
		// Refusals do not count as uses; a valid redeem still works.
		if _, err := s.Redeem(ctx, expiring.ID, expiring.Secret, nil, now.Add(time.Hour-time.Second)); err != nil {
			t.Fatalf("redeem before expiry: %v", err)
		}
		rec, err := s.Redeem(ctx, good.ID, good.Secret, []string{"datanode"}, now)
		if err != nil || rec.Uses != 1 {
			t.Fatalf("redeem after refusals = %+v, %v", rec, err)
		}
	})

	t.Run("ConcurrentRedeemOneUse", func(t *testing.T) {
		tok := newToken(t, ctx, s, Record{Created: now, MaxUses: 1})
		var ok, usedUp atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				_, err := s.Redeem(ctx, tok.ID, tok.Secret, nil, now)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrUsedUp):
					usedUp.Add(1)
				default:
					t.Errorf("redeem: %v", err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || usedUp.Load() != 9 {
			t.Fatalf("%d succeeded, %d used up; want 1 and 9", ok.Load(), usedUp.Load())
		}
		recs, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.ID == tok.ID && r.Uses != 1 {
				t.Fatalf("Uses = %d, want 1", r.Uses)
			}
		}
	})
}
