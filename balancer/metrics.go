package balancer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec   // upstream, code
	errors    *prometheus.CounterVec   // upstream, kind
	duration  *prometheus.HistogramVec // upstream
	ejections *prometheus.CounterVec   // upstream
	repins    *prometheus.CounterVec   // upstream the sessions moved from
	retries   prometheus.Counter
	sessions  *sessionsCollector
}

// newMetrics creates the proxy's metrics and registers them on reg (nil:
// unregistered, so the code never needs nil checks). There is no global
// registry: several proxies can live in one process (tests) on separate
// registries.
func newMetrics(reg prometheus.Registerer, ups func() *upstreamSet) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hanode_proxy_requests_total",
			Help: "Requests proxied, by upstream (none when no upstream was available) and status code.",
		}, []string{"upstream", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hanode_proxy_errors_total",
			Help: "Failures by upstream and kind: dial (no connection), upstream (failed after connecting), canceled, client_body, no_upstream, aborted, proxy.",
		}, []string{"upstream", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hanode_proxy_request_duration_seconds",
			Help: "Time from request arrival to the end of the response, by upstream.",
			// S3 requests range from sub-millisecond HEADs to multi-minute
			// transfers.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"upstream"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hanode_proxy_ejections_total",
			Help: "Times an upstream left the healthy state (failed checks, not ready, or passive ejection).",
		}, []string{"upstream"}),
		repins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hanode_proxy_repins_total",
			Help: "Sessions moved off an upstream (labelled with that upstream) because it failed or was removed.",
		}, []string{"upstream"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hanode_proxy_retries_total",
			Help: "Requests retried on another upstream.",
		}),
		sessions: &sessionsCollector{desc: prometheus.NewDesc(
			"hanode_proxy_open_sessions",
			"Sessions in the session table, by upstream.",
			[]string{"upstream"}, nil), ups: ups},
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.requests, m.errors, m.duration, m.ejections, m.repins, m.retries, m.sessions}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("proxy: register metrics: %w", err)
		}
	}
	return m, nil
}

// sessionsCollector reports the open-session gauge at scrape time from the
// upstreams' counters, so removed upstreams simply stop being reported.
type sessionsCollector struct {
	desc *prometheus.Desc
	ups  func() *upstreamSet
}

func (c *sessionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sessionsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.ups().list {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(u.sessions.Load()), u.id)
	}
}
