//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/client"
)

func TestMain(m *testing.M) {
	// The bare pipeline runs as a child process of this binary, which in a
	// test is the test binary.
	if len(os.Args) > 1 && os.Args[1] == ceilingCommand {
		if err := serveCeiling(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	gin.SetMode(gin.ReleaseMode)
	var err error
	if testDir, err = os.MkdirTemp("", "mfa-bench-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(testDir)
	os.Exit(code)
}

// startBroker runs a whole broker in-process, as mfa-broker would, and
// returns its URL and data directory for --broker-url and --data-dir.
func startBroker(t *testing.T) (string, string) {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	s, err := service.Start(context.Background(), service.Config{
		HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", DataDir: dataDir,
		Domain: "bench.test", MaxTimeout: 2 * time.Minute,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s.HTTPURL(), dataDir
}

func runBench(t *testing.T, args ...string) *report {
	t.Helper()
	var log bytes.Buffer
	cfg, err := parseConfig(args, &log)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := execute(context.Background(), cfg, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out bytes.Buffer
	rep.write(&out)
	t.Logf("report:\n%s", out.String())
	return rep
}

// TestThroughput is a short run of every throughput phase: the tool must
// get approvals through the real flow and the bare pipeline, without a
// single error.
func TestThroughput(t *testing.T) {
	t.Parallel()
	url, dir := startBroker(t)
	rep := runBench(t, "--broker-url", url, "--data-dir", dir, "-n", "16", "-c", "4",
		"--duration", "1s", "--warmup", "200ms", "--latency-think", "20ms", "--latency-duration", "1s",
		"--encoding", "xml", "--progress", "0")
	for _, p := range []*phaseResult{rep.ceiling, rep.broker, rep.latency} {
		if p == nil {
			t.Fatal("a phase did not run")
		}
		if p.approved == 0 || p.errors() != 0 {
			t.Errorf("%s: %d approved, errors %v", p.name, p.approved, p.codes)
		}
	}
	if len(rep.latency.added) == 0 || rep.latency.noHold != 0 {
		t.Errorf("latency phase: %d broker-added latencies, %d without a known hold", len(rep.latency.added), rep.latency.noHold)
	}
	for _, p := range []*phaseResult{rep.ceiling, rep.broker, rep.latency} {
		if len(p.own) != p.approved || p.noTiming != 0 {
			t.Errorf("%s: %d of %d approvals had a Server-Timing", p.name, len(p.own), p.approved)
		}
	}
	// Each request's own work is within its time at the broker, which is
	// within its time at the client, so the same holds for every rank.
	l := rep.latency
	if len(l.heldLessHold) != len(l.added) {
		t.Fatalf("latency phase: %d times at the broker for %d at the client", len(l.heldLessHold), len(l.added))
	}
	for _, q := range []float64{.5, .99, 1} {
		own, broker, client := percentile(l.own, q), percentile(l.heldLessHold, q), percentile(l.added, q)
		if own > broker || broker > client {
			t.Errorf("latency phase, at %.0f%%: own work %s, at the broker %s, at the client %s; want each within the next", 100*q, own, broker, client)
		}
	}
	if rep.answerErrs != 0 {
		t.Errorf("%d device answers failed: %v", rep.answerErrs, rep.answerErr)
	}
}

// TestPending holds a few requests open until they time out: every one
// must come back as timeout, none early, none lost.
func TestPending(t *testing.T) {
	t.Parallel()
	url, dir := startBroker(t)
	rep := runBench(t, "--broker-url", url, "--data-dir", dir, "--pending", "12", "--online", "6", "--timeout", "1", "--progress", "0")
	p := rep.pending
	if p.full.Pending != 12 {
		t.Errorf("at most %d pending at once, want 12", p.full.Pending)
	}
	if len(p.lateness) != 12 || p.lost != 0 || p.early != 0 {
		t.Errorf("%d timeouts, %d lost, %d early; other answers %v", len(p.lateness), p.lost, p.early, p.codes)
	}
	if late := percentile(p.lateness, 1); late > 2*time.Second {
		t.Errorf("a timeout came %s late", late)
	}
	if rep.prompts != 6 {
		t.Errorf("online devices got %d prompts, want 6", rep.prompts)
	}
}

// TestPendingOrders: the same with orders, each awaited by a long-polling
// collect: every order times out, none is lost, and the report says they
// were orders.
func TestPendingOrders(t *testing.T) {
	t.Parallel()
	url, dir := startBroker(t)
	rep := runBench(t, "--broker-url", url, "--data-dir", dir, "--pending", "12", "--orders", "--online", "6", "--timeout", "2", "--progress", "0")
	p := rep.pending
	if !p.orders || p.full.Pending != 12 {
		t.Errorf("orders %v, at most %d pending at once, want 12", p.orders, p.full.Pending)
	}
	if len(p.lateness) != 12 || p.lost != 0 || p.early != 0 {
		t.Errorf("%d timeouts, %d lost, %d early; other answers %v", len(p.lateness), p.lost, p.early, p.codes)
	}
	if rep.prompts != 6 {
		t.Errorf("online devices got %d prompts, want 6", rep.prompts)
	}
	var out strings.Builder
	rep.writePending(&out)
	if !strings.Contains(out.String(), "orders pending, each awaited by a long-polling collect") {
		t.Errorf("the report does not say these were orders:\n%s", out.String())
	}
}

// TestOutcomeCode: every way an MFA call through the client library ends
// is counted under a stable name: its outcome code, http-<status> for an
// answer that was not the broker's, or the transport's failure.
func TestOutcomeCode(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{ctx, nil, "approved"},
		{ctx, &client.Error{Code: api.CodeTimeout, Status: 408}, "timeout"},
		{ctx, fmt.Errorf("wrapped: %w", &client.Error{Code: api.CodeDenied, Status: 403}), "denied"},
		{ctx, &client.Error{Status: 502, Message: "not JSON"}, "http-502"},
		{ctx, fmt.Errorf("%w: Timeout", client.ErrInvalidRequest), "client: mfa client: invalid request: Timeout"},
		{ctx, errors.New("connection reset"), "transport: connection reset"},
		{cancelled, errors.New("context canceled"), "cancelled"},
	} {
		if got := outcomeCode(c.ctx, c.err); got != c.want {
			t.Errorf("outcomeCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--broker-url", "http://x"},
		{"--encoding", "yaml"},
		{"--accept", "text/xml"}, // answers are JSON: the client library reads them
		{"-c", "0"},
		{"--ceiling-responders", "-1"},
		{"extra"},
	} {
		if _, err := parseConfig(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%s accepted", strings.Join(args, " "))
		}
	}
	cfg, err := parseConfig([]string{"--pending", "100", "-n", "5", "--online", "500"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.identities != 100 || cfg.online != 100 {
		t.Errorf("--pending 100: %d identities, %d online; want one per request, all online", cfg.identities, cfg.online)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"-n", "40"}, 40},
		{[]string{"-n", "40", "--ceiling-responders", "4"}, 4},
	} {
		cfg, err := parseConfig(c.args, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.responders != c.want {
			t.Errorf("%s: %d responders for the bare pipeline, want %d", strings.Join(c.args, " "), cfg.responders, c.want)
		}
	}
}

// TestCeilingAsksEveryResponder: the bare pipeline must reach its
// responders in turn, each on its own connection, as a broker reaches a
// different phone for each request; a shared responder would let the
// server batch what no broker can.
func TestCeilingAsksEveryResponder(t *testing.T) {
	t.Parallel()
	const responders, rounds = 3, 4
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := startCeiling(ctx, responders)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i := range responders * rounds {
		resp, err := http.Post(c.url, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"approved"`) {
			t.Fatalf("request %d: %s %s", i, resp.Status, body)
		}
	}
	for i := range c.answered {
		if got := c.answered[i].Load(); got != rounds {
			t.Errorf("responder %d answered %d requests, want %d", i, got, rounds)
		}
	}
}
