// Package metrics holds a pipeline run's Prometheus metrics and serves
// them, with a small JSON status, over HTTP.
//
// Every run builds its own registry (New); nothing is registered with the
// process-wide default registry. Every method works on a nil *Metrics and
// then does nothing, so the engine calls them unconditionally.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/engine/throttle"
)

// Phases as metric label values.
const (
	PhaseFull        = throttle.PhaseFull
	PhaseIncremental = throttle.PhaseIncremental
)

// Metrics are one run's metrics, in a registry of their own. Safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	rows, bytes   *prometheus.CounterVec
	chunksPlanned prometheus.Gauge
	chunksBefore  prometheus.Gauge
	chunksDone    prometheus.Counter
	transactions  prometheus.Counter
	lagSeconds    prometheus.Gauge
	lagBytes      prometheus.Gauge
	slotRetained  prometheus.Gauge
	applyRows     prometheus.Histogram
	applySeconds  prometheus.Histogram
	retries       *prometheus.CounterVec
	phase         *prometheus.GaugeVec

	mu       sync.Mutex
	throttle *throttle.Throttle
	phases   []string
}

// New returns the metrics of one run of the named pipeline: every metric
// carries the label pipeline="<name>". The registry also holds the Go
// runtime and process collectors.
func New(pipeline string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": pipeline}, m.reg)
	m.rows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_rows_total",
		Help: "Rows moved: copied rows (phase full) or applied row changes (phase incremental), per source table.",
	}, []string{"phase", "table"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_bytes_total",
		Help: "Bytes of row data moved, per source table and phase.",
	}, []string{"phase", "table"})
	m.chunksPlanned = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_copy_chunks",
		Help: "Chunks of the full copy, done or not.",
	})
	m.chunksBefore = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_copy_chunks_done_before",
		Help: "Chunks of the full copy already at the sink when the copy (re)started.",
	})
	m.chunksDone = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_copy_chunks_done_total",
		Help: "Chunks of the full copy committed at the sink by this run.",
	})
	m.transactions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_stream_transactions_total",
		Help: "Source transactions applied at the sink.",
	})
	m.lagSeconds = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_lag_seconds",
		Help: "Seconds since the commit, at the source, of the last transaction applied at the sink.",
	})
	m.lagBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_lag_bytes",
		Help: "Bytes of WAL between the source's end of WAL and the position the sink has made durable.",
	})
	m.slotRetained = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_slot_retained_wal_bytes",
		Help: "WAL the source retains for the pipeline's replication slot (from pg_replication_slots).",
	})
	m.applyRows = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sluice_apply_batch_rows",
		Help:    "Row changes per sink transaction while streaming.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 10), // 1 .. 262144
	})
	m.applySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sluice_apply_batch_duration_seconds",
		Help:    "Time from the first change of a sink transaction to its commit while streaming.",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 12), // 1ms .. ~3m
	})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_retries_total",
		Help: "Retries after an error, by class (connection, other).",
	}, []string{"class"})
	m.phase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_phase",
		Help: "1 for the phase the pipeline is in (schema, copy, stream, done), else 0.",
	}, []string{"phase"})
	reg.MustRegister(m.rows, m.bytes, m.chunksPlanned, m.chunksBefore, m.chunksDone, m.transactions, m.lagSeconds, m.lagBytes,
		m.slotRetained, m.applyRows, m.applySeconds, m.retries, m.phase, throttleCollector{m})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range []string{"connection", "other"} {
		m.retries.WithLabelValues(c) // show zeros before the first retry
	}
	return m
}

// Registry returns the run's registry.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// AddRows counts rows and bytes of a source table moved in a phase
// (PhaseFull, PhaseIncremental).
func (m *Metrics) AddRows(phase, table string, rows, bytes int64) {
	if m == nil {
		return
	}
	if rows > 0 {
		m.rows.WithLabelValues(phase, table).Add(float64(rows))
	}
	if bytes > 0 {
		m.bytes.WithLabelValues(phase, table).Add(float64(bytes))
	}
}

// SetChunks sets the chunks of the full copy: planned, of which done were
// finished before this attempt.
func (m *Metrics) SetChunks(planned, done int) {
	if m == nil {
		return
	}
	m.chunksPlanned.Set(float64(planned))
	m.chunksBefore.Set(float64(done))
}

// ChunkDone counts a chunk committed at the sink.
func (m *Metrics) ChunkDone() {
	if m == nil {
		return
	}
	m.chunksDone.Inc()
}

// Applied records one sink transaction of the stream: how many source
// transactions and row changes it held and how long it took.
func (m *Metrics) Applied(txns, rows int64, d time.Duration) {
	if m == nil {
		return
	}
	m.transactions.Add(float64(txns))
	m.applyRows.Observe(float64(rows))
	m.applySeconds.Observe(d.Seconds())
}

// SetLag sets the replication lag.
func (m *Metrics) SetLag(seconds float64, bytes int64) {
	if m == nil {
		return
	}
	m.lagSeconds.Set(seconds)
	m.lagBytes.Set(float64(bytes))
}

// SetSlotRetained sets the WAL the slot retains at the source.
func (m *Metrics) SetSlotRetained(bytes int64) {
	if m == nil {
		return
	}
	m.slotRetained.Set(float64(bytes))
}

// Retry counts a retry of the given error class.
func (m *Metrics) Retry(class string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(class).Inc()
}

// SetPhase marks phase as the current one.
func (m *Metrics) SetPhase(phase string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.phases {
		m.phase.WithLabelValues(p).Set(0)
	}
	m.phase.WithLabelValues(phase).Set(1)
	for _, p := range m.phases {
		if p == phase {
			return
		}
	}
	m.phases = append(m.phases, phase)
}

// WatchThrottle reports the waits of t's limiters (read at each scrape) as
// sluice_throttle_waits_total and sluice_throttle_wait_seconds_total. A
// later call replaces the throttle watched.
func (m *Metrics) WatchThrottle(t *throttle.Throttle) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.throttle = t
	m.mu.Unlock()
}

var (
	throttleWaitsDesc = prometheus.NewDesc("sluice_throttle_waits_total",
		"Times the throttle held a batch back, by phase and the limit that held it longest.", []string{"phase", "limit"}, nil)
	throttleSecondsDesc = prometheus.NewDesc("sluice_throttle_wait_seconds_total",
		"Seconds batches were held back by the throttle, by phase and limit.", []string{"phase", "limit"}, nil)
)

// throttleCollector reads the watched throttle's counters at scrape time.
type throttleCollector struct{ m *Metrics }

func (c throttleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- throttleWaitsDesc
	ch <- throttleSecondsDesc
}

func (c throttleCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	t := c.m.throttle
	c.m.mu.Unlock()
	for _, phase := range []string{PhaseFull, PhaseIncremental} {
		for limit, s := range t.Phase(phase).Stats() {
			ch <- prometheus.MustNewConstMetric(throttleWaitsDesc, prometheus.CounterValue, float64(s.Waits), phase, limit)
			ch <- prometheus.MustNewConstMetric(throttleSecondsDesc, prometheus.CounterValue, s.Waited.Seconds(), phase, limit)
		}
	}
}
