//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/client"
)

// pendingResult is what holding P requests open measured.
type pendingResult struct {
	requests int
	timeout  time.Duration
	sendTime time.Duration // from the first request sent to the last
	// before is the broker idle with its devices connected; full is the
	// sample with the most requests pending (ideally all of them); after is
	// once every request was answered.
	before, full, after broker.Stats
	// live is taken right after full, with garbage collected.
	live      broker.Stats
	liveKnown bool
	peakRSS   uint64
	answered  int
	codes     map[string]int // every answer but timeout, and transport errors
	lateness  []time.Duration
	// early counts answers before the request had even begun to be sent
	// plus its Timeout: a broker that timed out too soon. (Lateness is
	// measured from the write's end as the client saw it, which over
	// HTTP/2 can trail the bytes on the wire by a fraction of a
	// millisecond, so a punctual answer may show as slightly negative.)
	early int
	lost  int // never answered
	cpu   cpuUse
	// orders: the requests were orders, each awaited by a long-polling
	// collect. idle is the CPU over the quiet window once all were
	// pending, before the first timeout.
	orders bool
	idle   cpuUse
}

// runPending holds cfg.pending requests open with devices that never
// answer, and measures memory per pending request and how precisely each
// times out. The deadline of a request is taken as the moment its last byte
// was written plus its Timeout: the broker starts its clock a little later,
// so lateness is if anything overstated.
func runPending(ctx context.Context, cfg config, t *target, rep *report, log io.Writer, logf func(string, ...any)) error {
	s, err := prepare(ctx, cfg, t, cfg.pendingTimeout, logf)
	if err != nil {
		return err
	}
	defer s.fleet.close()
	s.fleet.answering.Store(false)
	rep.setup(s, cfg)

	P := cfg.pending
	timeout := time.Duration(cfg.pendingTimeout) * time.Second
	res := &pendingResult{requests: P, timeout: timeout, codes: map[string]int{}, orders: cfg.orders}
	rep.pending = res

	// The baseline is taken with start-up garbage collected.
	if _, err := t.admin.LiveHeap(ctx); err != nil {
		return err
	}
	time.Sleep(time.Second)
	before, err := t.admin.LiveHeap(ctx)
	if err != nil {
		return err
	}
	res.before, res.peakRSS = before, before.RSSBytes

	tr := newTransport(P, cfg.http2)
	// Over HTTP/1.1, a connection per request, closed with its answer: an
	// answered request must not leave an idle connection behind in the
	// broker to be counted as the pending ones' memory. Over HTTP/2 the
	// requests share a few connections, as a relying party's client would.
	tr.DisableKeepAlives = !cfg.http2
	defer tr.CloseIdleConnections()
	mc := mfaClient(t.baseURL, &http.Client{Transport: tr, Timeout: timeout + time.Minute}, requestEncoding(cfg.encoding))
	outcomes := make([]pendingOutcome, P)
	// Written by the transport's own goroutine, hence atomic: Unix nanoseconds.
	wrote := make([]atomic.Int64, P)
	began := make([]time.Time, P)
	var sent, done atomic.Int64
	dialing := make(chan struct{}, cfg.dialers)
	var wg sync.WaitGroup
	meter := startCPU(t.pid())
	start := time.Now()
	// One request per person, in random order.
	order := rand.New(rand.NewPCG(uint64(start.UnixNano()), 7)).Perm(P)
	logf("opening %d requests (Timeout %s), %d at a time, at most %.0f/s (0: no limit)", P, timeout, cfg.dialers, cfg.openRate)
	go func() {
		// Sending happens in the background so that the broker is watched
		// while the requests pile up.
		for i := range P {
			if cfg.openRate > 0 {
				if d := time.Until(start.Add(time.Duration(float64(i) * float64(time.Second) / cfg.openRate))); d > 0 {
					time.Sleep(d)
				}
			}
			select {
			case dialing <- struct{}{}:
			case <-ctx.Done():
				return
			}
			req := s.mfa[order[i]]
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer done.Add(1)
				var once sync.Once
				release := func() { once.Do(func() { <-dialing }) }
				defer release()
				trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
					wrote[i].Store(time.Now().UnixNano())
					sent.Add(1)
					release()
				}}
				began[i] = time.Now()
				var err error
				if cfg.orders {
					// The order answers at once; the wait is a collect that
					// long-polls, as a relying party's would.
					var o *client.Order
					if o, err = mc.Order(httptrace.WithClientTrace(ctx, trace), req); err == nil {
						_, err = mc.Wait(ctx, o.Ref)
					}
				} else {
					_, err = mc.MFA(httptrace.WithClientTrace(ctx, trace), req)
				}
				var answered *client.Error
				if err == nil || errors.As(err, &answered) {
					outcomes[i].answered = time.Now()
				}
				outcomes[i].code = outcomeCode(ctx, err)
			}()
		}
	}()

	// Watch until every request has been answered (or has failed).
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastLog, lastPending := time.Now(), -1
	var idle *cpuMeter // measuring while every request waits and nothing happens
	for done.Load() < int64(P) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		st, err := t.admin.Stats(ctx)
		if err != nil {
			continue
		}
		res.peakRSS = max(res.peakRSS, st.RSSBytes)
		if st.Pending > res.full.Pending || (st.Pending == res.full.Pending && st.RSSBytes > res.full.RSSBytes) {
			res.full = st
		}
		// The heap is profiled once everything has been sent and the
		// broker's count stopped growing: as many pending as there will be.
		settled := sent.Load() == int64(P) && st.Pending == lastPending && st.Pending > 0
		lastPending = st.Pending
		switch {
		case settled && idle == nil && !res.idle.known && done.Load() == 0:
			m := startCPU(t.pid())
			idle = &m
		case idle != nil && (done.Load() > 0 || time.Since(idle.start) >= idleWindow):
			// Stopped at the first answer: the timeouts are work.
			res.idle, idle = idle.stop(), nil
		}
		if settled && !res.liveKnown {
			// RSS as it is (above) is what an operator sees; the live heap
			// after a collection is what the pending requests really hold.
			if live, err := t.admin.LiveHeap(ctx); err == nil && live.Pending == st.Pending {
				res.live, res.liveKnown = live, true
			}
			if cfg.heapProfile != "" {
				if err := t.admin.Profile(ctx, "heap", 0, cfg.heapProfile); err != nil {
					logf("heap profile: %v", err)
				}
			}
		}
		if cfg.progress > 0 && time.Since(lastLog) >= cfg.progress {
			lastLog = time.Now()
			fmt.Fprintf(log, "pending    %5.1fs  sent %6d  pending at broker %6d  answered %6d  RSS %s  goroutines %d\n",
				time.Since(start).Seconds(), sent.Load(), st.Pending, done.Load(), describeBytes(float64(st.RSSBytes)), st.Goroutines)
		}
	}
	wg.Wait()
	res.cpu = meter.stop()
	// Let the withdrawals and closed connections drain before "after".
	time.Sleep(2 * time.Second)
	if st, err := t.admin.Stats(ctx); err == nil {
		res.after = st
	}

	var first, last int64
	for i := range wrote {
		w := wrote[i].Load()
		if w == 0 {
			continue
		}
		if first == 0 || w < first {
			first = w
		}
		last = max(last, w)
	}
	res.sendTime = time.Duration(last - first)
	for i, o := range outcomes {
		switch {
		case o.answered.IsZero():
			res.lost++
			res.codes[o.code]++
		case o.code != "timeout":
			res.answered++
			res.codes[o.code]++
		default:
			res.answered++
			late := o.answered.Sub(time.Unix(0, wrote[i].Load()).Add(timeout))
			if o.answered.Before(began[i].Add(timeout)) {
				res.early++
			}
			res.lateness = append(res.lateness, late)
		}
	}
	slices.Sort(res.lateness)
	if cfg.trace != "" {
		if err := writePendingTrace(cfg.trace, outcomes2rows(outcomes, wrote, first, timeout)); err != nil {
			logf("trace: %v", err)
		}
	}
	if res.full.Pending < P {
		logf("at most %d of %d requests were pending at once: sending took %s of the %s timeout, or some failed", res.full.Pending, P, res.sendTime.Round(time.Millisecond), timeout)
	}
	rep.devices(s.fleet)
	return nil
}

// idleWindow is how long the broker's CPU is measured while every request
// waits for a person who does not answer.
const idleWindow = 10 * time.Second

// pendingOutcome is how one held request ended.
type pendingOutcome struct {
	answered time.Time
	code     string
}

// pendingRow is one request for --trace: when its last byte was written
// and when its answer came, from the first write, and its outcome.
type pendingRow struct {
	wrote, answered, late time.Duration
	code                  string
}

func outcomes2rows(outcomes []pendingOutcome, wrote []atomic.Int64, first int64, timeout time.Duration) []pendingRow {
	rows := make([]pendingRow, 0, len(outcomes))
	for i, o := range outcomes {
		w := wrote[i].Load()
		if w == 0 || o.answered.IsZero() {
			continue
		}
		at := time.Duration(o.answered.UnixNano() - first)
		rows = append(rows, pendingRow{wrote: time.Duration(w - first), answered: at, late: at - time.Duration(w-first) - timeout, code: o.code})
	}
	slices.SortFunc(rows, func(a, b pendingRow) int { return int(a.wrote - b.wrote) })
	return rows
}

func writePendingTrace(path string, rows []pendingRow) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "wrote_s,answered_s,late_ms,code\n")
	for _, r := range rows {
		fmt.Fprintf(w, "%.6f,%.6f,%.3f,%s\n", r.wrote.Seconds(), r.answered.Seconds(), float64(r.late.Microseconds())/1000, r.code)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
