// Package notifytest gives tests and benchmarks real devices that answer
// by themselves: notify.Device on a real NATS connection, deciding each
// prompt as a test says and recording what it saw.
package notifytest

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
)

// Decider decides a prompt; false leaves it unanswered.
type Decider func(notify.Prompt) (notify.Decision, bool)

// Always answers every prompt with decision.
func Always(decision notify.Decision) Decider {
	return func(notify.Prompt) (notify.Decision, bool) { return decision, true }
}

// Never answers nothing: the person is away.
func Never(notify.Prompt) (notify.Decision, bool) { return "", false }

// Device is a device that answers as its Decider says.
type Device struct {
	*notify.Device
	t       testing.TB
	LegalID string
	Key     ed25519.PrivateKey
	decide  Decider

	// picks are the numbers to pick, in order, for the prompts that need
	// one (Pick).
	picks chan string

	mu          sync.Mutex
	prompts     []notify.Prompt
	next        int // NextPrompt's place in prompts
	withdrawals []notify.Withdrawal
	answers     []error
	done        chan struct{}
}

// New makes a device for legalID on nc, a connection made with the
// device's key (or any connection, on a server without authorization).
// It receives nothing until Start.
func New(t testing.TB, nc *nats.Conn, legalID string, key ed25519.PrivateKey, brokerKey ed25519.PublicKey, decide Decider) *Device {
	t.Helper()
	dev, err := notify.NewDevice(nc, notify.DeviceConfig{LegalID: legalID, Key: key, BrokerKey: brokerKey, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if decide == nil {
		decide = Never
	}
	return &Device{Device: dev, t: t, LegalID: legalID, Key: key, decide: decide, done: make(chan struct{}), picks: make(chan string, 16)}
}

// Start subscribes, syncs, and answers from then on, until the test ends.
func (d *Device) Start() {
	d.t.Helper()
	if err := d.Device.Start(context.Background()); err != nil {
		d.t.Fatal(err)
	}
	go d.loop()
	d.t.Cleanup(func() {
		d.Device.Close()
		<-d.done
	})
}

func (d *Device) loop() {
	defer close(d.done)
	for e := range d.Events() {
		switch {
		case e.Prompt != nil:
			d.mu.Lock()
			d.prompts = append(d.prompts, *e.Prompt)
			d.mu.Unlock()
			if decision, ok := d.decide(*e.Prompt); ok {
				d.Shown(*e.Prompt)
				err := d.AnswerMatch(context.Background(), *e.Prompt, decision, d.pick(*e.Prompt, decision))
				d.mu.Lock()
				d.answers = append(d.answers, err)
				d.mu.Unlock()
			}
		case e.Withdrawal != nil:
			d.mu.Lock()
			d.withdrawals = append(d.withdrawals, *e.Withdrawal)
			d.mu.Unlock()
		}
	}
}

// Pick gives the number the device picks for the next prompt it approves
// that needs one: the number a relying party shows, or another to pick
// wrong. A prompt that needs a number waits for one, up to poll.Patience,
// as a person reads it off the relying party's page.
func (d *Device) Pick(number string) { d.picks <- number }

// pick is the number to answer a prompt with: "" unless it approves a
// prompt that needs one.
func (d *Device) pick(p notify.Prompt, decision notify.Decision) string {
	if !p.Push.NeedsMatch() || decision != notify.Approve {
		return ""
	}
	select {
	case n := <-d.picks:
		return n
	case <-time.After(poll.Patience):
		return "" // AnswerMatch refuses: the test said no number
	}
}

// PromptCount is how many prompts the device has raised.
func (d *Device) PromptCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.prompts)
}

// NextPrompt waits for the first prompt it has not returned yet.
func (d *Device) NextPrompt() notify.Prompt {
	d.t.Helper()
	var p notify.Prompt
	poll.Until(d.t, "a prompt on the device", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.next == len(d.prompts) {
			return false
		}
		p = d.prompts[d.next]
		d.next++
		return true
	})
	return p
}

// WithdrawalsFor lists the withdrawals the device got for a request.
func (d *Device) WithdrawalsFor(requestID string) []notify.Withdrawal {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []notify.Withdrawal
	for _, w := range d.withdrawals {
		if w.RequestID == requestID {
			out = append(out, w)
		}
	}
	return out
}

// Answers are the results of the answers the device sent, in order.
func (d *Device) Answers() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]error(nil), d.answers...)
}
