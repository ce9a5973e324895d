//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker/operator"
	"github.com/legalmfa/mfa/client"

	"github.com/legalmfa/mfa/broker"
)

// setup is what every scenario starts from: approved identities with
// started devices, and their requests.
type setup struct {
	info   api.BrokerInfo
	people []person
	fleet  *fleet
	mfa    []client.Request
	// refsWait, with --federated, is how long after the devices started
	// the asked broker listed every person's reference.
	refsWait time.Duration
}

func prepare(ctx context.Context, cfg config, t *target, timeout int, logf func(string, ...any)) (*setup, error) {
	// With --federated the people and their devices are the home
	// broker's; requests go to t, which finds them in the references the
	// home broker shares with it.
	home := t.provisioner()
	info, err := brokerInfo(ctx, home.baseURL)
	if err != nil {
		return nil, err
	}
	people, err := provision(ctx, home, info, cfg.identities, logf)
	if err != nil {
		return nil, err
	}
	dcfg, err := deviceConfig(info.PublicKey)
	if err != nil {
		return nil, err
	}
	fl, err := startFleet(ctx, people[:cfg.online], dcfg, info.NATSURL, logf)
	if err != nil {
		return nil, err
	}
	s := &setup{info: info, people: people, fleet: fl, mfa: mfaRequests(people, timeout)}
	if t.home != nil {
		if s.refsWait, err = awaitReferences(ctx, t, cfg.identities, logf); err != nil {
			fl.close()
			return nil, err
		}
	}
	return s, nil
}

// basePhase is a phase with the flags' load settings.
func basePhase(cfg config, s *setup, log, trace io.Writer) phase {
	return phase{
		mfa: s.mfa, encoding: requestEncoding(cfg.encoding), concurrency: cfg.concurrency,
		duration: cfg.duration, requests: cfg.requests, rate: cfg.rate,
		timeout:  time.Duration(cfg.mfaTimeout)*time.Second + 30*time.Second,
		progress: cfg.progress, log: log, trace: trace, devices: s.fleet.takeTimings,
	}
}

// measure runs an unmeasured warm-up, then the phase, metering CPU and,
// for the broker, its stats before, during (peak) and after.
func measure(ctx context.Context, cfg config, p phase, pid int, admin *operator.Client) phaseResult {
	waitQuiet(ctx, cfg, pid, p.log)
	if cfg.warmup > 0 {
		w := p
		w.name, w.duration, w.requests, w.progress, w.sample, w.trace = p.name+"/warmup", cfg.warmup, 0, 0, nil, nil
		w.run(ctx)
	}
	if p.rate > 0 {
		defer holdCollections()()
	}
	var (
		mu         sync.Mutex
		peak       broker.Stats
		before     broker.Stats
		statsKnown bool
	)
	if admin != nil {
		if st, err := admin.Stats(ctx); err == nil {
			before, peak, statsKnown = st, st, true
		}
		p.sample = func(ctx context.Context) {
			st, err := admin.Stats(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			peak.RSSBytes = max(peak.RSSBytes, st.RSSBytes)
			peak.HeapBytes = max(peak.HeapBytes, st.HeapBytes)
			peak.Goroutines = max(peak.Goroutines, st.Goroutines)
			peak.Pending = max(peak.Pending, st.Pending)
		}
	}
	meter := startCPUs(pid, p.homePID)
	res := p.run(ctx)
	res.cpu = meter.stop()
	if admin != nil && statsKnown {
		res.hasStats = true
		res.before = before
		if st, err := admin.Stats(ctx); err == nil {
			res.after = st
		}
		mu.Lock()
		res.peak = peak
		mu.Unlock()
	}
	return res
}

// latencyPhase is an open-loop phase at --latency-rate of maxRate against
// base, for as long as --latency-duration, each request held about think.
func latencyPhase(cfg config, s *setup, log, trace io.Writer, name, base string, maxRate float64, think time.Duration, fileLimit uint64) phase {
	p := basePhase(cfg, s, log, trace)
	p.name, p.base = name, base
	p.rate = cfg.latencyRate * maxRate
	if cfg.latencyRPS > 0 {
		p.rate = cfg.latencyRPS
	}
	p.duration, p.requests = cfg.latencyDuration, 0
	// Enough clients that requests never wait for one: the rate times
	// how long each is held, with room for bursts.
	p.concurrency = max(cfg.concurrency, int(p.rate*(think+50*time.Millisecond).Seconds()*2)+16)
	if need := uint64(p.concurrency + cfg.online + 64); need > fileLimit {
		p.concurrency = int(fileLimit) - cfg.online - 64
	}
	return p
}

// runThroughput is the default scenario: the ceiling, the broker at full
// load, then the broker at a share of that load for its added latency.
func runThroughput(ctx context.Context, cfg config, t *target, rep *report, log io.Writer, logf func(string, ...any)) error {
	s, err := prepare(ctx, cfg, t, cfg.mfaTimeout, logf)
	if err != nil {
		return err
	}
	defer s.fleet.close()
	rep.setup(s, cfg)
	var trace io.Writer
	if cfg.trace != "" {
		f, err := os.Create(cfg.trace)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := bufio.NewWriter(f)
		defer buf.Flush()
		trace = buf
	}

	if cfg.ceiling {
		c, err := startCeiling(ctx, cfg.responders)
		if err != nil {
			return err
		}
		p := basePhase(cfg, s, log, trace)
		p.name, p.base, p.transport, p.devices = "ceiling", c.base, newTransport(cfg.concurrency, cfg.http2), nil
		logf("measuring the bare pipeline: %d clients, %s", cfg.concurrency, cfg.encoding)
		res := measure(ctx, cfg, p, c.pid(), nil)
		p.transport.CloseIdleConnections()
		rep.ceiling = &res
		if cfg.latencyRate > 0 && res.throughput() > 0 && ctx.Err() == nil {
			// The same open loop as the broker's latency phase, at the same
			// share of the pipeline's own maximum: the latency floor this
			// machine and this tool show with no broker at all. Its
			// responders' connections count against the open-file limit.
			lp := latencyPhase(cfg, s, log, trace, "ceiling latency", c.base, res.throughput(), 0, rep.limit-uint64(cfg.responders))
			lp.devices, lp.transport = nil, newTransport(lp.concurrency, cfg.http2)
			logf("measuring the bare pipeline's latency: %.0f requests/s (%.0f%% of %.0f), up to %d clients",
				lp.rate, 100*lp.rate/res.throughput(), res.throughput(), lp.concurrency)
			lres := measure(ctx, cfg, lp, c.pid(), nil)
			lp.transport.CloseIdleConnections()
			rep.ceilingLatency = &lres
		}
		c.close()
		if err := ctx.Err(); err != nil {
			return err
		}
	}

	tr := newTransport(max(cfg.concurrency, 1024), cfg.http2)
	defer tr.CloseIdleConnections()
	p := basePhase(cfg, s, log, trace)
	p.name, p.base, p.transport = "broker", t.baseURL, tr
	p.homePID = t.homePID()
	s.fleet.setThink(cfg.think)
	if cfg.think > 0 {
		p.hold = s.fleet.hold
	}
	var profiles errGroup
	if cfg.cpuProfile != "" {
		secs := int(math.Max(1, cfg.duration.Seconds()-1))
		profiles.Go(func() error {
			// Started with the measured phase, after the warm-up.
			time.Sleep(cfg.warmup + 500*time.Millisecond)
			return t.admin.Profile(ctx, "profile", secs, cfg.cpuProfile)
		})
	}
	logf("measuring the broker: %d clients, %s, device think time %s", cfg.concurrency, cfg.encoding, cfg.think)
	stopSelf, err := startSelfProfile(cfg)
	if err != nil {
		return err
	}
	res := measure(ctx, cfg, p, t.pid(), t.admin)
	stopSelf()
	rep.broker = &res
	if err := profiles.Wait(); err != nil {
		logf("CPU profile: %v", err)
	}
	if cfg.heapProfile != "" {
		if err := t.admin.Profile(ctx, "heap", 0, cfg.heapProfile); err != nil {
			logf("heap profile: %v", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if cfg.latencyRate > 0 && res.throughput() > 0 {
		lp := latencyPhase(cfg, s, log, trace, "latency", t.baseURL, res.throughput(), cfg.latencyThink, rep.limit)
		lp.transport, lp.hold, lp.homePID = tr, s.fleet.hold, t.homePID()
		s.fleet.setThink(cfg.latencyThink)
		logf("measuring the broker's added latency: %.0f requests/s (%.0f%% of %.0f), device think time %s, up to %d clients",
			lp.rate, 100*lp.rate/res.throughput(), res.throughput(), cfg.latencyThink, lp.concurrency)
		lres := measure(ctx, cfg, lp, t.pid(), t.admin)
		rep.latency = &lres
	}
	rep.devices(s.fleet)
	return ctx.Err()
}

// describeBytes is a byte count in KiB or MiB.
func describeBytes(n float64) string {
	switch {
	case math.Abs(n) >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case math.Abs(n) >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}

// startSelfProfile profiles this process (clients and devices) when asked;
// the profile covers the warm-up too.
func startSelfProfile(cfg config) (stop func(), err error) {
	if cfg.selfProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(cfg.selfProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// waitQuiet waits until processes other than this one and the server use
// at most cfg.quiet cores, or until cfg.quietWait has passed.
func waitQuiet(ctx context.Context, cfg config, pid int, log io.Writer) {
	if cfg.quiet <= 0 {
		return
	}
	deadline := time.Now().Add(cfg.quietWait)
	for {
		m := startCPU(pid)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		others := m.stop().others()
		if others <= cfg.quiet {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(log, "other processes still use %.2f cores after %s; measuring anyway\n", others, cfg.quietWait)
			return
		}
		fmt.Fprintf(log, "waiting for quiet: other processes use %.2f cores\n", others)
	}
}
