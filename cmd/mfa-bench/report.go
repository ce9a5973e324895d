//go:build linux

package main

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// report gathers what a run measured and prints it as markdown, ready to
// paste into BENCHMARKS.md.
type report struct {
	cfg     config
	limit   uint64
	target  string
	started time.Time
	loadAt  string

	people    int
	online    int
	bodyBytes int
	refsWait  time.Duration

	// replication is what --federated-references measured.
	replication *replicationResult

	ceiling, broker, latency *phaseResult
	// ceilingLatency is the bare pipeline open loop at the latency phase's
	// share of its own maximum.
	ceilingLatency *phaseResult
	pending        *pendingResult

	prompts, answers, answerErrs, withdrawals int64
	answerErr                                 error
}

func (r *report) setup(s *setup, cfg config) {
	r.started = time.Now()
	r.loadAt = loadAverage()
	r.people = len(s.people)
	r.online = len(s.fleet.devices)
	r.refsWait = s.refsWait
	// The bodies the client library sends: unsigned, so the same every time.
	mc := mfaClient("http://bench.invalid", http.DefaultClient, requestEncoding(cfg.encoding))
	total := 0
	for _, req := range s.mfa {
		if _, body, err := mc.MarshalRequest(req); err == nil {
			total += len(body)
		}
	}
	r.bodyBytes = total / max(1, len(s.mfa))
}

func (r *report) devices(f *fleet) {
	r.prompts, r.answers, r.answerErrs, r.withdrawals = f.prompts.Load(), f.answers.Load(), f.answerErrs.Load(), f.withdrawals.Load()
	r.answerErr = f.answerError()
}

func (r *report) write(w io.Writer) {
	cfg := r.cfg
	fmt.Fprintf(w, "\n## mfa-bench, %s\n\n", r.started.Format(time.RFC3339))
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| machine | %s |\n", machine())
	fmt.Fprintf(w, "| load average at start / end | %s / %s |\n", r.loadAt, loadAverage())
	fmt.Fprintf(w, "| broker | %s |\n", r.target)
	if r.replication != nil {
		r.writeReplication(w)
		return
	}
	if cfg.federated {
		fmt.Fprintf(w, "| federation | requests to %s; identities and devices at %s, which shares its references with A; A listed all %d references %s after the devices started; server CPU is both brokers'; A's Server-Timing has no device wait for an answer from a peer, so the latency added is on the client's clock |\n",
			askedName, homeName, r.people, r.refsWait.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "| identities | %d approved; %d devices online, each on its own NATS connection |\n", r.people, r.online)
	protocol := "HTTP/1.1, a connection per client"
	if cfg.http2 {
		protocol = "HTTP/2 in clear text, multiplexed"
	}
	fmt.Fprintf(w, "| requests | %s, %d-byte bodies, answers in JSON (package client), %s |\n", cfg.encoding, r.bodyBytes, protocol)
	fmt.Fprintf(w, "| open-file limit | %d per process |\n", r.limit)
	if r.pending == nil {
		length := cfg.duration.String()
		if cfg.requests > 0 {
			length = fmt.Sprintf("%d requests", cfg.requests)
		}
		fmt.Fprintf(w, "| load | %d keep-alive clients, %s per phase after %s warm-up; device think time %s |\n", cfg.concurrency, length, cfg.warmup, cfg.think)
	}
	if r.ceiling != nil {
		fmt.Fprintf(w, "| bare pipeline | %d responders, each on its own NATS connection and subject, asked in turn |\n", cfg.responders)
	}
	if r.ceiling != nil || r.broker != nil {
		r.writePhases(w)
	}
	if r.pending != nil {
		r.writePending(w)
	}
	fmt.Fprintf(w, "\nDevices: %d prompts, %d answers accepted, %d answers failed, %d withdrawals.", r.prompts, r.answers, r.answerErrs, r.withdrawals)
	if r.answerErr != nil {
		fmt.Fprintf(w, " Last answer error: %v.", r.answerErr)
	}
	fmt.Fprintln(w)
	r.writeTargets(w)
}

// phases are the load phases in the order they ran; those not run are nil.
func (r *report) phases() []*phaseResult {
	return []*phaseResult{r.ceiling, r.ceilingLatency, r.broker, r.latency}
}

func (r *report) writePhases(w io.Writer) {
	fmt.Fprintf(w, "\n| phase | clients | offered rate | completed MFA/s | p50 | p90 | p99 | max | errors | server CPU | server CPU per MFA | load-tool CPU | others' CPU |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range r.phases() {
		if p == nil {
			continue
		}
		rate := "max"
		if p.rate > 0 {
			rate = fmt.Sprintf("%.0f/s", p.rate)
		}
		serverCPU, perMFA := "-", "-"
		if p.cpu.known && p.cpu.wall > 0 {
			serverCPU = fmt.Sprintf("%.2f cores", p.cpu.server.Seconds()/p.cpu.wall.Seconds())
			if p.approved > 0 {
				perMFA = fmt.Sprintf("%.0f µs", float64(p.cpu.server.Microseconds())/float64(p.approved))
			}
		}
		fmt.Fprintf(w, "| %s | %d | %s | %.0f | %s | %s | %s | %s | %d | %s | %s | %.2f cores | %.2f cores |\n",
			p.name, p.concurrency, rate, p.throughput(),
			ms(percentile(p.latency, .5)), ms(percentile(p.latency, .9)), ms(percentile(p.latency, .99)), ms(percentile(p.latency, 1)),
			p.errors(), serverCPU, perMFA, p.cpu.bench.Seconds()/max(p.cpu.wall.Seconds(), 1e-9), p.cpu.others())
	}
	if r.ceiling != nil && r.broker != nil && r.ceiling.throughput() > 0 {
		fmt.Fprintf(w, "\nBroker throughput is **%.1f%% of the bare pipeline's** (%.0f / %.0f MFA/s).\n",
			100*r.broker.throughput()/r.ceiling.throughput(), r.broker.throughput(), r.ceiling.throughput())
	}
	// CPU per MFA moves less than throughput when other processes share
	// the machine, so it is the steadier comparison.
	cores := float64(runtime.NumCPU())
	for _, p := range []*phaseResult{r.ceiling, r.broker, r.latency} {
		if p == nil || !p.cpu.known || p.approved == 0 {
			continue
		}
		server := float64(p.cpu.server.Microseconds()) / float64(p.approved)
		bench := float64(p.cpu.bench.Microseconds()) / float64(p.approved)
		split := ""
		if p.cpu.home > 0 {
			split = fmt.Sprintf(": %s %.0f, %s %.0f", askedName, server-float64(p.cpu.home.Microseconds())/float64(p.approved),
				homeName, float64(p.cpu.home.Microseconds())/float64(p.approved))
		}
		fmt.Fprintf(w, "\nCPU per completed MFA in the %s phase: %.0f µs (server %.0f%s + load tool and devices %.0f); %d cores could do at most %.0f/s.",
			p.name, server+bench, server, split, bench, int(cores), cores*1e6/(server+bench))
	}
	if c, b := r.ceiling, r.broker; c != nil && b != nil && c.cpu.known && b.cpu.known && c.approved > 0 && b.approved > 0 {
		cc := float64((c.cpu.server + c.cpu.bench).Microseconds()) / float64(c.approved)
		bc := float64((b.cpu.server + b.cpu.bench).Microseconds()) / float64(b.approved)
		fmt.Fprintf(w, " By CPU cost the broker is %.1f%% of the bare pipeline.", 100*cc/bc)
	}
	fmt.Fprintln(w)
	if p := r.ceilingLatency; p != nil && len(p.latency) > 0 {
		fmt.Fprintf(w, "\nLatency of the bare pipeline open loop at %.0f/s, %.0f%% of its maximum (%d requests): %s. No broker, no device think time: the floor this machine and this tool show.\n",
			p.rate, 100*p.rate/r.ceiling.throughput(), len(p.latency), spread(p.latency))
	}
	for _, p := range []*phaseResult{r.broker, r.latency} {
		if p == nil || len(p.added) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nLatency the broker adds in the %s phase (each request's latency minus the time its device held it on purpose, %d requests",
			p.name, len(p.added))
		if p.noHold > 0 {
			fmt.Fprintf(w, "; %d without a known hold left out", p.noHold)
		}
		fmt.Fprintf(w, "): %s.\n", spread(p.added))
	}
	for _, p := range r.phases() {
		if p == nil || len(p.own) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nAs the server's Server-Timing tells the %s phase (%d requests", p.name, len(p.own))
		if p.noTiming > 0 {
			fmt.Fprintf(w, "; %d without one left out", p.noTiming)
		}
		fmt.Fprintf(w, "): its own work (time held less the wait from push to answer) %s", spread(p.own))
		if len(p.heldLessHold) > 0 {
			fmt.Fprintf(w, "; time held less the device's hold %s", spread(p.heldLessHold))
		}
		fmt.Fprintln(w, ".")
	}
	for _, p := range []*phaseResult{r.broker, r.latency} {
		if p == nil || len(p.delivery) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nAs the devices saw the %s phase: push delivery (broker's Issued time, in whole milliseconds, to a verified prompt) p50 %s, p99 %s, max %s; answer round trip (signed answer sent, broker's receipt back) p50 %s, p99 %s, max %s.\n",
			p.name, ms(percentile(p.delivery, .5)), ms(percentile(p.delivery, .99)), ms(percentile(p.delivery, 1)),
			ms(percentile(p.answerRTT, .5)), ms(percentile(p.answerRTT, .99)), ms(percentile(p.answerRTT, 1)))
	}
	for _, p := range r.phases() {
		if p == nil || len(p.codes) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nErrors in the %s phase:", p.name)
		for _, c := range slices.Sorted(maps.Keys(p.codes)) {
			fmt.Fprintf(w, " %s × %d;", c, p.codes[c])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n| broker process | phase | before | peak | after |\n|---|---|---:|---:|---:|\n")
	for _, p := range []*phaseResult{r.broker, r.latency} {
		if p == nil || !p.hasStats {
			continue
		}
		fmt.Fprintf(w, "| RSS | %s | %s | %s | %s |\n", p.name, mib(p.before.RSSBytes), mib(p.peak.RSSBytes), mib(p.after.RSSBytes))
		fmt.Fprintf(w, "| heap | %s | %s | %s | %s |\n", p.name, mib(p.before.HeapBytes), mib(p.peak.HeapBytes), mib(p.after.HeapBytes))
		fmt.Fprintf(w, "| goroutines | %s | %d | %d | %d |\n", p.name, p.before.Goroutines, p.peak.Goroutines, p.after.Goroutines)
		fmt.Fprintf(w, "| pending | %s | %d | %d | %d |\n", p.name, p.before.Pending, p.peak.Pending, p.after.Pending)
	}
}

func (r *report) writePending(w io.Writer) {
	p := r.pending
	growth := float64(int64(p.full.RSSBytes)-int64(p.before.RSSBytes)) / float64(max(p.full.Pending, 1))
	held := "requests held open"
	if p.orders {
		held = "orders pending, each awaited by a long-polling collect"
	}
	fmt.Fprintf(w, "\n| %d %s, Timeout %s | |\n|---|---:|\n", p.requests, held, p.timeout)
	fmt.Fprintf(w, "| time to send them all | %s |\n", p.sendTime.Round(time.Millisecond))
	fmt.Fprintf(w, "| most pending at once (broker's count) | %d |\n", p.full.Pending)
	fmt.Fprintf(w, "| broker RSS: idle / all pending / peak / after | %s / %s / %s / %s |\n", mib(p.before.RSSBytes), mib(p.full.RSSBytes), mib(p.peakRSS), mib(p.after.RSSBytes))
	fmt.Fprintf(w, "| RSS growth per pending request | **%s** |\n", describeBytes(growth))
	fmt.Fprintf(w, "| broker heap (live, after a forced GC): idle / all pending | %s / %s |\n", mib(p.before.HeapBytes), mib(p.live.HeapBytes))
	if p.liveKnown {
		fmt.Fprintf(w, "| live heap per pending request | %s |\n", describeBytes(float64(int64(p.live.HeapBytes)-int64(p.before.HeapBytes))/float64(max(p.live.Pending, 1))))
		fmt.Fprintf(w, "| goroutine stacks per pending request | %s |\n", describeBytes(float64(int64(p.live.StackBytes)-int64(p.before.StackBytes))/float64(max(p.live.Pending, 1))))
	}
	fmt.Fprintf(w, "| broker goroutines: idle / all pending / after | %d / %d / %d |\n", p.before.Goroutines, p.full.Goroutines, p.after.Goroutines)
	fmt.Fprintf(w, "| answered `timeout` | %d |\n", len(p.lateness))
	fmt.Fprintf(w, "| answered otherwise | %d |\n", p.answered-len(p.lateness))
	fmt.Fprintf(w, "| lost (no answer) | %d |\n", p.lost)
	fmt.Fprintf(w, "| answered before the deadline (sending began + Timeout) | %d |\n", p.early)
	fmt.Fprintf(w, "| lateness after the deadline: p50 / p99 / max | %s / %s / %s |\n",
		ms(percentile(p.lateness, .5)), ms(percentile(p.lateness, .99)), ms(percentile(p.lateness, 1)))
	if p.cpu.known {
		fmt.Fprintf(w, "| broker CPU over the run | %s |\n", p.cpu.server.Round(time.Millisecond))
	}
	if p.idle.known && p.idle.wall > 0 {
		fmt.Fprintf(w, "| broker CPU while all wait, nothing answered (%s) | %.2f%% of a core |\n",
			p.idle.wall.Round(100*time.Millisecond), 100*p.idle.server.Seconds()/p.idle.wall.Seconds())
	}
	if len(p.codes) > 0 {
		fmt.Fprintf(w, "\nOther answers and failures:")
		for _, c := range slices.Sorted(maps.Keys(p.codes)) {
			fmt.Fprintf(w, " %s × %d;", c, p.codes[c])
		}
		fmt.Fprintln(w)
	}
}

// writeTargets checks the targets against what this run measured.
func (r *report) writeTargets(w io.Writer) {
	type row struct{ target, measured, verdict string }
	var rows []row
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	if b := r.broker; b != nil {
		rows = append(rows, row{"≥ 2,500 completed MFA/s (signed answers)", fmt.Sprintf("%.0f MFA/s", b.throughput()), verdict(b.throughput() >= 2500 && b.errors() == 0)})
		if c := r.ceiling; c != nil && c.throughput() > 0 {
			share := b.throughput() / c.throughput()
			rows = append(rows, row{"≥ 50% of the bare pipeline", fmt.Sprintf("%.1f%% (%.0f / %.0f)", 100*share, b.throughput(), c.throughput()), verdict(share >= .5)})
		}
	}
	if l := r.latency; l != nil && len(l.added) > 0 {
		// The measure is the broker's time less the device's think
		// time; the broker's own clock gives its time where it sends
		// Server-Timing, else the client's clock stands in for it.
		target := fmt.Sprintf("broker-added p99 < 5 ms at %.0f%% of max", 100*r.cfg.latencyRate)
		if r.cfg.latencyRPS > 0 && r.broker != nil && r.broker.throughput() > 0 {
			target = fmt.Sprintf("broker-added p99 < 5 ms at %.0f%% of max (--latency-rps)", 100*l.rate/r.broker.throughput())
		}
		client := percentile(l.added, .99)
		if len(l.heldLessHold) > 0 && l.noTiming == 0 {
			p99 := percentile(l.heldLessHold, .99)
			rows = append(rows, row{target + " (broker's clock)",
				fmt.Sprintf("%s at %.0f/s; its own work %s, at the client %s", ms(p99), l.rate, ms(percentile(l.own, .99)), ms(client)),
				verdict(p99 < 5*time.Millisecond && l.errors() == 0)})
		} else {
			rows = append(rows, row{target + " (client's clock)", fmt.Sprintf("%s at %.0f/s", ms(client), l.rate), verdict(client < 5*time.Millisecond && l.errors() == 0)})
		}
	}
	if p := r.pending; p != nil {
		growth := float64(int64(p.full.RSSBytes)-int64(p.before.RSSBytes)) / float64(max(p.full.Pending, 1))
		// The capacity targets are /MFA's (the performance issue's); orders
		// have none of their own, only what this run measures.
		if !p.orders {
			rows = append(rows, row{"20,000 pending in one broker", fmt.Sprintf("%d at once", p.full.Pending), verdict(p.full.Pending >= 20000)})
			rows = append(rows, row{"RSS growth < 32 KiB per pending request", describeBytes(growth), verdict(growth < 32<<10)})
		}
		maxLate := percentile(p.lateness, 1)
		rows = append(rows, row{"every one answered at its timeout within 100 ms", fmt.Sprintf("max %s late, %d early, %d other answers", ms(maxLate), p.early, p.answered-len(p.lateness)),
			verdict(len(p.lateness) == p.requests && maxLate < 100*time.Millisecond && p.early == 0)})
		rows = append(rows, row{"none lost", fmt.Sprintf("%d lost", p.lost), verdict(p.lost == 0)})
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n| target | measured | |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", r.target, r.measured, r.verdict)
	}
}

// spread is a sorted distribution's p50, p90, p99 and max.
func spread(sorted []time.Duration) string {
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s",
		ms(percentile(sorted, .5)), ms(percentile(sorted, .9)), ms(percentile(sorted, .99)), ms(percentile(sorted, 1)))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// machine describes where the run happened, for the report's reader.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	mem := ""
	if total, ok := meminfo("MemTotal"); ok {
		mem = fmt.Sprintf(", %.0f GiB", float64(total)/(1<<30))
	}
	kernel := ""
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		kernel = ", Linux " + utsString(u.Release[:])
	}
	return fmt.Sprintf("%d × %s%s%s, %s %s/%s", runtime.NumCPU(), cpu, mem, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func utsString[T int8 | uint8](b []T) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
