package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	var wg sync.WaitGroup
	defer wg.Wait()
	// Cancelled before the wait, so no handler is left blocked on finished.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-finished:
			delete(withdrawals, id)
		case ev, ok := <-events:
			if !ok {
				return errEventsClosed
			}
			switch {
			case ev.Prompt != nil:
				p := *ev.Prompt
				a.out.printf("prompt %s from %s: %s", sanitizeLine(p.Push.RequestID), requesterToken(p.Push.Requester), reasonExcerpt(p.Push.Reason))
				w := make(chan string, 1)
				withdrawals[p.Push.RequestID] = w
				wg.Add(1)
				go func() {
					defer wg.Done()
					a.handle(ctx, p, w)
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

// handle waits out the delay, unless the request ends first, then answers.
func (a *autoAnswerer) handle(ctx context.Context, p notify.Prompt, withdrawn <-chan string) {
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
	err = a.answer(ctx, p, a.decision)
	switch {
	case ctx.Err() != nil:
		// Stopping: whatever the answer did, there is no one to tell.
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

// requesterToken is the requester in a prompt line:
//
//	verified <LegalId> "<Name>"
//	unverified <RemoteIp>
//
// LegalIds and IP addresses have no spaces, and the name is Go-quoted, so
// the line splits without ambiguity.
func requesterToken(r notify.Requester) string {
	if r.Verified {
		return fmt.Sprintf("verified %s %s", spaceless(r.LegalID), strconv.Quote(sanitizeLine(r.Name)))
	}
	return "unverified " + spaceless(r.RemoteIP)
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
