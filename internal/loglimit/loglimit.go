// Package loglimit keeps a flood of one kind of log line from flooding the
// log: where an attacker can make the broker log at will (a refused NATS
// connection, a refused answer), the lines of one message are let through
// up to a burst per period, and the rest are counted and reported in one
// line when the period ends. Written here because slog has no such handler
// and the few lines are simpler than adapting a sampling library.
package loglimit

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Handler wraps another handler.
type Handler struct {
	next  slog.Handler
	state *state
}

type state struct {
	per   time.Duration
	burst int
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*window // by level and message
}

type window struct {
	start      time.Time
	passed     int
	suppressed int
}

// New lets at most burst records of each message through next per period
// per; the first record of a message after suppressed ones says how many
// were left out.
func New(next slog.Handler, per time.Duration, burst int) *Handler {
	return &Handler{next: next, state: &state{per: per, burst: burst, now: time.Now, kinds: map[string]*window{}}}
}

// Enabled is next's.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle passes r on unless its message has used up its burst.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	key := r.Level.String() + " " + r.Message
	s := h.state
	now := s.now()
	s.mu.Lock()
	w := s.kinds[key]
	if w == nil || now.Sub(w.start) >= s.per {
		suppressed := 0
		if w != nil {
			suppressed = w.suppressed
		}
		w = &window{start: now}
		s.kinds[key] = w
		// Forget messages that fell quiet, so the map follows what is
		// being logged now.
		if len(s.kinds) > 1024 {
			for k, old := range s.kinds {
				if now.Sub(old.start) >= s.per {
					delete(s.kinds, k)
				}
			}
		}
		if suppressed > 0 {
			r = r.Clone()
			r.AddAttrs(slog.Int("suppressed", suppressed), slog.Duration("over", s.per))
		}
	}
	if w.passed >= s.burst {
		w.suppressed++
		s.mu.Unlock()
		return nil
	}
	w.passed++
	s.mu.Unlock()
	return h.next.Handle(ctx, r)
}

// WithAttrs keeps the limits shared with h.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), state: h.state}
}

// WithGroup keeps the limits shared with h.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), state: h.state}
}
