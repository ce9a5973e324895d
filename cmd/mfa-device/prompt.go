package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/legalmfa/mfa/notify"
)

// clock is time as the prompt UI sees it; tests drive it by hand.
type clock interface {
	Now() time.Time
	// Tick returns a channel that fires every d, and a function to stop it.
	Tick(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Tick(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// inputLine is one line the person typed, stamped when it was read so it
// can be told apart from a line meant for an earlier request.
type inputLine struct {
	text string
	at   time.Time
}

// readLines sends each line of r to the returned channel, which is closed
// at end of input. Reading in its own goroutine is what keeps a blocked
// read from stopping the countdown or new requests.
func readLines(ctx context.Context, r io.Reader, now func() time.Time) <-chan inputLine {
	ch := make(chan inputLine)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			select {
			case ch <- inputLine{text: sc.Text(), at: now()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// notice is a line from outside the UI, perhaps with news about the
// connection to NATS.
type notice struct {
	text string
	conn connState
}

type connState int

const (
	connUnchanged connState = iota
	connOffline
	connOnline
)

// answerFunc delivers a decision, with the number picked for a request
// with number matching ("" otherwise); notify.Device.AnswerMatch is one.
type answerFunc func(ctx context.Context, p notify.Prompt, d notify.Decision, match string) error

// promptUI shows one request at a time, queues the others, counts down to
// expiry, and turns the person's a/d/n, or the number picked, into signed
// answers.
type promptUI struct {
	screen screen
	render func(markdown string) string
	clock  clock
	answer answerFunc
	// reportShown tells the broker a request is now in front of the
	// person (notify.Device.Shown), so the relying party may tell its user
	// to look at the device; a request waiting in the queue is not in
	// front of anyone yet. nil: nobody is told.
	reportShown func(notify.Prompt)
	// minRead is how long a request must have been shown before input
	// counts as an answer to it: a line typed for one request and read
	// just as the next appeared must not answer the next.
	minRead time.Duration
	// color adds SGR colours to the requester line.
	color bool

	queue []queued
	cur   *shown
	// offline is set while the connection to NATS is down: answers cannot
	// be sent, and new requests cannot arrive.
	offline bool
	// results carries answers back from the goroutine that sent them.
	results chan answerResult
}

type queued struct {
	prompt  notify.Prompt
	expires time.Time
}

type shown struct {
	queued
	body  []string
	since time.Time
	hint  string
	// replies counts hints given in reply to input.
	replies int
	// sending is the decision on its way to the broker, if any.
	sending notify.Decision
	// withdrawn says why the request ended while an answer was on its way.
	withdrawn string
}

type answerResult struct {
	requestID string
	decision  notify.Decision
	match     string
	err       error
}

// errEventsClosed: the device stopped delivering events.
var errEventsClosed = errors.New("the device stopped receiving requests")

// Messages the UI shows, kept together because people learn their wording.
const (
	questionText     = "approve, deny, or not me? [a/d/n] "
	hintInvalid      = "please type a to approve or d to deny"
	hintTooSoon      = "this request has only just appeared: read it, then answer"
	hintBusy         = "your answer is on its way"
	msgInputClosed   = "standard input is closed: requests are shown but cannot be answered here (use --auto to answer without a terminal)"
	msgNothingToDo   = "there is no request to answer"
	verifiedPrefix   = "✔ verified: "
	unverifiedPrefix = "⚠ unverified requester, calling from "
	reasonGutter     = "│ "
)

// questionMatchText is the input prompt of a request with number
// matching; %s are its choices.
const questionMatchText = "type the number to approve, d to deny, n if not you: [%s/d/n] "

func newPromptUI(s screen, render func(string) string, c clock, answer answerFunc) *promptUI {
	return &promptUI{screen: s, render: render, clock: c, answer: answer, minRead: 500 * time.Millisecond,
		results: make(chan answerResult, 1)}
}

// run shows requests until ctx ends or events closes. notices are lines
// from elsewhere (connection state) printed without disturbing the prompt.
func (u *promptUI) run(ctx context.Context, events <-chan notify.Event, input <-chan inputLine, notices <-chan notice) error {
	tick, stop := u.clock.Tick(time.Second)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			u.stop()
			return nil
		case ev, ok := <-events:
			if !ok {
				u.stop()
				return errEventsClosed
			}
			u.event(ev)
		case l, ok := <-input:
			if !ok {
				input = nil
				u.screen.log(msgInputClosed)
				continue
			}
			u.screen.echoed()
			u.input(ctx, l)
		case n := <-notices:
			if n.conn != connUnchanged {
				u.offline = n.conn == connOffline
				u.redraw()
			}
			if n.text != "" {
				u.screen.log(sanitizeLine(n.text))
			}
		case <-tick:
			u.tick()
		case r := <-u.results:
			u.answered(r)
		}
	}
}

func (u *promptUI) event(ev notify.Event) {
	switch {
	case ev.Prompt != nil:
		exp, err := ev.Prompt.Push.ExpiresAt()
		if err != nil || !u.clock.Now().Before(exp) {
			return
		}
		u.queue = append(u.queue, queued{prompt: *ev.Prompt, expires: exp})
		if u.cur == nil {
			u.showNext()
		} else {
			u.redraw() // the count of waiting requests changed
		}
	case ev.Withdrawal != nil:
		id, why := ev.Withdrawal.RequestID, withdrawalText(ev.Withdrawal.Why)
		if u.cur != nil && u.cur.prompt.Push.RequestID == id {
			if u.cur.sending != "" {
				// Our own answer ends a request too; the broker's receipt
				// says which answer won.
				u.cur.withdrawn = why
				return
			}
			u.end(fmt.Sprintf("✖ request %s from %s was withdrawn: %s", shortID(id), who(u.cur.prompt.Push), why))
			return
		}
		for i, q := range u.queue {
			if q.prompt.Push.RequestID == id {
				u.queue = append(u.queue[:i], u.queue[i+1:]...)
				u.screen.log(fmt.Sprintf("✖ request %s from %s was withdrawn before it was shown: %s", shortID(id), who(q.prompt.Push), why))
				u.redraw()
				return
			}
		}
	}
}

func (u *promptUI) input(ctx context.Context, l inputLine) {
	text := strings.ToLower(strings.TrimSpace(l.text))
	if u.cur == nil {
		if text != "" {
			u.screen.log(msgNothingToDo)
		}
		return
	}
	u.cur.replies++
	if u.cur.sending != "" {
		u.cur.hint = hintBusy
		u.redraw()
		return
	}
	if l.at.Sub(u.cur.since) < u.minRead {
		u.cur.hint = hintTooSoon
		u.redraw()
		return
	}
	p := u.cur.prompt
	var d notify.Decision
	var match, hint string
	switch {
	case text == "d" || text == "deny":
		d = notify.Deny
	case text == "n" || text == "not me" || text == "not-me":
		d = notify.NotMe
	case p.Push.NeedsMatch():
		// A bare "a" is what a person worn down by prompts types without
		// looking; only the number the requester shows ties the approval
		// to the screen the person is actually using.
		switch {
		case slices.Contains(p.Push.MatchChoices, text):
			d, match = notify.Approve, text
		case text == "a" || text == "approve":
			hint = hintTypeNumber(p.Push)
		case isNumber(text):
			hint = hintNotOffered(p.Push)
		default:
			hint = hintInvalidMatch(p.Push)
		}
	case text == "a" || text == "approve":
		d = notify.Approve
	default:
		hint = hintInvalid
	}
	if d == "" {
		u.cur.hint = hint
		u.redraw()
		return
	}
	u.cur.sending, u.cur.hint = d, fmt.Sprintf("sending: %s …", d)
	if match != "" {
		u.cur.hint = fmt.Sprintf("sending: %s with %s …", d, match)
	}
	u.redraw()
	go func() {
		// results has room for this one answer: only one is ever in flight.
		u.results <- answerResult{requestID: p.Push.RequestID, decision: d, match: match, err: u.answer(ctx, p, d, match)}
	}()
}

func (u *promptUI) answered(r answerResult) {
	if u.cur == nil || u.cur.prompt.Push.RequestID != r.requestID {
		return
	}
	id, from := shortID(r.requestID), who(u.cur.prompt.Push)
	switch {
	case errors.Is(r.err, notify.ErrWrongNumber):
		// The broker took the answer, and it ended the request as a
		// denial: the person approved a number someone else shows.
		u.end(fmt.Sprintf("✖ wrong number: you picked %s, which is not the number %s shows, so request %s from %s was denied", sanitizeLine(r.match), matchShower(u.cur.prompt.Push), id, from))
	case r.err == nil && r.decision == notify.Approve:
		u.end(fmt.Sprintf("✔ approved request %s from %s: the broker accepted your answer", id, from))
	case r.err == nil && r.decision == notify.NotMe:
		u.end(fmt.Sprintf("✖ denied request %s from %s and reported it as not yours: the broker blocks that requester from asking you again for a while", id, from))
	case r.err == nil:
		u.end(fmt.Sprintf("✖ denied request %s from %s: the broker accepted your answer", id, from))
	case errors.Is(r.err, notify.ErrRefused):
		u.end(fmt.Sprintf("⚠ the broker refused your answer to request %s from %s: %s", id, from, refusal(r.err)))
	case u.cur.withdrawn != "" || !u.clock.Now().Before(u.cur.expires):
		u.end(fmt.Sprintf("⚠ your answer to request %s from %s may not have arrived (%s), and the request is over", id, from, sanitizeLine(r.err.Error())))
	default:
		// The answer never reached the broker; the request still waits.
		u.cur.sending = ""
		u.cur.replies++
		u.cur.hint = fmt.Sprintf("could not send your answer (%s); answer again", sanitizeLine(r.err.Error()))
		u.redraw()
	}
}

func (u *promptUI) tick() {
	now := u.clock.Now()
	kept := u.queue[:0]
	for _, q := range u.queue {
		if now.Before(q.expires) {
			kept = append(kept, q)
		} else {
			u.screen.log(fmt.Sprintf("⌛ request %s from %s expired before it was shown", shortID(q.prompt.Push.RequestID), who(q.prompt.Push)))
		}
	}
	clear(u.queue[len(kept):])
	u.queue = kept
	if u.cur == nil {
		return
	}
	if u.cur.sending == "" && !now.Before(u.cur.expires) {
		u.end(fmt.Sprintf("⌛ request %s from %s expired before you answered", shortID(u.cur.prompt.Push.RequestID), who(u.cur.prompt.Push)))
		return
	}
	u.redraw()
}

// end takes the shown request off the screen, says why, and shows the
// next one.
func (u *promptUI) end(msg string) {
	u.screen.clear()
	u.screen.log(msg)
	u.cur = nil
	u.showNext()
}

func (u *promptUI) showNext() {
	now := u.clock.Now()
	for len(u.queue) > 0 {
		q := u.queue[0]
		u.queue = u.queue[1:]
		if !now.Before(q.expires) {
			u.screen.log(fmt.Sprintf("⌛ request %s from %s expired before it was shown", shortID(q.prompt.Push.RequestID), who(q.prompt.Push)))
			continue
		}
		u.cur = &shown{queued: q, since: now, body: u.body(q.prompt.Push)}
		if u.reportShown != nil {
			u.reportShown(q.prompt)
		}
		u.redraw()
		return
	}
}

func (u *promptUI) redraw() {
	if u.cur == nil {
		return
	}
	v := view{body: u.cur.body, hint: u.cur.hint, status: u.status(), replies: u.cur.replies}
	if u.cur.sending == "" {
		v.question = questionText
		if p := u.cur.prompt.Push; p.NeedsMatch() {
			v.question = fmt.Sprintf(questionMatchText, strings.Join(choiceTexts(p), "/"))
		}
	}
	u.screen.draw(v)
}

func (u *promptUI) status() string {
	left := u.cur.expires.Sub(u.clock.Now())
	// Who asks is said again here, on the line that is always on screen:
	// however long the Reason, the bottom of the view is what shows.
	s := fmt.Sprintf("⏳ expires in %s (at %s) · %s", countdown(left), u.cur.expires.Local().Format("15:04:05"), askedBy(u.cur.prompt.Push.Requester))
	switch n := len(u.queue); n {
	case 0:
	case 1:
		s += " · 1 more request waiting"
	default:
		s += fmt.Sprintf(" · %d more requests waiting", n)
	}
	if u.offline {
		s += " · ⚠ offline, reconnecting…"
	}
	return s
}

// body is what the person reads before deciding. The requester line comes
// from the broker's verification, never from the Reason, which is set
// apart by a gutter so that no line of it can pass for the requester line.
func (u *promptUI) body(p notify.Push) []string {
	lines := []string{fmt.Sprintf("━━ MFA request %s ━━", sanitizeLine(p.RequestID))}
	r := p.Requester
	if r.Verified {
		line := fmt.Sprintf("%s%s (%s)", verifiedPrefix, sanitizeLine(r.Name), sanitizeLine(r.LegalID))
		if u.color {
			line = "\x1b[1;32m" + line + "\x1b[0m"
		}
		lines = append(lines, line)
		if r.RemoteIP != "" {
			lines = append(lines, "  calling from "+sanitizeLine(r.RemoteIP))
		}
	} else {
		line := unverifiedPrefix + remoteIP(r)
		if u.color {
			line = "\x1b[1;33m" + line + "\x1b[0m"
		}
		lines = append(lines, line)
	}
	if r.Via != "" {
		// The request came through a federated broker; the one below holds
		// the person's identity and vouches for the push.
		lines = append(lines, "  via "+sanitizeLine(r.Via))
	}
	lines = append(lines, "Broker: "+sanitizeLine(p.Broker), "Reason:")
	for _, l := range strings.Split(u.render(p.Reason), "\n") {
		lines = append(lines, reasonGutter+l)
	}
	if p.NeedsMatch() {
		// Last in the body, just above the countdown, so that it stays on
		// screen however long the Reason.
		line := matchLine(p)
		if u.color {
			line = "\x1b[1m" + line + "\x1b[0m"
		}
		lines = append(lines, "", line)
	}
	return lines
}

// matchLine offers the numbers of a request with number matching.
func matchLine(p notify.Push) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Pick the number %s shows you:", matchShower(p))
	for _, c := range choiceTexts(p) {
		fmt.Fprintf(&b, "  [%s]", c)
	}
	return b.String()
}

// choiceTexts are a push's MatchChoices made safe to print.
func choiceTexts(p notify.Push) []string {
	out := make([]string, len(p.MatchChoices))
	for i, c := range p.MatchChoices {
		out[i] = sanitizeLine(c)
	}
	return out
}

// choiceList is the choices as a phrase: "17, 42 or 88".
func choiceList(p notify.Push) string {
	c := choiceTexts(p)
	if len(c) < 2 {
		return strings.Join(c, "")
	}
	return strings.Join(c[:len(c)-1], ", ") + " or " + c[len(c)-1]
}

// matchShower names who shows the person the number: a verified
// requester by name; an unverified one is only an address, which says
// nothing to a person looking at a web page.
func matchShower(p notify.Push) string {
	if r := p.Requester; r.Verified && strings.TrimSpace(r.Name) != "" {
		return sanitizeLine(r.Name)
	}
	return "the requester"
}

// The hints for input to a request with number matching.
func hintTypeNumber(p notify.Push) string {
	return fmt.Sprintf("to approve, type the number %s shows you: %s", matchShower(p), choiceList(p))
}

func hintNotOffered(p notify.Push) string {
	return fmt.Sprintf("that number is not one of those offered (%s): type the one %s shows you, or d to deny", choiceList(p), matchShower(p))
}

func hintInvalidMatch(p notify.Push) string {
	return fmt.Sprintf("please type the number %s shows you to approve, or d to deny", matchShower(p))
}

// isNumber reports whether s is all ASCII digits.
func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// stop leaves the terminal tidy when listening ends.
func (u *promptUI) stop() {
	if u.cur == nil {
		return
	}
	msg := fmt.Sprintf("request %s from %s was left unanswered", shortID(u.cur.prompt.Push.RequestID), who(u.cur.prompt.Push))
	if u.cur.sending != "" {
		msg = fmt.Sprintf("stopped while your answer to request %s was on its way", shortID(u.cur.prompt.Push.RequestID))
	}
	u.screen.clear()
	u.screen.log(msg)
	u.cur = nil
}

// askedBy is the requester in the status line: verified or not, first.
func askedBy(r notify.Requester) string {
	via := ""
	if r.Via != "" {
		via = " via " + sanitizeLine(r.Via)
	}
	if r.Verified {
		return "✔ asked by " + sanitizeLine(r.Name) + via
	}
	return "⚠ asked by an unverified requester at " + remoteIP(r) + via
}

// who names the requester in one short phrase.
func who(p notify.Push) string {
	if p.Requester.Verified {
		return sanitizeLine(p.Requester.Name)
	}
	return "an unverified requester at " + remoteIP(p.Requester)
}

func remoteIP(r notify.Requester) string {
	if r.RemoteIP == "" {
		return "an unknown address"
	}
	return sanitizeLine(r.RemoteIP)
}

// shortID is enough of a request ID to tell requests apart on screen.
func shortID(id string) string {
	id = sanitizeLine(id)
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// withdrawalText explains a withdrawal's Why to a person.
func withdrawalText(why string) string {
	switch why {
	case notify.WhyAnswered:
		return "answered on another device"
	case notify.WhyTimeout:
		return "it timed out"
	case notify.WhyCancelled:
		return "the requester cancelled it"
	case notify.WhyShutdown:
		return "the broker is shutting down"
	case notify.WhySuperseded:
		return "a newer request replaced it"
	case notify.WhyEnded:
		return "it ended while this device was offline"
	}
	return sanitizeLine(why)
}

// refusal is the broker's reason for refusing an answer.
func refusal(err error) string {
	var r *notify.RefusedError
	if !errors.As(err, &r) || strings.TrimSpace(r.Reason) == "" {
		return "no reason given"
	}
	return sanitizeLine(r.Reason)
}

// countdown formats a remaining time as m:ss, or h:mm:ss past an hour.
func countdown(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int((d + time.Second - 1) / time.Second) // round up: 0:00 means gone
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
