//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/legalmfa/mfa/client"
	"github.com/legalmfa/mfa/federation"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/identity/boltstore"
)

// replicationResult is what --federated-references measured.
type replicationResult struct {
	n int

	storePath   string
	storeBuild  time.Duration // 0 when the cached store was used
	storeBytes  int64
	storeOnTmpf bool
	homeStart   time.Duration // B's start-up to ready, N identities in its store

	// Since the share command was sent: its answer (B has put every
	// reference into its share bucket), the first reference A indexed,
	// and the last.
	shareCall, firstRef, allIndexed time.Duration
	indexed                         int
	// stalled, when not 0, is when the tool gave up waiting: A's count
	// had not grown for --stall-timeout.
	stalled time.Duration
	// progress is A's count at each sample, for the rate over time.
	progress []progressSample

	// A, the receiving broker: RSS linked and idle before the share, when
	// all were indexed, and the process's peak (VmHWM); the Go heap then,
	// and live after a forced collection.
	idleRSS, allRSS, peakRSS, heap, liveHeap uint64
	// allRSS as anonymous memory and as mapped files (the index, which
	// bbolt maps, and JetStream's files), when all were indexed.
	allAnon, allFile uint64
	homePeakRSS      uint64
	cpuA, cpuB       time.Duration
	// others is the CPU other processes used meanwhile, in cores.
	others float64

	// A's disk: its JetStream directory (all of it, and the mirror of
	// B's references alone) and its federation index, before and after;
	// apparent size and blocks allocated.
	jsBefore, jsAfter, mirror, indexBefore, indexAfter diskUse
	homeJS                                             diskUse

	// MFA requests for an unknown person sent to each broker while the
	// references replicate, one at a time each, every probeEvery.
	probes map[string]*probeResult

	// lookups are single Index.Find calls over A's index, sorted; wrong
	// counts the answers that were not exactly the person's reference,
	// missing those that found nothing (a stalled replication's).
	lookups        []time.Duration
	wrong, missing int

	// logs are the brokers' warnings and errors while the references
	// replicated, each with how often it came.
	logs map[string]int
}

type progressSample struct {
	at      time.Duration
	indexed int
}

type diskUse struct{ bytes, allocated int64 }

func (d diskUse) String() string {
	return fmt.Sprintf("%s (%s allocated)", describeBytes(float64(d.bytes)), describeBytes(float64(d.allocated)))
}

// probeResult is what the probes of one broker measured.
type probeResult struct {
	mu      sync.Mutex
	latency []time.Duration
	codes   map[string]int
}

// homeStoreVersion names what homeIdentity generates; bump it when that
// changes, so that a cached store made by older code is not reused.
const homeStoreVersion = 1

// homeIdentity is identity i of B's store in --federated-references: an
// approved person of B's domain, valid from 2025 for fifty years, one
// identity per person. The key is 32 pseudo-random bytes rather than a
// generated Ed25519 key: the store and the references treat it as opaque,
// and nobody is asked for MFA in this run.
func homeIdentity(i int) identity.Identity {
	seed := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("mfa-bench home"), uint64(i)))
	key := sha256.Sum256(seed[:])
	pnr, country := homePerson(i)
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	return identity.Identity{
		ID:    homeID(i),
		State: identity.Approved,
		Properties: []identity.Property{
			{Name: identity.PropFirst, Value: "Bench"},
			{Name: identity.PropLast, Value: "Person" + strconv.Itoa(i)},
			{Name: identity.PropPNR, Value: pnr},
			{Name: identity.PropCountry, Value: country},
		},
		PublicKey: key[:],
		From:      t,
		To:        t.AddDate(50, 0, 0),
		Created:   t,
		Updated:   t,
		Version:   2,
	}
}

// homeID is identity i's ID: a UUID made of a hash of i, on B's domain.
func homeID(i int) string {
	u := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("mfa-bench home id"), uint64(i)))
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x@legal.%s", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16], homeDomain)
}

// homePerson is person i's PNR and COUNTRY.
func homePerson(i int) (pnr, country string) {
	countries := [...]string{"SE", "NO", "DK", "FI"}
	return fmt.Sprintf("%04d%08d", 1940+i%70, i), countries[i%len(countries)]
}

// homeStore returns a store file holding homeIdentity(0..n-1), all
// approved: cached in the temporary directory by an earlier run, or made
// now with the store's own Create, one identity per transaction as the
// broker writes them. boltstore has no batch path outside its tests, and a
// Create waits for its fsync, so the file is made on tmpfs (/dev/shm),
// where an fsync costs nothing, when there is one, and copied: the file is
// the one Create makes, only made faster.
func homeStore(ctx context.Context, n int, res *replicationResult, logf func(string, ...any)) error {
	res.storePath = filepath.Join(os.TempDir(), fmt.Sprintf("mfa-bench-home-%d-v%d.db", n, homeStoreVersion))
	if fi, err := os.Stat(res.storePath); err == nil {
		res.storeBytes = fi.Size()
		logf("%s's store: %d identities cached in %s (%s); delete it to make it anew", homeName, n, res.storePath, describeBytes(float64(fi.Size())))
		return nil
	}
	scratch := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && syscall.Access("/dev/shm", 2 /* W_OK */) == nil {
		scratch, res.storeOnTmpf = "/dev/shm", true
	}
	dir, err := os.MkdirTemp(scratch, "mfa-bench-store-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "identities.db")
	s, err := boltstore.Open(path)
	if err != nil {
		return err
	}
	start := time.Now()
	var done atomic.Int64
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				d := done.Load()
				logf("%s's store: %d/%d identities created (%.0f/s)", homeName, d, n, float64(d)/time.Since(start).Seconds())
			case <-stop:
				return
			}
		}
	}()
	for i := range n {
		if err := s.Create(ctx, homeIdentity(i)); err != nil {
			close(stop)
			s.Close(ctx)
			return fmt.Errorf("create identity %d: %w", i, err)
		}
		done.Add(1)
	}
	close(stop)
	if err := s.Close(ctx); err != nil {
		return err
	}
	res.storeBuild = time.Since(start)
	tmp := res.storePath + fmt.Sprintf(".building-%d", os.Getpid())
	if err := copyFile(path, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, res.storePath); err != nil {
		return err
	}
	fi, _ := os.Stat(res.storePath)
	res.storeBytes = fi.Size()
	logf("%s's store: %d identities created in %s (in %s), cached in %s (%s)", homeName, n, res.storeBuild.Round(time.Millisecond), scratch, res.storePath, describeBytes(float64(fi.Size())))
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// probeEvery is how often each broker is sent an MFA request while the
// references replicate.
const probeEvery = 500 * time.Millisecond

// runReplication is --federated-references: B starts with N approved
// identities, A and B are peered, B shares with A, and the replication
// of the N references to A is timed and measured.
func runReplication(ctx context.Context, cfg config, rep *report, logf func(string, ...any)) error {
	n := cfg.fedReferences
	res := &replicationResult{n: n, probes: map[string]*probeResult{}, logs: map[string]int{}}
	if err := homeStore(ctx, n, res, logf); err != nil {
		return fmt.Errorf("%s's store: %w", homeName, err)
	}

	home, err := startFederating(ctx, cfg, brokerSpec{
		name: homeName, domain: homeDomain, ready: 5 * time.Minute,
		prepare: func(dataDir string) error { return copyFile(res.storePath, filepath.Join(dataDir, "identities.db")) },
	}, cfg.brokerBin, logf)
	if err != nil {
		return err
	}
	res.homeStart = home.readyIn
	asked, err := startFederating(ctx, cfg, brokerSpec{name: askedName, domain: askedHost}, home.binary, logf)
	if err != nil {
		home.close(logf)
		return err
	}
	asked.home = home
	defer asked.close(logf)
	rep.target = asked.describe()
	if err := peerBrokers(ctx, asked, home, logf); err != nil {
		return err
	}

	// A at rest, linked: what replication adds is measured from here,
	// when the machine is quiet enough (--quiet).
	time.Sleep(time.Second)
	waitQuiet(ctx, cfg, asked.pid(), logWriter(logf))
	res.idleRSS = procStatus(asked.pid(), "VmRSS")
	res.jsBefore = du(filepath.Join(asked.dataDir, "jetstream"), nil)
	res.indexBefore = du(filepath.Join(asked.dataDir, "federation.db"), nil)
	logMarks := map[*target]int64{asked: fileSize(asked.logPath), home: fileSize(home.logPath)}

	meter := startCPUs(asked.pid(), home.pid())
	start := time.Now()
	type answered struct {
		after time.Duration
		err   error
	}
	shared := make(chan answered, 1)
	go func() {
		// No deadline: B puts every reference into its share bucket
		// before it answers, which takes long for many.
		_, err := home.admin.DecidePeer(ctx, asked.peerID, "share")
		shared <- answered{time.Since(start), err}
	}()
	logf("%s shares its %d references with %s", homeName, n, askedName)
	pctx, stopProbes := context.WithCancel(ctx)
	var probes sync.WaitGroup
	for _, t := range []*target{asked, home} {
		pr := &probeResult{codes: map[string]int{}}
		res.probes[t.name] = pr
		probes.Add(1)
		go func() {
			defer probes.Done()
			probe(pctx, t, pr)
		}()
	}

	shareDone := false
	// Counting the references walks A's index: not too often when they
	// are many.
	poll := 250 * time.Millisecond
	if n > 200_000 {
		poll = time.Second
	}
	err = func() error {
		lastLog := start
		lastGain, lastCount := start, -1
		for {
			if !shareDone {
				select {
				case a := <-shared:
					shareDone, res.shareCall = true, a.after
					if a.err != nil {
						return fmt.Errorf("%s shares: %w", homeName, a.err)
					}
					logf("%s answered the share command after %s", homeName, res.shareCall.Round(time.Millisecond))
				default:
				}
			}
			p, err := peerStatus(ctx, asked, home.peerID)
			now := time.Since(start)
			if err == nil {
				res.indexed = p.References
				res.progress = append(res.progress, progressSample{at: now, indexed: p.References})
				if p.References > 0 && res.firstRef == 0 {
					res.firstRef = now
				}
				if p.References >= n {
					res.allIndexed = now
					return nil
				}
				if p.References != lastCount {
					lastGain, lastCount = time.Now(), p.References
				}
			}
			if time.Since(lastGain) > cfg.stallTimeout {
				res.stalled = time.Since(start)
				logf("replication stalled: %s has indexed %d of %d references, none more for %s; measuring what there is", askedName, res.indexed, n, cfg.stallTimeout)
				return nil
			}
			if now > cfg.replicationTimeout {
				return fmt.Errorf("%s indexed %d of %d references in %s (--replication-timeout)", askedName, res.indexed, n, cfg.replicationTimeout)
			}
			if time.Since(lastLog) >= 5*time.Second {
				logf("replication: %s indexed %d/%d references after %s", askedName, res.indexed, n, now.Round(time.Second))
				lastLog = time.Now()
			}
			if err := sleep(ctx, poll); err != nil {
				return err
			}
		}
	}()
	stopProbes()
	probes.Wait()
	if err != nil {
		return err
	}
	if res.stalled == 0 {
		logf("replication: %s indexed all %d references %s after the share command", askedName, n, res.allIndexed.Round(time.Millisecond))
	}
	if !shareDone && res.stalled == 0 {
		// B answers once its "sharing on" marker is written, after the
		// last reference: wait for it, to stop B cleanly.
		a := <-shared
		if a.err != nil {
			return fmt.Errorf("%s shares: %w", homeName, a.err)
		}
		res.shareCall = a.after
	}
	use := meter.stop()
	res.cpuB = use.home
	res.cpuA = use.server - use.home
	res.others = use.others()

	res.allRSS = procStatus(asked.pid(), "VmRSS")
	res.allAnon = procStatus(asked.pid(), "RssAnon")
	res.allFile = procStatus(asked.pid(), "RssFile")
	res.peakRSS = procStatus(asked.pid(), "VmHWM")
	res.homePeakRSS = procStatus(home.pid(), "VmHWM")
	if st, err := asked.admin.Stats(ctx); err == nil {
		res.heap = st.HeapBytes
	}
	if st, err := asked.admin.LiveHeap(ctx); err == nil {
		res.liveHeap = st.HeapBytes
	}
	if cfg.heapProfile != "" {
		if err := asked.admin.Profile(ctx, "heap", 0, cfg.heapProfile); err != nil {
			logf("heap profile: %v", err)
		}
	}
	var mirrorDirs []string
	res.jsAfter = du(filepath.Join(asked.dataDir, "jetstream"), &mirrorDirs)
	for _, d := range mirrorDirs {
		m := du(d, nil)
		res.mirror.bytes += m.bytes
		res.mirror.allocated += m.allocated
	}
	res.indexAfter = du(filepath.Join(asked.dataDir, "federation.db"), nil)
	res.homeJS = du(filepath.Join(home.dataDir, "jetstream"), nil)
	for t, from := range logMarks {
		for line, count := range logLines(t.logPath, from) {
			res.logs[t.name+": "+line] += count
		}
	}

	// The lookup, over A's index once A has let go of it: the file is
	// A's, as it wrote it; the page cache is as A left it.
	asked.stop(logf)
	if err := lookups(ctx, cfg, res, filepath.Join(asked.dataDir, "federation.db"), home.peerID, logf); err != nil {
		return err
	}
	rep.replication = res
	return nil
}

// probe sends MFA requests for a person nobody holds to t, one at a time,
// every probeEvery, until ctx ends: how long a caller waits at each broker
// while the references replicate. A request still waiting when ctx ends
// counts with the time it has waited so far, as "still waiting".
func probe(ctx context.Context, t *target, pr *probeResult) {
	mc := mfaClient(t.baseURL, &http.Client{Timeout: 10 * time.Minute}, client.JSON)
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		_, err := mc.MFA(ctx, client.Request{
			PNR: fmt.Sprintf("PROBE%07d", i), Country: "SE", Timeout: 5 * time.Second, Reason: reason,
		})
		d := time.Since(start)
		code := outcomeCode(ctx, err)
		if code == "cancelled" {
			code = "still waiting at the end"
		}
		pr.mu.Lock()
		pr.latency = append(pr.latency, d)
		pr.codes[code]++
		pr.mu.Unlock()
	}
}

// lookups times federation Index.Find over A's index for random people of
// B's, each on its own, and checks that each finds exactly that person's
// reference.
func lookups(ctx context.Context, cfg config, res *replicationResult, path, homePeer string, logf func(string, ...any)) error {
	x, err := federation.OpenIndex(path)
	if err != nil {
		return err
	}
	defer x.Close()
	if got := x.Count(homePeer); got != res.n && res.stalled == 0 {
		return fmt.Errorf("%s's index holds %d references from %s, want %d", askedName, got, homeName, res.n)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(res.n)))
	peers := []string{homePeer}
	res.lookups = make([]time.Duration, 0, cfg.lookups)
	for range cfg.lookups {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		i := rng.IntN(res.n)
		pnr, country := homePerson(i)
		start := time.Now()
		refs, err := x.Find(country, pnr, peers)
		d := time.Since(start)
		if err != nil {
			return fmt.Errorf("Index.Find: %w", err)
		}
		switch {
		case len(refs) == 0:
			res.missing++
		case len(refs) != 1 || refs[0].LegalID != homeID(i) || refs[0].Home != homePeer:
			res.wrong++
		}
		res.lookups = append(res.lookups, d)
	}
	slices.Sort(res.lookups)
	logf("looked up %d random people in %s's index: p50 %s, p99 %s", len(res.lookups), askedName,
		micros(percentile(res.lookups, .5)), micros(percentile(res.lookups, .99)))
	return nil
}

// procStatus reads a size field of /proc/<pid>/status (VmRSS, VmHWM), in
// bytes; 0 when unknown.
func procStatus(pid int, field string) uint64 {
	if pid == 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		var kib uint64
		fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kib)
		return kib << 10
	}
	return 0
}

// du is the apparent size and the blocks allocated of the files under
// path; the directories named KV_MFA_REFS (the mirror of a peer's
// references) are added to mirrors when it is not nil.
func du(path string, mirrors *[]string) diskUse {
	var u diskUse
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if mirrors != nil && d.Name() == "KV_"+federation.RefsBucket {
				*mirrors = append(*mirrors, p)
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		u.bytes += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			u.allocated += st.Blocks * 512
		}
		return nil
	})
	return u
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logLines counts the distinct messages of a broker's log after offset
// from (its text lines' msg, or the whole line when not key=value).
func logLines(path string, from int64) map[string]int {
	out := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return out
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		out[logMessage(line)]++
	}
	return out
}

// logMessage shortens a log line to what repeats: its level, message and
// error, without times and IDs.
func logMessage(line string) string {
	var parts []string
	for _, key := range []string{"level=", "msg=", "err="} {
		i := strings.Index(line, key)
		if i < 0 {
			continue
		}
		v := line[i+len(key):]
		if strings.HasPrefix(v, `"`) {
			if j, err := strconv.QuotedPrefix(v); err == nil {
				v = j
			}
		} else if j := strings.IndexByte(v, ' '); j >= 0 {
			v = v[:j]
		}
		parts = append(parts, key+v)
	}
	if len(parts) == 0 {
		if len(line) > 200 {
			line = line[:200]
		}
		return line
	}
	return strings.Join(parts, " ")
}

// logWriter writes through logf, a line per write.
type logWriter func(string, ...any)

func (l logWriter) Write(b []byte) (int, error) {
	l("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1000)
}

// writeReplication is the report of --federated-references.
func (r *report) writeReplication(w io.Writer) {
	x := r.replication
	fmt.Fprintf(w, "\n| %d references from %s replicated to %s | |\n|---|---:|\n", x.n, homeName, askedName)
	how := "cached by an earlier run"
	if x.storeBuild > 0 {
		where := os.TempDir()
		if x.storeOnTmpf {
			where = "tmpfs"
		}
		how = fmt.Sprintf("made in %s with Create, on %s (%.0f/s)", x.storeBuild.Round(time.Second), where, float64(x.n)/x.storeBuild.Seconds())
	}
	fmt.Fprintf(w, "| %s's store, before it starts | %s, %s |\n", homeName, describeBytes(float64(x.storeBytes)), how)
	fmt.Fprintf(w, "| %s start-up, from exec to ready, with them in its store | %s |\n", homeName, x.homeStart.Round(time.Millisecond))
	shareCall := "not yet"
	if x.shareCall > 0 {
		shareCall = x.shareCall.Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "| share command answered (%s has put every reference into its share bucket, or given up: see its log below) | %s |\n", homeName, shareCall)
	fmt.Fprintf(w, "| first reference indexed at %s | %s |\n", askedName, x.firstRef.Round(time.Millisecond))
	if x.stalled > 0 {
		fmt.Fprintf(w, "| **all %d indexed at %s** (peer list), from the share command | **never: %d indexed when the tool gave up, %s after the share command** |\n", x.n, askedName, x.indexed, x.stalled.Round(time.Second))
	} else {
		fmt.Fprintf(w, "| **all %d indexed at %s** (peer list), from the share command | **%s** (%.0f references/s) |\n", x.n, askedName, x.allIndexed.Round(time.Millisecond), float64(x.n)/x.allIndexed.Seconds())
	}
	fmt.Fprintf(w, "| CPU over the replication: %s / %s / other processes | %s / %s / %.2f cores |\n", askedName, homeName, x.cpuA.Round(time.Millisecond), x.cpuB.Round(time.Millisecond), x.others)
	perRef := func(b uint64) string { return describeBytes(float64(b) / float64(x.n)) }
	fmt.Fprintf(w, "| %s RSS: linked, idle / all indexed / peak (VmHWM) | %s / %s / **%s** |\n", askedName, mib(x.idleRSS), mib(x.allRSS), mib(x.peakRSS))
	fmt.Fprintf(w, "| %s RSS growth per reference (all indexed less idle) | %s |\n", askedName, perRef(x.allRSS-min(x.allRSS, x.idleRSS)))
	fmt.Fprintf(w, "| %s RSS when all indexed: anonymous / mapped files (the index, JetStream's files) | %s / %s |\n", askedName, mib(x.allAnon), mib(x.allFile))
	fmt.Fprintf(w, "| %s Go heap: all indexed / live after a forced GC | %s / %s |\n", askedName, mib(x.heap), mib(x.liveHeap))
	fmt.Fprintf(w, "| %s peak RSS (VmHWM) | %s |\n", homeName, mib(x.homePeakRSS))
	fmt.Fprintf(w, "| %s JetStream directory: before / after | %s / %s |\n", askedName, x.jsBefore, x.jsAfter)
	fmt.Fprintf(w, "| of which the mirror of %s's references (KV_%s) | %s, %s per reference |\n", homeName, federation.RefsBucket, x.mirror, describeBytes(float64(x.mirror.bytes)/float64(x.n)))
	fmt.Fprintf(w, "| %s federation index (federation.db): before / after | %s / %s, %s per reference |\n", askedName, x.indexBefore, x.indexAfter, describeBytes(float64(x.indexAfter.bytes)/float64(x.n)))
	fmt.Fprintf(w, "| **%s disk, JetStream + federation.db, after** | **%s** |\n", askedName, describeBytes(float64(x.jsAfter.bytes+x.indexAfter.bytes)))
	fmt.Fprintf(w, "| %s JetStream directory after (its share bucket) | %s |\n", homeName, x.homeJS)
	fmt.Fprintf(w, "| **Index.Find over %s's index**, %d random people: p50 / p90 / p99 / max | **%s** / %s / **%s** / %s |\n", askedName, len(x.lookups),
		micros(percentile(x.lookups, .5)), micros(percentile(x.lookups, .9)), micros(percentile(x.lookups, .99)), micros(percentile(x.lookups, 1)))
	fmt.Fprintf(w, "| lookups that found another reference / none | %d / %d |\n", x.wrong, x.missing)
	for _, name := range slices.Sorted(maps.Keys(x.probes)) {
		pr := x.probes[name]
		slices.Sort(pr.latency)
		var codes []string
		for _, c := range slices.Sorted(maps.Keys(pr.codes)) {
			codes = append(codes, fmt.Sprintf("%s × %d", c, pr.codes[c]))
		}
		fmt.Fprintf(w, "| POST /MFA to %s while replicating (unknown person, one every %s): p50 / max | %s / **%s** (%s) |\n",
			name, probeEvery, ms(percentile(pr.latency, .5)), ms(percentile(pr.latency, 1)), strings.Join(codes, "; "))
	}
	if len(x.progress) > 1 {
		fmt.Fprintf(w, "\nReferences indexed at %s over time (since the share command):", askedName)
		step := max(1, len(x.progress)/12)
		var points []string
		for i := 0; i < len(x.progress); i += step {
			points = append(points, fmt.Sprintf("%s: %d", x.progress[i].at.Round(100*time.Millisecond), x.progress[i].indexed))
		}
		if last := x.progress[len(x.progress)-1]; (len(x.progress)-1)%step != 0 {
			points = append(points, fmt.Sprintf("%s: %d", last.at.Round(100*time.Millisecond), last.indexed))
		}
		fmt.Fprintf(w, " %s.\n", strings.Join(points, "; "))
	}
	if len(x.logs) > 0 {
		fmt.Fprintf(w, "\nThe brokers logged while the references replicated (--log-level warn):\n\n")
		for _, line := range slices.Sorted(maps.Keys(x.logs)) {
			fmt.Fprintf(w, "- %d × %s\n", x.logs[line], line)
		}
	}
	var target []string
	p50 := percentile(x.lookups, .5)
	verdict := "PASS"
	if p50 >= 100*time.Microsecond || x.wrong > 0 || x.missing > 0 {
		verdict = "FAIL"
	}
	target = append(target, fmt.Sprintf("| Index.Find median < 100 µs over %d references | %s over %d | %s |", x.n, micros(p50), x.indexed, verdict))
	if x.stalled > 0 {
		target = append(target, fmt.Sprintf("| all %d replicated | %d, then none more for %s | FAIL |", x.n, x.indexed, r.cfg.stallTimeout))
	}
	fmt.Fprintf(w, "\n| target | measured | |\n|---|---|---|\n%s\n", strings.Join(target, "\n"))
}
