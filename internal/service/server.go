// Package service is what every role's process part shares: the role's HTTPS listener with
// /healthz, /readyz and /metrics, JSON replies, the lease-backed registration that tells the
// cluster the role is up, and the machine's clients of etcd and of the controllers. Role
// packages (controller, agent, datanode, coordinator, balancer) build on it; package roles
// composes them into a process.
package service

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

	"github.com/hanode/hanode/internal/tlscork"
	"github.com/hanode/hanode/security/access"
)

// Server is one role's HTTPS listener with the endpoints every role has: /healthz (the process
// is alive), /readyz (the role is serving; 503 with the reason otherwise) and /metrics.
type Server struct {
	role string
	addr string
	log  *slog.Logger
	// Mux serves the role's own endpoints beside the common ones.
	Mux *http.ServeMux
	// Registry is where the role registers its metrics.
	Registry *prometheus.Registry
	// HTTP is the server; a role may replace its Handler before Serve.
	HTTP *http.Server
	// Listener is bound by Listen.
	Listener net.Listener

	// MetricsAuth guards /metrics: a cluster certificate by default; the controller also takes
	// readonly credentials (set before Serve).
	MetricsAuth func(http.Handler) http.Handler

	mu       sync.Mutex
	checks   []readyCheck
	draining bool
}

type readyCheck struct {
	name  string
	check func() error
}

// NewServer prepares the listener of role on addr; extra, if set, is gathered into /metrics
// too (prometheus.DefaultGatherer, where etcd registers).
func NewServer(role, addr string, tlsCfg *tls.Config, log *slog.Logger, extra prometheus.Gatherer) *Server {
	s := &Server{role: role, addr: addr, Mux: http.NewServeMux(), Registry: prometheus.NewRegistry(), log: log}
	// extra (prometheus.DefaultGatherer, where etcd registers) already has the Go and process
	// collectors; registering them twice would make every scrape fail.
	var g prometheus.Gatherer = s.Registry
	if extra != nil {
		g = prometheus.Gatherers{s.Registry, extra}
	} else {
		s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.Mux.HandleFunc("GET /readyz", s.serveReady)
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{Registry: s.Registry})
	s.MetricsAuth = access.RequireCertificate
	s.Mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.MetricsAuth(metrics).ServeHTTP(w, r)
	}))
	// Profiles for operators and benchmarks: cluster certificates only (curl --cert).
	s.Mux.Handle("/debug/pprof/", access.RequireCertificate(http.HandlerFunc(pprof.Index)))
	s.Mux.Handle("/debug/pprof/profile", access.RequireCertificate(http.HandlerFunc(pprof.Profile)))
	s.HTTP = &http.Server{
		Handler:           s.Mux,
		TLSConfig:         tlsCfg.Clone(), // net/http sets NextProtos on its copy; servers must not share one
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// AddCheck adds a readiness condition; /readyz is 200 only when every check passes.
func (s *Server) AddCheck(name string, check func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, readyCheck{name, check})
}

// Ready returns nil or the first failing check, naming it.
func (s *Server) Ready() error {
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

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	err := s.Ready()
	w.Header().Set("Content-Type", "application/json")
	body := map[string]any{"role": s.role, "ready": err == nil}
	if err != nil {
		body["reason"] = err.Error()
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// Listen binds the port now, so that a port in use fails startup with a clear error.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", s.role, s.addr, err)
	}
	s.Listener = ln
	return nil
}

// Serve runs the TLS server on the bound listener in the background. Its connections can be
// corked (tlscork.Writer): a handler streaming large bodies sends each write's TLS records in
// one system call. The listener uses the server's own TLS configuration, whose NextProtos
// (pki.Bundle.ServerConfig: h2 and http/1.1) is also what makes Serve set HTTP/2 up.
func (s *Server) Serve() {
	s.HTTP.ConnContext = tlscork.ConnContext
	go func() { s.report(s.HTTP.Serve(tlscork.Listener(s.Listener, s.HTTP.TLSConfig))) }()
}

// ServeOn runs the server on ln (the bound listener wrapped by the role, e.g. with TLS and the
// PROXY protocol) in the background.
func (s *Server) ServeOn(ln net.Listener) {
	go func() { s.report(s.HTTP.Serve(ln)) }()
}

func (s *Server) report(err error) {
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("server stopped", "addr", s.addr, "err", err)
	}
}

// MarkDraining makes /readyz report the role as shutting down, before Drain.
func (s *Server) MarkDraining() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
}

// Drain marks the role not ready, then lets in-flight requests finish until ctx ends.
func (s *Server) Drain(ctx context.Context) {
	s.MarkDraining()
	if s.Listener == nil {
		return
	}
	if err := s.HTTP.Shutdown(ctx); err != nil {
		s.log.Warn("drain cut short; closing open connections", "err", err)
		s.HTTP.Close()
	}
}

// Close releases a listener that was bound but never served (a role whose start failed).
func (s *Server) Close() {
	if s.Listener != nil {
		s.Listener.Close()
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// WriteJSON writes v as a JSON reply with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": err} with status.
func WriteError(w http.ResponseWriter, status int, err error) {
	WriteJSON(w, status, map[string]string{"error": err.Error()})
}
