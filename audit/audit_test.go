package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// writerEnv makes the test binary a process that records events until it
// is killed, for TestKilledMidBurst.
const writerEnv = "AUDIT_TEST_WRITER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(writerEnv); dir != "" {
		os.Exit(writeUntilKilled(dir))
	}
	os.Exit(m.Run())
}

func writeUntilKilled(dir string) int {
	w, err := Open(dir, WithMaxFileBytes(4<<10))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if err := w.Record(event(g*1_000_000 + i)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return 1
}

// event is a made-up MFA outcome, different for every i.
func event(i int) Event {
	return Event{Kind: KindMFA, Request: fmt.Sprintf("req-%06d", i), Person: "3c9d824a0fd8fbfb", Code: "approved", Decision: "approve", Device: "dev@legal.test"}
}

func openWriter(t *testing.T, dir string, opts ...Option) *Writer {
	t.Helper()
	w, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func record(t *testing.T, w *Writer, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := w.Record(event(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(t *testing.T, dir string, anchors ...Anchor) Report {
	t.Helper()
	r, err := Verify(dir, anchors...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestChainWrittenAndVerified: every line is an event whose prev is the
// hash of the line before, and Verify says so.
func TestChainWrittenAndVerified(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openWriter(t, dir)
	record(t, w, 0, 20)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, filepath.Join(dir, CurrentFile))
	prev := ""
	for i, l := range lines[:len(lines)-1] {
		rec, ok := parseLine([]byte(strings.TrimSuffix(l, "\n")))
		if !ok || rec.Seq != uint64(i+1) || rec.Prev != prev || rec.Request != fmt.Sprintf("req-%06d", i) || rec.Time.IsZero() {
			t.Fatalf("line %d: %s", i+1, l)
		}
		prev = Hash([]byte(strings.TrimSuffix(l, "\n")))
	}
	r := verify(t, dir)
	if r.Break != nil || r.Torn != nil || r.Events != 20 || r.First != 1 || r.Last != 20 || r.Head != prev || r.Files != 1 {
		t.Fatalf("report %+v", r)
	}
	if err := w.Record(event(99)); !errors.Is(err, ErrClosed) {
		t.Fatalf("record after close: %v", err)
	}
}

// TestVerifyDetects: whatever is changed in the middle of the trail,
// Verify finds the first line that no longer follows.
func TestVerifyDetects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// change alters the files; lines are the current file's, with
		// their newlines.
		change func(t *testing.T, dir string, lines []string) []string
		// wantFile is filled in for changes to the first file.
		wantFile string
		wantLine int
		wantWhy  string
	}{
		{"an edited line", func(t *testing.T, _ string, l []string) []string {
			l[4] = strings.Replace(l[4], `"code":"approved"`, `"code":"denied"`, 1)
			return l
		}, "", 6, "edited"},
		{"an edited line with its seq kept", func(t *testing.T, _ string, l []string) []string {
			l[4] = strings.Replace(l[4], `"person":"3c9d824a0fd8fbfb"`, `"person":"0000000000000000"`, 1)
			return l
		}, "", 6, "edited"},
		{"a deleted line", func(t *testing.T, _ string, l []string) []string {
			return append(l[:4:4], l[5:]...)
		}, "", 5, "removed"},
		{"two lines swapped", func(t *testing.T, _ string, l []string) []string {
			l[3], l[4] = l[4], l[3]
			return l
		}, "", 4, "follows event"},
		{"the first line deleted", func(t *testing.T, _ string, l []string) []string {
			// From event 2 on the chain holds, but the trail is then read
			// from event 2: Verify says where it starts, and the next
			// test shows how an anchor catches it.
			return l[1:]
		}, "", 0, ""},
		{"a line made up and inserted", func(t *testing.T, _ string, l []string) []string {
			return append(l[:3:3], append([]string{strings.Replace(l[2], "req-", "xxx-", 1)}, l[3:]...)...)
		}, "", 4, "follows event"},
		{"a line that is not an event inserted", func(t *testing.T, _ string, l []string) []string {
			return append(l[:3:3], append([]string{"garbage\n"}, l[3:]...)...)
		}, "", 4, "not an event"},
		{"a rotated file removed", func(t *testing.T, dir string, l []string) []string {
			files, _ := listFiles(dir)
			os.Remove(files[1].path)
			return l
		}, "", 0, "follows event"},
		{"a rotated file cut short", func(t *testing.T, dir string, l []string) []string {
			files, _ := listFiles(dir)
			rl := readLines(t, files[1].path)
			writeLines(t, files[1].path, rl[:len(rl)-2])
			return l
		}, "", 0, "named for event"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			w := openWriter(t, dir, WithMaxFileBytes(2<<10))
			record(t, w, 0, 40)
			w.Close()
			path := filepath.Join(dir, CurrentFile)
			if files, _ := listFiles(dir); len(files) < 3 {
				t.Fatalf("%d files: rotation did not happen", len(files))
			}
			if !strings.Contains(c.name, "rotated") {
				// Lines are changed in the first file, where a line's
				// number is its event's.
				files, _ := listFiles(dir)
				path = files[0].path
				if c.wantLine != 0 {
					c.wantFile = filepath.Base(path)
				}
			}
			writeLines(t, path, c.change(t, dir, readLines(t, path)))
			r := verify(t, dir)
			if c.wantWhy == "" {
				if r.Break != nil || r.First != 2 {
					t.Fatalf("report %+v, want no break and the trail starting at event 2", r)
				}
				return
			}
			if r.Break == nil {
				t.Fatalf("not detected: %+v", r)
			}
			if (c.wantFile != "" && r.Break.File != c.wantFile) || (c.wantLine != 0 && r.Break.Line != c.wantLine) || !strings.Contains(r.Break.Reason, c.wantWhy) {
				t.Fatalf("break %v, want %s line %d (%s)", r.Break, c.wantFile, c.wantLine, c.wantWhy)
			}
		})
	}
}

// TestAnchor: a head written down earlier catches what the chain alone
// cannot: a trail cut short, or rewritten from some line on.
func TestAnchor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openWriter(t, dir)
	record(t, w, 0, 10)
	anchor := Anchor{Seq: verify(t, dir).Last, Hash: verify(t, dir).Head}
	record(t, w, 10, 5)
	w.Close()
	if r := verify(t, dir, anchor); r.Break != nil {
		t.Fatalf("the anchored trail: %v", r.Break)
	}
	if r := verify(t, dir, Anchor{Seq: 10, Hash: strings.Repeat("0", 64)}); r.Break == nil || !strings.Contains(r.Break.Reason, "rewritten") {
		t.Fatalf("a wrong anchor: %+v", r)
	}
	if r := verify(t, dir, Anchor{Seq: 20, Hash: anchor.Hash}); r.Break == nil || !strings.Contains(r.Break.Reason, "cut short") {
		t.Fatalf("an anchor past the end: %+v", r)
	}
}

// TestRotationKeepsChain: rotated files are named in chain order, and the
// first line of each file holds the hash of the last line of the one
// before.
func TestRotationKeepsChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openWriter(t, dir, WithMaxFileBytes(1<<10))
	record(t, w, 0, 30)
	w.Close()
	files, err := listFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("%d files", len(files))
	}
	var lastHash string
	for i, f := range files {
		lines := readLines(t, f.path)
		lines = lines[:len(lines)-1]
		if st, _ := os.Stat(f.path); f.last != 0 && st.Size() > 1<<10 {
			t.Errorf("%s is %d bytes, over the rotation size", f.path, st.Size())
		}
		first, _ := parseLine([]byte(strings.TrimSuffix(lines[0], "\n")))
		if i > 0 && first.Prev != lastHash {
			t.Fatalf("%s starts with prev %s, want the hash of the previous file's last line %s", f.path, first.Prev, lastHash)
		}
		last := strings.TrimSuffix(lines[len(lines)-1], "\n")
		lastHash = Hash([]byte(last))
		rec, _ := parseLine([]byte(last))
		if f.last != 0 && rec.Seq != f.last {
			t.Fatalf("%s ends with event %d", f.path, rec.Seq)
		}
	}
	if r := verify(t, dir); r.Break != nil || r.Events != 30 || r.Files != len(files) {
		t.Fatalf("report %+v", r)
	}
}

// TestTornTail: a last line a crash cut short is reported as torn, the
// chain holding up to it; the writer drops it on restart, says so in the
// trail, and goes on from the last complete line.
func TestTornTail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		tail func(lastLine string) string
	}{
		{"half a line", func(l string) string { return l[:len(l)/2] }},
		{"a line without its newline", func(l string) string { return strings.TrimSuffix(l, "\n") }},
		{"zeros", func(l string) string { return strings.Repeat("\x00", len(l)) }},
		{"zeros with a newline", func(l string) string { return strings.Repeat("\x00", len(l)-1) + "\n" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			w := openWriter(t, dir)
			record(t, w, 0, 6)
			w.Close()
			path := filepath.Join(dir, CurrentFile)
			lines := readLines(t, path)
			torn := c.tail(lines[5])
			writeLines(t, path, append(lines[:5], torn))

			r := verify(t, dir)
			if r.Break != nil || r.Torn == nil || r.Torn.Line != 6 || r.Events != 5 {
				t.Fatalf("report %+v (torn %+v), want 5 events and a torn line 6", r, r.Torn)
			}
			w = openWriter(t, dir)
			record(t, w, 100, 3)
			w.Close()
			r = verify(t, dir)
			if r.Break != nil || r.Torn != nil || r.Events != 9 {
				t.Fatalf("after the restart: %+v", r)
			}
			var recovered Entry
			Tail(context.Background(), dir, TailOptions{Last: 4}, func(e Entry) error {
				if e.Record.Kind == KindRecovered {
					recovered = e
				}
				return nil
			})
			if recovered.Record.Seq != 6 || recovered.Record.Dropped != int64(len(torn)) {
				t.Fatalf("recovery event %s, want event 6 saying %d bytes were dropped", recovered.Line, len(torn))
			}
		})
	}
}

// TestResumeAfterCrashInRotation: a crash after the current file was
// renamed and before the next was made leaves no current file; the
// writer goes on from the newest rotated one.
func TestResumeAfterCrashInRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openWriter(t, dir)
	record(t, w, 0, 5)
	w.Close()
	if err := os.Rename(filepath.Join(dir, CurrentFile), filepath.Join(dir, rotatedName(5))); err != nil {
		t.Fatal(err)
	}
	w = openWriter(t, dir)
	record(t, w, 5, 5)
	w.Close()
	if r := verify(t, dir); r.Break != nil || r.Events != 10 || r.Files != 2 {
		t.Fatalf("report %+v", r)
	}
}

// TestReopenContinues: a writer opened again continues the chain where
// the last one left it.
func TestReopenContinues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 3 {
		w := openWriter(t, dir, WithMaxFileBytes(1<<10))
		record(t, w, i*7, 7)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if r := verify(t, dir); r.Break != nil || r.Events != 21 || r.Last != 21 {
		t.Fatalf("report %+v", r)
	}
}

// TestConcurrentRecords: events recorded at once from many goroutines,
// across rotations, all land, once each, in one valid chain.
func TestConcurrentRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openWriter(t, dir, WithMaxFileBytes(4<<10))
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := w.Record(event(g*1000 + i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	w.Close()
	r := verify(t, dir)
	if r.Break != nil || r.Events != goroutines*each {
		t.Fatalf("report %+v", r)
	}
	seen := map[string]bool{}
	Tail(context.Background(), dir, TailOptions{Last: -1}, func(e Entry) error {
		seen[e.Record.Request] = true
		return nil
	})
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct events, want %d", len(seen), goroutines*each)
	}
}

// TestGroupCommit: Record returns only after an fsync that began after its
// line was written, and Records made while an fsync runs share the next.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openWriter(t, dir)
	release := make(chan struct{})
	var syncs atomic.Int32
	w.syncFile = func(f *os.File) error {
		syncs.Add(1)
		<-release
		return f.Sync()
	}
	const n = 20
	var returned atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := w.Record(event(i)); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		})
	}
	// Every line is written while the first fsync is held.
	for {
		w.mu.Lock()
		seq := w.seq
		w.mu.Unlock()
		if seq == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if got := returned.Load(); got != 0 {
		t.Fatalf("%d Records returned before any fsync finished", got)
	}
	close(release)
	wg.Wait()
	if got := syncs.Load(); got > 2 {
		t.Fatalf("%d fsyncs for %d events written at once, want at most 2", got, n)
	}
}

// TestFailedSyncStops: after a failed fsync the writer takes nothing more,
// and says why.
func TestFailedSyncStops(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openWriter(t, dir)
	record(t, w, 0, 2)
	w.syncFile = func(*os.File) error { return syscall.EIO }
	if err := w.Record(event(2)); !errors.Is(err, ErrStopped) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("record with a failing fsync: %v", err)
	}
	if err := w.Record(event(3)); !errors.Is(err, ErrStopped) {
		t.Fatalf("record after: %v", err)
	}
	if !errors.Is(w.Err(), ErrStopped) {
		t.Fatalf("Err: %v", w.Err())
	}
}

// TestTail: the last events first, then every new one as it is written,
// across rotations, each once and in order.
func TestTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openWriter(t, dir, WithMaxFileBytes(1<<10))
	record(t, w, 0, 12)

	var got []uint64
	Tail(context.Background(), dir, TailOptions{Last: 3}, func(e Entry) error {
		got = append(got, e.Record.Seq)
		return nil
	})
	if fmt.Sprint(got) != "[10 11 12]" {
		t.Fatalf("last 3: %v", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seqs := make(chan uint64, 100)
	done := make(chan error, 1)
	go func() {
		done <- Tail(ctx, dir, TailOptions{Last: 2, Follow: true, Poll: 5 * time.Millisecond}, func(e Entry) error {
			seqs <- e.Record.Seq
			return nil
		})
	}()
	for want := uint64(11); want <= 40; want++ {
		if want == 13 {
			record(t, w, 12, 28)
		}
		select {
		case got := <-seqs:
			if got != want {
				t.Fatalf("followed event %d, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d not followed", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if files, _ := listFiles(dir); len(files) < 4 {
		t.Fatalf("%d files: the follower saw no rotation", len(files))
	}
}

// TestNoTrail: a directory without a trail is an error naming it, not an
// empty trail that verifies.
func TestNoTrail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Verify(filepath.Join(dir, "none")); !errors.Is(err, ErrNoTrail) {
		t.Fatalf("missing directory: %v", err)
	}
	if _, err := Verify(dir); !errors.Is(err, ErrNoTrail) {
		t.Fatalf("empty directory: %v", err)
	}
}

// TestKilledMidBurst: a writer killed with SIGKILL while eight goroutines
// record as fast as they can leaves a chain that verifies up to its last
// complete line, and a writer that goes on from there.
func TestKilledMidBurst(t *testing.T) {
	t.Parallel()
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), writerEnv+"="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it get going and rotate, at a different point each round.
		deadline := time.Now().Add(10 * time.Second)
		for {
			entries, _ := os.ReadDir(dir)
			if len(entries) > round+2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(round) * 7 * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		r := verify(t, dir)
		if r.Break != nil || r.Files < round+2 {
			t.Fatalf("round %d: after the kill: %+v (%v); writer said %s", round, r, r.Break, stderr.String())
		}
		t.Logf("round %d: %d events in %d files verify after SIGKILL (torn tail: %v)", round, r.Events, r.Files, r.Torn != nil)
		w := openWriter(t, dir)
		record(t, w, 0, 3)
		w.Close()
		if r2 := verify(t, dir); r2.Break != nil || r2.Torn != nil || r2.Last < r.Last+3 {
			t.Fatalf("round %d: after a restart: %+v", round, r2)
		}
	}
}
