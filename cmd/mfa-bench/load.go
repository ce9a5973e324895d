//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/client"
)

// reason is what every benchmark request asks; typical of a login prompt.
const reason = "Log in to **Example Bank**"

// mfaRequests are the MFA requests, one per person, made once before the
// load starts. The client library (package client) sends them, as a
// relying party's backend would.
func mfaRequests(people []person, timeout int) []client.Request {
	reqs := make([]client.Request, len(people))
	for i, p := range people {
		reqs[i] = client.Request{PNR: p.pnr, Country: p.country, Timeout: time.Duration(timeout) * time.Second, Reason: reason}
	}
	return reqs
}

// requestEncoding is the client's encoding for --encoding.
func requestEncoding(name string) client.Encoding {
	switch name {
	case "xml":
		return client.XML
	case "form":
		return client.Form
	}
	return client.JSON
}

// mfaClient is a relying party's client of the broker (or bare pipeline)
// at base, sending with hc in the encoding. It never retries: a load tool
// counts every failure. base was checked when the target was opened
// (checkBase), so New cannot fail.
func mfaClient(base string, hc *http.Client, enc client.Encoding) *client.Client {
	c, err := client.New(base, client.WithHTTPClient(hc), client.WithEncoding(enc), client.WithRetry(client.RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		panic("mfa-bench: " + err.Error())
	}
	return c
}

// checkBase checks a base URL as the client library will take it.
func checkBase(base string) error {
	_, err := client.New(base)
	return err
}

// outcomeCode is how an MFA call ended: its outcome code, http-<status>
// for an answer that was not the broker's, or a transport error's
// description.
func outcomeCode(ctx context.Context, err error) string {
	if err == nil {
		return string(api.CodeApproved)
	}
	var e *client.Error
	switch {
	case errors.As(err, &e) && e.Code != "":
		return string(e.Code)
	case errors.As(err, &e):
		return "http-" + strconv.Itoa(e.Status)
	case errors.Is(err, client.ErrInvalidRequest):
		return "client: " + err.Error()
	}
	return transportError(ctx, err)
}

// newTransport is one keep-alive HTTP transport for up to conns
// connections to one host: every client keeps its connection between
// requests, as a relying party's pool does. With h2c it speaks only
// HTTP/2 in clear text (prior knowledge) and multiplexes the clients'
// requests over as few connections as the server's stream limit allows.
func newTransport(conns int, h2c bool) *http.Transport {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
		// Default buffers; a relying party's client would not tune them.
	}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return tr
}

// phase is one measured load: C clients sending random people's requests
// to POST /MFA at base, closed loop (each sends again as soon as it has
// its answer) or open loop at a fixed rate.
type phase struct {
	name        string
	base        string
	transport   *http.Transport
	mfa         []client.Request // one per person
	encoding    client.Encoding
	concurrency int
	duration    time.Duration
	requests    int
	rate        float64
	timeout     time.Duration
	// hold, when set, says how long the device held a request on purpose,
	// which is subtracted to give the latency the broker adds.
	hold func(requestID string) (time.Duration, bool)
	// sample, when set, is called with every progress tick to watch the
	// server (its stats), and once more at the end.
	sample   func(ctx context.Context)
	progress time.Duration
	log      io.Writer
	// trace, when set, gets every request's timing as CSV.
	trace io.Writer
	// devices, when set, returns (and forgets) the devices' timings.
	devices func() (delivery, answer []time.Duration)
	// homePID, with --federated, is the home broker's process, whose CPU
	// counts as the server's too.
	homePID int
}

// phaseResult is what a phase measured.
type phaseResult struct {
	name        string
	concurrency int
	rate        float64
	elapsed     time.Duration
	completed   int // answered, any outcome
	approved    int
	latency     []time.Duration // approved requests, sorted
	added       []time.Duration // latency minus the device's hold, sorted
	noHold      int             // approved requests whose hold was not known
	// From the server's Server-Timing: its own work (the time it held the
	// request less the wait for the device), and, where the device's hold
	// is known, the time it held the request less that hold. Both sorted.
	own, heldLessHold []time.Duration
	noTiming          int             // approved requests without a Server-Timing
	codes             map[string]int  // every outcome but approved, and transport errors
	delivery          []time.Duration // push delivery to devices, sorted
	answerRTT         []time.Duration // devices' answer round trips, sorted
	cpu               cpuUse
	before            broker.Stats
	after             broker.Stats
	peak              broker.Stats
	hasStats          bool
}

func (r phaseResult) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.approved) / r.elapsed.Seconds()
}

func (r phaseResult) errors() int {
	n := 0
	for _, c := range r.codes {
		n += c
	}
	return n
}

// worker keeps what one client measured, merged after the phase.
type worker struct {
	latency, added    []time.Duration
	own, heldLessHold []time.Duration
	noHold, noTiming  int
	codes             map[string]int
	trace             []traceRow
}

// traceRow is one request for --trace: when it was due, how long it took,
// and how much of that the broker added.
type traceRow struct {
	at, latency, added time.Duration
	code               string
}

// run drives the phase and returns what it measured.
func (p phase) run(ctx context.Context) phaseResult {
	mc := mfaClient(p.base, &http.Client{Transport: p.transport, Timeout: p.timeout}, p.encoding)
	var completed, failed, inflight, issued atomic.Int64
	workers := make([]*worker, p.concurrency)
	start := time.Now()
	var deadline time.Time
	if p.requests == 0 {
		deadline = start.Add(p.duration)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// more reports whether another request may be sent; in request-count
	// mode it claims that request.
	more := func(now time.Time) bool {
		if ctx.Err() != nil {
			return false
		}
		if p.requests > 0 {
			return issued.Add(1) <= int64(p.requests)
		}
		return now.Before(deadline)
	}

	var sched chan time.Time
	if p.rate > 0 {
		sched = make(chan time.Time, 1<<16)
		go p.dispatch(ctx, start, more, sched)
	}

	// A person is asked one thing at a time, as relying parties do: the
	// broker lets a newer request for an identity supersede an older one,
	// so two at once would measure supersession, not MFA.
	free := make(chan int, len(p.mfa))
	for _, i := range rand.New(rand.NewPCG(uint64(start.UnixNano()), 0)).Perm(len(p.mfa)) {
		free <- i
	}

	if p.devices != nil {
		p.devices() // forget what came before this phase
	}
	stopProgress := p.watch(ctx, start, &completed, &failed, &inflight)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{codes: map[string]int{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := func(from time.Time) {
				var who int
				select {
				case who = <-free:
				case <-ctx.Done():
					return
				}
				inflight.Add(1)
				a := p.once(ctx, mc, who, from)
				inflight.Add(-1)
				free <- who
				if p.trace != nil {
					w.trace = append(w.trace, traceRow{at: from.Sub(start), latency: a.latency, added: a.added(), code: a.code})
				}
				if a.code != "approved" {
					w.codes[a.code]++
					failed.Add(1)
					return
				}
				completed.Add(1)
				w.latency = append(w.latency, a.latency)
				if p.hold != nil {
					if a.held {
						w.added = append(w.added, a.added())
					} else {
						w.noHold++
					}
				}
				if !a.timed {
					w.noTiming++
					return
				}
				w.own = append(w.own, a.own)
				if a.held {
					w.heldLessHold = append(w.heldLessHold, a.own+a.wait-a.hold)
				}
			}
			if sched != nil {
				for at := range sched {
					send(at)
				}
				return
			}
			for more(time.Now()) {
				send(time.Now())
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	res := phaseResult{name: p.name, concurrency: p.concurrency, rate: p.rate, elapsed: elapsed, codes: map[string]int{}}
	if p.devices != nil {
		res.delivery, res.answerRTT = p.devices()
		slices.Sort(res.delivery)
		slices.Sort(res.answerRTT)
	}
	for _, w := range workers {
		res.latency = append(res.latency, w.latency...)
		res.added = append(res.added, w.added...)
		res.own = append(res.own, w.own...)
		res.heldLessHold = append(res.heldLessHold, w.heldLessHold...)
		res.noHold += w.noHold
		res.noTiming += w.noTiming
		for c, n := range w.codes {
			res.codes[c] += n
		}
	}
	if p.trace != nil {
		var rows []traceRow
		for _, w := range workers {
			rows = append(rows, w.trace...)
		}
		slices.SortFunc(rows, func(a, b traceRow) int { return int(a.at - b.at) })
		fmt.Fprintf(p.trace, "phase,due_s,latency_ms,broker_added_ms,code\n")
		for _, r := range rows {
			fmt.Fprintf(p.trace, "%s,%.6f,%.3f,%.3f,%s\n", p.name, r.at.Seconds(), float64(r.latency.Microseconds())/1000, float64(r.added.Microseconds())/1000, r.code)
		}
	}
	res.approved = len(res.latency)
	res.completed = res.approved + res.errors()
	slices.Sort(res.latency)
	slices.Sort(res.added)
	slices.Sort(res.own)
	slices.Sort(res.heldLessHold)
	return res
}

// dispatch schedules requests at the phase's rate. Latency counts from the
// scheduled time, so a broker that falls behind shows it in latency rather
// than hiding it by slowing the clients down.
func (p phase) dispatch(ctx context.Context, start time.Time, more func(time.Time) bool, sched chan<- time.Time) {
	defer close(sched)
	interval := float64(time.Second) / p.rate
	for n := 0; ; n++ {
		at := start.Add(time.Duration(float64(n) * interval))
		if !more(at) {
			return
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		select {
		case sched <- at:
		case <-ctx.Done():
			return
		}
	}
}

// answer is what one request measured: hold is its device's hold, if
// held; own and wait are the broker's Server-Timing, if timed.
type answer struct {
	code                     string
	latency, hold, own, wait time.Duration
	held, timed              bool
}

// added is the latency less the device's hold, or 0 if the hold is not
// known.
func (a answer) added() time.Duration {
	if !a.held {
		return 0
	}
	return a.latency - a.hold
}

// once sends one request with the client library and reads its whole
// answer. The code is the outcome code, or a transport error's
// description.
func (p phase) once(ctx context.Context, mc *client.Client, i int, from time.Time) answer {
	res, err := mc.MFA(ctx, p.mfa[i])
	a := answer{latency: time.Since(from), code: outcomeCode(ctx, err)}
	if err != nil {
		return a
	}
	a.own, a.wait, a.timed = serverTiming(res.Header.Get("Server-Timing"))
	if p.hold != nil {
		a.hold, a.held = p.hold(res.RequestID)
	}
	return a
}

func transportError(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "cancelled"
	}
	return "transport: " + err.Error()
}

// watch prints a progress line every p.progress and samples the server;
// the returned function stops it.
func (p phase) watch(ctx context.Context, start time.Time, completed, failed, inflight *atomic.Int64) func() {
	if p.progress <= 0 && p.sample == nil {
		return func() {}
	}
	every := p.progress
	if every <= 0 {
		every = time.Second
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(every)
		defer tick.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				if p.sample != nil {
					p.sample(ctx)
				}
				if p.progress <= 0 {
					continue
				}
				c := completed.Load()
				rate := float64(c-last) / now.Sub(lastAt).Seconds()
				last, lastAt = c, now
				fmt.Fprintf(p.log, "%-10s %5.1fs  %8.0f MFA/s  approved %8d  errors %6d  in flight %5d\n",
					p.name, now.Sub(start).Seconds(), rate, c, failed.Load(), inflight.Load())
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
