package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legalmfa/mfa/internal/syncbuf"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/simplemd"
)

// fakeClock is moved by hand; each advance is one tick the UI receives
// before advance returns.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	ticks chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), ticks: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Tick(time.Duration) (<-chan time.Time, func()) { return c.ticks, func() {} }

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	c.ticks <- now
}

// answerCall is one answer the UI sent; the test decides the broker's
// verdict by replying.
type answerCall struct {
	prompt   notify.Prompt
	decision notify.Decision
	match    string
	reply    chan error
}

// uiRig runs a prompt UI on a plain or terminal screen with input from an
// io.Reader the test types into.
type uiRig struct {
	t       *testing.T
	ui      *promptUI
	out     *syncbuf.Buffer
	clock   *fakeClock
	events  chan notify.Event
	notices chan notice
	typing  *io.PipeWriter
	answers chan answerCall
	done    chan error
	cancel  context.CancelFunc

	mu sync.Mutex
	// shownIDs are the requests the UI reported shown, in order.
	shownIDs []string
}

type rigOption func(*uiRig)

func onTTY(r *uiRig) {
	r.ui.screen = &ttyScreen{w: r.out, size: func() (int, int) { return 80, 40 }}
	r.ui.color = true
}

func newUIRig(t *testing.T, opts ...rigOption) *uiRig {
	t.Helper()
	md, err := newMarkdown("notty", 70)
	if err != nil {
		t.Fatal(err)
	}
	r := &uiRig{
		t: t, out: &syncbuf.Buffer{}, clock: newFakeClock(),
		events: make(chan notify.Event, 16), notices: make(chan notice, 16),
		answers: make(chan answerCall), done: make(chan error, 1),
	}
	answer := func(ctx context.Context, p notify.Prompt, d notify.Decision, match string) error {
		c := answerCall{prompt: p, decision: d, match: match, reply: make(chan error, 1)}
		select {
		case r.answers <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-c.reply:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.ui = newPromptUI(&plainScreen{w: r.out}, md.render, r.clock, answer)
	r.ui.reportShown = func(p notify.Prompt) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.shownIDs = append(r.shownIDs, p.Push.RequestID)
	}
	r.ui.minRead = 0
	for _, o := range opts {
		o(r)
	}
	pr, pw := io.Pipe()
	r.typing = pw
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	input := readLines(ctx, pr, r.clock.Now)
	go func() { r.done <- r.ui.run(ctx, r.events, input, r.notices) }()
	t.Cleanup(func() {
		cancel()
		pw.Close()
		<-r.done
	})
	return r
}

func (r *uiRig) push(p notify.Push) {
	r.events <- notify.Event{Prompt: &notify.Prompt{Push: p, Raw: []byte(p.RequestID)}}
}

func (r *uiRig) withdraw(id, why string) {
	r.events <- notify.Event{Withdrawal: &notify.Withdrawal{Version: notify.ProtocolVersion, RequestID: id, Why: why}}
}

func (r *uiRig) typeLine(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.typing, s+"\n"); err != nil {
		r.t.Fatal(err)
	}
}

func (r *uiRig) nextAnswer() answerCall {
	r.t.Helper()
	select {
	case c := <-r.answers:
		return c
	case <-time.After(5 * time.Second):
		r.t.Fatal("no answer sent within 5 s")
	}
	return answerCall{}
}

func (r *uiRig) noAnswer() {
	r.t.Helper()
	select {
	case c := <-r.answers:
		r.t.Fatalf("unexpected answer %s to %s", c.decision, c.prompt.Push.RequestID)
	case <-time.After(50 * time.Millisecond):
	}
}

// testPush is a request from a verified requester expiring in a minute.
func (r *uiRig) testPush(id, reason string) notify.Push {
	return notify.Push{
		Version: notify.ProtocolVersion, RequestID: id, LegalID: "alice@legal.broker.test", Broker: "broker.test",
		Reason:    reason,
		Requester: notify.Requester{Verified: true, LegalID: "bank@legal.broker.test", Name: "Example Bank", RemoteIP: "192.0.2.7"},
		Issued:    r.clock.Now().UTC().Format(notify.TimeFormat),
		Expires:   r.clock.Now().Add(time.Minute).UTC().Format(notify.TimeFormat),
	}
}

func TestPromptAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		input    string
		decision notify.Decision
		verdict  string
	}{
		{"a", notify.Approve, "✔ approved request req-appr from Example Bank: the broker accepted your answer"},
		{"approve", notify.Approve, "✔ approved request req-appr from Example Bank"},
		{" A ", notify.Approve, "✔ approved request req-appr"},
		{"d", notify.Deny, "✖ denied request req-deny from Example Bank: the broker accepted your answer"},
		{"deny", notify.Deny, "✖ denied request req-deny"},
		{"n", notify.NotMe, "✖ denied request req-notm from Example Bank and reported it as not yours"},
		{"not me", notify.NotMe, "reported it as not yours"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			t.Parallel()
			r := newUIRig(t)
			id := map[notify.Decision]string{notify.Approve: "req-appr-1", notify.Deny: "req-deny-1", notify.NotMe: "req-notm-1"}[tt.decision]
			r.push(r.testPush(id, "Log in to **Example Bank**"))
			shown := r.out.Expect(t, questionText)
			for _, want := range []string{
				"━━ MFA request " + id + " ━━",
				"\n✔ verified: Example Bank (bank@legal.broker.test)\n",
				"calling from 192.0.2.7",
				"Broker: broker.test",
				reasonGutter + "Log in to",
				"⏳ expires in 1:00",
			} {
				if !strings.Contains(shown, want) {
					t.Errorf("prompt lacks %q:\n%s", want, shown)
				}
			}
			r.typeLine(tt.input)
			c := r.nextAnswer()
			if c.decision != tt.decision || c.prompt.Push.RequestID != id || c.match != "" {
				t.Fatalf("answered %s (match %q) to %s, want %s to %s without a number", c.decision, c.match, c.prompt.Push.RequestID, tt.decision, id)
			}
			c.reply <- nil
			r.out.Expect(t, tt.verdict)
		})
	}
}

func TestPromptRepromptsOnInvalidInput(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.push(r.testPush("req-1", "Sign the contract"))
	r.out.Expect(t, questionText)
	for _, bad := range []string{"", "yes", "maybe", "ad"} {
		r.typeLine(bad)
		r.out.Expect(t, hintInvalid+"\n"+questionText)
	}
	r.noAnswer()
	r.typeLine("d")
	c := r.nextAnswer()
	if c.decision != notify.Deny {
		t.Fatalf("decision %s, want deny", c.decision)
	}
	c.reply <- nil
	r.out.Expect(t, "✖ denied request req-1")
}

func TestPromptWithdrawnWhileShown(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ why, text string }{
		{notify.WhyAnswered, "answered on another device"},
		{notify.WhyCancelled, "the requester cancelled it"},
		{notify.WhyTimeout, "it timed out"},
		{notify.WhyShutdown, "the broker is shutting down"},
		{notify.WhySuperseded, "a newer request replaced it"},
		{notify.WhyEnded, "it ended while this device was offline"},
	} {
		t.Run(tt.why, func(t *testing.T) {
			t.Parallel()
			r := newUIRig(t)
			r.push(r.testPush("req-1", "Log in"))
			r.out.Expect(t, questionText)
			r.withdraw("req-1", tt.why)
			r.out.Expect(t, "✖ request req-1 from Example Bank was withdrawn: "+tt.text)
			// Nothing is left to answer: a late "a" answers nothing.
			r.typeLine("a")
			r.out.Expect(t, msgNothingToDo)
			r.noAnswer()
		})
	}
}

func TestPromptExpiresWhileShown(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, "⏳ expires in 1:00")
	r.clock.advance(59 * time.Second)
	r.clock.advance(time.Second)
	r.out.Expect(t, "⌛ request req-1 from Example Bank expired before you answered")
	r.typeLine("a")
	r.out.Expect(t, msgNothingToDo)
	r.noAnswer()
}

func TestPromptQueuesRequests(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	first, second := r.testPush("req-first", "First **one**"), r.testPush("req-second", "Second one")
	second.Requester = notify.Requester{RemoteIP: "198.51.100.9"}
	r.push(first)
	r.out.Expect(t, questionText)
	r.push(second)
	// The count changes while the first request stays on screen; a plain
	// screen shows it with the next request, a terminal at once.
	r.typeLine("a")
	c := r.nextAnswer()
	if c.prompt.Push.RequestID != "req-first" {
		t.Fatalf("first answer went to %s", c.prompt.Push.RequestID)
	}
	c.reply <- nil
	r.out.Expect(t, "✔ approved request req-firs from Example Bank")
	shown := r.out.Expect(t, questionText)
	if !strings.Contains(shown, "━━ MFA request req-second ━━") ||
		!strings.Contains(shown, "\n"+unverifiedPrefix+"198.51.100.9\n") ||
		!strings.Contains(shown, "Second one") {
		t.Fatalf("second request not shown right:\n%s", shown)
	}
	if strings.Contains(shown, verifiedPrefix) {
		t.Fatalf("an unverified requester is shown as verified:\n%s", shown)
	}
	r.typeLine("d")
	c = r.nextAnswer()
	if c.prompt.Push.RequestID != "req-second" || c.decision != notify.Deny {
		t.Fatalf("second answer: %s to %s", c.decision, c.prompt.Push.RequestID)
	}
	c.reply <- nil
	r.out.Expect(t, "✖ denied request req-seco from an unverified requester at 198.51.100.9")
}

func TestPromptQueuedRequestWithdrawnOrExpired(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.push(r.testPush("req-1", "One"))
	r.out.Expect(t, questionText)
	r.push(r.testPush("req-2", "Two"))
	short := r.testPush("req-3", "Three")
	short.Expires = r.clock.Now().Add(10 * time.Second).UTC().Format(notify.TimeFormat)
	r.push(short)
	r.withdraw("req-2", notify.WhyCancelled)
	r.out.Expect(t, "✖ request req-2 from Example Bank was withdrawn before it was shown: the requester cancelled it")
	r.clock.advance(11 * time.Second)
	r.out.Expect(t, "⌛ request req-3 from Example Bank expired before it was shown")
	r.typeLine("a")
	r.nextAnswer().reply <- nil
	r.out.Expect(t, "✔ approved request req-1")
	if rest := r.out.Unread(); strings.Contains(rest, "MFA request") {
		t.Fatalf("a withdrawn or expired request was shown:\n%s", rest)
	}
}

func TestPromptShowsRefusal(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, questionText)
	r.typeLine("a")
	c := r.nextAnswer()
	r.withdraw("req-1", notify.WhyAnswered) // the other device's answer won
	c.reply <- &notify.RefusedError{Reason: "the request was answered on another device"}
	r.out.Expect(t, "⚠ the broker refused your answer to request req-1 from Example Bank: the request was answered on another device")
}

func TestPromptOwnAnswerIsNotReportedAsWithdrawal(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, questionText)
	r.typeLine("a")
	c := r.nextAnswer()
	// The broker withdraws a request from every device once answered,
	// often before this device has the receipt for its own answer.
	r.withdraw("req-1", notify.WhyAnswered)
	c.reply <- nil
	got := r.out.Expect(t, "✔ approved request req-1")
	if strings.Contains(got, "withdrawn") {
		t.Fatalf("own answer reported as a withdrawal:\n%s", got)
	}
}

func TestPromptRetriesUndeliveredAnswer(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, questionText)
	r.typeLine("a")
	r.nextAnswer().reply <- errors.New("nats: timeout")
	r.out.Expect(t, "could not send your answer (nats: timeout); answer again")
	r.out.Expect(t, questionText)
	r.typeLine("d")
	c := r.nextAnswer()
	if c.decision != notify.Deny {
		t.Fatalf("retry decided %s", c.decision)
	}
	c.reply <- nil
	r.out.Expect(t, "✖ denied request req-1")
}

func TestPromptIgnoresInputTypedBeforeItAppeared(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.ui.minRead = 500 * time.Millisecond
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, questionText)
	r.typeLine("a")
	r.out.Expect(t, hintTooSoon)
	r.noAnswer()
	r.clock.advance(time.Second)
	r.typeLine("a")
	r.nextAnswer().reply <- nil
	r.out.Expect(t, "✔ approved request req-1")
}

func TestPromptInputClosed(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.typing.Close()
	r.out.Expect(t, msgInputClosed)
	// Requests still show, for the record, though they cannot be answered.
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, "━━ MFA request req-1")
}

func TestPromptStopsCleanly(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, questionText)
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("run = %v, want nil on cancel", err)
	}
	r.done <- nil // for the cleanup
	r.out.Expect(t, "request req-1 from Example Bank was left unanswered")
}

func TestPromptEventsClosed(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	close(r.events)
	if err := <-r.done; !errors.Is(err, errEventsClosed) {
		t.Fatalf("run = %v, want errEventsClosed", err)
	}
	r.done <- nil
}

func TestPromptShowsConnectionState(t *testing.T) {
	t.Parallel()
	r := newUIRig(t, onTTY)
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, questionText)
	r.notices <- notice{text: "disconnected from NATS (EOF); reconnecting…", conn: connOffline}
	r.out.Expect(t, "disconnected from NATS (EOF); reconnecting…")
	r.out.Expect(t, "⚠ offline, reconnecting…")
	r.notices <- notice{text: "reconnected", conn: connOnline}
	r.out.Expect(t, "reconnected")
	r.clock.advance(time.Second)
	if got := r.out.Expect(t, "expires in 0:59"); strings.Contains(got, "offline") {
		t.Fatalf("still offline after reconnecting: %q", got)
	}
}

// The Reason and every other text from a push are attacker-influenced:
// nothing in them may reach the terminal as a control sequence, and no line
// of the Reason may pass for the requester line.
func TestPromptNeutralisesHostilePush(t *testing.T) {
	t.Parallel()
	for _, tty := range []bool{false, true} {
		t.Run(fmt.Sprintf("tty=%v", tty), func(t *testing.T) {
			t.Parallel()
			var opts []rigOption
			if tty {
				opts = append(opts, onTTY)
			}
			r := newUIRig(t, opts...)
			p := r.testPush("req-1\x1b[2J", hostile)
			p.Requester = notify.Requester{RemoteIP: "192.0.2.1\x1b]0;x\x07"}
			p.Broker = "broker\x1b[1A.test"
			r.push(p)
			shown := r.out.Expect(t, questionText)
			ours := []string{"\x1b7", "\x1b8", "\x1b[J"} // the screen's own redraw
			clean := stripSGR(shown)
			for _, s := range ours {
				clean = strings.ReplaceAll(clean, s, "")
			}
			clean = stripCursorMoves(clean)
			assertInert(t, clean)
			lines := strings.Split(stripSGR(shown), "\n")
			var requester []string
			for _, l := range lines {
				if strings.HasPrefix(l, verifiedPrefix) || strings.HasPrefix(l, unverifiedPrefix) {
					requester = append(requester, l)
				}
			}
			if len(requester) != 1 || !strings.HasPrefix(requester[0], unverifiedPrefix+"192.0.2.1␛]0;x␇") {
				t.Fatalf("requester lines %q, want exactly the unverified one:\n%s", requester, shown)
			}
			for _, l := range lines {
				if strings.Contains(l, "verified: Real Bank") && !strings.HasPrefix(l, reasonGutter) {
					t.Fatalf("a forged requester line escaped the Reason's gutter: %q", l)
				}
			}
		})
	}
}

// stripCursorMoves removes the relative cursor moves the terminal screen
// itself writes (up n rows, erase line), which only it may write.
func stripCursorMoves(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j < len(s) && (s[j] == 'A' || s[j] == 'K' || s[j] == 'J') {
				i = j
				continue
			}
		}
		if s[i] == '\r' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestTTYScreenCountsDownInPlace(t *testing.T) {
	t.Parallel()
	r := newUIRig(t, onTTY)
	r.push(r.testPush("req-1", "Log in"))
	r.out.Expect(t, questionText)
	r.clock.advance(time.Second)
	// Save the cursor, go up to the status line, rewrite it, come back:
	// what the person is typing stays where it is.
	r.out.Expect(t, "\x1b7\x1b[1A\r\x1b[2K⏳ expires in 0:59")
	r.out.Expect(t, "\x1b8")
	r.clock.advance(time.Second)
	r.out.Expect(t, "⏳ expires in 0:58")
	r.withdraw("req-1", notify.WhyCancelled)
	// The whole request is erased: up to its first row, clear to the end.
	erase := fmt.Sprintf("\r\x1b[%dA\x1b[J", len(r.ui.body(r.testPush("req-1", "Log in")))+1)
	r.out.Expect(t, erase)
	r.out.Expect(t, "✖ request req-1 from Example Bank was withdrawn")
}

func TestTTYScreenCountsWrappedRows(t *testing.T) {
	t.Parallel()
	var out syncbuf.Buffer
	s := &ttyScreen{w: &out, size: func() (int, int) { return 10, 40 }}
	s.draw(view{body: []string{"0123456789abc", "\x1b[1mbold\x1b[0m", ""}, status: "status", question: "? "})
	if s.rowsAbove != 2+1+1+1 {
		t.Fatalf("rowsAbove = %d, want 5 (13 columns wrap to 2 rows at width 10)", s.rowsAbove)
	}
	s.clear()
	if !strings.HasSuffix(out.String(), "\r\x1b[5A\x1b[J") {
		t.Fatalf("erase = %q", out.String())
	}
}

func TestTTYScreenTooTallToErase(t *testing.T) {
	t.Parallel()
	var out syncbuf.Buffer
	s := &ttyScreen{w: &out, size: func() (int, int) { return 80, 3 }}
	s.draw(view{body: []string{"1", "2", "3", "4"}, status: "status", question: "? "})
	s.clear()
	if strings.Contains(out.String(), "A\x1b[J") {
		t.Fatalf("tried to move above the top of the terminal: %q", out.String())
	}
}

func TestCountdown(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0:00"}, {0, "0:00"}, {time.Millisecond, "0:01"}, {59 * time.Second, "0:59"},
		{time.Minute, "1:00"}, {5*time.Minute + 7*time.Second, "5:07"}, {time.Hour + time.Second, "1:00:01"},
	} {
		if got := countdown(tt.d); got != tt.want {
			t.Errorf("countdown(%s) = %s, want %s", tt.d, got, tt.want)
		}
	}
}

// TestRequesterAlwaysOnScreen: however long the Reason (the most lines the
// broker accepts, blank ones included), the last line drawn, the one a
// terminal always shows, says who asks and counts down.
func TestRequesterAlwaysOnScreen(t *testing.T) {
	t.Parallel()
	r := newUIRig(t, onTTY)
	reason := strings.Repeat("\u00a0\n\n", simplemd.MaxLines/2-1) + "Pay 100 EUR"
	r.push(r.testPush("req-long", reason))
	shown := stripSGR(r.out.Expect(t, questionText))
	lines := strings.Split(strings.TrimSuffix(shown, questionText), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, "⏳ expires in") || !strings.Contains(last, "✔ asked by Example Bank") {
		t.Fatalf("the last line is %q; the view:\n%s", last, shown)
	}
	if n := len(lines); n > 12 {
		t.Errorf("%d lines for a Reason of blank lines and one line of text: blank runs are not collapsed", n)
	}
}
