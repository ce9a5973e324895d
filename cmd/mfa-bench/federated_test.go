//go:build linux

package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	// testDir is the tests' own directory, made and removed by TestMain:
	// a test's TMPDIR may be gone before another test is done with it.
	testDir    string
	brokerOnce sync.Once
	brokerBin  string
	brokerErr  error
)

// brokerBinary builds mfa-broker once for the tests that start brokers as
// processes, as the tool does without --broker-url.
func brokerBinary(t *testing.T) string {
	t.Helper()
	brokerOnce.Do(func() {
		brokerBin = filepath.Join(testDir, "mfa-broker")
		brokerErr = buildBroker(context.Background(), brokerBin)
	})
	if brokerErr != nil {
		t.Fatal(brokerErr)
	}
	return brokerBin
}

// TestFederated is a short run of the throughput phases with --federated:
// the requests go to A, the people and their devices are B's, and every
// approval must come through the federation, without a single error.
func TestFederated(t *testing.T) {
	t.Parallel()
	rep := runBench(t, "--federated", "--broker-bin", brokerBinary(t), "-n", "16", "-c", "4",
		"--duration", "1s", "--warmup", "200ms", "--latency-think", "20ms", "--latency-duration", "1s",
		"--ceiling=false", "--progress", "0")
	for _, p := range []*phaseResult{rep.broker, rep.latency} {
		if p == nil {
			t.Fatal("a phase did not run")
		}
		if p.approved == 0 || p.errors() != 0 {
			t.Errorf("%s: %d approved, errors %v", p.name, p.approved, p.codes)
		}
		// The home broker asked the devices: it worked, and its CPU
		// counts as the server's.
		if !p.cpu.known || p.cpu.home <= 0 || p.cpu.home >= p.cpu.server {
			t.Errorf("%s: server CPU %s, of it the home broker's %s", p.name, p.cpu.server, p.cpu.home)
		}
	}
	if len(rep.latency.added) == 0 || rep.latency.noHold != 0 {
		t.Errorf("latency phase: %d broker-added latencies, %d without a known hold", len(rep.latency.added), rep.latency.noHold)
	}
	if rep.answerErrs != 0 {
		t.Errorf("%d device answers failed: %v", rep.answerErrs, rep.answerErr)
	}
	var out strings.Builder
	rep.write(&out)
	for _, want := range []string{"| federation | requests to asked broker A", "home broker B"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report does not say %q:\n%s", want, out.String())
		}
	}
}

// TestReplication is --federated-references with a few hundred: A must
// index every one of B's references, and find each person's by number.
func TestReplication(t *testing.T) {
	// The store B starts with is cached in the temporary directory.
	t.Setenv("TMPDIR", t.TempDir())
	const n = 300
	rep := runBench(t, "--federated-references", "300", "--lookups", "500", "--broker-bin", brokerBinary(t))
	x := rep.replication
	if x == nil {
		t.Fatal("no replication result")
	}
	if x.indexed != n || x.allIndexed <= 0 || x.firstRef > x.allIndexed {
		t.Errorf("%d indexed, the first after %s, all after %s", x.indexed, x.firstRef, x.allIndexed)
	}
	if len(x.lookups) != 500 || x.wrong != 0 {
		t.Errorf("%d lookups, %d wrong", len(x.lookups), x.wrong)
	}
	if x.indexAfter.bytes <= x.indexBefore.bytes || x.mirror.bytes == 0 || x.peakRSS == 0 {
		t.Errorf("index %v → %v, mirror %v, peak RSS %d", x.indexBefore, x.indexAfter, x.mirror, x.peakRSS)
	}
	var out strings.Builder
	rep.write(&out)
	if !strings.Contains(out.String(), "Index.Find median < 100 µs over 300 references") {
		t.Errorf("the report has no verdict on the lookup:\n%s", out.String())
	}
}

// TestFederatedFlags: the federated modes start their own brokers.
func TestFederatedFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--federated", "--broker-url", "http://x", "--data-dir", "/x"},
		{"--federated-references", "10", "--broker-url", "http://x", "--data-dir", "/x"},
		{"--federated", "--pending", "10"},
		{"--federated-references", "10", "--federated"},
		{"--federated-references", "-1"},
		{"--federated-references", "10", "--lookups", "0"},
	} {
		if _, err := parseConfig(args, &strings.Builder{}); err == nil {
			t.Errorf("%s accepted", strings.Join(args, " "))
		}
	}
}
