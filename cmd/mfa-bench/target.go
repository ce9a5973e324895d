//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/legalmfa/mfa/broker/operator"
)

// target is the broker under test: started here as a child process, or one
// that already runs.
type target struct {
	baseURL string
	admin   *operator.Client
	// proc is the broker process when this tool started it; nil otherwise.
	proc    *exec.Cmd
	waitErr chan error
	tmpDir  string
	logPath string
	keep    bool
	binary  string
	args    []string
	// dataDir is the started broker's data directory; name what progress
	// lines call it.
	dataDir string
	name    string
	// home, with --federated, is the peer broker that holds the people's
	// identities and reaches their devices; this one is asked, and asks it.
	home *target
	// peerID is this broker's peer ID, with --federated.
	peerID string
	// readyIn is how long the started broker took from its start to
	// answering /readyz and its operator socket.
	readyIn time.Duration
}

func (t *target) describe() string {
	if t.proc == nil {
		return "running broker at " + t.baseURL
	}
	d := fmt.Sprintf("%s (pid %d) at %s, flags: %s", t.binary, t.proc.Process.Pid, t.baseURL, strings.Join(t.args, " "))
	if t.home != nil {
		d = "asked: " + d + "; home of the identities and devices: " + t.home.describe()
	}
	return d
}

// pid is the broker's process ID, or 0 when it was not started here.
func (t *target) pid() int {
	if t.proc == nil {
		return 0
	}
	return t.proc.Process.Pid
}

// homePID is the home broker's process ID with --federated, else 0.
func (t *target) homePID() int {
	if t.home == nil {
		return 0
	}
	return t.home.pid()
}

// provisioner is the broker that holds the people's identities and
// reaches their devices: the home broker with --federated, else this one.
func (t *target) provisioner() *target {
	if t.home != nil {
		return t.home
	}
	return t
}

// openTarget starts a fresh broker, or attaches to the one --broker-url
// names; with --federated, two brokers that federate (see openFederated).
func openTarget(ctx context.Context, cfg config, logf func(string, ...any)) (*target, error) {
	if cfg.federated {
		return openFederated(ctx, cfg, logf)
	}
	if cfg.brokerURL != "" {
		if err := checkBase(cfg.brokerURL); err != nil {
			return nil, fmt.Errorf("--broker-url: %w", err)
		}
		t := &target{baseURL: strings.TrimRight(cfg.brokerURL, "/"), admin: operator.New(filepath.Join(cfg.dataDir, "admin.sock"))}
		if err := t.waitReady(ctx, 10*time.Second); err != nil {
			return nil, err
		}
		return t, nil
	}
	return startTarget(ctx, cfg, brokerSpec{domain: "bench.test"}, cfg.brokerBin, logf)
}

// brokerSpec is what differs between the brokers a run starts.
type brokerSpec struct {
	// name is how progress lines call the broker ("" for the only one).
	name   string
	domain string
	// extra are more serve flags, before --broker-flags.
	extra []string
	// prepare, when set, is called with the data directory before the
	// broker starts (the directory exists, owner only).
	prepare func(dataDir string) error
	// ready bounds the wait for the broker to answer /readyz.
	ready time.Duration
}

// startTarget starts a broker as a child process, in a temporary
// directory of its own, built there unless binary names one.
func startTarget(ctx context.Context, cfg config, spec brokerSpec, binary string, logf func(string, ...any)) (*target, error) {
	tmp, err := os.MkdirTemp("", "mfa-bench-")
	if err != nil {
		return nil, err
	}
	t := &target{tmpDir: tmp, keep: cfg.keep, binary: binary, name: spec.name}
	ok := false
	defer func() {
		if !ok {
			t.close(logf)
		}
	}()
	if t.binary == "" {
		t.binary = filepath.Join(tmp, "mfa-broker")
		logf("building mfa-broker into %s", tmp)
		if err := buildBroker(ctx, t.binary); err != nil {
			return nil, err
		}
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	t.dataDir = filepath.Join(tmp, "data")
	if spec.prepare != nil {
		if err := os.MkdirAll(t.dataDir, 0o700); err != nil {
			return nil, err
		}
		if err := spec.prepare(t.dataDir); err != nil {
			return nil, err
		}
	}
	// Long enough for any phase's requests; the pending phase's timeout is
	// bounded by it too.
	maxTimeout := max(cfg.mfaTimeout, cfg.pendingTimeout) + 60
	args := []string{
		"serve",
		"--http-addr", httpAddr,
		"--nats-listen", natsAddr,
		"--data-dir", t.dataDir,
		"--max-timeout", fmt.Sprint(maxTimeout),
		"--log-level", "warn",
		"--domain", spec.domain,
	}
	args = append(args, spec.extra...)
	args = append(args, unlimitedFlags(ctx, t.binary)...)
	args = append(args, strings.Fields(cfg.brokerFlags)...)
	t.args = args[1:]
	t.logPath = filepath.Join(tmp, "broker.log")
	logFile, err := os.Create(t.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// Not tied to ctx: an interrupt must still let close stop it gracefully.
	cmd := exec.Command(t.binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a terminal's Ctrl-C reaches this tool only,
	// which then stops the broker in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	t.proc = cmd
	t.waitErr = make(chan error, 1)
	go func() { t.waitErr <- cmd.Wait() }()
	t.baseURL = "http://" + httpAddr
	t.admin = operator.New(filepath.Join(t.dataDir, "admin.sock"))
	ready := spec.ready
	if ready <= 0 {
		ready = 30 * time.Second
	}
	if err := t.waitReady(ctx, ready); err != nil {
		return nil, fmt.Errorf("%w\nbroker log:\n%s", err, t.logTail())
	}
	t.readyIn = time.Since(started)
	logf("%sbroker pid %d: http %s, nats %s, data %s", t.label(), cmd.Process.Pid, httpAddr, natsAddr, t.dataDir)
	ok = true
	return t, nil
}

// label is the broker's name for progress lines: "" or "home broker B: ".
func (t *target) label() string {
	if t.name == "" {
		return ""
	}
	return t.name + ": "
}

// buildBroker compiles the broker of the module this tool is run in.
func buildBroker(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/legalmfa/mfa/cmd/mfa-broker")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build mfa-broker (run mfa-bench inside the repository, or give --broker-bin): %w\n%s", err, stderr.String())
	}
	return nil
}

// unlimitedFlags turns off the broker's per-caller, per-identity and
// application rate limits, where the broker has them: a load test is one
// caller provisioning many people from one address, then asking them over
// and over, exactly what they exist to stop. --broker-flags come later and
// can turn them on again.
func unlimitedFlags(ctx context.Context, bin string) []string {
	out, _ := exec.CommandContext(ctx, bin, "serve", "-h").CombinedOutput()
	var flags []string
	for _, name := range []string{"rate-caller", "rate-identity", "rate-identity-signed", "rate-apply"} {
		if bytes.Contains(out, []byte("-"+name+" ")) {
			flags = append(flags, "--"+name, "0")
		}
	}
	return flags
}

// freeAddr finds a loopback port nobody listens on. Another process could
// take it before the broker does; on loopback in a benchmark that is rare
// enough to accept.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls /readyz and the operator socket until both answer.
func (t *target) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		if t.waitErr != nil {
			select {
			case err := <-t.waitErr:
				t.waitErr <- err
				return fmt.Errorf("broker exited: %v", err)
			default:
			}
		}
		resp, err := client.Get(t.baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if _, err = t.admin.Stats(ctx); err == nil {
					return nil
				}
			} else {
				err = fmt.Errorf("/readyz: %s", resp.Status)
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("broker at %s not ready within %s: %v", t.baseURL, within, last)
}

// close stops a broker started here, gracefully (SIGTERM, as an operator
// would), and removes its directory unless asked to keep it.
func (t *target) close(logf func(string, ...any)) {
	if t.home != nil {
		defer t.home.close(logf)
	}
	t.stop(logf)
	if t.tmpDir == "" {
		return
	}
	if t.keep {
		logf("kept %s (broker data, broker.log)", t.tmpDir)
		return
	}
	os.RemoveAll(t.tmpDir)
}

// stop stops a broker started here, gracefully; its directory stays.
func (t *target) stop(logf func(string, ...any)) {
	if t.proc != nil && t.proc.Process != nil {
		t.proc.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-t.waitErr:
			if err != nil {
				logf("%sbroker exited: %v\n%s", t.label(), err, t.logTail())
			}
		case <-time.After(40 * time.Second):
			logf("broker did not stop within 40 s of SIGTERM; killing pid %d", t.proc.Process.Pid)
			t.proc.Process.Kill()
			<-t.waitErr
		}
		t.proc = nil
	}
}

func (t *target) logTail() string {
	if t.logPath == "" {
		return ""
	}
	b, err := os.ReadFile(t.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// processCPU reads a process's user+system CPU time from /proc. It returns
// 0 for pid 0 or where /proc is not available.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses; fields start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// utime and stime are fields 14 and 15 of the whole line, 12 and 13
	// after the name.
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc on every
// architecture Go supports.
const clockTicks = 100

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU time the server under test, this process and
// the whole machine use over a phase. What the machine used beyond the
// first two is other people's work, which disturbs the figures.
type cpuMeter struct {
	pid, homePID              int
	start                     time.Time
	server, home, me, machine time.Duration
}

func startCPU(pid int) cpuMeter { return startCPUs(pid, 0) }

// startCPUs meters two servers, as one: the broker asked and, with
// --federated, the home broker it asks (homePID, 0 for none).
func startCPUs(pid, homePID int) cpuMeter {
	return cpuMeter{pid: pid, homePID: homePID, start: time.Now(), server: processCPU(pid), home: processCPU(homePID), me: selfCPU(), machine: machineCPU()}
}

// cpuUse is the CPU used over a phase. server includes home, the home
// broker's share with --federated.
type cpuUse struct {
	server, home, bench, machine time.Duration
	wall                         time.Duration
	known                        bool
}

func (m cpuMeter) stop() cpuUse {
	home := processCPU(m.homePID) - m.home
	return cpuUse{
		server: processCPU(m.pid) - m.server + home, home: home, bench: selfCPU() - m.me, machine: machineCPU() - m.machine,
		wall: time.Since(m.start), known: m.pid != 0,
	}
}

// others is the CPU used by processes other than the server and this one,
// in cores.
func (u cpuUse) others() float64 {
	if u.wall <= 0 || u.machine <= 0 {
		return 0
	}
	return max(0, (u.machine-u.server-u.bench).Seconds()/u.wall.Seconds())
}

// machineCPU is the busy time of all CPUs since boot, from /proc/stat.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:8] {
		var n int64
		fmt.Sscan(v, &n)
		// idle and iowait are the 4th and 5th.
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// raiseFileLimit lifts the soft open-file limit to the hard one. Setting it
// explicitly (rather than relying on the Go runtime's own raise) makes the
// broker child inherit it too.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	raised := lim
	raised.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		return lim.Cur, err
	}
	return raised.Cur, nil
}

// forEach calls do(i) for every i in [0, n), on at most workers goroutines
// at once, and stops taking new work when ctx ends or a call fails.
func forEach(ctx context.Context, n, workers int, do func(i int) error) error {
	var next atomic.Int64
	var failed atomic.Bool
	var g errGroup
	for range min(workers, n) {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() || ctx.Err() != nil {
					return ctx.Err()
				}
				if err := do(i); err != nil {
					failed.Store(true)
					return err
				}
			}
		})
	}
	return g.Wait()
}

// errGroup collects the first error of several goroutines.
type errGroup struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (g *errGroup) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, err)
			g.mu.Unlock()
		}
	}()
}

func (g *errGroup) Wait() error {
	g.wg.Wait()
	if len(g.errs) > 3 {
		return fmt.Errorf("%w (and %d more errors)", errors.Join(g.errs[:3]...), len(g.errs)-3)
	}
	return errors.Join(g.errs...)
}
