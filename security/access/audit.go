package access

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/time/rate"

	"github.com/hanode/hanode/internal/keyspace"
)

// AuditPrefix holds the audit trail, one key per mutating admin action, in time order.
const AuditPrefix = keyspace.Audit

// AuditEntry is one audited action.
type AuditEntry struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`
	Action  string    `json:"action"` // method and path
	Target  string    `json:"target,omitempty"`
	Result  int       `json:"result"` // HTTP status
	Remote  string    `json:"remote"`
	Machine string    `json:"answered_by"`
}

// Bounds of the audit trail: every text field of an entry is cut to MaxAuditField bytes, and
// entries older than AuditMaxAge or beyond the newest AuditMaxEntries are deleted (by the
// active master every minute, and by every controller after each trimEvery-th entry it
// writes). So the trail holds at most about AuditMaxEntries × 1 KiB whatever callers send.
const (
	MaxAuditField   = 256
	AuditMaxAge     = 90 * 24 * time.Hour
	AuditMaxEntries = 20000
	trimEvery       = 256
)

// Auditor records mutating admin actions in etcd and in the log. Refusals of unauthenticated
// callers are not stored: they are counted (hanode_admin_unauthenticated_refusals_total) and
// sampled into the log, so that nobody without a credential can make etcd grow.
type Auditor struct {
	cli     *clientv3.Client
	log     *slog.Logger
	machine string
	// MaxAge and MaxEntries are the retention (AuditMaxAge, AuditMaxEntries unless set).
	MaxAge     time.Duration
	MaxEntries int

	written  atomic.Int64
	trimming atomic.Bool
	refused  *prometheus.CounterVec
	sample   *rate.Limiter
}

// NewAuditor returns an Auditor writing as machine.
func NewAuditor(cli *clientv3.Client, log *slog.Logger, machine string) *Auditor {
	return &Auditor{cli: cli, log: log, machine: machine, MaxAge: AuditMaxAge, MaxEntries: AuditMaxEntries,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanode_admin_unauthenticated_refusals_total",
			Help: "Admin API and join requests refused for want of a valid credential or token, by endpoint kind; not stored in the audit trail."}, []string{"kind"}),
		sample: rate.NewLimiter(rate.Every(time.Second), 1)}
}

// Register adds the auditor's metrics to reg.
func (a *Auditor) Register(reg prometheus.Registerer) error { return reg.Register(a.refused) }

// bound cuts s to MaxAuditField bytes (on a rune boundary), saying how much was cut.
func bound(s string) string {
	if len(s) <= MaxAuditField {
		return s
	}
	cut := MaxAuditField - 24
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…(%d bytes)", len(s))
}

// Record writes one entry, every text field bounded. A failure to store it is logged, not
// returned: the log line is the second copy of the trail.
func (a *Auditor) Record(ctx context.Context, e AuditEntry) {
	e.Machine = a.machine
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.Who, e.Action, e.Target, e.Remote = bound(e.Who), bound(e.Action), bound(e.Target), bound(e.Remote)
	a.log.Info("audit", "who", e.Who, "action", e.Action, "target", e.Target, "result", e.Result, "remote", e.Remote)
	val, _ := json.Marshal(e)
	key := fmt.Sprintf("%s%020d-%s", AuditPrefix, e.Time.UnixNano(), a.machine)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if _, err := a.cli.Put(ctx, key, string(val)); err != nil {
		a.log.Warn("could not store audit entry in etcd", "key", key, "err", err)
	}
	if a.written.Add(1)%trimEvery == 0 && a.trimming.CompareAndSwap(false, true) {
		go func() {
			defer a.trimming.Store(false)
			tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := a.Trim(tctx); err != nil {
				a.log.Warn("could not trim the audit trail", "err", err)
			}
		}()
	}
}

// Refused counts a request refused for want of any valid credential (kind: admin or join)
// and logs a sample of them (at most one a second); nothing is stored.
func (a *Auditor) Refused(kind, action, remote string) {
	a.refused.WithLabelValues(kind).Inc()
	if a.sample.Allow() {
		a.log.Info("unauthenticated request refused (sampled: at most one logged a second; all are counted in hanode_admin_unauthenticated_refusals_total)",
			"kind", kind, "action", bound(action), "remote", bound(remote))
	}
}

// Trim deletes the entries older than MaxAge and all but the newest MaxEntries. It returns
// how many it deleted.
func (a *Auditor) Trim(ctx context.Context) (int64, error) {
	var n int64
	// Keys are <prefix><unix nanos, 20 digits>-<machine>: by age is one range.
	cutoff := fmt.Sprintf("%s%020d", AuditPrefix, time.Now().Add(-a.MaxAge).UnixNano())
	resp, err := a.cli.Delete(ctx, AuditPrefix, clientv3.WithRange(cutoff))
	if err != nil {
		return 0, fmt.Errorf("trim the audit trail by age: %w", err)
	}
	n += resp.Deleted
	cnt, err := a.cli.Get(ctx, AuditPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return n, fmt.Errorf("count the audit trail: %w", err)
	}
	if excess := cnt.Count - int64(a.MaxEntries); excess > 0 {
		// The oldest excess keys: the last of them bounds the range to delete.
		old, err := a.cli.Get(ctx, AuditPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(excess))
		if err != nil || len(old.Kvs) == 0 {
			return n, fmt.Errorf("find the oldest audit entries: %w", err)
		}
		last := string(old.Kvs[len(old.Kvs)-1].Key)
		resp, err := a.cli.Delete(ctx, AuditPrefix, clientv3.WithRange(last+"\x00"))
		if err != nil {
			return n, fmt.Errorf("trim the audit trail by count: %w", err)
		}
		n += resp.Deleted
	}
	return n, nil
}

// RunTrim trims the trail every interval until ctx ends (the active master runs it).
func (a *Auditor) RunTrim(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := a.Trim(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("could not trim the audit trail", "err", err)
		} else if n > 0 {
			a.log.Info("audit trail trimmed", "deleted", n, "max_age", a.MaxAge, "max_entries", a.MaxEntries)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// List returns the newest limit entries, oldest first.
func (a *Auditor) List(ctx context.Context, limit int) ([]AuditEntry, error) {
	resp, err := a.cli.Get(ctx, AuditPrefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("read the audit trail: %w", err)
	}
	out := make([]AuditEntry, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		if err := json.Unmarshal(kv.Value, &out[len(out)-1-i]); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	return out, nil
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// auditTargetKey carries, in a Mutation's request context, where its handler may name the
// target when the path does not (a create whose name is in the body).
type auditTargetKey struct{}

// SetAuditTarget names the target of the audited call ctx belongs to, when target (Mutation's)
// gives none: a handler that creates something named in the request body calls it once it has
// read the name. Outside a Mutation it does nothing.
func SetAuditTarget(ctx context.Context, name string) {
	if t, ok := ctx.Value(auditTargetKey{}).(*string); ok {
		*t = name
	}
}

// Mutation guards a mutating admin handler like Require, and records every call — refused
// ones included — with its principal, target and result. The target is target(r), or what the
// handler named with SetAuditTarget.
func (a *Auditor) Mutation(v Verifier, level string, target func(*http.Request) string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status, err := check(r, v, level)
		named := "" // SetAuditTarget's, from the handler
		who := "anonymous"
		if p.Name != "" {
			who = p.String()
		}
		if err != nil && p.Name == "" {
			// No valid credential at all: counted and sampled, not stored.
			refuse(w, status, err)
			a.Refused("admin", r.Method+" "+r.URL.Path, r.RemoteAddr)
			return
		}
		if err != nil {
			refuse(w, status, err)
		} else {
			rec := &statusRecorder{ResponseWriter: w}
			r = r.WithContext(context.WithValue(WithPrincipal(r.Context(), p), auditTargetKey{}, &named))
			h.ServeHTTP(rec, r)
			status = rec.status
		}
		t := ""
		if target != nil {
			t = target(r)
		}
		if t == "" {
			t = named
		}
		a.Record(r.Context(), AuditEntry{Who: who, Action: r.Method + " " + r.URL.Path, Target: t, Result: status, Remote: r.RemoteAddr})
	})
}
