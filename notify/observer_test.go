package notify_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legalmfa/mfa/notify"
)

// counts is an Observer that counts what it hears, by event and label.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounts() *counts { return &counts{n: map[string]int{}} }

func (c *counts) add(key string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[key] += n
}

func (c *counts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func (c *counts) Pushes(sent, failed int, resent bool) {
	c.add(fmt.Sprintf("pushes resent=%v", resent), sent)
	c.add("push failures", failed)
}
func (c *counts) Withdrawals(why string, n int)  { c.add("withdrawn "+why, n) }
func (c *counts) Sync()                          { c.add("sync", 1) }
func (c *counts) AnswerAccepted(decision string) { c.add("accepted "+decision, 1) }
func (c *counts) AnswerRefused(reason string)    { c.add("refused "+reason, 1) }

// TestObserverHears: the pusher tells its observer of every push, answer
// accepted, answer refused with why, and withdrawal, before whoever asked
// hears the outcome.
func TestObserverHears(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	obs := newCounts()
	p := r.replica(notify.WithObserver(obs))
	alice := r.startedDevice("alice@legal.broker.test")
	mallory := r.startedDevice("mallory@legal.broker.test")
	ask := func(q notify.Question) <-chan askResult {
		ch := make(chan askResult, 1)
		go func() {
			out, err := p.Ask(context.Background(), q)
			ch <- askResult{out, err}
		}()
		return ch
	}

	q := question(time.Minute, alice)
	ch := ask(q)
	prompt := nextPrompt(t, alice)
	sign := func(key ed25519.PrivateKey, d notify.Decision) []byte {
		return ed25519.Sign(key, notify.AnswerForm(prompt.Push, prompt.Raw, d, ""))
	}
	answer := func(legalID string, d notify.Decision, sig []byte) notify.Answer {
		return notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: legalID, Decision: d, Signature: sig}
	}
	cases := []struct {
		reason  string
		sender  *testDevice
		subject string
		answer  notify.Answer
	}{
		{notify.RefusedSignature, alice, prompt.Push.AnswerSubject, answer(alice.target.LegalID, notify.Approve, sign(mallory.key, notify.Approve))},
		{notify.RefusedMismatch, alice, prompt.Push.AnswerSubject, answer(mallory.target.LegalID, notify.Approve, sign(alice.key, notify.Approve))},
		{notify.RefusedMalformed, alice, prompt.Push.AnswerSubject, answer(alice.target.LegalID, "maybe", sign(alice.key, "maybe"))},
		{notify.RefusedNotAsked, mallory, strings.Replace(prompt.Push.AnswerSubject, alice.ID(), mallory.ID(), 1), answer(mallory.target.LegalID, notify.Approve, sign(mallory.key, notify.Approve))},
		{notify.RefusedNumber, alice, prompt.Push.AnswerSubject, notify.Answer{Version: notify.ProtocolVersion, RequestID: q.RequestID, LegalID: alice.target.LegalID, Decision: notify.Approve, Match: "42", Signature: sign(alice.key, notify.Approve)}},
	}
	want := map[string]int{}
	for _, c := range cases {
		if err := c.sender.SendAnswer(context.Background(), c.subject, c.answer); !errors.Is(err, notify.ErrRefused) {
			t.Fatalf("%s: %v, want ErrRefused", c.reason, err)
		}
		want["refused "+c.reason]++
	}
	if err := alice.Answer(context.Background(), prompt, notify.Deny); err != nil {
		t.Fatal(err)
	}
	if res := result(t, ch); res.err != nil {
		t.Fatal(res.err)
	}
	// Counted before Ask returned.
	if got := obs.snapshot()["accepted deny"]; got != 1 {
		t.Fatalf("accepted deny counted %d times when Ask returned", got)
	}
	if err := alice.Answer(context.Background(), prompt, notify.Approve); !errors.Is(err, notify.ErrRefused) {
		t.Fatalf("a second answer: %v, want ErrRefused", err)
	}
	want["refused "+notify.RefusedUnknown]++

	// A request nobody answers: withdrawn on timeout.
	tq := question(300*time.Millisecond, alice, mallory)
	tch := ask(tq)
	nextPrompt(t, alice)
	if res := result(t, tch); !errors.Is(res.err, notify.ErrExpired) {
		t.Fatalf("Ask = %v, want ErrExpired", res.err)
	}

	want["pushes resent=false"] = 3
	want["accepted deny"] = 1
	want["withdrawn "+notify.WhyTimeout] = 2
	got := obs.snapshot()
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	for _, k := range []string{"push failures", "withdrawn " + notify.WhyAnswered} {
		if got[k] != 0 {
			t.Errorf("%s: %d, want 0", k, got[k])
		}
	}
}
