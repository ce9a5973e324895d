package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/legalmfa/mfa/notify"
)

// autoAnswerer answers every request with one decision, for tests, demos
// and unattended devices. It prints one line per event; the formats are
// documented in listenHelp and scripts parse them, so they do not change.
type autoAnswerer struct {
	out      *lineWriter
	decision notify.Decision
	delay    time.Duration
	answer   answerFunc
	// reportShown tells the broker a prompt was printed
	// (notify.Device.Shown); nil: nobody is told.
	reportShown func(notify.Prompt)
	// picks, for approvals, are the lines of standard input: the numbers
	// to pick. Each prompt that needs one takes the next line, in the
	// order the prompts are printed, whether or not it is answered in the
	// end, so that a script always knows which line goes to which prompt.
	// nil, or closed: there are none.
	picks <-chan inputLine
}

// lineWriter writes whole lines from several goroutines without
// interleaving them.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", args...)
}

// maxReasonExcerpt bounds the Reason's first line in a prompt line.
const maxReasonExcerpt = 120

func (a *autoAnswerer) run(ctx context.Context, events <-chan notify.Event) error {
	// withdrawals signals each request still waiting out its delay; only
	// this goroutine touches the map, and finished requests report back.
	withdrawals := map[string]chan string{}
	finished := make(chan string)
	// waiting are the prompts that need a number and have none yet, in
	// the order they were printed. Lines are taken only while one waits,
	// so a line written early is kept for the prompt it is meant for.
	var waiting []chan string
	picks := a.picks
	var wg sync.WaitGroup
	defer wg.Wait()
	// Cancelled before the wait, so no handler is left blocked on finished.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		var nextPick <-chan inputLine
		if len(waiting) > 0 {
			nextPick = picks
		}
		select {
		case <-ctx.Done():
			return nil
		case id := <-finished:
			delete(withdrawals, id)
		case l, ok := <-nextPick:
			if !ok {
				picks = nil
				for _, w := range waiting {
					close(w)
				}
				waiting = nil
				continue
			}
			waiting[0] <- l.text // buffered for this one line
			waiting = waiting[1:]
		case ev, ok := <-events:
			if !ok {
				return errEventsClosed
			}
			switch {
			case ev.Prompt != nil:
				p := *ev.Prompt
				a.out.printf("%s", promptLine(p.Push))
				if a.reportShown != nil {
					a.reportShown(p)
				}
				var pick chan string
				if a.decision == notify.Approve && p.Push.NeedsMatch() {
					pick = make(chan string, 1)
					if picks == nil {
						close(pick)
					} else {
						waiting = append(waiting, pick)
					}
				}
				w := make(chan string, 1)
				withdrawals[p.Push.RequestID] = w
				wg.Add(1)
				go func() {
					defer wg.Done()
					a.handle(ctx, p, w, pick)
					select {
					case finished <- p.Push.RequestID:
					case <-ctx.Done():
					}
				}()
			case ev.Withdrawal != nil:
				if w, ok := withdrawals[ev.Withdrawal.RequestID]; ok {
					select {
					case w <- ev.Withdrawal.Why:
					default:
					}
				}
			}
		}
	}
}

// handle waits out the delay, and for the number to pick if pick is not
// nil, unless the request ends first, then answers.
func (a *autoAnswerer) handle(ctx context.Context, p notify.Prompt, withdrawn <-chan string, pick <-chan string) {
	id := sanitizeLine(p.Push.RequestID)
	exp, err := p.Push.ExpiresAt()
	if err != nil {
		a.out.printf("failed %s: %s", id, sanitizeLine(err.Error()))
		return
	}
	delay := time.NewTimer(a.delay)
	defer delay.Stop()
	expiry := time.NewTimer(time.Until(exp))
	defer expiry.Stop()
	select {
	case <-ctx.Done():
		return
	case why := <-withdrawn:
		a.out.printf("withdrawn %s: %s", id, sanitizeLine(why))
		return
	case <-expiry.C:
		a.out.printf("expired %s", id)
		return
	case <-delay.C:
	}
	var match string
	if pick != nil {
		select {
		case <-ctx.Done():
			return
		case why := <-withdrawn:
			a.out.printf("withdrawn %s: %s", id, sanitizeLine(why))
			return
		case <-expiry.C:
			a.out.printf("expired %s", id)
			return
		case l, ok := <-pick:
			match = strings.TrimSpace(l)
			switch {
			case !ok:
				a.out.printf("unanswered %s: needs a number and standard input has none", id)
				return
			case !slices.Contains(p.Push.MatchChoices, match):
				// The line is not echoed: whatever was typed by mistake
				// stays off the output.
				a.out.printf("unanswered %s: the line read from standard input is not one of the choices", id)
				return
			}
		}
	}
	err = a.answer(ctx, p, a.decision, match)
	switch {
	case ctx.Err() != nil:
		// Stopping: whatever the answer did, there is no one to tell.
	case errors.Is(err, notify.ErrWrongNumber):
		a.out.printf("wrong-number %s", id)
	case err == nil && a.decision == notify.Approve:
		a.out.printf("approved %s", id)
	case err == nil && a.decision == notify.NotMe:
		a.out.printf("not-me %s", id)
	case err == nil:
		a.out.printf("denied %s", id)
	case errors.Is(err, notify.ErrRefused):
		a.out.printf("refused %s: %s", id, refusal(err))
	default:
		a.out.printf("failed %s: %s", id, sanitizeLine(err.Error()))
	}
}

// promptLine is the line printed for a prompt:
//
//	prompt <RequestId> from <requester> [choices 17 42 88]: <Reason excerpt>
//
// with the choices only for a request with number matching. They come
// before the colon because everything after it is the requester's own
// text: a Reason ending in "[choices …]" must not pass for choices the
// broker offers.
func promptLine(p notify.Push) string {
	var b strings.Builder
	fmt.Fprintf(&b, "prompt %s from %s", sanitizeLine(p.RequestID), requesterToken(p.Requester))
	if p.NeedsMatch() {
		b.WriteString(" [choices")
		for _, c := range p.MatchChoices {
			b.WriteString(" " + choiceToken(c))
		}
		b.WriteString("]")
	}
	b.WriteString(": " + reasonExcerpt(p.Reason))
	return b.String()
}

// choiceToken is a choice in a prompt line. The broker offers two-digit
// numbers; anything else a choice holds is printed as _, so that no
// choice can end the list early or hide in it.
func choiceToken(c string) string {
	if c == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, c)
}

// requesterToken is the requester in a prompt line:
//
//	verified <LegalId> "<Name>" [via <broker>]
//	unverified <RemoteIp> [via <broker>]
//
// LegalIds, IP addresses and broker domains have no spaces, and the name
// is Go-quoted, so the line splits without ambiguity. "via" names the
// federated broker the request came through.
func requesterToken(r notify.Requester) string {
	t := "unverified " + spaceless(r.RemoteIP)
	if r.Verified {
		t = fmt.Sprintf("verified %s %s", spaceless(r.LegalID), strconv.Quote(sanitizeLine(r.Name)))
	}
	if r.Via != "" {
		t += " via " + spaceless(r.Via)
	}
	return t
}

func spaceless(s string) string {
	s = strings.ReplaceAll(sanitizeLine(s), " ", "_")
	if s == "" {
		return "-"
	}
	return s
}

// reasonExcerpt is the Reason's first non-blank line, as written.
func reasonExcerpt(reason string) string {
	for _, l := range strings.Split(reason, "\n") {
		l = strings.TrimSpace(sanitizeLine(l))
		if l == "" {
			continue
		}
		if utf8.RuneCountInString(l) > maxReasonExcerpt {
			l = string([]rune(l)[:maxReasonExcerpt]) + "…"
		}
		return l
	}
	return ""
}
