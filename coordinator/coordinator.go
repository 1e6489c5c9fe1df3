// Package coordinator is hanode's stateless S3 front end. It authenticates requests (AWS
// Signature V4), cuts objects into chunks, writes every chunk to R datanodes on distinct
// machines, and commits the object's metadata to etcd in one transaction; reads stream chunks
// from a live replica and fail over between replicas mid-stream. Any number of coordinators
// serve the same cluster: all state is in etcd and on the datanodes.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/time/rate"

	"github.com/hanode/hanode/datanode"
	"github.com/hanode/hanode/internal/ratelimit"
	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3/sigv4"
)

// Options configures a Coordinator.
type Options struct {
	Name      string // this machine; X-Hanode-Node on every response
	Etcd      *clientv3.Client
	Datanodes *datanode.Client
	// Lookup returns an access key's secret (through a controller, cached by the caller or not:
	// the coordinator caches it itself).
	Lookup    sigv4.Lookup
	ChunkSize int64
	// InlineMax: an object of at most this many bytes written whole (PutObject, POST, CopyObject)
	// is kept in its metadata record instead of chunks (inline.go); 0 keeps every object in chunks.
	InlineMax int64
	Replicas  int   // cluster default; a bucket may override
	Memory    int64 // write-buffer budget in bytes
	GCGrace   time.Duration
	// WriteTimeout: a write's intent is refreshed every third of it while the write runs.
	WriteTimeout time.Duration
	// A request body must deliver BodyMinBytes within every BodyWindow of time spent waiting
	// for it, or the request fails with RequestTimeout (400) and its buffers are released
	// (defaults 30 s and 32 KiB).
	BodyWindow   time.Duration
	BodyMinBytes int64
	Region       string
	Domains      []string
	Log          *slog.Logger
	Registry     prometheus.Registerer
	// DataKeys makes and opens SSE-S3 data keys (a controller, sse.go); nil: SSE-S3 answers
	// NotImplemented.
	DataKeys DataKeys
	// KMS makes and opens SSE-KMS data keys (a controller, sse.go); nil: SSE-KMS answers
	// NotImplemented.
	KMS KMSKeys
	// KMSKeyTTL is how long an opened SSE-KMS data key is cached (default KMSKeyTTL): the
	// longest a disabled KMS key's objects stay readable through this coordinator.
	KMSKeyTTL time.Duration
}

func (o *Options) check() error {
	switch {
	case o.Name == "":
		return errors.New("coordinator: Name is required")
	case o.Etcd == nil || o.Datanodes == nil || o.Lookup == nil:
		return errors.New("coordinator: Etcd, Datanodes and Lookup are required")
	case o.ChunkSize < 1:
		return fmt.Errorf("coordinator: chunk size %d must be positive", o.ChunkSize)
	case o.Replicas < 1:
		return fmt.Errorf("coordinator: replicas %d must be at least 1", o.Replicas)
	case o.Memory < o.ChunkSize:
		return fmt.Errorf("coordinator: memory %d must hold at least one chunk (%d)", o.Memory, o.ChunkSize)
	case o.InlineMax < 0 || o.InlineMax > MaxInline:
		return fmt.Errorf("coordinator: inline-max %d must be 0 to %d", o.InlineMax, MaxInline)
	case o.WriteTimeout <= 0:
		return fmt.Errorf("coordinator: write timeout %v must be positive", o.WriteTimeout)
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.KMSKeyTTL <= 0 {
		o.KMSKeyTTL = KMSKeyTTL
	}
	if o.BodyWindow <= 0 {
		o.BodyWindow = 30 * time.Second
	}
	if o.BodyMinBytes <= 0 {
		o.BodyMinBytes = 32 << 10
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return nil
}

// Coordinator serves the S3 API.
type Coordinator struct {
	o        Options
	log      *slog.Logger
	meta     *meta.Store
	nodes    *nodes
	health   *health
	keys     *keyCache
	authz    *authzCache
	configs  *configCache  // buckets' configurations, for x-amz-expiration (configcache.go)
	anonLog  *rate.Limiter // samples refused anonymous requests into the log
	verifier *sigv4.Verifier
	bufs     *bufferPool
	copyBufs sync.Pool // *[]byte for streaming reads
	metrics  *metrics
	dataKeys dataKeyCache // opened SSE-S3 data keys (sse.go)
}

// New returns a Coordinator; Run must be running for it to see datanodes.
func New(o Options) (*Coordinator, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	c := &Coordinator{
		o:     o,
		log:   o.Log,
		meta:  meta.New(o.Etcd),
		nodes: newNodes(o.Etcd, o.Log),
		bufs:  newBufferPool(o.Memory, o.ChunkSize),
	}
	c.copyBufs.New = func() any { b := make([]byte, 256<<10); return &b }
	c.keys = newKeyCache(o.Etcd, o.Lookup, o.Log)
	c.keys.limit = ratelimit.New(missRate, missBurst, maxSrc)
	c.authz = newAuthzCache(o.Etcd, o.Log)
	c.configs = newConfigCache(o.Etcd, c.meta, o.Log)
	c.anonLog = rate.NewLimiter(rate.Every(anonLogEvery), 1)
	// Any region name in the credential scope is accepted: a cluster is one region, and clients
	// disagree on its name (s3cmd signs for "US", others for us-east-1 or what they were told).
	c.verifier = &sigv4.Verifier{Lookup: c.keys.lookup}
	c.metrics = newMetrics(o.Registry)
	c.dataKeys = newDataKeyCache(o.Registry)
	c.health = newHealth(o.Datanodes, o.Log, c.nodes.addr, o.Registry)
	return c, nil
}

// Run keeps the datanode view and the key cache current, and probes suspect datanodes, until
// ctx ends.
func (c *Coordinator) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); c.nodes.run(ctx) }()
	go func() { defer wg.Done(); c.keys.run(ctx) }()
	go func() { defer wg.Done(); c.authz.run(ctx) }()
	go func() { defer wg.Done(); c.configs.run(ctx) }()
	go func() { defer wg.Done(); c.health.run(ctx) }()
	wg.Wait()
}

// Ready reports whether the coordinator can serve writes: etcd answers and enough datanodes on
// distinct machines are live for the replication factor.
func (c *Coordinator) Ready(ctx context.Context) error {
	live, synced := c.nodes.count()
	if !synced {
		return errors.New("datanode list not loaded from etcd yet")
	}
	if live < c.o.Replicas {
		return fmt.Errorf("%d datanodes live, replication factor %d needs %d", live, c.o.Replicas, c.o.Replicas)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.o.Etcd.Get(ctx, meta.SettingsKey, clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// Handler returns the S3 API handler.
func (c *Coordinator) Handler() http.Handler { return http.HandlerFunc(c.serveS3) }

type metrics struct {
	requests          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	bytesIn           prometheus.Counter
	bytesOut          prometheus.Counter
	replicaErrors     *prometheus.CounterVec
	readFailures      prometheus.Counter
	hedgedReads       prometheus.Counter
	slowReplicaWrites prometheus.Counter
	inlineWrites      prometheus.Counter
	inlineReads       prometheus.Counter
	inlineFailures    prometheus.Counter
	denied            *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanode_s3_requests_total", Help: "S3 requests by operation and status code."}, []string{"op", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hanode_s3_request_duration_seconds", Help: "S3 request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14)}, []string{"op"}),
		bytesIn:       prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_s3_received_bytes_total", Help: "Object bytes received."}),
		bytesOut:      prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_s3_sent_bytes_total", Help: "Object bytes sent."}),
		replicaErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanode_s3_replica_errors_total", Help: "Failed chunk replica reads and writes, by datanode machine."}, []string{"machine", "op"}),
		readFailures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_s3_chunk_read_failures_total", Help: "Chunk reads that failed on every replica."}),
		hedgedReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_s3_hedged_reads_total",
			Help: "Chunk reads that started another replica because the first had sent nothing within its hedging delay."}),
		slowReplicaWrites: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_s3_slow_replica_writes_total",
			Help: "Extra chunk copies written elsewhere because a replica write was slow to acknowledge."}),
		inlineWrites: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_s3_inline_writes_total",
			Help: "Objects written inline in their metadata record (at most inline-max bytes): no datanode write."}),
		inlineReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_s3_inline_reads_total",
			Help: "Reads (GET, ranged GET, copy source) answered from an inline object's record: no datanode read."}),
		inlineFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_s3_inline_checksum_failures_total",
			Help: "Inline object reads refused because the record's data did not match its SHA-256."}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanode_s3_denied_total",
			Help: "S3 requests refused by authorization, by client (anonymous or authenticated) and reason."}, []string{"client", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.bytesIn, m.bytesOut, m.replicaErrors, m.readFailures, m.hedgedReads, m.slowReplicaWrites, m.denied, m.inlineWrites, m.inlineReads, m.inlineFailures)
	}
	return m
}
