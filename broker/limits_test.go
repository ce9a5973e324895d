package broker

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want Rate
		ok   bool
	}{
		{"6/1m", Rate{6, time.Minute}, true},
		{" 3000 / 1m ", Rate{3000, time.Minute}, true},
		{"1/500ms", Rate{1, 500 * time.Millisecond}, true},
		{"0", Rate{}, true},
		{"", Rate{}, false},
		{"6", Rate{}, false},
		{"0/1m", Rate{}, false},
		{"-1/1m", Rate{}, false},
		{"6/0s", Rate{}, false},
		{"6/-1m", Rate{}, false},
		{"six/1m", Rate{}, false},
		{"6/minute", Rate{}, false},
	} {
		got, err := ParseRate(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if c.ok {
			if back, err := ParseRate(got.String()); err != nil || back != got {
				t.Errorf("%q does not round-trip through %q: %v %v", c.in, got.String(), back, err)
			}
		}
	}
}

// TestKeyedLimiter: a key may use its whole burst at once, then waits for
// its rate; keys are apart; several keys are spent all or none; no limit
// means no wait; idle buckets are forgotten.
func TestKeyedLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l := newKeyedLimiter(Rate{Events: 3, Per: time.Minute})
	for i := range 3 {
		if wait := l.take(now, "a"); wait != 0 {
			t.Fatalf("event %d of the burst waits %v", i+1, wait)
		}
	}
	if wait := l.take(now, "a"); wait <= 0 || wait > 20*time.Second {
		t.Fatalf("past the burst: wait %v, want up to one event's 20 s", wait)
	}
	if wait := l.take(now, "b"); wait != 0 {
		t.Fatalf("another key waits %v", wait)
	}
	// All or none: "a" is spent, so "c" must not be charged either.
	if wait := l.take(now, "c", "a"); wait == 0 {
		t.Fatal("a spent key let a pair through")
	}
	for i := range 3 {
		if wait := l.take(now, "c"); wait != 0 {
			t.Fatalf("c was charged for the refused pair: event %d waits %v", i+1, wait)
		}
	}
	if wait := l.take(now.Add(20*time.Second), "a"); wait != 0 {
		t.Fatalf("after one event's time: wait %v", wait)
	}
	var none *keyedLimiter
	if none.take(now, "x") != 0 || newKeyedLimiter(Rate{}).take(now, "x") != 0 {
		t.Fatal("no limit waits")
	}
	// Idle buckets go at the next sweep; active ones stay.
	later := now.Add(2 * time.Minute)
	for l.calls%sweepEvery != sweepEvery-1 {
		l.take(later, "active")
	}
	l.take(later, "active")
	if _, ok := l.buckets["b"]; ok || len(l.buckets) != 1 {
		t.Fatalf("after a sweep %d buckets remain: %v", len(l.buckets), l.buckets)
	}
}
