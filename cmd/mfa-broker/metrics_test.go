package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// withMetrics serves a broker's metrics on a random loopback port.
func withMetrics(c *config) { c.MetricsAddr = "127.0.0.1:0" }

// scrape is one scrape of a broker's metrics.
type scrape struct {
	samples model.Vector
	text    string
}

// scrape reads the broker's metrics as Prometheus would.
func (tb *testBroker) scrape() scrape {
	tb.t.Helper()
	u := tb.srv.MetricsURL()
	if u == "" {
		tb.t.Fatal("the broker serves no metrics")
	}
	resp, err := http.Get(u)
	if err != nil {
		tb.t.Fatalf("scrape %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.t.Fatalf("scrape %s: %d %v", u, resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		tb.t.Fatalf("scrape: %v\n%s", err, body)
	}
	var s scrape
	s.text = string(body)
	for _, f := range families {
		v, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, f)
		if err != nil {
			tb.t.Fatal(err)
		}
		s.samples = append(s.samples, v...)
	}
	return s
}

// value sums the samples of a metric whose labels include these, given
// as name, value pairs.
func (s scrape) value(name string, labels ...string) float64 {
	var sum float64
	for _, smp := range s.samples {
		if string(smp.Metric[model.MetricNameLabel]) != name {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if string(smp.Metric[model.LabelName(labels[i])]) != labels[i+1] {
				match = false
			}
		}
		if match {
			sum += float64(smp.Value)
		}
	}
	return sum
}

// has reports whether any sample of the metric is served.
func (s scrape) has(name string) bool {
	for _, smp := range s.samples {
		if string(smp.Metric[model.MetricNameLabel]) == name {
			return true
		}
	}
	return false
}

// leaks lists the label values that contain any of the forbidden strings.
func (s scrape) leaks(forbidden ...string) []string {
	var out []string
	for _, smp := range s.samples {
		for name, v := range smp.Metric {
			for _, f := range forbidden {
				if f != "" && strings.Contains(string(v), f) {
					out = append(out, fmt.Sprintf("%s{%s=%q}", smp.Metric[model.MetricNameLabel], name, v))
				}
			}
		}
	}
	return out
}

// delta is a metric's expected change between two scrapes.
type delta struct {
	name   string
	labels []string
	want   float64
}

// checkDeltas waits until every metric has moved by what is expected since
// before: the counting and the answer race by a hair, never by more.
func (tb *testBroker) checkDeltas(before scrape, deltas []delta) scrape {
	tb.t.Helper()
	var after scrape
	poll.For(tb.t, 5*time.Second, func() error {
		after = tb.scrape()
		var wrong []string
		for _, d := range deltas {
			if got := after.value(d.name, d.labels...) - before.value(d.name, d.labels...); got != d.want {
				wrong = append(wrong, fmt.Sprintf("%s%v moved by %v, want %v", d.name, d.labels, got, d.want))
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%s", strings.Join(wrong, "\n"))
		}
		return nil
	})
	return after
}

// TestMetrics scrapes a real broker before and after approvals, a
// denial, a "not me" and the block it leaves, a timeout, bad input, an
// unknown person, a rate limit and an order, and checks each counter
// moved by what the requests made it; and that no label carries a
// personal number, a LegalId, a request ID or the caller's address.
func TestMetrics(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, withMetrics, func(c *config) {
		// One push per person an hour: a second request for the same
		// person is refused for the person's budget.
		c.IdentityRate = broker.Rate{Events: 1, Per: time.Hour}
	})
	if strings.HasPrefix(tb.srv.MetricsURL(), tb.httpURL) {
		t.Fatalf("metrics at %s, on the public listener %s", tb.srv.MetricsURL(), tb.httpURL)
	}
	if r := tb.do(http.MethodGet, "/metrics", "", "", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public port: %d, want 404", r.status)
	}
	const (
		approverPNR = "19791231-1234"
		denierPNR   = "19800101-0000"
		notMePNR    = "19650505-5555"
		silentPNR   = "19700101-1111"
		orderPNR    = "19600101-2222"
		unknownPNR  = "19990909-9999"
	)
	approver := tb.person(approverPNR, "SE", notifytest.Always(notify.Approve))
	denier := tb.person(denierPNR, "SE", notifytest.Always(notify.Deny))
	notMe := tb.person(notMePNR, "SE", notifytest.Always(notify.NotMe))
	silent := tb.person(silentPNR, "SE", nil)
	orderer := tb.person(orderPNR, "SE", notifytest.Always(notify.Approve))
	before := tb.scrape()
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "mfa_build_info", "mfa_pending_requests_limit"} {
		if !before.has(name) {
			t.Errorf("%s is not served", name)
		}
	}

	ctx := context.Background()
	var requestIDs []string
	mfa := func(pnr string, timeout int, want string) {
		t.Helper()
		o := tb.postMFA(ctx, "json", mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: timeout, Reason: "Metrics"}, "application/json")
		if o.code != want {
			t.Fatalf("PNR %s: %d %s (%s), want %s", pnr, o.status, o.code, o.message, want)
		}
		requestIDs = append(requestIDs, o.requestID)
	}
	mfa(approverPNR, 30, "approved")
	mfa(denierPNR, 30, "denied")
	mfa(notMePNR, 30, "denied-not-me")
	mfa(notMePNR, 30, "blocked")
	mfa(approverPNR, 30, "rate-limited")
	mfa(unknownPNR, 30, "unknown-person")

	// A timeout, and the pending request it is while it waits.
	done := make(chan struct{})
	go func() {
		defer close(done)
		o := tb.postMFA(ctx, "json", mfaBody{PNR: silentPNR, COUNTRY: "SE", Timeout: 2, Reason: "Metrics"}, "application/json")
		if o.code != "timeout" {
			t.Errorf("silent person: %d %s, want timeout", o.status, o.code)
		}
	}()
	silent.NextPrompt()
	if got := tb.scrape().value("mfa_pending_requests"); got != 1 {
		t.Errorf("mfa_pending_requests = %v while one request waits, want 1", got)
	}
	<-done

	// Bad input: not JSON, and a field missing.
	for _, body := range []string{`{"PNR":`, `{"PNR":"` + approverPNR + `","COUNTRY":"SE","Timeout":5}`} {
		r := tb.do(http.MethodPost, "/MFA", "application/json", "", strings.NewReader(body))
		if r.status != http.StatusBadRequest {
			t.Fatalf("bad input %s: %d %s", body, r.status, r.body)
		}
	}

	// An order, approved.
	o := tb.placeOrder("json", mfaBody{PNR: orderPNR, COUNTRY: "SE", Timeout: 30, Reason: "Metrics order"}, "")
	if o.code != "order-created" {
		t.Fatalf("order: %d %s (%s)", o.status, o.code, o.message)
	}
	requestIDs = append(requestIDs, o.requestID)
	if got := tb.outcomeOf(orderCall{ref: o.order["Ref"]}); got.code != "approved" {
		t.Fatalf("order ended %s, want approved", got.code)
	}

	// Paths with a number and a LegalId in them, which the routes replace.
	tb.do(http.MethodGet, "/MFA/"+approverPNR, "", "", nil)
	tb.do(http.MethodGet, "/Identities/"+approver.LegalID, "", "", nil)

	mfaPost := func(status, code string) []string {
		return []string{"route", "/MFA", "method", "POST", "status", status, "code", code}
	}
	after := tb.checkDeltas(before, []delta{
		{"mfa_http_requests_total", mfaPost("200", "approved"), 1},
		{"mfa_http_requests_total", mfaPost("403", "denied"), 1},
		{"mfa_http_requests_total", mfaPost("403", "denied-not-me"), 1},
		{"mfa_http_requests_total", mfaPost("403", "blocked"), 1},
		{"mfa_http_requests_total", mfaPost("429", "rate-limited"), 1},
		{"mfa_http_requests_total", mfaPost("404", "unknown-person"), 1},
		{"mfa_http_requests_total", mfaPost("408", "timeout"), 1},
		{"mfa_http_requests_total", mfaPost("400", "malformed"), 1},
		{"mfa_http_requests_total", mfaPost("400", "missing-field"), 1},
		{"mfa_http_requests_total", []string{"route", "/Orders", "method", "POST", "code", "order-created"}, 1},
		{"mfa_http_requests_total", []string{"route", "unmatched", "method", "GET", "status", "404"}, 1},
		{"mfa_http_requests_total", []string{"route", "/Identities/:id", "method", "GET", "status", "200"}, 1},

		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "approved"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "denied"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "denied-not-me"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "blocked"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "rate-limited"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "unknown-person"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "timeout"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "malformed"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "missing-field"}, 1},
		{"mfa_outcomes_total", []string{"flow", "mfa"}, 9},
		{"mfa_outcomes_total", []string{"flow", "order", "code", "approved"}, 1},
		{"mfa_outcomes_total", []string{"flow", "order"}, 1},

		{"mfa_broker_seconds_count", []string{"flow", "mfa"}, 9},
		{"mfa_broker_seconds_count", []string{"flow", "order"}, 1},
		{"mfa_wait_seconds_count", []string{"flow", "mfa", "answered", "true"}, 3},
		{"mfa_wait_seconds_count", []string{"flow", "mfa", "answered", "false"}, 1},
		{"mfa_wait_seconds_count", []string{"flow", "order", "answered", "true"}, 1},

		{"mfa_rate_limited_total", []string{"budget", "person"}, 1},
		{"mfa_rate_limited_total", nil, 1},
		{"mfa_blocked_total", nil, 1},
		{"mfa_blocks", nil, 1},

		{"mfa_pushes_total", []string{"kind", "new"}, 5},
		{"mfa_push_failures_total", nil, 0},
		{"mfa_answers_accepted_total", []string{"decision", "approve"}, 2},
		{"mfa_answers_accepted_total", []string{"decision", "deny"}, 1},
		{"mfa_answers_accepted_total", []string{"decision", "not-me"}, 1},
		{"mfa_answers_refused_total", nil, 0},
		{"mfa_withdrawals_total", []string{"why", "timeout"}, 1},
		// The device whose answer won is not told to withdraw.
		{"mfa_withdrawals_total", []string{"why", "answered"}, 0},
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mfa_pending_requests", nil, 0},
		{"mfa_pending_requests_limit", nil, float64(tb.cfg.MaxPending)},
		{"mfa_orders_running", nil, 0},
		{"mfa_nats_up", nil, 1},
		{"mfa_store_up", []string{"store", "embedded"}, 1},
	} {
		if got := after.value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if after.value("mfa_store_operation_seconds_count", "op", "find-valid") < 7 {
		t.Errorf("find-valid timed %v times, want every MFA lookup", after.value("mfa_store_operation_seconds_count", "op", "find-valid"))
	}
	if after.has("mfa_federation_peer_link_up") {
		t.Error("a broker that does not federate reports peers")
	}

	forbidden := []string{"127.0.0.1", "::1", "localhost"}
	for _, p := range []string{approverPNR, denierPNR, notMePNR, silentPNR, orderPNR, unknownPNR} {
		forbidden = append(forbidden, p, strings.ReplaceAll(p, "-", ""))
	}
	for _, d := range []*notifytest.Device{approver, denier, notMe, silent, orderer} {
		forbidden = append(forbidden, d.LegalID)
	}
	forbidden = append(forbidden, requestIDs...)
	if leaks := after.leaks(forbidden...); len(leaks) > 0 {
		sort.Strings(leaks)
		t.Errorf("labels carry what they must not:\n%s", strings.Join(leaks, "\n"))
	}
	for _, f := range forbidden {
		if strings.Contains(after.text, f) {
			t.Errorf("the scrape contains %q", f)
		}
	}
}

// TestFederationMetrics: a federating broker reports each peer's
// approval, sharing, link and references, and the home broker counts the
// requests its peer asked as flow "peer".
func TestFederationMetrics(t *testing.T) {
	t.Parallel()
	a := startFederatingBroker(t, "a.test", withMetrics)
	b := startFederatingBroker(t, "b.test", withMetrics)
	aID, bID := peerWith(t, a, b, true, true)
	f := federated{a: a, b: b, aID: aID, bID: bID}
	const pnr = "19800101-0001"
	d := f.personAtB(pnr, "SE", notifytest.Always(notify.Approve))

	peerB := []string{"peer", bID, "domain", "b.test"}
	s := a.scrape()
	for _, c := range []struct {
		name string
		want float64
	}{
		{"mfa_federation_peer_approved", 1},
		{"mfa_federation_peer_sharing", 1},
		{"mfa_federation_peer_link_up", 1},
		{"mfa_federation_peer_references", 1},
	} {
		if got := s.value(c.name, peerB...); got != c.want {
			t.Errorf("at A, %s{peer B} = %v, want %v", c.name, got, c.want)
		}
	}
	beforeA, beforeB := s, b.scrape()
	o := a.postMFA(context.Background(), "json", mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: 20, Reason: "Federated metrics"}, "application/json")
	if o.code != "approved" {
		t.Fatalf("%d %s: %s", o.status, o.code, o.message)
	}
	a.checkDeltas(beforeA, []delta{
		{"mfa_outcomes_total", []string{"flow", "mfa", "code", "approved"}, 1},
		{"mfa_pushes_total", nil, 0}, // B pushed, not A
	})
	afterB := b.checkDeltas(beforeB, []delta{
		{"mfa_outcomes_total", []string{"flow", "peer", "code", "approved"}, 1},
		{"mfa_wait_seconds_count", []string{"flow", "peer", "answered", "true"}, 1},
		{"mfa_pushes_total", []string{"kind", "new"}, 1},
		{"mfa_answers_accepted_total", []string{"decision", "approve"}, 1},
	})
	forbidden := []string{pnr, d.LegalID, o.requestID, "127.0.0.1"}
	for _, sc := range []scrape{a.scrape(), afterB} {
		if leaks := sc.leaks(forbidden...); len(leaks) > 0 {
			t.Errorf("labels carry what they must not: %v", leaks)
		}
	}
}

// TestMetricsAddrFailures: a metrics address that is taken, on the public
// port, or not an address stops the broker at start with one line naming
// the cause.
func TestMetricsAddrFailures(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Held until the subtests, which run after this function returns, end.
	t.Cleanup(func() { taken.Close() })
	httpAddr := freeAddr(t)
	cases := []struct {
		name, addr, want string
	}{
		{"taken", taken.Addr().String(), "metrics address " + taken.Addr().String() + " is in use by another program (choose another with --metrics-addr)"},
		{"the public port", httpAddr, "never served on the public HTTP port"},
		{"the public port on all interfaces", ":" + strings.Split(httpAddr, ":")[1], "never served on the public HTTP port"},
		{"not an address", "localhost", "metrics-addr \"localhost\": want host:port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, []string{"serve", "--log-level", "warn", "--data-dir", t.TempDir() + "/data",
				"--http-addr", httpAddr, "--nats-listen", "127.0.0.1:0", "--metrics-addr", c.addr},
				&bytes.Buffer{}, &stderr, func(string) string { return "" })
			if err == nil {
				t.Fatal("the broker started")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line with %q", err, c.want)
			}
		})
	}
}
