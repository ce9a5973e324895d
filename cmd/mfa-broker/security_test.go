package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// TestPushFatigueRateLimits: a person is pushed at most so often, and a
// caller may ask at most so often, with 429 and Retry-After beyond that.
func TestPushFatigueRateLimits(t *testing.T) {
	t.Parallel()
	const callerBudget = 10
	tb := startBroker(t, func(c *config) {
		c.IdentityRate = broker.Rate{Events: 2, Per: time.Minute}
		c.CallerRate = broker.Rate{Events: callerBudget, Per: time.Minute}
	})
	// Applications have a budget of their own: none of this one is used.
	d := tb.person("19330303-0001", "SE", notifytest.Always(notify.Deny))
	tb.person("19330303-0002", "SE", notifytest.Always(notify.Approve))
	rpID, rpKey := tb.requester()
	used := 0

	m := mfaBody{PNR: "19330303-0001", COUNTRY: "SE", Timeout: 10, Reason: "again"}
	for i := 0; i < 2; i++ {
		if o := tb.postMFA(context.Background(), "json", m, ""); o.code != "denied" {
			t.Fatalf("request %d: %s", i, o.code)
		}
		used++
	}
	ct, body := m.encode("json")
	r := tb.do(http.MethodPost, "/MFA", ct, "", strings.NewReader(body))
	used++
	o := tb.parseOutcome(r, "application/json")
	if o.status != http.StatusTooManyRequests || o.code != "rate-limited" {
		t.Fatalf("third push to one person: %d %s", o.status, o.code)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if n := d.PromptCount(); n != 2 {
		t.Fatalf("the person was pushed %d times, want 2", n)
	}
	// A verified requester is counted as itself: its signed requests leave
	// the address's budget as it was.
	for range 3 {
		sm := mfaBody{PNR: "19330303-0002", COUNTRY: "SE", Timeout: 10, Reason: "signed", LegalId: rpID}
		sign(rpKey, &sm)
		if o := tb.postMFA(context.Background(), "json", sm, ""); o.code != "approved" {
			t.Fatalf("signed request: %s %s", o.code, o.message)
		}
	}
	// The caller's own limit counts every other request, unknown people
	// too: it also slows down anyone probing which numbers exist.
	for ; used < callerBudget; used++ {
		if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "nobody-" + strconv.Itoa(used), COUNTRY: "SE", Timeout: 10, Reason: "probe"}, ""); o.code != "unknown-person" {
			t.Fatalf("probe %d within the budget: %s", used, o.code)
		}
	}
	if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "nobody-x", COUNTRY: "SE", Timeout: 10, Reason: "probe"}, ""); o.code != "rate-limited" {
		t.Fatalf("request %d from one caller: %s", callerBudget+1, o.code)
	}
}

// TestApplicationFlood: identity applications have a budget of their own
// per address, so nobody can fill the store with them, nor spend the MFA
// requests' budget; an operator can close applications; and applications
// nobody decided on expire.
func TestApplicationFlood(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) {
		c.ApplyRate = broker.Rate{Events: 3, Per: time.Minute}
		c.CallerRate = broker.Rate{Events: 3, Per: time.Minute}
	})
	for i := 0; i < 3; i++ {
		tb.applyIdentity("PNR", strconv.Itoa(i), "COUNTRY", "SE")
	}
	r := tb.do(http.MethodPost, "/Identities", "application/json", "", strings.NewReader(`{"Properties":[],"PublicKey":"","Proof":""}`))
	if r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), `"rate-limited"`) || r.header.Get("Retry-After") == "" {
		t.Fatalf("fourth application: %d %s", r.status, r.body)
	}
	if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "nobody", COUNTRY: "SE", Timeout: 10, Reason: "x"}, ""); o.code != "unknown-person" {
		t.Fatalf("an MFA request after the applications: %s, want the caller's budget untouched", o.code)
	}

	closed := startBroker(t, func(c *config) { c.ApplicationsClosed = true })
	r = closed.do(http.MethodPost, "/Identities", "application/json", "", strings.NewReader(`{"Properties":[],"PublicKey":"","Proof":""}`))
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), `"applications-closed"`) {
		t.Fatalf("an application to a closed broker: %d %s", r.status, r.body)
	}

	expiring := startBroker(t, func(c *config) { c.ApplicationExpiry = 2 * time.Second })
	approved := expiring.person("19330303-0009", "SE", nil)
	pending, _ := expiring.applyIdentity("PNR", "19330303-0009", "COUNTRY", "SE")
	poll.Until(t, "the undecided application deleted", func() bool {
		return expiring.do(http.MethodGet, "/Identities/"+url.PathEscape(pending), "", "", nil).status == http.StatusNotFound
	})
	if r := expiring.do(http.MethodGet, "/Identities/"+url.PathEscape(approved.LegalID), "", "", nil); r.status != http.StatusOK {
		t.Fatalf("the approved identity: %d %s", r.status, r.body)
	}
	// The purge logs once the store has deleted: after the 404 above.
	poll.Until(t, "the purge logged", func() bool {
		return strings.Contains(expiring.logs.String(), "applications no operator decided on purged")
	})
}

// TestNotMeBlocksTheCaller: "not me" is reported in the answer's code,
// logged, and the caller may not ask that person again for a while; others
// may, and the caller may ask others.
func TestNotMeBlocksTheCaller(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.NotMeBlock = time.Hour })
	victim := tb.person("19440404-0001", "SE", notifytest.Always(notify.NotMe))
	tb.person("19440404-0002", "SE", notifytest.Always(notify.Approve))
	rpID, rpKey := tb.requester()

	m := mfaBody{PNR: "19440404-0001", COUNTRY: "SE", Timeout: 10, Reason: "let me in"}
	o := tb.postMFA(context.Background(), "xml", m, "")
	if o.status != http.StatusForbidden || o.code != "denied-not-me" || o.evidence["Decision"] != "not-me" {
		t.Fatalf("not me: %d %s %v", o.status, o.code, o.evidence)
	}
	if !strings.Contains(tb.logs.String(), "reported a request as not theirs") {
		t.Fatal("'not me' was not logged")
	}
	ct, body := m.encode("json")
	r := tb.do(http.MethodPost, "/MFA", ct, "", strings.NewReader(body))
	o = tb.parseOutcome(r, "application/json")
	if o.status != http.StatusForbidden || o.code != "blocked" || r.header.Get("Retry-After") == "" {
		t.Fatalf("the same caller again: %d %s", o.status, o.code)
	}
	if n := victim.PromptCount(); n != 1 {
		t.Fatalf("the person was pushed %d times, want 1", n)
	}
	if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "19440404-0002", COUNTRY: "SE", Timeout: 10, Reason: "other person"}, ""); o.code != "approved" {
		t.Fatalf("the caller asking another person: %s", o.code)
	}
	sm := mfaBody{PNR: "19440404-0001", COUNTRY: "SE", Timeout: 10, Reason: "another caller", LegalId: rpID}
	sign(rpKey, &sm)
	if o := tb.postMFA(context.Background(), "json", sm, ""); o.code != "denied-not-me" {
		t.Fatalf("another caller asking the person: %s", o.code)
	}
}

// TestOnePendingRequestPerIdentity: a second request for a person while
// one is pending supersedes it; the first caller learns so.
func TestOnePendingRequestPerIdentity(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19550505-0001", "SE", nil)
	m := mfaBody{PNR: "19550505-0001", COUNTRY: "SE", Timeout: 30, Reason: "first"}
	first := make(chan outcome, 1)
	go func() { first <- tb.postMFA(context.Background(), "json", m, "") }()
	p1 := d.NextPrompt()
	m.Reason = "second"
	second := make(chan outcome, 1)
	go func() { second <- tb.postMFA(context.Background(), "form", m, "") }()
	o := <-first
	if o.status != http.StatusConflict || o.code != "superseded" {
		t.Fatalf("first request: %d %s", o.status, o.code)
	}
	p2 := d.NextPrompt()
	if p2.Push.Reason != "second" {
		t.Fatalf("second prompt shows %q", p2.Push.Reason)
	}
	poll.Until(t, "first prompt withdrawn", func() bool {
		ws := d.WithdrawalsFor(p1.Push.RequestID)
		return len(ws) == 1 && ws[0].Why == notify.WhySuperseded
	})
	if err := d.Answer(context.Background(), p2, notify.Approve); err != nil {
		t.Fatal(err)
	}
	if o := <-second; o.code != "approved" {
		t.Fatalf("second request: %s", o.code)
	}
}

// TestPendingCap: past the configured number of pending requests the
// broker answers 503 too-busy at once, without pushing.
func TestPendingCap(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) { c.MaxPending = 2 })
	holders := make([]context.CancelFunc, 2)
	held := make(chan struct{}, 2)
	for i := range holders {
		pnr := "19660606-000" + strconv.Itoa(i)
		tb.person(pnr, "SE", nil)
		ctx, cancel := context.WithCancel(context.Background())
		holders[i] = cancel
		go func() {
			defer func() { held <- struct{}{} }()
			ct, body := mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: 30, Reason: "hold"}.encode("json")
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tb.url("/MFA"), strings.NewReader(body))
			req.Header.Set("Content-Type", ct)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	poll.Until(t, "two pending", func() bool { return tb.srv.Pending() == 2 })
	d := tb.person("19660606-0009", "SE", nil)
	ct, body := mfaBody{PNR: "19660606-0009", COUNTRY: "SE", Timeout: 30, Reason: "one too many"}.encode("json")
	r := tb.do(http.MethodPost, "/MFA", ct, "", strings.NewReader(body))
	if o := tb.parseOutcome(r, "application/json"); o.status != http.StatusServiceUnavailable || o.code != "too-busy" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: %d %s", o.status, o.code)
	}
	// Room again, a request is pushed, and it is the first the phone sees.
	holders[0]()
	<-held
	poll.Until(t, "one pending", func() bool { return tb.srv.Pending() == 1 })
	tb.barrier(d, "19660606-0009", "SE")
	holders[1]()
	<-held
}

// TestRevokedRequesterCannotSign: a requester identity signs only while
// Approved and within its validity window.
func TestRevokedRequesterCannotSign(t *testing.T) {
	t.Parallel()
	var later atomic.Int64 // how far the broker's clock is ahead
	tb := startBroker(t, func(c *config) {
		c.Clock = func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	})
	tb.person("19880808-0008", "SE", notifytest.Always(notify.Approve))
	ask := func(id string, key ed25519.PrivateKey) outcome {
		m := mfaBody{PNR: "19880808-0008", COUNTRY: "SE", Timeout: 10, Reason: "signed", LegalId: id}
		sign(key, &m)
		return tb.postMFA(context.Background(), "json", m, "")
	}
	for _, verb := range []string{"compromise", "obsolete"} {
		id, key := tb.requester()
		if o := ask(id, key); o.code != "approved" {
			t.Fatalf("before %s: %s", verb, o.code)
		}
		if out, err := tb.operator("identity", verb, id); err != nil {
			t.Fatal(out)
		}
		if o := ask(id, key); o.status != http.StatusUnauthorized || o.code != "unknown-requester" {
			t.Fatalf("after %s: %d %s", verb, o.status, o.code)
		}
	}
	id, key := tb.applyIdentity("ORGNAME", "Short-lived Ltd")
	if out, err := tb.operator("identity", "approve", id, "--valid-for", "1h"); err != nil {
		t.Fatal(out)
	}
	if o := ask(id, key); o.code != "approved" {
		t.Fatalf("requester within its hour: %s", o.code)
	}
	later.Store(int64(61 * time.Minute))
	if o := ask(id, key); o.code != "unknown-requester" {
		t.Fatalf("expired requester: %s", o.code)
	}
}

// TestBlockListAndRemove: an operator finds the block a person's "not me"
// left, by the person or by the caller, on any replica, and lifts it for
// every replica; the caller may then ask again.
func TestBlockListAndRemove(t *testing.T) {
	t.Parallel()
	const victimPNR = "19440404-0003"
	a := startBroker(t, func(c *config) { c.NotMeBlock = time.Hour })
	victim := a.person(victimPNR, "SE", notifytest.Always(notify.NotMe))
	// A second replica: the same NATS, broker key and hash key. It starts
	// after the device connected, since its identity store (not shared
	// here, as MongoDB would be) does not know the device.
	b := startBroker(t, func(c *config) {
		c.NotMeBlock = time.Hour
		c.NATSURL, c.BrokerKeyFile, c.PNRHashKeyFile = a.info.NATSURL, a.cfg.BrokerKeyFile, a.cfg.PNRHashKeyFile
	})
	m := mfaBody{PNR: victimPNR, COUNTRY: "SE", Timeout: 10, Reason: "let me in"}
	if o := a.postMFA(context.Background(), "json", m, ""); o.code != "denied-not-me" {
		t.Fatalf("not me: %s", o.code)
	}
	if o := a.postMFA(context.Background(), "json", m, ""); o.code != "blocked" {
		t.Fatalf("the caller again: %s, want blocked", o.code)
	}
	var key string
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"block", "list"}, 1},
		{[]string{"block", "list", "--pnr", victimPNR, "--country", "SE"}, 1},
		{[]string{"block", "list", "--pnr", "19440404-9999", "--country", "SE"}, 0},
		{[]string{"block", "list", "--ip", "127.0.0.1"}, 1},
		{[]string{"block", "list", "--requester", "someone@legal.broker.test"}, 0},
	} {
		out, err := a.operator(append(c.args, "--json")...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
		var blocks []broker.AdminBlock
		if err := json.Unmarshal([]byte(out), &blocks); err != nil || len(blocks) != c.want {
			t.Fatalf("%v: %d blocks, want %d: %v\n%s", c.args, len(blocks), c.want, err, out)
		}
		if len(blocks) > 0 {
			key = blocks[0].Key
		}
		if strings.Contains(out, victimPNR) {
			t.Fatalf("%v shows the personal number:\n%s", c.args, out)
		}
	}
	out, err := a.operator("block", "list", "--pnr", victimPNR, "--country", "SE")
	if err != nil || !strings.Contains(out, "KEY") || strings.Contains(out, victimPNR) {
		t.Fatalf("block list: %v\n%s", err, out)
	}
	poll.Until(t, "the block on the other replica", func() bool {
		out, err := b.operator("block", "list")
		return err == nil && strings.Contains(out, key)
	})
	if out, err := b.operator("block", "remove", key); err != nil || !strings.Contains(out, "lifted") {
		t.Fatalf("block remove on the other replica: %v\n%s", err, out)
	}
	poll.Until(t, "the block lifted where it was made", func() bool {
		out, err := a.operator("block", "list")
		return err == nil && !strings.Contains(out, key)
	})
	if o := a.postMFA(context.Background(), "json", m, ""); o.code != "denied-not-me" {
		t.Fatalf("the caller after the block was lifted: %s, want the person asked again", o.code)
	}
	if n := victim.PromptCount(); n != 2 {
		t.Fatalf("the person was asked %d times, want 2", n)
	}
	if out, err := a.operator("block", "remove", "no.such"); err == nil || !strings.Contains(err.Error(), "not-found") {
		t.Fatalf("lifting a block that is not there: %v\n%s", err, out)
	}
}

// TestUnsignedCannotLockOut: whoever knows a person's number can use up
// the pushes unsigned requests may cause that person, and no more: a
// verified requester's signed request still reaches the person.
func TestUnsignedCannotLockOut(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *config) {
		c.IdentityRate = broker.Rate{Events: 3, Per: time.Minute}
		c.SignedIdentityRate = broker.Rate{Events: 3, Per: time.Minute}
	})
	tb.person("19330303-0020", "SE", notifytest.Always(notify.Approve))
	rpID, rpKey := tb.requester()
	m := mfaBody{PNR: "19330303-0020", COUNTRY: "SE", Timeout: 10, Reason: "unsigned"}
	for i := range 3 {
		if o := tb.postMFA(context.Background(), "json", m, ""); o.code != "approved" {
			t.Fatalf("unsigned request %d: %s", i+1, o.code)
		}
	}
	if o := tb.postMFA(context.Background(), "json", m, ""); o.code != "rate-limited" {
		t.Fatalf("fourth unsigned request: %s, want rate-limited", o.code)
	}
	sm := mfaBody{PNR: "19330303-0020", COUNTRY: "SE", Timeout: 10, Reason: "signed", LegalId: rpID}
	sign(rpKey, &sm)
	if o := tb.postMFA(context.Background(), "json", sm, ""); o.code != "approved" {
		t.Fatalf("the bank's signed request after the unsigned ones: %s", o.code)
	}
}

// TestCallerLimitBeforeWork: every request counts against its caller's
// budget before the broker works on it, refused ones too; and a signed
// request refused for a limit keeps its nonce, so sent again once the
// budget allows, it is not taken for a replay.
func TestCallerLimitBeforeWork(t *testing.T) {
	t.Parallel()
	var later atomic.Int64
	tb := startBroker(t, func(c *config) {
		c.CallerRate = broker.Rate{Events: 20, Per: time.Minute}
		c.SignedIdentityRate = broker.Rate{Events: 1, Per: time.Minute}
		c.Clock = func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	})
	count := func(send func(i int) outcome) map[string]int {
		codes := map[string]int{}
		for i := range 50 {
			codes[send(i).code]++
		}
		return codes
	}
	malformed := count(func(int) outcome {
		r := tb.do(http.MethodPost, "/MFA", "application/json", "application/json", strings.NewReader(`{"PNR":`))
		return tb.parseOutcome(r, "application/json")
	})
	if malformed["malformed"] != 20 || malformed["rate-limited"] != 30 {
		t.Fatalf("50 malformed requests with a budget of 20: %v", malformed)
	}

	other := startBroker(t, func(c *config) { c.CallerRate = broker.Rate{Events: 20, Per: time.Minute} })
	key, _ := identity.GenerateKey()
	unknown := count(func(i int) outcome {
		m := mfaBody{PNR: "19330303-0030", COUNTRY: "SE", Timeout: 10, Reason: "x", LegalId: fmt.Sprintf("nobody%d@legal.broker.test", i)}
		sign(key, &m)
		return other.postMFA(context.Background(), "json", m, "")
	})
	if unknown["unknown-requester"] != 20 || unknown["rate-limited"] != 30 {
		t.Fatalf("50 requests signed by unknown requesters with a budget of 20: %v", unknown)
	}

	tb.person("19330303-0031", "SE", notifytest.Always(notify.Approve))
	rpID, rpKey := tb.requester()
	first := mfaBody{PNR: "19330303-0031", COUNTRY: "SE", Timeout: 10, Reason: "first", LegalId: rpID}
	sign(rpKey, &first)
	second := mfaBody{PNR: "19330303-0031", COUNTRY: "SE", Timeout: 10, Reason: "second", LegalId: rpID}
	sign(rpKey, &second)
	later.Store(int64(time.Minute)) // a fresh minute for the caller's budget
	if o := tb.postMFA(context.Background(), "json", first, ""); o.code != "approved" {
		t.Fatalf("first signed request: %s", o.code)
	}
	if o := tb.postMFA(context.Background(), "json", second, ""); o.code != "rate-limited" {
		t.Fatalf("second signed request within the minute: %s, want rate-limited", o.code)
	}
	later.Store(int64(2*time.Minute + time.Second))
	if o := tb.postMFA(context.Background(), "json", second, ""); o.code != "approved" {
		t.Fatalf("the second sent again once the budget allows: %s (%s), want approved", o.code, o.message)
	}
}

// TestImpersonationIsVisible: someone applying with another person's PNR
// and COUNTRY is shown to the operator beside that person's identity, at
// review and at approval, and is not approved without saying so.
func TestImpersonationIsVisible(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	alice := tb.person("19550505-0055", "SE", notifytest.Always(notify.Approve))
	impostor, _ := tb.applyIdentity("FIRST", "Mallory", "LAST", "Impostor", "PNR", "19550505-0055", "COUNTRY", "SE")

	out, err := tb.operator("identity", "list", "--state", "Created")
	if err != nil || !strings.Contains(out, "SAME PERSON") || !strings.Contains(out, "1 Approved") {
		t.Fatalf("the list does not show the impostor's twin: %v\n%s", err, out)
	}
	out, err = tb.operator("identity", "show", impostor)
	if err != nil || !strings.Contains(out, "Same PNR+COUNTRY") || !strings.Contains(out, alice.LegalID) {
		t.Fatalf("show does not name the other identity: %v\n%s", err, out)
	}
	out, err = tb.operator("identity", "approve", impostor)
	if err == nil || !strings.Contains(err.Error(), alice.LegalID) || !strings.Contains(err.Error(), "--same-person") {
		t.Fatalf("a second identity for one person approved without a word: %v\n%s", err, out)
	}
	if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: "19550505-0055", COUNTRY: "SE", Timeout: 10, Reason: "only Alice"}, ""); o.code != "approved" || o.evidence["LegalId"] != alice.LegalID {
		t.Fatalf("MFA for Alice: %s by %s", o.code, o.evidence["LegalId"])
	}
	if out, err := tb.operator("identity", "approve", impostor, "--same-person"); err != nil || !strings.Contains(out, "Approved") {
		t.Fatalf("approve --same-person: %v\n%s", err, out)
	}
}
