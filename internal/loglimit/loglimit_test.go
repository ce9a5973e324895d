package loglimit

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	h := New(slog.NewTextHandler(&out, nil), time.Minute, 3)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h.state.now = func() time.Time { return now }
	log := slog.New(h).With("component", "x")
	for range 1000 {
		log.Info("connection refused", "name", strings.Repeat("n", 10))
	}
	log.Warn("another message")
	if got := strings.Count(out.String(), "connection refused"); got != 3 {
		t.Fatalf("%d refusals logged in one period, want 3:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "another message") {
		t.Fatal("another message was held back by the first's limit")
	}
	out.Reset()
	now = now.Add(time.Minute)
	log.Info("connection refused", "name", "x")
	if !strings.Contains(out.String(), "suppressed=997") {
		t.Fatalf("the next period's first line does not say how many were left out:\n%s", out.String())
	}
}
