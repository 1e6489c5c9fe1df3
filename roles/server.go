package roles

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hanode/hanode/security/access"
)

// server is one role's HTTPS listener with the endpoints every role has: /healthz (the process
// is alive), /readyz (the role is serving; 503 with the reason otherwise) and /metrics.
type server struct {
	role     string
	addr     string
	mux      *http.ServeMux
	registry *prometheus.Registry
	log      *slog.Logger
	http     *http.Server
	ln       net.Listener

	// metricsAuth guards /metrics: a cluster certificate by default; the controller also takes
	// readonly credentials (set before serve).
	metricsAuth func(http.Handler) http.Handler

	mu       sync.Mutex
	checks   []readyCheck
	draining bool
	done     chan error
}

type readyCheck struct {
	name  string
	check func() error
}

func newServer(role, addr string, tlsCfg *tls.Config, log *slog.Logger, extra prometheus.Gatherer) *server {
	s := &server{role: role, addr: addr, mux: http.NewServeMux(), registry: prometheus.NewRegistry(), log: log, done: make(chan error, 1)}
	// extra (prometheus.DefaultGatherer, where etcd registers) already has the Go and process
	// collectors; registering them twice would make every scrape fail.
	var g prometheus.Gatherer = s.registry
	if extra != nil {
		g = prometheus.Gatherers{s.registry, extra}
	} else {
		s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{Registry: s.registry})
	s.metricsAuth = access.RequireCertificate
	s.mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metricsAuth(metrics).ServeHTTP(w, r)
	}))
	// Profiles for operators and benchmarks: cluster certificates only (curl --cert).
	s.mux.Handle("/debug/pprof/", access.RequireCertificate(http.HandlerFunc(pprof.Index)))
	s.mux.Handle("/debug/pprof/profile", access.RequireCertificate(http.HandlerFunc(pprof.Profile)))
	s.http = &http.Server{
		Handler:           s.mux,
		TLSConfig:         tlsCfg.Clone(), // net/http sets NextProtos on its copy; servers must not share one
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// addCheck adds a readiness condition; /readyz is 200 only when every check passes.
func (s *server) addCheck(name string, check func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, readyCheck{name, check})
}

// ready returns nil or the first failing check, naming it.
func (s *server) ready() error {
	s.mu.Lock()
	draining, checks := s.draining, s.checks
	s.mu.Unlock()
	if draining {
		return errors.New("shutting down")
	}
	for _, c := range checks {
		if err := c.check(); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return nil
}

func (s *server) serveReady(w http.ResponseWriter, r *http.Request) {
	err := s.ready()
	w.Header().Set("Content-Type", "application/json")
	body := map[string]any{"role": s.role, "ready": err == nil}
	if err != nil {
		body["reason"] = err.Error()
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// listen binds the port now, so that a port in use fails startup with a clear error.
func (s *server) listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", s.role, s.addr, err)
	}
	s.ln = ln
	return nil
}

// serve runs the TLS server on the bound listener in the background.
func (s *server) serve() {
	go func() {
		err := s.http.ServeTLS(s.ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
}

// drain marks the role not ready, then lets in-flight requests finish until ctx ends.
func (s *server) drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	if s.ln == nil {
		return
	}
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("drain cut short; closing open connections", "err", err)
		s.http.Close()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
