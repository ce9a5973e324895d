package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// syncBuffer is an output that tests read while a command still writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// seen is how far expect has read.
	seen int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// expect waits until s appears after what earlier calls matched, and
// returns the output from there to the end of s.
func (b *syncBuffer) expect(t *testing.T, s string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		rest := b.buf.String()[b.seen:]
		if i := strings.Index(rest, s); i >= 0 {
			b.seen += i + len(s)
			b.mu.Unlock()
			return rest[:i+len(s)]
		}
		b.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 10 s; output after the last match:\n%s", s, rest)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// unread is the output expect has not yet matched.
func (b *syncBuffer) unread() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()[b.seen:]
}

// envOf makes a getenv from pairs.
func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// result is a finished command.
type result struct {
	stdout, stderr string
	err            error
}

// runCmd runs the program in-process, as a script would.
func runCmd(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, envOf(env))
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}
