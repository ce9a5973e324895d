// Package latency reports, from a benchmark, the percentiles of an
// operation timed one call at a time: b.Loop gives only the mean.
package latency

import (
	"slices"
	"testing"
	"time"
)

// Report times call(i) for each i below n, one by one, for at most
// budget (and at least 20 calls), and reports the p50, p99 and max in
// nanoseconds, and how many calls were timed. Run it after b.Loop, which
// has stopped the timer: it does not count in ns/op.
func Report(b *testing.B, n int, budget time.Duration, call func(i int)) {
	b.Helper()
	lat := make([]time.Duration, 0, n)
	deadline := time.Now().Add(budget)
	for i := range n {
		if len(lat) >= 20 && time.Now().After(deadline) {
			break
		}
		start := time.Now()
		call(i)
		lat = append(lat, time.Since(start))
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	b.ReportMetric(float64(len(lat)), "samples")
}
