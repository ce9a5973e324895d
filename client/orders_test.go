package client_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/client"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// requireOrders skips the test when the broker does not serve POST
// /Orders yet (it answers an unknown person unknown-person when it does).
func requireOrders(t *testing.T, b *testBroker) {
	t.Helper()
	_, err := b.client(t).Order(context.Background(), request("19000101-0000"))
	if !errors.Is(err, client.ErrUnknownPerson) {
		t.Skipf("the broker does not serve POST /Orders yet: %v", err)
	}
}

// collectUntil collects with long polls until the pending order shows
// hint.
func collectUntil(t *testing.T, c *client.Client, ref string, hint api.Hint) *client.OrderStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	// Where it stands, then long polls that answer when it moves on.
	var seen api.Hint
	for wait := time.Duration(0); ; wait = 10 * time.Second {
		st, err := c.CollectAfter(context.Background(), ref, seen, wait)
		if err != nil {
			t.Fatalf("collect: %v", err)
		}
		if !st.Pending {
			t.Fatalf("the order ended while waiting for hint %s: %+v", hint, st.Result)
		}
		if st.Hint == hint {
			return st
		}
		seen = st.Hint
		if time.Now().After(deadline) {
			t.Fatalf("hint %s, want %s", st.Hint, hint)
		}
	}
}

// TestOrderApproved: an order returns at once with its reference, and
// Wait collects the approval, whose evidence verifies.
func TestOrderApproved(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	requireOrders(t, b)
	pnr, _ := b.person(t, notifytest.Always(notify.Approve))
	c := b.client(t)
	req := request(pnr)
	o, err := c.Order(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !api.IsOrderRef(o.Ref) || o.RequestID == "" || o.NumberMatch != "" || time.Until(o.Expires) <= 0 || time.Until(o.Expires) > req.Timeout+time.Minute {
		t.Errorf("order %+v", o)
	}
	if !strings.HasSuffix(o.Location, "/Orders/"+o.Ref) {
		t.Errorf("Location %q", o.Location)
	}
	res, err := c.Wait(context.Background(), o.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if res.Order == nil || res.Order.Ref != o.Ref || res.Order.Hint != "" {
		t.Errorf("the approval's order: %+v", res.Order)
	}
	a, err := res.Verify(client.Expectation{RequestID: o.RequestID, Reason: req.Reason})
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != 1 {
		t.Errorf("an order without number matching signed as MFA-Answer/%d", a.Version)
	}
	// Collected again, it says the same.
	st, err := c.Collect(context.Background(), o.Ref, 0)
	if err != nil || st.Pending || st.Result == nil || st.Result.RequestID != res.RequestID {
		t.Errorf("collected again: %+v, %v", st, err)
	}
}

// TestOrderOutcomes: orders that end otherwise are Wait's and Collect's
// errors, with their sentinels and the denial's evidence.
func TestOrderOutcomes(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	requireOrders(t, b)
	for _, c := range []struct {
		name    string
		decide  notifytest.Decider
		timeout time.Duration
		want    error
		status  int
	}{
		{"denied", notifytest.Always(notify.Deny), 0, client.ErrDenied, http.StatusForbidden},
		{"denied-not-me", notifytest.Always(notify.NotMe), 0, client.ErrDeniedNotMe, http.StatusForbidden},
		{"timeout", notifytest.Never, time.Second, client.ErrTimeout, http.StatusRequestTimeout},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pnr, _ := b.person(t, c.decide)
			req := request(pnr)
			if c.timeout > 0 {
				req.Timeout = c.timeout
			}
			cl := b.client(t)
			o, err := cl.Order(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.Wait(context.Background(), o.Ref)
			var e *client.Error
			if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Status != c.status {
				t.Fatalf("%v, want %v", err, c.want)
			}
			if e.Order == nil || e.Order.Ref != o.Ref {
				t.Errorf("the outcome's order: %+v", e.Order)
			}
			if c.decide != nil && c.timeout == 0 {
				if e.Evidence == nil {
					t.Fatal("a denial without evidence")
				}
				if _, err := client.VerifyEvidence(*e.Evidence, client.Expectation{RequestID: o.RequestID, Decision: e.Evidence.Decision, Reason: req.Reason}); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestOrderPendingAndCancel: a pending order's collect says how far it
// got (pushed or delivered, then shown once the device shows it); a
// cancelled order says cancelled, and cancelling again is fine.
func TestOrderPendingAndCancel(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	requireOrders(t, b)
	pnr, dev := b.person(t, notifytest.Never)
	c := b.client(t)
	o, err := c.Order(context.Background(), request(pnr))
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Collect(context.Background(), o.Ref, 0)
	if err != nil || !st.Pending || (st.Hint != api.HintPushed && st.Hint != api.HintDelivered) || st.Result != nil {
		t.Fatalf("first collect: %+v, %v", st, err)
	}
	p := dev.NextPrompt()
	collectUntil(t, c, o.Ref, api.HintDelivered)
	dev.Shown(p)
	collectUntil(t, c, o.Ref, api.HintShown)

	if err := c.Cancel(context.Background(), o.Ref); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if _, err := c.Collect(context.Background(), o.Ref, 0); !errors.Is(err, client.ErrCancelled) {
		t.Fatalf("collect after cancel: %v", err)
	}
	if err := c.Cancel(context.Background(), o.Ref); err != nil {
		t.Errorf("cancelling again: %v", err)
	}
	poll.Until(t, "the cancelled order's prompt withdrawn", func() bool { return len(dev.WithdrawalsFor(p.Push.RequestID)) > 0 })
	if _, err := c.Collect(context.Background(), unknownRef, 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("collect of an unknown order: %v", err)
	}
}

// TestOrderCancelAfterEnd: cancelling an order that ended otherwise is a
// conflict.
func TestOrderCancelAfterEnd(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	requireOrders(t, b)
	pnr, _ := b.person(t, notifytest.Always(notify.Approve))
	c := b.client(t)
	o, err := c.Order(context.Background(), request(pnr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(context.Background(), o.Ref); err != nil {
		t.Fatal(err)
	}
	if err := c.Cancel(context.Background(), o.Ref); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("cancel after approval: %v", err)
	}
}

// TestOrderNumberMatching: with NumberMatching the order has a number for
// the relying party to show; the person picks among the push's choices.
// The right pick approves, with MFA-Answer/2 evidence naming the number;
// a wrong one ends the order wrong-number, with the pick as evidence.
func TestOrderNumberMatching(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	requireOrders(t, b)
	for _, right := range []bool{true, false} {
		name := map[bool]string{true: "right number", false: "wrong number"}[right]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pnr, dev := b.person(t, notifytest.Never)
			c := b.client(t)
			req := request(pnr)
			req.NumberMatching = new(true)
			o, err := c.Order(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(o.NumberMatch) != 2 || strings.Trim(o.NumberMatch, "0123456789") != "" {
				t.Fatalf("NumberMatch %q, want two digits", o.NumberMatch)
			}
			p := dev.NextPrompt()
			if !slices.Contains(p.Push.MatchChoices, o.NumberMatch) {
				t.Fatalf("the device offers %v, not the %s shown", p.Push.MatchChoices, o.NumberMatch)
			}
			pick := o.NumberMatch
			if !right {
				i := slices.IndexFunc(p.Push.MatchChoices, func(n string) bool { return n != o.NumberMatch })
				pick = p.Push.MatchChoices[i]
			}
			err = dev.AnswerMatch(context.Background(), p, notify.Approve, pick)
			if right && err != nil || !right && !errors.Is(err, notify.ErrWrongNumber) {
				t.Fatalf("answer with %s: %v", pick, err)
			}
			res, err := c.Wait(context.Background(), o.Ref)
			if right {
				if err != nil {
					t.Fatal(err)
				}
				if res.Evidence.Match != o.NumberMatch || res.Order == nil || res.Order.NumberMatch != o.NumberMatch {
					t.Errorf("evidence Match %q, order %+v; want %s", res.Evidence.Match, res.Order, o.NumberMatch)
				}
				a, err := res.Verify(client.Expectation{Reason: req.Reason})
				if err != nil {
					t.Fatal(err)
				}
				if a.Version != 2 || a.Match != o.NumberMatch {
					t.Errorf("signed answer %+v", a)
				}
				return
			}
			var e *client.Error
			if !errors.Is(err, client.ErrWrongNumber) || !errors.As(err, &e) || e.Status != http.StatusForbidden || e.Evidence == nil {
				t.Fatalf("%v, want wrong-number with evidence", err)
			}
			if e.Evidence.Match != pick {
				t.Errorf("the evidence's Match %q, want the pick %s", e.Evidence.Match, pick)
			}
			// The evidence proves the person approved, but not the number shown.
			want := client.Expectation{RequestID: o.RequestID, Reason: req.Reason}
			if _, err := client.VerifyEvidence(*e.Evidence, want); err != nil {
				t.Errorf("the wrong pick's signature: %v", err)
			}
			want.Match = o.NumberMatch
			if _, err := client.VerifyEvidence(*e.Evidence, want); !errors.Is(err, client.ErrBadEvidence) {
				t.Errorf("a wrong pick verified as the number shown: %v", err)
			}
		})
	}
}

// TestSignedOrder: a signed order is collected and cancelled with its
// requester's signature (WithRequester signs the Authorization); a client
// without it, or with another requester's, is refused.
func TestSignedOrder(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	requireOrders(t, b)
	id, key := b.requester(t)
	otherID, otherKey := b.requester(t)
	pnr, dev := b.person(t, notifytest.Never)
	c := b.client(t, client.WithRequester(id, key))
	o, err := c.Order(context.Background(), request(pnr))
	if err != nil {
		t.Fatal(err)
	}
	if p := dev.NextPrompt(); !p.Push.Requester.Verified || p.Push.Requester.LegalID != id {
		t.Errorf("the device saw requester %+v", p.Push.Requester)
	}
	for name, other := range map[string]*client.Client{
		"unsigned":            b.client(t),
		"another requester":   b.client(t, client.WithRequester(otherID, otherKey)),
		"the ID, not the key": b.client(t, client.WithRequester(id, otherKey)),
	} {
		_, err := other.Collect(context.Background(), o.Ref, 0)
		var e *client.Error
		if !errors.Is(err, client.ErrInvalidSignature) || !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
			t.Errorf("%s collect: %v", name, err)
		}
		if err := other.Cancel(context.Background(), o.Ref); !errors.Is(err, client.ErrInvalidSignature) {
			t.Errorf("%s cancel: %v", name, err)
		}
	}
	if st, err := c.Collect(context.Background(), o.Ref, 0); err != nil || !st.Pending {
		t.Fatalf("the requester's collect: %+v, %v", st, err)
	}
	if err := c.Cancel(context.Background(), o.Ref); err != nil {
		t.Fatalf("the requester's cancel: %v", err)
	}
	if _, err := c.Wait(context.Background(), o.Ref); !errors.Is(err, client.ErrCancelled) {
		t.Errorf("after cancel: %v", err)
	}
}

// TestWaitProgressAndContext: WaitProgress reports the hints as they
// change; ending the context ends the wait at once, and the order goes on.
func TestWaitProgressAndContext(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	requireOrders(t, b)
	pnr, dev := b.person(t, notifytest.Never)
	c := b.client(t)
	o, err := c.Order(context.Background(), request(pnr))
	if err != nil {
		t.Fatal(err)
	}
	p := dev.NextPrompt()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var hints []api.Hint
	shown := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := c.WaitProgress(ctx, o.Ref, func(st client.OrderStatus) {
			mu.Lock()
			defer mu.Unlock()
			hints = append(hints, st.Hint)
			if st.Hint == api.HintShown {
				close(shown)
			}
		})
		done <- err
	}()
	dev.Shown(p)
	select {
	case <-shown:
	case <-time.After(20 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("WaitProgress did not report the order shown: hints %v", hints)
	}
	// Now in a long poll of up to 30 s on a pending order.
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Wait after cancel: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Wait ended %s after its context", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not end with its context")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hints) == 0 || hints[len(hints)-1] != api.HintShown {
		t.Errorf("hints %v", hints)
	}
	for i := 1; i < len(hints); i++ {
		if hints[i] == hints[i-1] {
			t.Errorf("hint %s reported twice in a row: %v", hints[i], hints)
		}
	}
	if st, err := c.Collect(context.Background(), o.Ref, 0); err != nil || !st.Pending {
		t.Errorf("the order after the wait ended: %+v, %v", st, err)
	}
}
