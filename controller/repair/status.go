package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/keyspace"
)

// Metrics are repair's Prometheus metrics. A controller makes one set and hands it to the
// repairer of every term it leads.
type Metrics struct {
	AtRiskChunks  *prometheus.GaugeVec
	AtRiskBytes   *prometheus.GaugeVec
	Unrecoverable prometheus.Gauge
	Chunks        prometheus.Counter
	Bytes         prometheus.Counter
	Failures      prometheus.Counter
	SweepSeconds  prometheus.Gauge
	SweepRecords  prometheus.Gauge
	Unreferenced  prometheus.Counter
}

// NewMetrics makes the metrics and registers them with reg (nil: registered nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		AtRiskChunks:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hanode_repair_at_risk_chunks", Help: "Chunks needing repair by priority, as of the last sweep."}, []string{"priority"}),
		AtRiskBytes:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hanode_repair_at_risk_bytes", Help: "Bytes of the chunks needing repair by priority, as of the last sweep."}, []string{"priority"}),
		Unrecoverable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hanode_repair_unrecoverable_chunks", Help: "Chunks with no readable replica left, as of the last sweep."}),
		Chunks:        prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_repair_chunks_total", Help: "Replicas re-created by repair."}),
		Bytes:         prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_repair_bytes_total", Help: "Bytes of the replicas re-created by repair."}),
		Failures:      prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_repair_failures_total", Help: "Repairs that failed (retried by a later sweep)."}),
		SweepSeconds:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "hanode_repair_sweep_seconds", Help: "Duration of the last complete sweep of the records."}),
		SweepRecords:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "hanode_repair_sweep_records", Help: "Records read by the last complete sweep."}),
		Unreferenced:  prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_repair_unreferenced_chunks_total", Help: "Chunk files no record references, queued for deletion."}),
	}
	if reg != nil {
		reg.MustRegister(m.AtRiskChunks, m.AtRiskBytes, m.Unrecoverable, m.Chunks, m.Bytes, m.Failures, m.SweepSeconds, m.SweepRecords, m.Unreferenced)
	}
	return m
}

func (m *Metrics) observe(c *counts) {
	for p := range numPriorities {
		m.AtRiskChunks.WithLabelValues(p.String()).Set(float64(c.atRisk[p].chunks))
		m.AtRiskBytes.WithLabelValues(p.String()).Set(float64(c.atRisk[p].bytes))
	}
	m.Unrecoverable.Set(float64(c.unrecoverable))
	m.SweepSeconds.Set(c.finished.Sub(c.started).Seconds())
	m.SweepRecords.Set(float64(c.records))
}

// progress is what the status shows: the last complete sweep, the one under way, and the
// replicas made since, sampled for a rate.
type progress struct {
	mu        sync.Mutex
	last, now *counts
	chunks    int64
	bytes     int64
	failures  int64
	samples   []sample // (time, bytes) over the last rateWindow
	// bytesSinceLast counts bytes repaired since the last complete sweep started.
	bytesSinceLast int64
	bytesSinceNow  int64
	// offLast and offNow count replicas taken out of records per machine since the last
	// complete sweep started and since the one under way started.
	offLast, offNow map[string]*class
}

func (p *progress) movedOff(m string, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, mp := range []*map[string]*class{&p.offLast, &p.offNow} {
		if *mp == nil {
			*mp = map[string]*class{}
		}
		c := (*mp)[m]
		if c == nil {
			c = &class{}
			(*mp)[m] = c
		}
		c.chunks++
		c.bytes += size
	}
}

type sample struct {
	at    time.Time
	bytes int64
}

const rateWindow = time.Minute

func (p *progress) sweepStarted(c *counts) {
	p.mu.Lock()
	p.now, p.bytesSinceNow, p.offNow = c.clone(), 0, nil
	p.mu.Unlock()
}

// swept publishes the counts of the sweep under way (a copy: the sweep goes on counting).
func (p *progress) swept(c *counts) {
	p.mu.Lock()
	p.now = c.clone()
	p.mu.Unlock()
}

func (c *counts) clone() *counts {
	d := *c
	d.machines = make(map[string]*class, len(c.machines))
	for m, mc := range c.machines {
		x := *mc
		d.machines[m] = &x
	}
	return &d
}

func (p *progress) sweepDone(c *counts) {
	p.mu.Lock()
	p.last, p.now = c.clone(), nil
	p.bytesSinceLast = p.bytesSinceNow
	p.offLast = p.offNow
	p.mu.Unlock()
}

func (p *progress) repaired(n int64) {
	p.mu.Lock()
	p.chunks++
	p.bytes += n
	p.bytesSinceLast += n
	p.bytesSinceNow += n
	p.mu.Unlock()
}

func (p *progress) failed() {
	p.mu.Lock()
	p.failures++
	p.mu.Unlock()
}

// Status returns the repair status as the master sees it now.
func (r *Repairer) Status() adminapi.Repair {
	r.defaults()
	p := &r.progress
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now().UTC()
	p.samples = append(p.samples, sample{now, p.bytes})
	for len(p.samples) > 1 && now.Sub(p.samples[0].at) > rateWindow {
		p.samples = p.samples[1:]
	}
	st := adminapi.Repair{Master: r.Name, Epoch: r.Epoch, Updated: now, RepairedChunks: p.chunks, RepairedBytes: p.bytes, Failures: p.failures, ETASeconds: -1, AtRisk: []adminapi.RepairClass{}, Machines: []adminapi.RepairMachine{}}
	if s := p.samples[0]; now.Sub(s.at) > time.Second {
		st.Rate = float64(p.bytes-s.bytes) / now.Sub(s.at).Seconds()
	}
	st.Queued, st.InFlight = r.queue.Len()
	st.Rebalance = r.rebalanceStatus()
	sweep := func(c *counts) *adminapi.RepairSweep {
		return &adminapi.RepairSweep{Started: c.started, Finished: c.finished, Records: c.records, Chunks: c.chunks}
	}
	if p.now != nil {
		st.Sweeping = sweep(p.now)
	}
	c := p.last
	if c == nil {
		c = p.now // the first sweep: partial counts
	}
	if c != nil {
		if p.last != nil {
			st.Sweep = sweep(p.last)
		}
		var total int64
		for pr := range numPriorities {
			st.AtRisk = append(st.AtRisk, adminapi.RepairClass{Priority: pr.String(), Chunks: c.atRisk[pr].chunks, Bytes: c.atRisk[pr].bytes})
			total += c.atRisk[pr].bytes
		}
		st.Waiting = adminapi.RepairClass{Priority: "waiting", Chunks: c.waiting.chunks, Bytes: c.waiting.bytes}
		st.Unrecoverable = c.unrecoverable
		st.BytesLeft = max(total-p.bytesSinceLast, 0)
		if st.BytesLeft == 0 {
			st.ETASeconds = 0
		} else if st.Rate > 0 {
			st.ETASeconds = float64(st.BytesLeft) / st.Rate
		}
		v := r.cur.Load()
		names := map[string]bool{}
		for m := range c.machines {
			names[m] = true
		}
		if v != nil {
			for m := range v.live {
				names[m] = true
			}
			for m := range v.states {
				names[m] = true
			}
		}
		for m := range names {
			rm := adminapi.RepairMachine{Name: m}
			if mc := c.machines[m]; mc != nil {
				rm.Replicas, rm.Bytes = mc.chunks, mc.bytes
			}
			rm.Left, rm.LeftBytes = rm.Replicas, rm.Bytes
			if off := p.offLast[m]; off != nil && p.last != nil {
				rm.Left, rm.LeftBytes = max(rm.Replicas-off.chunks, 0), max(rm.Bytes-off.bytes, 0)
			}
			if v != nil {
				rm.State = v.state(m)
				if s := v.states[m]; s != nil {
					rm.DownSince = s.DownSince
				}
			}
			st.Machines = append(st.Machines, rm)
		}
		sort.Slice(st.Machines, func(i, j int) bool { return st.Machines[i].Name < st.Machines[j].Name })
	}
	return st
}

// publishEvery is how often the master rewrites keyspace.RepairStatus.
const publishEvery = 2 * time.Second

// publish writes the status to etcd under the fence until ctx ends.
func (r *Repairer) publish(ctx context.Context) {
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		val, _ := json.Marshal(r.Status())
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		// The plan's progress goes with it: a new master resumes the counts from there.
		ops := append([]clientv3.Op{clientv3.OpPut(keyspace.RepairStatus, string(val))}, r.movedOps()...)
		_, _, err := r.txn(wctx, nil, ops)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.Log.Debug("publishing the repair status", "err", err)
		}
	}
}

// ReadStatus returns the last status the active master published (nil: none yet).
func ReadStatus(ctx context.Context, cli *clientv3.Client) (*adminapi.Repair, error) {
	resp, err := cli.Get(ctx, keyspace.RepairStatus)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", keyspace.RepairStatus, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var st adminapi.Repair
	if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
		return nil, fmt.Errorf("decode %s: %w", keyspace.RepairStatus, err)
	}
	return &st, nil
}
