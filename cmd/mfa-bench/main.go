//go:build linux

// Command mfa-bench loads an MFA broker the way relying parties and people
// do, and measures it against the least any correct broker must do.
//
// It starts the real mfa-broker as a separate process (or drives one that
// runs already), provisions approved identities over the broker's own API
// and operator socket, connects a real, auto-answering notify.Device for
// each over NATS, and drives POST /MFA with concurrent keep-alive clients:
// the Go client library relying parties use (package client), on a tuned
// transport.
// In the same run it measures a bare pipeline (HTTP → NATS request →
// Ed25519-signing responder → verify → HTTP answer) with the same load, and
// reports the broker's throughput as a share of it.
//
//	mfa-bench [flags]                          ceiling, broker at full load, broker at half load
//	mfa-bench --pending 19000 --timeout 20     requests held open until they time out
//	mfa-bench --pending 10000 --orders          orders awaited by long-polling collects
//	mfa-bench --federated                      the same phases, asked of a broker whose peer holds the people
//	mfa-bench --federated-references 1000000   a peer's references replicated to a broker: time, disk, memory, lookups
//
// Run mfa-bench -h for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const usage = `mfa-bench: load and measure the MFA broker

Usage:
  mfa-bench [flags]

Without --pending, a run is: provision identities with auto-answering
devices; measure the bare pipeline (the ceiling) with -c clients, and unless
--latency-rate is 0 again open-loop at that share of its maximum (the latency
floor of the machine and the tool); measure the broker with the same clients
(devices answer after --think); then, unless --latency-rate is 0, measure the
broker again open-loop at that share of its maximum, with devices thinking
--latency-think, to report the latency the broker adds. With --pending P,
devices never answer: P requests are held open until --timeout, to measure
memory per pending request and how precisely each is answered at its
deadline. With --orders as well, the P requests are orders (POST /Orders),
each awaited by a collect that long-polls (GET /Orders/{Ref}?wait=30), as
a relying party's would: what pending orders and their waiting collects
cost the broker, in memory and in CPU while nothing happens.

With --federated the tool starts two brokers that federate, A and B, peers
them as their operators would, has B share its references with A, and
provisions the people and their devices at B: requests go to A, which finds
the people in B's references and asks B, which asks the devices. The
server's CPU is both brokers'.

With --federated-references N nothing is loaded: B starts with N approved
identities in its store (written with the store's own Create before B
starts, in a scratch copy on tmpfs where there is one, and cached in the
temporary directory for later runs), A and B are peered, B shares with A,
and the tool measures how long A takes to index all N references, A's disk
(its JetStream directory and federation index) and memory, and, once A has
stopped, the lookup (federation Index.Find) over A's index.

The bare pipeline has a responder per identity (--ceiling-responders), each
on its own NATS connection and asked in turn, as the broker reaches a
different device for each person: shared responders would let the NATS
server batch writes to one socket, which no broker can.

Before each open-loop phase the tool collects its own garbage and puts off
its next collection until the phase ends (unless GOGC or GOMEMLIMIT is set),
so that its own pauses do not count as latency the broker added.

The latency the broker adds is reported three ways: at the client (latency
less the device's hold), on the broker's clock (its Server-Timing total less
the hold; the target is judged on this), and the broker's own work (its
Server-Timing less the wait from push to answer).

The final report is a markdown table on stdout; progress goes to stderr.

Flags:
`

// config is everything the flags say.
type config struct {
	brokerBin   string
	brokerURL   string
	dataDir     string
	keep        bool
	brokerFlags string

	identities  int
	concurrency int
	encoding    string
	http2       bool
	duration    time.Duration
	warmup      time.Duration
	requests    int
	rate        float64
	think       time.Duration
	mfaTimeout  int
	ceiling     bool
	responders  int

	latencyRate     float64
	latencyRPS      float64
	latencyThink    time.Duration
	latencyDuration time.Duration

	federated          bool
	fedReferences      int
	replicationTimeout time.Duration
	stallTimeout       time.Duration
	lookups            int

	pending        int
	pendingTimeout int
	orders         bool
	dialers        int
	openRate       float64
	online         int

	cpuProfile  string
	heapProfile string
	selfProfile string
	progress    time.Duration
	quiet       float64
	quietWait   time.Duration
	trace       string
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.brokerBin, "broker-bin", "", "mfa-broker binary to start (default: go build ./cmd/mfa-broker into a temporary directory)")
	fs.StringVar(&c.brokerURL, "broker-url", "", "drive this running broker instead of starting one (needs --data-dir for its operator socket)")
	fs.StringVar(&c.dataDir, "data-dir", "", "with --broker-url: the running broker's data directory, where its operator socket is")
	fs.BoolVar(&c.keep, "keep", false, "keep the started broker's temporary directory (data, log, profiles) and print where it is")
	fs.StringVar(&c.brokerFlags, "broker-flags", "", "extra flags for the started broker, space-separated")

	fs.IntVar(&c.identities, "n", 1000, "approved identities to provision, each with its own simulated device")
	fs.IntVar(&c.concurrency, "c", 64, "concurrent keep-alive HTTP clients")
	fs.StringVar(&c.encoding, "encoding", "json", "request encoding: json, xml or form (answers are JSON: the clients are the Go client library's, as a relying party's)")
	fs.BoolVar(&c.http2, "http2", false, "send over HTTP/2 in clear text (prior knowledge) instead of HTTP/1.1: requests are multiplexed over a few connections (the bare pipeline too)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long each measured phase runs")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each measured phase")
	fs.IntVar(&c.requests, "requests", 0, "end each measured phase after this many completed requests instead of after --duration")
	fs.Float64Var(&c.rate, "rate", 0, "send at this many requests per second (open loop) instead of as fast as the clients can")
	fs.DurationVar(&c.think, "think", 0, "how long each device waits before it answers, in the full-load phase")
	fs.IntVar(&c.mfaTimeout, "mfa-timeout", 60, "the Timeout field of the MFA requests, seconds")
	fs.BoolVar(&c.ceiling, "ceiling", true, "measure the bare pipeline too, and report the broker's share of it")
	fs.IntVar(&c.responders, "ceiling-responders", 0, "the bare pipeline's responders, each on its own NATS connection and subject, asked in turn (default: one per identity, as the broker has a device per person)")

	fs.Float64Var(&c.latencyRate, "latency-rate", 0.5, "after the full-load phase, run open loop at this share of the broker's measured throughput; 0 skips it")
	fs.Float64Var(&c.latencyRPS, "latency-rps", 0, "run the open-loop latency phases (the bare pipeline's too) at this many requests per second instead of --latency-rate's share, to compare runs at one rate")
	fs.DurationVar(&c.latencyThink, "latency-think", 100*time.Millisecond, "device think time in the latency phase; subtracted to give the latency the broker adds")
	fs.DurationVar(&c.latencyDuration, "latency-duration", 0, "how long the latency phase runs (default --duration)")

	fs.IntVar(&c.pending, "pending", 0, "hold this many requests open at once, one per person (P identities are provisioned; -n is ignored), with devices that never answer, instead of the throughput phases")
	fs.BoolVar(&c.orders, "orders", false, "with --pending: place orders (POST /Orders) and await each with a long-polling collect, instead of holding POST /MFA open")
	fs.IntVar(&c.pendingTimeout, "timeout", 20, "with --pending: the requests' Timeout, seconds; keep it longer than sending them all takes")
	fs.IntVar(&c.online, "online", 500, "with --pending: how many of the P people's devices are connected (and never answer); the others are offline phones")
	fs.Float64Var(&c.openRate, "open-rate", 0, "with --pending: open the requests at this many per second (0: as fast as --dialers allow); a burst faster than the broker takes requests in makes them wait before its clock starts, which shows as lateness")
	fs.IntVar(&c.dialers, "dialers", 256, "with --pending: requests being connected and sent at once while the P requests are opened")

	fs.BoolVar(&c.federated, "federated", false, "start two brokers that federate, A and B; provision the people and their devices at B, which shares its references with A; send the requests to A")
	fs.IntVar(&c.fedReferences, "federated-references", 0, "instead of any load: start B with this many approved identities, peer it with A, share, and measure the replication of the references to A (time, disk, RSS) and the lookup over them")
	fs.DurationVar(&c.replicationTimeout, "replication-timeout", 30*time.Minute, "with --federated-references: how long to wait for A to index them all")
	fs.DurationVar(&c.stallTimeout, "stall-timeout", 3*time.Minute, "with --federated-references: give up waiting, and measure what was indexed, when A's count has not grown for this long")
	fs.IntVar(&c.lookups, "lookups", 100_000, "with --federated-references: random people looked up in A's index (federation Index.Find), each timed")

	fs.StringVar(&c.cpuProfile, "cpu-profile", "", "write the broker's CPU profile over the full-load phase to this file (through the operator socket)")
	fs.StringVar(&c.heapProfile, "heap-profile", "", "write the broker's heap profile to this file: at the end of the full-load phase, with --pending while all are pending, with --federated-references A's once all are indexed")
	fs.StringVar(&c.selfProfile, "self-profile", "", "write this tool's own CPU profile over the full-load phase (clients and devices) to this file")
	fs.StringVar(&c.trace, "trace", "", "write every measured request's due time, latency and broker-added latency to this CSV file")
	fs.Float64Var(&c.quiet, "quiet", 0, "before each measured phase, wait until other processes use at most this many cores (0: do not wait); the machine is shared, and their work skews the figures")
	fs.DurationVar(&c.quietWait, "quiet-wait", 3*time.Minute, "how long --quiet waits before measuring anyway")
	fs.DurationVar(&c.progress, "progress", time.Second, "how often to print progress to stderr; 0 for never")
}

func (c *config) check() error {
	switch {
	case c.brokerURL != "" && c.dataDir == "":
		return errors.New("--broker-url needs --data-dir: provisioning approves identities over the broker's operator socket")
	case c.brokerURL != "" && c.brokerBin != "":
		return errors.New("give --broker-url or --broker-bin, not both")
	case c.identities < 1:
		return errors.New("-n must be at least 1")
	case c.concurrency < 1:
		return errors.New("-c must be at least 1")
	case c.encoding != "json" && c.encoding != "xml" && c.encoding != "form":
		return fmt.Errorf("--encoding %q: want json, xml or form", c.encoding)
	case c.duration <= 0 && c.requests <= 0:
		return errors.New("give a positive --duration or --requests")
	case c.pending < 0 || c.pendingTimeout < 1 || c.mfaTimeout < 1:
		return errors.New("--pending must not be negative, --timeout and --mfa-timeout must be at least 1")
	case c.orders && c.pending == 0:
		return errors.New("--orders goes with --pending")
	case c.latencyRate < 0 || c.rate < 0 || c.openRate < 0 || c.latencyRPS < 0:
		return errors.New("--rate, --latency-rate, --latency-rps and --open-rate must not be negative")
	case c.dialers < 1:
		return errors.New("--dialers must be at least 1")
	case c.responders < 0:
		return errors.New("--ceiling-responders must not be negative")
	case (c.federated || c.fedReferences != 0) && c.brokerURL != "":
		return errors.New("--federated and --federated-references start their own two brokers; they do not go with --broker-url")
	case c.federated && c.pending > 0:
		return errors.New("--federated goes with the throughput phases, not --pending")
	case c.fedReferences < 0 || c.lookups < 1:
		return errors.New("--federated-references must not be negative, --lookups must be at least 1")
	case c.fedReferences > 0 && (c.federated || c.pending > 0):
		return errors.New("--federated-references is a run of its own: not with --federated or --pending")
	}
	if c.latencyDuration <= 0 {
		c.latencyDuration = c.duration
	}
	if c.pending > 0 {
		// A newer request for an identity supersedes an older one, so
		// every pending request needs a person of its own.
		c.identities = c.pending
		c.online = min(max(c.online, 0), c.pending)
	} else {
		c.online = c.identities
	}
	if c.responders == 0 {
		c.responders = c.identities
	}
	return nil
}

func main() {
	// The hidden child mode that serves the bare pipeline in its own
	// process, as the broker runs in its own.
	if len(os.Args) > 1 && os.Args[1] == ceilingCommand {
		if err := serveCeiling(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "mfa-bench ceiling:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "mfa-bench:", err)
		os.Exit(1)
	}
}

// run is the whole command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	rep, err := execute(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	rep.write(stdout)
	return nil
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("mfa-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	cfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.check()
}

// execute runs the scenario the configuration asks for and returns what it
// measured; tests call it in-process.
func execute(ctx context.Context, cfg config, stderr io.Writer) (*report, error) {
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

	limit, err := raiseFileLimit()
	if err != nil {
		logf("could not raise the open-file limit (%v); it is %d", err, limit)
	}
	if need := cfg.fileNeed(); need > limit {
		return nil, fmt.Errorf("this run needs about %d open files in this process and in the broker, but the limit is %d (ulimit -n; the broker inherits this process's limit)", need, limit)
	}
	if cfg.fedReferences > 0 {
		rep := &report{cfg: cfg, limit: limit, started: time.Now(), loadAt: loadAverage()}
		if err := runReplication(ctx, cfg, rep, logf); err != nil {
			return nil, err
		}
		return rep, nil
	}

	target, err := openTarget(ctx, cfg, logf)
	if err != nil {
		return nil, err
	}
	defer target.close(logf)

	rep := &report{cfg: cfg, limit: limit, target: target.describe()}
	if cfg.pending > 0 {
		err = runPending(ctx, cfg, target, rep, stderr, logf)
	} else {
		err = runThroughput(ctx, cfg, target, rep, stderr, logf)
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// fileNeed estimates the open files each side needs: every held request is
// a connection in this process and in the broker (over HTTP/1.1; HTTP/2
// puts up to a thousand on one), and every connected device is a NATS
// connection in both.
func (c *config) fileNeed() uint64 {
	conns := c.concurrency
	if c.pending > 0 {
		conns = c.pending
	}
	if c.http2 {
		conns = conns/1000 + 1
	}
	if c.ceiling && c.pending == 0 {
		// The bare pipeline's responders are connected beside the devices.
		conns += c.responders
	}
	return uint64(conns + c.online + 64)
}
