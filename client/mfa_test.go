package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/broker/service"
	"github.com/legalmfa/mfa/client"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// TestMFAOutcomes: every outcome of POST /MFA comes back as the library
// promises: an approval as a Result with evidence that verifies, anything
// else as a *Error that matches its sentinel, with the HTTP status and,
// for the device's answers, the evidence of the denial. Approvals go in
// each of the three encodings.
func TestMFAOutcomes(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	for _, c := range []struct {
		name     string
		decide   notifytest.Decider
		enc      client.Encoding
		unknown  bool          // ask someone without an identity
		timeout  time.Duration // the request's, when not 30 s
		reason   string        // the request's, when not the default
		want     error         // nil: approved
		status   int
		decision string // of the evidence, when a device answered
		field    string
	}{
		{name: "approved/json", decide: notifytest.Always(notify.Approve), enc: client.JSON, status: 200, decision: "approve"},
		{name: "approved/xml", decide: notifytest.Always(notify.Approve), enc: client.XML, status: 200, decision: "approve"},
		{name: "approved/form", decide: notifytest.Always(notify.Approve), enc: client.Form, status: 200, decision: "approve"},
		{name: "approved/crlf-reason", decide: notifytest.Always(notify.Approve), reason: "Pay **100 EUR**\r\nto Example Shop", status: 200, decision: "approve"},
		{name: "denied", decide: notifytest.Always(notify.Deny), want: client.ErrDenied, status: 403, decision: "deny"},
		{name: "denied-not-me", decide: notifytest.Always(notify.NotMe), want: client.ErrDeniedNotMe, status: 403, decision: "not-me"},
		{name: "timeout", decide: notifytest.Never, timeout: time.Second, want: client.ErrTimeout, status: 408},
		{name: "unknown-person", unknown: true, want: client.ErrUnknownPerson, status: 404},
		{name: "invalid-field", decide: notifytest.Never, reason: "   ", want: client.ErrInvalidField, status: 400, field: "Reason"},
		{name: "invalid-field/xml", decide: notifytest.Never, enc: client.XML, reason: "<b>bold</b>", want: client.ErrInvalidField, status: 400, field: "Reason"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pnr := "19000101-0000"
			if !c.unknown {
				pnr, _ = b.person(t, c.decide)
			}
			req := request(pnr)
			if c.timeout != 0 {
				req.Timeout = c.timeout
			}
			if c.reason != "" {
				req.Reason = c.reason
			}
			res, err := b.client(t, client.WithEncoding(c.enc)).MFA(context.Background(), req)
			if c.want == nil {
				if err != nil {
					t.Fatalf("MFA: %v", err)
				}
				if res.Status != http.StatusOK || res.RequestID == "" || res.Evidence == nil {
					t.Fatalf("approval: status %d, request %q, evidence %v", res.Status, res.RequestID, res.Evidence)
				}
				if !strings.Contains(res.Header.Get("Server-Timing"), "broker;") {
					t.Errorf("the answer's header has no Server-Timing: %v", res.Header)
				}
				a, err := res.Verify(client.Expectation{Reason: req.Reason, Broker: b.info.Domain})
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if a.RequestID != res.RequestID || a.Decision != c.decision || a.Version != 1 {
					t.Errorf("signed answer %+v", a)
				}
				return
			}
			if res != nil || !errors.Is(err, c.want) {
				t.Fatalf("MFA = %v, %v; want %v", res, err, c.want)
			}
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not a *client.Error", err)
			}
			if e.Status != c.status || e.Field != c.field || e.Message == "" {
				t.Errorf("error: status %d, field %q, message %q; want %d, %q", e.Status, e.Field, e.Message, c.status, c.field)
			}
			for _, other := range []error{client.ErrDenied, client.ErrTimeout, client.ErrUnexpectedResponse, client.ErrInvalidField} {
				if other != c.want && errors.Is(err, other) {
					t.Errorf("%v also matches %v", err, other)
				}
			}
			if c.decision == "" {
				if e.Evidence != nil {
					t.Errorf("evidence with %s", e.Code)
				}
				return
			}
			// A denial's evidence proves the denial, and not an approval.
			if e.Evidence == nil || e.RequestID == "" {
				t.Fatalf("a denial without evidence or request ID: %+v", e)
			}
			if _, err := client.VerifyEvidence(*e.Evidence, client.Expectation{RequestID: e.RequestID, Decision: c.decision, Reason: req.Reason}); err != nil {
				t.Errorf("the denial's evidence: %v", err)
			}
			if _, err := client.VerifyEvidence(*e.Evidence, client.Expectation{RequestID: e.RequestID}); !errors.Is(err, client.ErrBadEvidence) {
				t.Errorf("a denial's evidence verified as an approval: %v", err)
			}
		})
	}
}

// TestMFABlockedAndSuperseded: after "not me" the same caller is blocked
// from the person, with a RetryAfter; a newer request supersedes one that
// is pending.
func TestMFABlockedAndSuperseded(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	c := b.client(t)
	ctx := context.Background()

	t.Run("blocked", func(t *testing.T) {
		t.Parallel()
		pnr, _ := b.person(t, notifytest.Always(notify.NotMe))
		if _, err := c.MFA(ctx, request(pnr)); !errors.Is(err, client.ErrDeniedNotMe) {
			t.Fatalf("first: %v", err)
		}
		_, err := c.MFA(ctx, request(pnr))
		var e *client.Error
		if !errors.Is(err, client.ErrBlocked) || !errors.As(err, &e) || e.RetryAfter <= 0 || e.Status != http.StatusForbidden {
			t.Fatalf("second: %v (%+v), want blocked with a RetryAfter", err, e)
		}
	})

	t.Run("superseded", func(t *testing.T) {
		t.Parallel()
		pnr, dev := b.person(t, notifytest.Never)
		first := make(chan error, 1)
		go func() {
			_, err := c.MFA(ctx, request(pnr))
			first <- err
		}()
		dev.NextPrompt()
		ctx2, cancel := context.WithCancel(ctx)
		defer cancel()
		go c.MFA(ctx2, request(pnr))
		if err := <-first; !errors.Is(err, client.ErrSuperseded) {
			t.Fatalf("the older request: %v, want superseded", err)
		}
	})
}

// TestMFARateLimited: a 429 answer to a POST is the caller's error, with
// its RetryAfter, from a real broker's limit on pushes to one person.
func TestMFARateLimited(t *testing.T) {
	t.Parallel()
	b := ownBroker(t, func(cfg *service.Config) { cfg.IdentityRate = broker.Rate{Events: 1, Per: time.Hour} })
	pnr, _ := b.person(t, notifytest.Always(notify.Approve))
	c := b.client(t)
	if _, err := c.MFA(context.Background(), request(pnr)); err != nil {
		t.Fatal(err)
	}
	_, err := c.MFA(context.Background(), request(pnr))
	var e *client.Error
	if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.RetryAfter <= 0 {
		t.Fatalf("%v (%+v), want rate-limited with a RetryAfter", err, e)
	}
}

// TestSignedRequest: with WithRequester every request is signed; the
// person's device sees a verified requester, in every encoding, and a
// Reason with CRLF line breaks verifies (it is signed as the broker reads
// it).
func TestSignedRequest(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	id, key := b.requester(t)
	for _, enc := range []client.Encoding{client.JSON, client.XML, client.Form} {
		t.Run(enc.String(), func(t *testing.T) {
			t.Parallel()
			var seen atomic.Pointer[notify.Push]
			pnr, _ := b.person(t, func(p notify.Prompt) (notify.Decision, bool) {
				seen.Store(&p.Push)
				return notify.Approve, true
			})
			c := b.client(t, client.WithRequester(id, key), client.WithEncoding(enc))
			req := request(pnr)
			req.Reason = "Pay **100 EUR**\r\nto Example Shop"
			res, err := c.MFA(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			p := seen.Load()
			if p == nil || !p.Requester.Verified || p.Requester.LegalID != id || p.Requester.Name != "Example Bank" {
				t.Fatalf("the device saw requester %+v, want verified %s", p, id)
			}
			if _, err := res.Verify(client.Expectation{Reason: req.Reason}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSignedRequestRefused: the requester's refusals come back as their
// sentinels: another key, a clock too far off, an identity not approved.
func TestSignedRequestRefused(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	id, key := b.requester(t)
	unapproved, unapprovedKey := b.apply(t, "ORGNAME", "Not Yet Bank")
	otherKey, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pnr, dev := b.person(t, notifytest.Always(notify.Approve))
	for _, c := range []struct {
		name  string
		opts  []client.Option
		want  error
		field string
	}{
		{"another key", []client.Option{client.WithRequester(id, otherKey)}, client.ErrInvalidSignature, api.FieldSignature},
		{"clock 10 minutes slow", []client.Option{client.WithRequester(id, key), client.WithClock(&fakeClock{offset: -10 * time.Minute})}, client.ErrSignatureExpired, api.FieldIssued},
		{"not approved", []client.Option{client.WithRequester(unapproved, unapprovedKey)}, client.ErrUnknownRequester, api.FieldLegalID},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := b.client(t, c.opts...).MFA(context.Background(), request(pnr))
			var e *client.Error
			if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Field != c.field {
				t.Fatalf("%v (%+v), want %v on %s", err, e, c.want, c.field)
			}
		})
	}
	// A barrier: a valid request after them pushes, and its prompt must
	// be the device's first. Pushes go out in order, so a refused
	// request's would have come before it.
	req := request(pnr)
	req.Reason = "barrier"
	if _, err := b.client(t, client.WithRequester(id, key)).MFA(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if n, p := dev.PromptCount(), dev.NextPrompt(); n != 1 || p.Push.Reason != "barrier" {
		t.Errorf("the device got %d prompts, the first %q: refused requests pushed", n, p.Push.Reason)
	}
}

// TestMFAContext: ending the context ends a pending MFA at once, and the
// broker withdraws the prompt.
func TestMFAContext(t *testing.T) {
	t.Parallel()
	b := sharedBroker(t)
	pnr, dev := b.person(t, notifytest.Never)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.client(t).MFA(ctx, request(pnr))
		done <- err
	}()
	p := dev.NextPrompt()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("MFA after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("MFA did not end with its context")
	}
	poll.Until(t, "the prompt withdrawn", func() bool { return len(dev.WithdrawalsFor(p.Push.RequestID)) > 0 })
}
