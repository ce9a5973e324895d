package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legalmfa/mfa/internal/poll"
)

// BenchmarkStalledBodies makes the attack of four HTTP/2 connections, each
// with 1,000 streams declaring a 65,000-byte body and sending a little of
// it slowly, against a broker without a body memory budget and with the
// default one, and reports the heap while the bodies stall, and how many
// requests were answered 503 at once. The attacking client runs in the
// same process: a heap profile (-memprofile) tells its buffers from the
// broker's.
//
//	go test -run '^$' -bench StalledBodies -benchtime 1x ./cmd/mfa-broker/
func BenchmarkStalledBodies(b *testing.B) {
	for _, budget := range []int64{0, 32 << 20} {
		b.Run(fmt.Sprintf("budget=%dMiB", budget>>20), func(b *testing.B) {
			for b.Loop() {
				stallBodies(b, budget)
			}
		})
	}
}

func stallBodies(b *testing.B, budget int64) {
	tb := startBroker(b, func(c *config) { c.MaxBodyMemory = budget })
	heap := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc) / (1 << 20)
	}
	before := heap()
	const conns, streams = 4, 1000
	var refused, started atomic.Int64
	var wg sync.WaitGroup
	var writers []*io.PipeWriter
	var mu sync.Mutex
	for range conns {
		client := h2cClient()
		for range streams {
			pr, pw := io.Pipe()
			mu.Lock()
			writers = append(writers, pw)
			mu.Unlock()
			req, _ := http.NewRequest(http.MethodPost, tb.url("/MFA"), pr)
			req.ContentLength = 65000
			req.Header.Set("Content-Type", "application/json")
			wg.Add(1)
			go func() {
				defer wg.Done()
				go pw.Write([]byte(`{"Reason":"` + strings.Repeat("a", 1000)))
				started.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					return
				}
				if resp.StatusCode == http.StatusServiceUnavailable {
					refused.Add(1)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
	}
	poll.Until(b, "every stream started", func() bool { return started.Load() == conns*streams })
	time.Sleep(2 * time.Second) // the bodies stall; what does the broker hold?
	during := heap()
	for _, w := range writers {
		w.CloseWithError(errors.New("gave up"))
	}
	wg.Wait()
	b.ReportMetric(during-before, "MiB-held")
	b.ReportMetric(float64(refused.Load()), "refused")
}
