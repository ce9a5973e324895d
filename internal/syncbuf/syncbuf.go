// Package syncbuf is an output buffer that tests read while a command, a
// server or a logger still writes to it from other goroutines.
package syncbuf

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/legalmfa/mfa/internal/poll"
)

// Buffer is safe for concurrent writes and reads. The zero value keeps
// everything; set Limit to keep only the first Limit bytes, where a
// failure to start is explained, of a process that may write without end.
type Buffer struct {
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
	// seen is how far Expect has read.
	seen int
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 {
		if room := b.Limit - b.buf.Len(); room < len(p) {
			b.buf.Write(p[:max(room, 0)])
			return len(p), nil
		}
	}
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Expect waits until s appears after what earlier calls matched, and
// returns the output from there to the end of s.
func (b *Buffer) Expect(t testing.TB, s string) string {
	t.Helper()
	var got string
	poll.For(t, poll.Patience, func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		rest := b.buf.String()[b.seen:]
		i := strings.Index(rest, s)
		if i < 0 {
			return fmt.Errorf("no %q in the output after the last match:\n%s", s, rest)
		}
		b.seen += i + len(s)
		got = rest[:i+len(s)]
		return nil
	})
	return got
}

// Unread is the output Expect has not matched yet.
func (b *Buffer) Unread() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()[b.seen:]
}
