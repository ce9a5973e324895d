// Package metrics is the broker's Prometheus metrics: the one place their
// names, labels and buckets are defined. Each broker has a Metrics of its
// own with a registry of its own, served on a listener apart from the
// public API.
//
// No label carries a personal number, a LegalId, a request ID or a
// caller's address: every label value comes from a small, fixed set (route
// templates, outcome codes, reasons) or from the operator's own peer list,
// so a caller cannot grow the number of series, and a scrape tells nobody
// who asked whom.
package metrics

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/legalmfa/mfa/version"
)

// Metrics is one broker's metrics. It implements the observers that
// broker, notify and the service consume; every method is safe for
// concurrent use and never blocks.
type Metrics struct {
	reg   *prometheus.Registry
	names []string // of the broker's own metrics, as defined below

	httpRequests  *prometheus.CounterVec
	outcomes      *prometheus.CounterVec
	work          *prometheus.HistogramVec
	wait          *prometheus.HistogramVec
	rateLimited   *prometheus.CounterVec
	blocked       prometheus.Counter
	pushes        *prometheus.CounterVec
	pushFailures  prometheus.Counter
	syncs         prometheus.Counter
	withdrawals   *prometheus.CounterVec
	answers       *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	storeDuration *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec
}

// New makes a registry with the Go runtime and process collectors and the
// broker's event metrics. Watch adds what is read at scrape time.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Buckets. The broker's own work is milliseconds; the person's wait is
	// seconds up to the largest timeout; a store operation is a fraction
	// of a millisecond embedded, a network round trip with MongoDB.
	workBuckets := []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}
	waitBuckets := []float64{.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180, 300}
	storeBuckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

	m.gauge("mfa_build_info", "Always 1; the version label is the running build's.",
		map[string]string{"version": version.String()}, func() float64 { return 1 })

	m.httpRequests = m.counterVec("mfa_http_requests_total",
		"HTTP requests on the public listener, by route template, method, status and outcome code (none: the answer has no code).",
		"route", "method", "status", "code")
	m.outcomes = m.counterVec("mfa_outcomes_total",
		"MFA requests ended, by flow (mfa, order, peer) and outcome code; a refusal before any push counts too.",
		"flow", "code")
	m.work = m.histogramVec("mfa_broker_seconds",
		"The broker's own work on an MFA request or order, the person's wait left out (Server-Timing's broker).",
		workBuckets, "flow")
	m.wait = m.histogramVec("mfa_wait_seconds",
		"From the push to the answer that decided, or to the end of a wait without one (Server-Timing's device), by flow and whether a device answered.",
		waitBuckets, "flow", "answered")
	m.rateLimited = m.counterVec("mfa_rate_limited_total",
		"Requests refused for a used-up budget: address, requester, peer, person, person-signed, apply.",
		"budget")
	m.blocked = m.counter("mfa_blocked_total",
		"Requests refused because the person answered 'not me' to the same caller before.")
	m.pushes = m.counterVec("mfa_pushes_total",
		"Pushes handed to NATS, one per device asked: new, or resent to a device that synced.",
		"kind")
	m.pushFailures = m.counter("mfa_push_failures_total",
		"Pushes NATS did not take.")
	m.syncs = m.counter("mfa_syncs_total",
		"Syncs from devices asking what they missed.")
	m.withdrawals = m.counterVec("mfa_withdrawals_total",
		"Withdrawals sent to devices, by why the request ended.",
		"why")
	m.answers = m.counterVec("mfa_answers_accepted_total",
		"Devices' signed answers that decided a request, by decision.",
		"decision")
	m.refusals = m.counterVec("mfa_answers_refused_total",
		"Devices' answers refused, by reason.",
		"reason")
	m.storeDuration = m.histogramVec("mfa_store_operation_seconds",
		"Identity store operations, by operation.",
		storeBuckets, "op")
	m.storeErrors = m.counterVec("mfa_store_errors_total",
		"Identity store operations that failed for the store being unavailable, by operation.",
		"op")
	return m
}

// Handler serves the registry in Prometheus' text format (or OpenMetrics
// when asked).
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg,
		EnableOpenMetrics: true,
	}))
}

// Gatherer is the registry, for tests and tools that read it in process.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Names lists every metric the registry can serve: the broker's own, as
// defined here whether or not any has a value yet, and those of the Go
// runtime and process collectors. A histogram's series add _bucket, _sum
// and _count to its name.
func (m *Metrics) Names() []string {
	names := slices.Clone(m.names)
	if mfs, err := m.reg.Gather(); err == nil {
		for _, mf := range mfs {
			names = append(names, mf.GetName())
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Own lists the broker's own metrics: those this package defines.
func (m *Metrics) Own() []string {
	names := slices.Clone(m.names)
	slices.Sort(names)
	return names
}

func (m *Metrics) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	m.register(name, c)
	return c
}

func (m *Metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.register(name, v)
	return v
}

func (m *Metrics) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	m.register(name, v)
	return v
}

func (m *Metrics) gauge(name, help string, constLabels prometheus.Labels, f func() float64) {
	m.register(name, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constLabels}, f))
}

func (m *Metrics) counterFunc(name, help string, f func() float64) {
	m.register(name, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

func (m *Metrics) register(name string, c prometheus.Collector) {
	m.reg.MustRegister(c)
	m.names = append(m.names, name)
}

// Request counts one HTTP request on the public listener. route is the
// router's template ("/Identities/:id"), "" when no route matched: the
// raw path would let any caller make series without end.
func (m *Metrics) Request(route, method string, status int, code string) {
	if route == "" {
		route = "unmatched"
	}
	if code == "" {
		code = "none"
	}
	m.httpRequests.WithLabelValues(route, knownMethod(method), strconv.Itoa(status), code).Inc()
}

// knownMethod is method when it is one of HTTP's own, else "other": the
// method is whatever the caller sent.
func knownMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// Work records the broker's own time on one request of a flow.
func (m *Metrics) Work(flow string, d time.Duration) {
	m.work.WithLabelValues(flow).Observe(d.Seconds())
}

// Outcome counts a request of a flow ended with code, and the person's
// wait when there was one (waited > 0: a push went out).
func (m *Metrics) Outcome(flow, code string, waited time.Duration) {
	m.outcomes.WithLabelValues(flow, code).Inc()
	if waited > 0 {
		m.wait.WithLabelValues(flow, strconv.FormatBool(decided(code))).Observe(waited.Seconds())
	}
}

// decided reports whether an outcome code is a device's answer.
func decided(code string) bool {
	switch code {
	case "approved", "denied", "denied-not-me", "wrong-number":
		return true
	}
	return false
}

// RateLimited counts a request refused for a used-up budget.
func (m *Metrics) RateLimited(budget string) { m.rateLimited.WithLabelValues(budget).Inc() }

// Blocked counts a request refused by a "not me" block.
func (m *Metrics) Blocked() { m.blocked.Inc() }

// Pushes counts pushes handed to NATS (sent) and refused by it (failed),
// for a new request or resent on a device's sync.
func (m *Metrics) Pushes(sent, failed int, resent bool) {
	kind := "new"
	if resent {
		kind = "resent"
	}
	m.pushes.WithLabelValues(kind).Add(float64(sent))
	m.pushFailures.Add(float64(failed))
}

// Withdrawals counts n withdrawals sent for a request that ended for why.
func (m *Metrics) Withdrawals(why string, n int) {
	if n > 0 {
		m.withdrawals.WithLabelValues(why).Add(float64(n))
	}
}

// Sync counts a device's sync.
func (m *Metrics) Sync() { m.syncs.Inc() }

// AnswerAccepted counts an answer that decided its request.
func (m *Metrics) AnswerAccepted(decision string) { m.answers.WithLabelValues(decision).Inc() }

// AnswerRefused counts an answer refused, for a reason from notify's
// fixed list.
func (m *Metrics) AnswerRefused(reason string) { m.refusals.WithLabelValues(reason).Inc() }

// StoreOperation records one identity store operation; unavailable says
// it failed for the store, not for what was asked.
func (m *Metrics) StoreOperation(op string, d time.Duration, unavailable bool) {
	m.storeDuration.WithLabelValues(op).Observe(d.Seconds())
	if unavailable {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// Sources are what the broker already counts, read at scrape time: the
// gauges cost nothing between scrapes. A nil function leaves its metrics
// out.
type Sources struct {
	// Pending is the MFA requests and orders waiting for an answer here;
	// PendingLimit the most that may (0: no limit).
	Pending      func() int
	PendingLimit int
	// OrdersRunning is the orders whose wait runs here.
	OrdersRunning func() int
	// BlocksInForce is the "not me" blocks in force, shared by every
	// replica.
	BlocksInForce func() int
	// NATSConnected and NATSReconnects are the broker's NATS connection.
	NATSConnected  func() bool
	NATSReconnects func() uint64
	// Store names the identity store ("embedded", "mongodb"); StorePing
	// reaches it, within the context's deadline.
	Store     string
	StorePing func(context.Context) error
	// Peers lists the federated peers; nil when the broker does not
	// federate.
	Peers func() []Peer
}

// Peer is a federated peer as the metrics see it. Its ID and domain are
// the operator's own list of peers: a bounded label set.
type Peer struct {
	ID, Domain              string
	Approved, Share, LinkUp bool
	References              int
}

// storePingTimeout bounds the store ping a scrape makes: a store that
// does not answer within it is down as far as the scrape is concerned.
const storePingTimeout = 2 * time.Second

// Watch registers the metrics read at scrape time from src. Call it once,
// when the broker is up.
func (m *Metrics) Watch(src Sources) {
	if src.Pending != nil {
		m.gauge("mfa_pending_requests", "MFA requests and orders waiting for an answer here.", nil,
			func() float64 { return float64(src.Pending()) })
		m.gauge("mfa_pending_requests_limit", "The most MFA requests and orders that may wait at once (--max-pending; 0: no limit).", nil,
			func() float64 { return float64(src.PendingLimit) })
	}
	if src.OrdersRunning != nil {
		m.gauge("mfa_orders_running", "Orders whose wait for the person runs here.", nil,
			func() float64 { return float64(src.OrdersRunning()) })
	}
	if src.BlocksInForce != nil {
		m.gauge("mfa_blocks", "Callers blocked from asking a person after 'not me', in force across the replicas.", nil,
			func() float64 { return float64(src.BlocksInForce()) })
	}
	if src.NATSConnected != nil {
		m.gauge("mfa_nats_up", "1 while the broker's NATS connection is up.", nil,
			func() float64 { return boolFloat(src.NATSConnected()) })
	}
	if src.NATSReconnects != nil {
		m.counterFunc("mfa_nats_reconnects_total", "Times the broker's NATS connection was made again.",
			func() float64 { return float64(src.NATSReconnects()) })
	}
	if src.StorePing != nil {
		m.gauge("mfa_store_up", "1 while the identity store answers a ping.", prometheus.Labels{"store": src.Store},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), storePingTimeout)
				defer cancel()
				return boolFloat(src.StorePing(ctx) == nil)
			})
	}
	if src.Peers != nil {
		pc := newPeerCollector(src.Peers)
		m.reg.MustRegister(pc)
		m.names = append(m.names, pc.names()...)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
