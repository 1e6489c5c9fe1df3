package webui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// CookieName is the session cookie. The __Host- prefix makes browsers take it only when it is
// Secure, for path / and without a Domain: no other host or subdomain can plant or read it.
const CookieName = "__Host-hanode-session"

// session is one sign-in. The credential is kept in this process's memory only (the cookie
// carries a random id) and is presented to the admin API on each of the session's calls, so a
// revoked credential ends the session at its next request.
type session struct {
	id         string
	credential string
	name       string // credential id
	level      string
	csrf       string
	created    time.Time
	expires    time.Time
}

// sessions is a bounded store of sessions with an absolute expiry.
type sessions struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(ttl time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, max: max, now: now, m: map[string]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session; when the store is full, expired sessions go, then the oldest.
func (s *sessions) create(credential, name, level string) *session {
	now := s.now()
	ss := &session{id: randomToken(), credential: credential, name: name, level: level, csrf: randomToken(), created: now, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		var oldest *session
		for id, o := range s.m {
			if !now.Before(o.expires) {
				delete(s.m, id)
				continue
			}
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		if len(s.m) >= s.max && oldest != nil {
			delete(s.m, oldest.id)
		}
	}
	s.m[ss.id] = ss
	return ss
}

// get returns the live session with id.
func (s *sessions) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if !s.now().Before(ss.expires) {
		delete(s.m, id)
		return nil, false
	}
	return ss, true
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// tokenMatches compares CSRF tokens in constant time.
func tokenMatches(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
