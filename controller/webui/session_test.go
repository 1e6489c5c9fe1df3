package webui

import (
	"testing"
	"time"
)

func TestSessionsExpireAndAreBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newSessions(time.Hour, 3, func() time.Time { return now })
	a := s.create("hnc_a", "a", "admin")
	now = now.Add(time.Minute)
	b := s.create("hnc_b", "b", "readonly")
	now = now.Add(time.Minute)
	c := s.create("hnc_c", "c", "operator")
	if a.id == b.id || a.csrf == b.csrf || len(a.id) < 40 || len(a.csrf) < 40 {
		t.Fatalf("ids and tokens must be distinct and long: %q %q %q", a.id, b.id, a.csrf)
	}
	// Full: the oldest session ends to make room.
	now = now.Add(time.Minute)
	d := s.create("hnc_d", "d", "admin")
	if _, ok := s.get(a.id); ok {
		t.Error("the oldest session survived a full store")
	}
	for _, x := range []*session{b, c, d} {
		if got, ok := s.get(x.id); !ok || got.credential != x.credential {
			t.Errorf("session %s lost", x.name)
		}
	}
	if s.len() != 3 {
		t.Errorf("%d sessions held, bound 3", s.len())
	}
	// Expired sessions are gone, and go first when room is needed.
	now = b.expires
	if _, ok := s.get(b.id); ok {
		t.Error("an expired session was accepted")
	}
	now = c.expires.Add(time.Second)
	s.create("hnc_e", "e", "admin")
	s.create("hnc_f", "f", "admin")
	if _, ok := s.get(d.id); !ok {
		t.Error("a live session was evicted while expired ones were held")
	}
	s.end(d.id)
	if _, ok := s.get(d.id); ok {
		t.Error("an ended session was accepted")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "/",
		"/machines/m1":      "/machines/m1",
		"/objects?bucket=b": "/objects?bucket=b",
		"//evil.example":    "/",
		"/\\evil.example":   "/",
		"https://evil/":     "/",
		"javascript:x":      "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokenMatches(t *testing.T) {
	if tokenMatches("", "") || tokenMatches("a", "b") || !tokenMatches("abc", "abc") {
		t.Fatal("tokenMatches")
	}
}
