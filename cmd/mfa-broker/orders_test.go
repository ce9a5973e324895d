package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/internal/syncbuf"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
	"github.com/legalmfa/mfa/order"
)

// rateUnlimited lifts a per-person push budget, for tests that ask one
// person many times.
func rateUnlimited() broker.Rate { return broker.Rate{} }

// placeOrder posts an order and reads the answer; a created order must
// come with its Location.
func (tb *testBroker) placeOrder(enc string, m mfaBody, accept string) outcome {
	tb.t.Helper()
	ct, body := m.encode(enc)
	resp := tb.do(http.MethodPost, "/Orders", ct, accept, strings.NewReader(body))
	o := tb.parseOutcome(resp, expectedMedia(enc, accept))
	if o.code == string(api.CodeOrderCreated) {
		if resp.status != http.StatusCreated || !api.IsOrderRef(o.order["Ref"]) {
			tb.t.Fatalf("order created with %d, Ref %q", resp.status, o.order["Ref"])
		}
		if loc := resp.header.Get("Location"); loc != tb.url("/Orders/"+o.order["Ref"]) {
			tb.t.Fatalf("Location %q", loc)
		}
	}
	return o
}

// orderCall is a collect or cancel, with the requester's signature when
// key is set.
type orderCall struct {
	method string
	ref    string
	query  string
	accept string
	// legalID and key sign the call for an order a requester signed.
	legalID string
	key     ed25519.PrivateKey
	// auth, when set, is sent as the Authorization header as is.
	auth string
}

func (tb *testBroker) orderRequest(ctx context.Context, c orderCall) httpResult {
	tb.t.Helper()
	req, err := http.NewRequestWithContext(ctx, c.method, tb.url("/Orders/"+c.ref+c.query), nil)
	if err != nil {
		tb.t.Fatal(err)
	}
	if c.accept != "" {
		req.Header.Set("Accept", c.accept)
	}
	switch {
	case c.auth != "":
		req.Header.Set("Authorization", c.auth)
	case c.key != nil:
		req.Header.Set("Authorization", api.SignOrderAccess(c.method, c.ref, c.legalID, c.key, time.Now()).Header())
	}
	resp, err := tb.client.Do(req)
	if err != nil {
		tb.t.Fatalf("%s /Orders/%s: %v", c.method, c.ref, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.t.Fatal(err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b}
}

// collect reads an order, in JSON unless accept says otherwise.
func (tb *testBroker) collect(c orderCall) outcome {
	tb.t.Helper()
	c.method = http.MethodGet
	media := c.accept
	if media == "" {
		media = "application/json"
	}
	return tb.parseOutcome(tb.orderRequest(context.Background(), c), media)
}

// outcomeOf long-polls an order until it ends.
func (tb *testBroker) outcomeOf(c orderCall) outcome {
	tb.t.Helper()
	deadline := time.Now().Add(3 * poll.Patience)
	seen := ""
	for {
		c.query = "?wait=30"
		if seen != "" {
			c.query += "&hint=" + seen
		}
		o := tb.collect(c)
		if o.code != string(api.CodePending) {
			return o
		}
		seen = o.order["Hint"]
		if time.Now().After(deadline) {
			tb.t.Fatalf("order %s still pending (%s)", c.ref, o.order["Hint"])
		}
	}
}

// TestOrderOutcomes: every way an order ends, placed in every encoding;
// the outcome is collected with the code, status and evidence /MFA gives.
func TestOrderOutcomes(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	approver := tb.person("19810101-0001", "SE", notifytest.Always(notify.Approve))
	denier := tb.person("19810101-0002", "SE", notifytest.Always(notify.Deny))
	away := tb.person("19810101-0003", "SE", nil)
	for _, enc := range allEncodings {
		t.Run(enc, func(t *testing.T) {
			body := func(pnr string, timeout int) mfaBody {
				return mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: timeout, Reason: "Order in " + enc}
			}
			// Approved: evidence a relying party checks as for /MFA.
			o := tb.placeOrder(enc, body("19810101-0001", 30), "")
			if o.order["Hint"] != "pushed" || o.order["NumberMatch"] != "" || o.requestID == "" {
				t.Fatalf("order placed: %+v", o)
			}
			got := tb.outcomeOf(orderCall{ref: o.order["Ref"]})
			if got.status != http.StatusOK || got.code != "approved" || got.requestID != o.requestID || got.order["Ref"] != o.order["Ref"] || got.order["Hint"] != "" {
				t.Fatalf("approved order collected as %d %s %+v", got.status, got.code, got.order)
			}
			verifyEvidence(t, tb, got, approver, "Order in "+enc, notify.Approve)

			o = tb.placeOrder(enc, body("19810101-0002", 30), "")
			if got := tb.outcomeOf(orderCall{ref: o.order["Ref"], accept: "text/plain"}); got.status != http.StatusForbidden || got.code != "denied" {
				t.Fatalf("denied order: %d %s", got.status, got.code)
			} else {
				verifyEvidence(t, tb, got, denier, "Order in "+enc, notify.Deny)
			}

			o = tb.placeOrder(enc, body("19810101-0003", 1), "")
			if got := tb.outcomeOf(orderCall{ref: o.order["Ref"], accept: "application/xml"}); got.status != http.StatusRequestTimeout || got.code != "timeout" {
				t.Fatalf("timed-out order: %d %s", got.status, got.code)
			}
			away.NextPrompt()

			// Cancelled: 204, the device withdraws, collects say so.
			o = tb.placeOrder(enc, body("19810101-0003", 30), "")
			p := away.NextPrompt()
			if r := tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: o.order["Ref"]}); r.status != http.StatusNoContent || len(r.body) != 0 {
				t.Fatalf("cancel: %d %s", r.status, r.body)
			}
			if got := tb.collect(orderCall{ref: o.order["Ref"]}); got.status != http.StatusConflict || got.code != "cancelled" || got.requestID != o.requestID {
				t.Fatalf("cancelled order: %d %s", got.status, got.code)
			}
			poll.Until(t, "the prompt withdrawn", func() bool {
				w := away.WithdrawalsFor(p.Push.RequestID)
				return len(w) == 1 && w[0].Why == notify.WhyCancelled
			})
			// Cancelling again changes nothing; cancelling an order that
			// ended otherwise is a conflict.
			if r := tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: o.order["Ref"]}); r.status != http.StatusNoContent {
				t.Fatalf("second cancel: %d %s", r.status, r.body)
			}

			// Superseded: a newer order for the same person replaces it.
			first := tb.placeOrder(enc, body("19810101-0003", 30), "")
			away.NextPrompt()
			second := tb.placeOrder(enc, body("19810101-0003", 30), "")
			away.NextPrompt()
			if got := tb.outcomeOf(orderCall{ref: first.order["Ref"]}); got.status != http.StatusConflict || got.code != "superseded" {
				t.Fatalf("superseded order: %d %s", got.status, got.code)
			}
			if r := tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: first.order["Ref"]}); r.status != http.StatusConflict {
				t.Fatalf("cancel of a superseded order: %d %s", r.status, r.body)
			}
			tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: second.order["Ref"]})
		})
	}
}

// TestOrderHints: a pending order's hint follows the device, and a
// waiting collect returns when it changes.
func TestOrderHints(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.unstartedPerson("19820202-0001", "NO", nil)
	o := tb.placeOrder("json", mfaBody{PNR: "19820202-0001", COUNTRY: "NO", Timeout: 30, Reason: "Hints"}, "")
	ref := o.order["Ref"]
	if got := tb.collect(orderCall{ref: ref}); got.status != http.StatusConflict || got.code != "pending" || got.order["Hint"] != "pushed" {
		t.Fatalf("before the device: %d %s %v", got.status, got.code, got.order)
	}
	d.Start() // the phone comes online and gets the push: "delivered"
	// Having seen "pushed", the collect returns when the hint moves on,
	// or at once if it already has.
	if got := tb.collect(orderCall{ref: ref, query: "?wait=30&hint=pushed"}); got.order["Hint"] != "delivered" {
		t.Fatalf("after the device got it: %v", got.order)
	}
	p := d.NextPrompt()
	d.Shown(p)
	if got := tb.collect(orderCall{ref: ref, query: "?hint=delivered&wait=30", accept: "text/xml"}); got.order["Hint"] != "shown" {
		t.Fatalf("after the person saw it: %v", got.order)
	}
	if err := d.Answer(context.Background(), p, notify.Approve); err != nil {
		t.Fatal(err)
	}
	if got := tb.collect(orderCall{ref: ref, query: "?wait=30&hint=shown"}); got.code != "approved" {
		t.Fatalf("after the answer: %s", got.code)
	}
}

// TestLongPollLatency: a collect waiting for an order returns as soon as
// the device's answer is in, not when its wait is up. The median of
// twenty rounds must be within 100 ms of the answer (a single round on a
// loaded machine may not be).
func TestLongPollLatency(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.IdentityRate = rateUnlimited() })
	d := tb.person("19830303-0001", "DK", nil)
	var lags []time.Duration
	for i := range 20 {
		o := tb.placeOrder("json", mfaBody{PNR: "19830303-0001", COUNTRY: "DK", Timeout: 30, Reason: "Quick"}, "")
		p := d.NextPrompt()
		type collected struct {
			o  outcome
			at time.Time
		}
		ch := make(chan collected, 1)
		// Waits for the device's "delivered" first, so that what the long
		// poll below waits for is the answer.
		if got := tb.collect(orderCall{ref: o.order["Ref"], query: "?wait=30&hint=pushed"}); got.order["Hint"] != "delivered" {
			t.Fatalf("round %d: %s %v", i, got.code, got.order)
		}
		go func() {
			got := tb.collect(orderCall{ref: o.order["Ref"], query: "?wait=30&hint=delivered"})
			ch <- collected{got, time.Now()}
		}()
		if i%2 == 0 {
			// Half the rounds answer while the collect waits, half maybe
			// before it looks: both must return the approval at once.
			time.Sleep(20 * time.Millisecond)
		}
		// From the moment the device sends its answer: the lag below
		// includes the answer's own trip to the broker.
		answered := time.Now()
		if err := d.Answer(context.Background(), p, notify.Approve); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-ch:
			if c.o.code != "approved" {
				t.Fatalf("round %d: %s", i, c.o.code)
			}
			lags = append(lags, c.at.Sub(answered))
		case <-time.After(poll.Patience):
			t.Fatalf("round %d: the collect did not return after the answer", i)
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	t.Logf("collect returned after the answer: median %v, max %v", lags[len(lags)/2], lags[len(lags)-1])
	if lags[len(lags)/2] > 100*time.Millisecond {
		t.Fatalf("median %v after the answer", lags[len(lags)/2])
	}
}

// TestCollectOnAnotherReplica: an order placed on one replica is collected
// and cancelled on another that shares NATS; when the first stops, its
// pending order ends shutting-down for everyone.
func TestCollectOnAnotherReplica(t *testing.T) {
	t.Parallel()
	// Both replicas on a NATS server of their own, as in production, so
	// that it outlives the replica that stops.
	dataDir := filepath.Join(t.TempDir(), "data")
	var conf bytes.Buffer
	if err := run(context.Background(), []string{"nats-config", "--data-dir", dataDir}, &conf, &conf, func(string) string { return "" }); err != nil {
		t.Fatalf("nats-config: %v\n%s", err, conf.String())
	}
	natsURL := bustest.StartConfigured(t, conf.String()).ClientURL()
	a := startBroker(t, func(c *config) { c.DataDir, c.NATSURL, c.NATSDeviceURL = dataDir, natsURL, natsURL })
	d := a.person("19840404-0001", "FI", nil)
	// The second replica shares the broker key and hash key. It starts
	// after the device connected: its identity store (not shared here, as
	// MongoDB would be) does not know the device.
	b := startBroker(t, func(c *config) {
		c.NATSURL, c.BrokerKeyFile, c.PNRHashKeyFile = natsURL, a.cfg.BrokerKeyFile, a.cfg.PNRHashKeyFile
	})
	m := mfaBody{PNR: "19840404-0001", COUNTRY: "FI", Timeout: 30, Reason: "Across replicas"}

	o := a.placeOrder("json", m, "")
	p := d.NextPrompt()
	if got := b.collect(orderCall{ref: o.order["Ref"], query: "?wait=30&hint=pushed"}); got.code != "pending" || got.order["Hint"] != "delivered" {
		t.Fatalf("on the other replica: %s %v", got.code, got.order)
	}
	done := make(chan outcome, 1)
	go func() { done <- b.collect(orderCall{ref: o.order["Ref"], query: "?wait=30&hint=delivered"}) }()
	if err := d.Answer(context.Background(), p, notify.Approve); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got.code != "approved" || got.evidence["LegalId"] != d.LegalID {
			t.Fatalf("waiting on the other replica: %s", got.code)
		}
	case <-time.After(poll.Patience):
		t.Fatal("the other replica's collect did not return")
	}

	// Cancelled through the replica that does not hold it.
	o = a.placeOrder("json", m, "")
	p = d.NextPrompt()
	if r := b.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: o.order["Ref"]}); r.status != http.StatusNoContent {
		t.Fatalf("cancel on the other replica: %d %s", r.status, r.body)
	}
	poll.Until(t, "the prompt withdrawn", func() bool { return len(d.WithdrawalsFor(p.Push.RequestID)) == 1 })
	if got := a.collect(orderCall{ref: o.order["Ref"]}); got.code != "cancelled" {
		t.Fatalf("cancelled elsewhere, on the holder: %s", got.code)
	}

	// The holder stops: its order ends shutting-down, read on the other.
	o = a.placeOrder("json", m, "")
	d.NextPrompt()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.collect(orderCall{ref: o.order["Ref"]}); got.code != "shutting-down" || got.status != http.StatusServiceUnavailable {
		t.Fatalf("the holder stopped: %d %s", got.status, got.code)
	}
}

// TestNumberMatching: the person must pick the number the relying party
// shows; a wrong pick is a denial of its own; an app that cannot pick
// cannot approve, and the order says so.
func TestNumberMatching(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.IdentityRate = rateUnlimited() })
	d := tb.person("19850505-0001", "IS", notifytest.Always(notify.Approve))
	for _, enc := range allEncodings {
		t.Run(enc, func(t *testing.T) {
			m := mfaBody{PNR: "19850505-0001", COUNTRY: "IS", Timeout: 30, Reason: "Match " + enc, NumberMatching: "true"}
			o := tb.placeOrder(enc, m, "")
			number := o.order["NumberMatch"]
			if len(number) != 2 {
				t.Fatalf("number to show %q", number)
			}
			d.Pick(number)
			got := tb.outcomeOf(orderCall{ref: o.order["Ref"]})
			if got.code != "approved" || got.evidence["Match"] != number || got.order["NumberMatch"] != number {
				t.Fatalf("right number: %s, evidence match %q", got.code, got.evidence["Match"])
			}
			verifyEvidence(t, tb, got, d, "Match "+enc, notify.Approve)
			d.NextPrompt()
			signed, _ := base64.StdEncoding.DecodeString(got.evidence["SignedData"])
			if !strings.HasPrefix(string(signed), "MFA-Answer/2\n") || !strings.Contains(string(signed), "\nMatch:2:"+number+"\n") {
				t.Fatalf("signed data:\n%s", signed)
			}

			o = tb.placeOrder(enc, m, "")
			p := d.NextPrompt()
			for _, c := range p.Push.MatchChoices {
				if c != o.order["NumberMatch"] {
					d.Pick(c)
					break
				}
			}
			got = tb.outcomeOf(orderCall{ref: o.order["Ref"]})
			if got.status != http.StatusForbidden || got.code != "wrong-number" || got.evidence["Match"] == o.order["NumberMatch"] || got.evidence["Decision"] != "approve" {
				t.Fatalf("wrong number: %d %s %v", got.status, got.code, got.evidence)
			}
		})
	}
}

// TestOutdatedApp: an app from before number matching approves without a
// number; the broker refuses it, the order's hint says the app is
// outdated, and the order waits on to its timeout. Its denial still
// counts.
func TestOutdatedApp(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.IdentityRate = rateUnlimited() })
	d := tb.person("19860606-0001", "EE", nil)
	m := mfaBody{PNR: "19860606-0001", COUNTRY: "EE", Timeout: 3, Reason: "Old app", NumberMatching: "true"}
	o := tb.placeOrder("json", m, "")
	p := d.NextPrompt()
	old := func(decision notify.Decision) notify.Answer {
		plain := p.Push
		plain.MatchChoices = nil // what an app that predates the field signs
		return notify.Answer{Version: notify.ProtocolVersion, RequestID: p.Push.RequestID, LegalID: p.Push.LegalID, Decision: decision,
			Signature: ed25519.Sign(d.Key, notify.AnswerForm(plain, p.Raw, decision, ""))}
	}
	if err := d.SendAnswer(context.Background(), p.Push.AnswerSubject, old(notify.Approve)); err == nil || !strings.Contains(err.Error(), "update the app") {
		t.Fatalf("outdated approval: %v", err)
	}
	poll.Until(t, "the order says the app is outdated", func() bool {
		return tb.collect(orderCall{ref: o.order["Ref"]}).order["Hint"] == "app-outdated"
	})
	if got := tb.outcomeOf(orderCall{ref: o.order["Ref"]}); got.code != "timeout" {
		t.Fatalf("outdated app's order: %s", got.code)
	}
	o = tb.placeOrder("json", m, "")
	p = d.NextPrompt()
	if err := d.SendAnswer(context.Background(), p.Push.AnswerSubject, old(notify.Deny)); err != nil {
		t.Fatal(err)
	}
	if got := tb.outcomeOf(orderCall{ref: o.order["Ref"]}); got.code != "denied" || got.evidence["Match"] != "" {
		t.Fatalf("outdated app's denial: %s %v", got.code, got.evidence)
	}
}

// TestNumberMatchingRequired: the operator makes every order match
// numbers; an order that says false is refused, /MFA is as it was, and
// /MFA never takes the field.
func TestNumberMatchingRequired(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.NumberMatching = "required" })
	tb.person("19870707-0001", "LV", nil)
	m := mfaBody{PNR: "19870707-0001", COUNTRY: "LV", Timeout: 30, Reason: "Required"}
	o := tb.placeOrder("json", m, "")
	if len(o.order["NumberMatch"]) != 2 {
		t.Fatalf("required, not asked: %v", o.order)
	}
	tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: o.order["Ref"]})
	for _, enc := range allEncodings {
		m.NumberMatching = "false"
		if got := tb.placeOrder(enc, m, ""); got.status != http.StatusBadRequest || got.code != "invalid-field" || got.field != "NumberMatching" {
			t.Fatalf("%s: false where required: %d %s %s", enc, got.status, got.code, got.field)
		}
		m.NumberMatching = "true"
		if got := tb.postMFA(context.Background(), enc, m, ""); got.status != http.StatusBadRequest || got.code != "unknown-field" || got.field != "NumberMatching" {
			t.Fatalf("%s: /MFA with NumberMatching: %d %s %s", enc, got.status, got.code, got.field)
		}
		m.NumberMatching = "maybe"
		if got := tb.placeOrder(enc, m, ""); got.status != http.StatusBadRequest || got.field != "NumberMatching" {
			t.Fatalf("%s: NumberMatching maybe: %d %s %s", enc, got.status, got.code, got.field)
		}
	}
}

// TestSignedOrderAccess: an order a requester signed is collected and
// cancelled only with that requester's signature, for that method and
// order; an unsigned order's reference is enough.
func TestSignedOrderAccess(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	tb.person("19880808-0001", "LT", nil)
	rpID, rpKey := tb.requester()
	otherID, otherKey := tb.requester()
	m := mfaBody{PNR: "19880808-0001", COUNTRY: "LT", Timeout: 30, Reason: "Signed order", LegalId: rpID, NumberMatching: "true"}
	sign(rpKey, &m)
	o := tb.placeOrder("json", m, "")
	if o.code != "order-created" {
		t.Fatalf("signed order: %s %s", o.code, o.message)
	}
	ref := o.order["Ref"]
	getSig := api.SignOrderAccess(http.MethodGet, ref, rpID, rpKey, time.Now()).Header()
	cases := []struct {
		name string
		call orderCall
	}{
		{"no Authorization", orderCall{}},
		{"another scheme", orderCall{auth: "Bearer " + ref}},
		{"malformed", orderCall{auth: api.OrderAuthScheme + " " + rpID}},
		{"another requester", orderCall{legalID: otherID, key: otherKey}},
		{"the requester's LegalId, another key", orderCall{legalID: rpID, key: otherKey}},
		{"a signature for another order", orderCall{auth: api.SignOrderAccess(http.MethodGet, strings.Repeat("a", 26), rpID, rpKey, time.Now()).Header()}},
		{"an old signature", orderCall{auth: api.SignOrderAccess(http.MethodGet, ref, rpID, rpKey, time.Now().Add(-time.Hour)).Header()}},
	}
	for _, c := range cases {
		c.call.ref = ref
		got := tb.collect(c.call)
		r := tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: ref, auth: c.call.auth, legalID: c.call.legalID, key: c.call.key})
		if got.status != http.StatusUnauthorized || got.code != "invalid-signature" || got.field != "Authorization" || r.status != http.StatusUnauthorized {
			t.Fatalf("%s: collect %d %s %s, cancel %d", c.name, got.status, got.code, got.field, r.status)
		}
	}
	// A collect's signature cannot cancel.
	if r := tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: ref, auth: getSig}); r.status != http.StatusUnauthorized ||
		r.header.Get("WWW-Authenticate") != api.OrderAuthScheme+` realm="MFA"` {
		t.Fatalf("a collect's signature used to cancel: %d %v", r.status, r.header)
	}
	if got := tb.collect(orderCall{ref: ref, auth: getSig}); got.code != "pending" {
		t.Fatalf("the requester collects: %s %s", got.code, got.message)
	}
	if r := tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: ref, legalID: rpID, key: rpKey}); r.status != http.StatusNoContent {
		t.Fatalf("the requester cancels: %d %s", r.status, r.body)
	}
}

// TestOrderRefusals: an order is refused exactly as /MFA refuses the same
// body; references that name nothing all get one 404; a bad wait is 400.
func TestOrderRefusals(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.IdentityRate.Events, c.IdentityRate.Per = 1, time.Hour })
	tb.person("19890909-0001", "SE", nil)
	bodies := []mfaBody{
		{PNR: "19890909-0001", COUNTRY: "se", Timeout: 30, Reason: "bad country"},
		{PNR: "19890909-0001", COUNTRY: "SE", Timeout: 0, Reason: "bad timeout"},
		{PNR: "19890909-0001", COUNTRY: "SE", Timeout: 30, Reason: "<b>html</b>"},
		{PNR: "19890909-9999", COUNTRY: "SE", Timeout: 30, Reason: "nobody"},
		{PNR: "19890909-0001", COUNTRY: "SE", Timeout: 30, Reason: "signed badly", LegalId: "nobody@legal.broker.test", Signature: base64.StdEncoding.EncodeToString(make([]byte, 64)), Issued: time.Now().UTC().Format(time.RFC3339), Nonce: "0123456789abcdef"},
	}
	for _, enc := range allEncodings {
		for _, m := range bodies {
			viaMFA := tb.postMFA(context.Background(), enc, m, "")
			viaOrder := tb.placeOrder(enc, m, "")
			if viaMFA.status != viaOrder.status || viaMFA.code != viaOrder.code || viaMFA.field != viaOrder.field || viaMFA.message != viaOrder.message {
				t.Fatalf("%s %q: /MFA %d %s %s, /Orders %d %s %s", enc, m.Reason, viaMFA.status, viaMFA.code, viaMFA.message, viaOrder.status, viaOrder.code, viaOrder.message)
			}
		}
	}
	// The person's push budget is shared: one order spends it, and /MFA
	// is then refused as a second order would be.
	ok := tb.placeOrder("json", mfaBody{PNR: "19890909-0001", COUNTRY: "SE", Timeout: 30, Reason: "first"}, "")
	if ok.code != "order-created" {
		t.Fatalf("first order: %s", ok.code)
	}
	if got := tb.postMFA(context.Background(), "json", mfaBody{PNR: "19890909-0001", COUNTRY: "SE", Timeout: 30, Reason: "second"}, ""); got.code != "rate-limited" {
		t.Fatalf("/MFA after an order spent the budget: %s", got.code)
	}
	if got := tb.placeOrder("json", mfaBody{PNR: "19890909-0001", COUNTRY: "SE", Timeout: 30, Reason: "third"}, ""); got.code != "rate-limited" {
		t.Fatalf("an order after the budget: %s", got.code)
	}

	notFound := map[string]string{
		"unknown":   strings.Repeat("a", 26),
		"too short": "abc",
		"too long":  strings.Repeat("a", 27),
		"bad chars": strings.Repeat("A", 26),
		"digits":    "19890909000119890909000100",
	}
	var body string
	for name, ref := range notFound {
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			r := tb.orderRequest(context.Background(), orderCall{method: method, ref: ref})
			if r.status != http.StatusNotFound {
				t.Fatalf("%s %s: %d", method, name, r.status)
			}
			if body == "" {
				body = string(r.body)
			}
			if string(r.body) != body {
				t.Fatalf("%s %s answers differently:\n%s\n%s", method, name, r.body, body)
			}
		}
	}
	for q, field := range map[string]string{
		"?wait=31": "wait", "?wait=-1": "wait", "?wait=1.5": "wait", "?wait=abc": "wait", "?wait=": "wait",
		"?wait=05": "wait", "?wait=1&wait=2": "wait", "?wait=+1": "wait",
		"?hint=seen": "hint", "?wait=1&hint=": "hint", "?hint=shown&hint=pushed": "hint", "?pnr=19890909-0001": "",
	} {
		got := tb.collect(orderCall{ref: ok.order["Ref"], query: q})
		if got.status != http.StatusBadRequest || got.field != field || strings.Contains(got.message, "19890909") {
			t.Fatalf("%s: %d %s %s %s", q, got.status, got.code, got.field, got.message)
		}
	}
	if r := tb.orderRequest(context.Background(), orderCall{method: http.MethodPut, ref: ok.order["Ref"]}); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", r.status)
	}
	if r := tb.orderRequest(context.Background(), orderCall{method: http.MethodGet, ref: ok.order["Ref"], accept: "image/png"}); r.status != http.StatusNotAcceptable {
		t.Fatalf("unacceptable: %d", r.status)
	}
}

// TestOrdersAreNotPersonal: neither the order bucket nor anything else an
// order puts on NATS holds the personal number.
func TestOrdersAreNotPersonal(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	const pnr = "19900101-4242"
	spy := tb.brokerConn()
	var seen syncbuf.Buffer
	sub, err := spy.Subscribe(">", func(m *nats.Msg) {
		fmt.Fprintf(&seen, "%s %s %v %s\n", m.Subject, m.Reply, m.Header, m.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	spy.Flush()
	d := tb.person(pnr, "SE", notifytest.Always(notify.Approve))
	o := tb.placeOrder("json", mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: 30, Reason: "Private", NumberMatching: "true"}, "")
	d.Pick(o.order["NumberMatch"])
	if got := tb.outcomeOf(orderCall{ref: o.order["Ref"]}); got.code != "approved" {
		t.Fatal(got.code)
	}
	spy.Flush()
	sub.Unsubscribe()
	all := seen.String()
	if !strings.Contains(all, notify.PushSubject(d.ID())) || !strings.Contains(all, order.Bucket) {
		t.Fatalf("the spy did not see the push and the order bucket:\n%s", all)
	}
	for _, secret := range []string{pnr, strings.ReplaceAll(pnr, "-", ""), o.order["Ref"]} {
		if strings.Contains(all, secret) {
			t.Fatalf("%q on NATS:\n%s", secret, all)
		}
	}
	if logs := tb.logs.String(); strings.Contains(logs, pnr) || strings.Contains(logs, o.order["Ref"]) {
		t.Fatal("the personal number or the order reference in the log")
	}
}

// TestOrdersSharePendingCap: orders and /MFA requests count against one
// cap on what may be pending at once.
func TestOrdersSharePendingCap(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.MaxPending = 1 })
	d := tb.person("19910101-0001", "NO", nil)
	tb.person("19910101-0002", "NO", nil)
	o := tb.placeOrder("json", mfaBody{PNR: "19910101-0001", COUNTRY: "NO", Timeout: 30, Reason: "first"}, "")
	if o.code != "order-created" {
		t.Fatalf("first order: %s", o.code)
	}
	d.NextPrompt()
	m := mfaBody{PNR: "19910101-0002", COUNTRY: "NO", Timeout: 30, Reason: "second"}
	if got := tb.postMFA(context.Background(), "json", m, ""); got.status != http.StatusServiceUnavailable || got.code != "too-busy" {
		t.Fatalf("/MFA while an order is pending: %d %s", got.status, got.code)
	}
	if got := tb.placeOrder("json", m, ""); got.status != http.StatusServiceUnavailable || got.code != "too-busy" {
		t.Fatalf("an order while an order is pending: %d %s", got.status, got.code)
	}
	// Once the order ends, there is room again.
	if r := tb.orderRequest(context.Background(), orderCall{method: http.MethodDelete, ref: o.order["Ref"]}); r.status != http.StatusNoContent {
		t.Fatalf("cancel: %d", r.status)
	}
	poll.Until(t, "room for another order", func() bool {
		got := tb.placeOrder("json", m, "")
		return got.code == "order-created"
	})
}
