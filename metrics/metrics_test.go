package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value is the sum of a metric's series whose labels include these (name,
// value pairs), read from the registry as a scrape would: a counter's or
// gauge's value, a histogram's count.
func value(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, metric := range mf.GetMetric() {
			if hasLabels(metric, labels) {
				sum += sampleValue(metric)
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func TestEvents(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		do     func(m *Metrics)
		metric string
		labels []string
		want   float64
	}{
		{"request by route", func(m *Metrics) { m.Request("/Identities/:id", "GET", 200, "") },
			"mfa_http_requests_total", []string{"route", "/Identities/:id", "method", "GET", "status", "200", "code", "none"}, 1},
		{"request matching no route", func(m *Metrics) { m.Request("", "GET", 404, "not-found") },
			"mfa_http_requests_total", []string{"route", "unmatched", "code", "not-found"}, 1},
		{"a method of the caller's invention", func(m *Metrics) { m.Request("", "BREW", 405, "method-not-allowed") },
			"mfa_http_requests_total", []string{"method", "other"}, 1},
		{"outcome", func(m *Metrics) { m.Outcome("mfa", "approved", time.Second) },
			"mfa_outcomes_total", []string{"flow", "mfa", "code", "approved"}, 1},
		{"an answered wait", func(m *Metrics) { m.Outcome("order", "denied-not-me", time.Second) },
			"mfa_wait_seconds", []string{"flow", "order", "answered", "true"}, 1},
		{"an unanswered wait", func(m *Metrics) { m.Outcome("mfa", "timeout", 30*time.Second) },
			"mfa_wait_seconds", []string{"flow", "mfa", "answered", "false"}, 1},
		{"no wait without a push", func(m *Metrics) { m.Outcome("mfa", "unknown-person", 0) },
			"mfa_wait_seconds", nil, 0},
		{"work", func(m *Metrics) { m.Work("peer", time.Millisecond) },
			"mfa_broker_seconds", []string{"flow", "peer"}, 1},
		{"rate limited", func(m *Metrics) { m.RateLimited("person-signed") },
			"mfa_rate_limited_total", []string{"budget", "person-signed"}, 1},
		{"blocked", func(m *Metrics) { m.Blocked(); m.Blocked() },
			"mfa_blocked_total", nil, 2},
		{"pushes", func(m *Metrics) { m.Pushes(3, 1, false) },
			"mfa_pushes_total", []string{"kind", "new"}, 3},
		{"push failures", func(m *Metrics) { m.Pushes(3, 1, false); m.Pushes(0, 2, true) },
			"mfa_push_failures_total", nil, 3},
		{"resent", func(m *Metrics) { m.Pushes(2, 0, true) },
			"mfa_pushes_total", []string{"kind", "resent"}, 2},
		{"withdrawals", func(m *Metrics) { m.Withdrawals("timeout", 2); m.Withdrawals("answered", 0) },
			"mfa_withdrawals_total", nil, 2},
		{"no series for nothing withdrawn", func(m *Metrics) { m.Withdrawals("answered", 0) },
			"mfa_withdrawals_total", []string{"why", "answered"}, 0},
		{"syncs", func(m *Metrics) { m.Sync() },
			"mfa_syncs_total", nil, 1},
		{"answer accepted", func(m *Metrics) { m.AnswerAccepted("approve") },
			"mfa_answers_accepted_total", []string{"decision", "approve"}, 1},
		{"answer refused", func(m *Metrics) { m.AnswerRefused("signature") },
			"mfa_answers_refused_total", []string{"reason", "signature"}, 1},
		{"store operation", func(m *Metrics) { m.StoreOperation("find-valid", time.Millisecond, false) },
			"mfa_store_operation_seconds", []string{"op", "find-valid"}, 1},
		{"store unavailable", func(m *Metrics) {
			m.StoreOperation("get", time.Millisecond, true)
			m.StoreOperation("get", time.Millisecond, false)
		}, "mfa_store_errors_total", []string{"op", "get"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := New()
			c.do(m)
			if got := value(t, m, c.metric, c.labels...); got != c.want {
				t.Fatalf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
			}
		})
	}
}

// TestWatch: what the broker already counts is read at each scrape, not
// copied when it changes; a store that does not answer is down; peers
// come and go with the operator's list.
func TestWatch(t *testing.T) {
	t.Parallel()
	var pending, orders, blocks atomic.Int64
	var natsUp atomic.Bool
	var storeDown atomic.Bool
	storeDown.Store(true)
	var peers atomic.Value
	peers.Store([]Peer{{ID: "P1", Domain: "b.test", Approved: true, Share: true, LinkUp: true, References: 7}})
	m := New()
	m.Watch(Sources{
		Pending: func() int { return int(pending.Load()) }, PendingLimit: 100,
		OrdersRunning:  func() int { return int(orders.Load()) },
		BlocksInForce:  func() int { return int(blocks.Load()) },
		NATSConnected:  natsUp.Load,
		NATSReconnects: func() uint64 { return 4 },
		Store:          "mongodb",
		StorePing: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the store is pinged without a deadline")
			}
			if storeDown.Load() {
				return errors.New("MongoDB unreachable")
			}
			return nil
		},
		Peers: func() []Peer { return peers.Load().([]Peer) },
	})
	check := func(name string, labels []string, want float64) {
		t.Helper()
		if got := value(t, m, name, labels...); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	check("mfa_pending_requests", nil, 0)
	check("mfa_store_up", []string{"store", "mongodb"}, 0)
	check("mfa_nats_up", nil, 0)
	pending.Store(3)
	orders.Store(2)
	blocks.Store(5)
	natsUp.Store(true)
	storeDown.Store(false)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mfa_pending_requests", nil, 3},
		{"mfa_pending_requests_limit", nil, 100},
		{"mfa_orders_running", nil, 2},
		{"mfa_blocks", nil, 5},
		{"mfa_nats_up", nil, 1},
		{"mfa_nats_reconnects_total", nil, 4},
		{"mfa_store_up", []string{"store", "mongodb"}, 1},
		{"mfa_federation_peer_approved", []string{"peer", "P1", "domain", "b.test"}, 1},
		{"mfa_federation_peer_sharing", []string{"peer", "P1"}, 1},
		{"mfa_federation_peer_link_up", []string{"peer", "P1"}, 1},
		{"mfa_federation_peer_references", []string{"peer", "P1"}, 7},
	} {
		check(c.name, c.labels, c.want)
	}
	peers.Store([]Peer{{ID: "P2", Domain: "c.test", Approved: true}})
	check("mfa_federation_peer_link_up", []string{"peer", "P1"}, 0)
	check("mfa_federation_peer_approved", []string{"peer", "P2", "domain", "c.test"}, 1)
	check("mfa_federation_peer_link_up", []string{"peer", "P2"}, 0)
}

// TestOwnRegistry: each Metrics has a registry of its own: two brokers in
// one process count apart, and nothing goes to the global default one.
func TestOwnRegistry(t *testing.T) {
	t.Parallel()
	a, b := New(), New()
	a.Blocked()
	if got := value(t, b, "mfa_blocked_total"); got != 0 {
		t.Errorf("b counted a's block: %v", got)
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "mfa_") {
			t.Errorf("%s is in the default registry", mf.GetName())
		}
	}
}

// TestNames: the broker's own metrics are named mfa_…; the Go runtime's
// and the process's are served too.
func TestNames(t *testing.T) {
	t.Parallel()
	m := New()
	m.Watch(Sources{Pending: func() int { return 0 }, Peers: func() []Peer { return nil }})
	for _, n := range m.Own() {
		if !strings.HasPrefix(n, "mfa_") {
			t.Errorf("own metric %s is not named mfa_…", n)
		}
	}
	names := m.Names()
	for _, want := range []string{"mfa_http_requests_total", "mfa_pending_requests", "mfa_federation_peer_link_up",
		"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s is not among the names", want)
		}
	}
}

// TestHandler serves a scrape over a real listener, in the text format
// Prometheus reads.
func TestHandler(t *testing.T) {
	t.Parallel()
	m := New()
	m.Request("/MFA", "POST", 200, "approved")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := `mfa_http_requests_total{code="approved",method="POST",route="/MFA",status="200"} 1`
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		t.Fatalf("%d, want a line %s in:\n%s", resp.StatusCode, want, body)
	}
}

// TestREADMEListsMetrics: the README's metrics reference names every
// metric the broker defines, and none it does not.
func TestREADMEListsMetrics(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Metrics\n")
	if !ok {
		t.Fatal("the README has no Metrics section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	m := New()
	m.Watch(Sources{
		Pending: func() int { return 0 }, OrdersRunning: func() int { return 0 }, BlocksInForce: func() int { return 0 },
		NATSConnected: func() bool { return true }, NATSReconnects: func() uint64 { return 0 },
		StorePing: func(context.Context) error { return nil }, Peers: func() []Peer { return nil },
	})
	listed := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `mfa_") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
		listed[name] = true
	}
	for _, n := range m.Own() {
		if !listed[n] {
			t.Errorf("the README does not list %s", n)
		}
		delete(listed, n)
	}
	for n := range listed {
		t.Errorf("the README lists %s, which the broker does not define", n)
	}
}
