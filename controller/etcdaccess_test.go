package controller

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hanode/hanode/internal/ratelimit"
)

// A source past its burst of etcd-access requests gets 429 with a Retry-After, and the handler
// (a dozen etcd writes) does not run; another source is not affected.
func TestEtcdAccessLimited(t *testing.T) {
	served := 0
	h := limited(ratelimit.New(etcdAccessRate, etcdAccessBurst, 100), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
	}))
	do := func(remote string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/pki/etcd-access", nil)
		r.RemoteAddr = remote
		h.ServeHTTP(w, r)
		return w
	}
	for i := range etcdAccessBurst {
		if w := do("10.0.0.1:4000"); w.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i, w.Code, w.Body)
		}
	}
	w := do("10.0.0.1:4001")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("past the burst: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if served != etcdAccessBurst {
		t.Fatalf("handler ran %d times, want %d", served, etcdAccessBurst)
	}
	if w := do("10.0.0.2:4000"); w.Code != http.StatusOK {
		t.Fatalf("another source: %d", w.Code)
	}
}
