package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/legalmfa/mfa/internal/syncbuf"
	"github.com/legalmfa/mfa/notify"
)

// autoRig runs an autoAnswerer whose answers get the verdict verdict(id).
type autoRig struct {
	out    *syncbuf.Buffer
	events chan notify.Event
	done   chan error
	// shown hears the requests the answerer reported shown.
	shown chan string
}

func newAutoRig(t *testing.T, d notify.Decision, delay time.Duration, verdict func(id string) error) *autoRig {
	t.Helper()
	return newAutoRigInput(t, d, delay, nil, func(id, match string) error {
		if match != "" {
			return fmt.Errorf("answered %s with number %q", id, match)
		}
		return verdict(id)
	})
}

// newAutoRigInput is newAutoRig with stdin as standard input (nil: none
// is read, as for a denial) and a verdict that sees the number picked.
func newAutoRigInput(t *testing.T, d notify.Decision, delay time.Duration, stdin io.Reader, verdict func(id, match string) error) *autoRig {
	t.Helper()
	r := &autoRig{out: &syncbuf.Buffer{}, events: make(chan notify.Event, 8), done: make(chan error, 1), shown: make(chan string, 8)}
	a := &autoAnswerer{out: &lineWriter{w: r.out}, decision: d, delay: delay,
		answer: func(_ context.Context, p notify.Prompt, got notify.Decision, match string) error {
			if got != d {
				return fmt.Errorf("answered %s, want %s", got, d)
			}
			return verdict(p.Push.RequestID, match)
		},
		reportShown: func(p notify.Prompt) { r.shown <- p.Push.RequestID },
	}
	ctx, cancel := context.WithCancel(context.Background())
	if stdin != nil {
		a.picks = readLines(ctx, stdin, time.Now)
	}
	go func() { r.done <- a.run(ctx, r.events) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("run = %v", err)
		}
	})
	return r
}

func autoPush(id string, r notify.Requester, reason string, ttl time.Duration) notify.Event {
	return notify.Event{Prompt: &notify.Prompt{Push: notify.Push{
		Version: notify.ProtocolVersion, RequestID: id, LegalID: "alice@legal.broker.test", Broker: "broker.test",
		Reason: reason, Requester: r,
		Expires: time.Now().Add(ttl).UTC().Format(notify.TimeFormat),
	}}}
}

func TestAutoLines(t *testing.T) {
	t.Parallel()
	bank := notify.Requester{Verified: true, LegalID: "bank@legal.broker.test", Name: `Example "Bank"`, RemoteIP: "192.0.2.7"}
	anon := notify.Requester{RemoteIP: "198.51.100.1"}
	tests := []struct {
		name     string
		decision notify.Decision
		verdict  error
		event    notify.Event
		want     []string
	}{
		{"approve verified", notify.Approve, nil, autoPush("r1", bank, "\n\n  Log in to **Example Bank**  \nmore", time.Minute),
			[]string{`prompt r1 from verified bank@legal.broker.test "Example \"Bank\"": Log in to **Example Bank**` + "\n", "approved r1\n"}},
		{"deny unverified", notify.Deny, nil, autoPush("r2", anon, "Sign in", time.Minute),
			[]string{"prompt r2 from unverified 198.51.100.1: Sign in\n", "denied r2\n"}},
		{"not me", notify.NotMe, nil, autoPush("r7", anon, "Let me in", time.Minute),
			[]string{"prompt r7 from unverified 198.51.100.1: Let me in\n", "not-me r7\n"}},
		{"unknown address", notify.Deny, nil, autoPush("r3", notify.Requester{}, "x", time.Minute),
			[]string{"prompt r3 from unverified -: x\n", "denied r3\n"}},
		{"refused", notify.Approve, &notify.RefusedError{Reason: "the request was answered on another device"}, autoPush("r4", anon, "x", time.Minute),
			[]string{"prompt r4 from unverified 198.51.100.1: x\n", "refused r4: the request was answered on another device\n"}},
		{"failed", notify.Approve, errors.New("nats: timeout"), autoPush("r5", anon, "x", time.Minute),
			[]string{"failed r5: nats: timeout\n"}},
		{"hostile text", notify.Approve, nil, autoPush("r6\x1b[2J", notify.Requester{RemoteIP: "1.2.3.4 5\x1b]0;x\x07"}, "\x1b[1Ahi", time.Minute),
			[]string{"prompt r6␛[2J from unverified 1.2.3.4_5␛]0;x␇: ␛[1Ahi\n", "approved r6␛[2J\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newAutoRig(t, tt.decision, 0, func(string) error { return tt.verdict })
			r.events <- tt.event
			for _, w := range tt.want {
				r.out.Expect(t, w)
			}
		})
	}
}

func TestAutoWithdrawnDuringDelay(t *testing.T) {
	t.Parallel()
	r := newAutoRig(t, notify.Approve, time.Hour, func(id string) error { return fmt.Errorf("answered %s", id) })
	r.events <- autoPush("r1", notify.Requester{RemoteIP: "192.0.2.1"}, "x", time.Minute)
	r.out.Expect(t, "prompt r1 ")
	r.events <- notify.Event{Withdrawal: &notify.Withdrawal{RequestID: "r1", Why: notify.WhyCancelled}}
	r.out.Expect(t, "withdrawn r1: cancelled\n")
}

func TestAutoExpiredDuringDelay(t *testing.T) {
	t.Parallel()
	r := newAutoRig(t, notify.Approve, time.Hour, func(id string) error { return fmt.Errorf("answered %s", id) })
	r.events <- autoPush("r1", notify.Requester{RemoteIP: "192.0.2.1"}, "x", 100*time.Millisecond)
	r.out.Expect(t, "expired r1\n")
}

func TestAutoAnswersAfterDelay(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := newAutoRig(t, notify.Approve, 200*time.Millisecond, func(string) error { return nil })
	r.events <- autoPush("r1", notify.Requester{}, "x", time.Minute)
	r.events <- autoPush("r2", notify.Requester{}, "y", time.Minute)
	r.out.Expect(t, "prompt r2 ")
	// Requests wait out their delays side by side, not one after another.
	got := r.out.Unread() + r.out.Expect(t, "approved")
	r.out.Expect(t, "approved")
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("answered after %s (%q), want about the 200ms delay", d, got)
	}
}

// TestRequesterVia: a request that came through a federated broker names
// it, in the prompt line, on screen and in the status line.
func TestRequesterVia(t *testing.T) {
	t.Parallel()
	cases := []struct {
		r    notify.Requester
		want string
	}{
		{notify.Requester{RemoteIP: "192.0.2.7", Via: "a.example"}, "unverified 192.0.2.7 via a.example"},
		{notify.Requester{Verified: true, LegalID: "bank@legal.a.example", Name: "Example Bank", Via: "a.example"}, `verified bank@legal.a.example "Example Bank" via a.example`},
		{notify.Requester{RemoteIP: "192.0.2.7"}, "unverified 192.0.2.7"},
		{notify.Requester{RemoteIP: "192.0.2.7", Via: "a b"}, "unverified 192.0.2.7 via a_b"},
	}
	for _, c := range cases {
		if got := requesterToken(c.r); got != c.want {
			t.Errorf("requesterToken(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
	if got := askedBy(notify.Requester{Verified: true, Name: "Example Bank", Via: "a.example"}); got != "✔ asked by Example Bank via a.example" {
		t.Errorf("status line %q", got)
	}
}
