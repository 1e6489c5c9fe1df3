package access

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hanode/hanode/internal/keyspace"
	clientv3 "go.etcd.io/etcd/client/v3"
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

// Auditor records mutating admin actions in etcd and in the log.
type Auditor struct {
	cli     *clientv3.Client
	log     *slog.Logger
	machine string
}

// NewAuditor returns an Auditor writing as machine.
func NewAuditor(cli *clientv3.Client, log *slog.Logger, machine string) *Auditor {
	return &Auditor{cli: cli, log: log, machine: machine}
}

// Record writes one entry. A failure to store it is logged, not returned: the log line is the
// second copy of the trail.
func (a *Auditor) Record(ctx context.Context, e AuditEntry) {
	e.Machine = a.machine
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	a.log.Info("audit", "who", e.Who, "action", e.Action, "target", e.Target, "result", e.Result, "remote", e.Remote)
	val, _ := json.Marshal(e)
	key := fmt.Sprintf("%s%020d-%s", AuditPrefix, e.Time.UnixNano(), a.machine)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if _, err := a.cli.Put(ctx, key, string(val)); err != nil {
		a.log.Warn("could not store audit entry in etcd", "key", key, "err", err)
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

// Mutation guards a mutating admin handler like Require, and records every call — refused
// ones included — with its principal, target and result.
func (a *Auditor) Mutation(v Verifier, level string, target func(*http.Request) string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status, err := check(r, v, level)
		who := "anonymous"
		if p.Name != "" {
			who = p.String()
		}
		if err != nil {
			refuse(w, status, err)
		} else {
			rec := &statusRecorder{ResponseWriter: w}
			h.ServeHTTP(rec, r.WithContext(WithPrincipal(r.Context(), p)))
			status = rec.status
		}
		t := ""
		if target != nil {
			t = target(r)
		}
		a.Record(r.Context(), AuditEntry{Who: who, Action: r.Method + " " + r.URL.Path, Target: t, Result: status, Remote: r.RemoteAddr})
	})
}
