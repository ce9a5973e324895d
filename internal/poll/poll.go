// Package poll waits, in tests, for something another goroutine or
// process brings about: a log line, a state change, a server going down.
// It polls, as nats-server's tests do with checkFor, rather than sleeping
// a guessed time, so a fast machine does not wait and a slow one does not
// fail. (To prove that something did NOT happen, do not poll: send a later
// event that must arrive, and check that it is the only one.)
package poll

import (
	"errors"
	"testing"
	"time"
)

// Patience is how long Until waits: long enough for a loaded CI machine.
const Patience = 10 * time.Second

// interval is how often the condition is checked.
const interval = 5 * time.Millisecond

// Until fails the test unless cond holds within Patience.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Patience, what, cond)
}

// Within fails the test unless cond holds within limit, and returns how
// long it took to hold.
func Within(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return For(t, limit, func() error {
		if cond() {
			return nil
		}
		return errors.New(what + ": not yet")
	})
}

// For fails the test with check's last error unless check returns nil
// within limit, and returns how long that took.
func For(t testing.TB, limit time.Duration, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("not within %v: %v", limit, err)
		}
		time.Sleep(interval)
	}
}
