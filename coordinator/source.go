package coordinator

import (
	"context"
	"net/http"
	"strings"

	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/ratelimit"
	"github.com/hanode/hanode/s3"
	"github.com/hanode/hanode/security/access"
)

// What one client address may cost the cluster in lookups that no cache answers (an access key
// or an anonymous request's bucket not seen lately): missBurst at once, then missRate a second.
// Beyond, SlowDown. Known keys and cached buckets are never limited.
const (
	missRate  = 20
	missBurst = 200
	maxSrc    = 10000
)

type sourceKey struct{}

// clientSource is the address a request comes from: its peer's, or — when the peer is a
// hanode proxy (its certificate says so) — the last address the proxy added to
// X-Forwarded-For.
func clientSource(r *http.Request) string {
	if p, ok := access.FromCertificate(r); ok && p.Has(config.RoleProxy) {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if s := strings.TrimSpace(last); s != "" {
				return s
			}
		}
	}
	return r.RemoteAddr
}

func withSource(ctx context.Context, src string) context.Context {
	return context.WithValue(ctx, sourceKey{}, src)
}

func sourceOf(ctx context.Context) string { s, _ := ctx.Value(sourceKey{}).(string); return s }

// missAllowed reports whether the request's source may cost one more uncached lookup.
func missAllowed(l *ratelimit.PerSource, ctx context.Context) bool {
	return l == nil || l.Allow(sourceOf(ctx))
}

func errSlowDown() error {
	return s3.ErrorFor(s3.CodeSlowDown, "too many requests with unknown access keys or buckets from this address; retry later")
}
