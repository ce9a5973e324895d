package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify/notifytest"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

var (
	allEncodings = []string{"xml", "json", "form"}
	allAccepts   = []string{"", "application/json", "application/xml", "text/xml", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/plain"}
)

// TestApprove runs an approved MFA in every encoding with every answer
// format, and verifies the evidence offline with the key the evidence says
// where to fetch.
func TestApprove(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19791231-1234", "SE", notifytest.Always(notify.Approve))
	for _, enc := range allEncodings {
		for _, accept := range allAccepts {
			name := enc + "/" + strings.SplitN(accept, ",", 2)[0]
			t.Run(name, func(t *testing.T) {
				m := mfaBody{PNR: "19791231-1234", COUNTRY: "SE", Timeout: 30, Reason: "Log in to **Example Bank** (" + name + ")"}
				o := tb.postMFA(context.Background(), enc, m, accept)
				if o.status != http.StatusOK || o.code != "approved" {
					t.Fatalf("got %d %s (%s), want 200 approved", o.status, o.code, o.message)
				}
				if strings.HasPrefix(accept, "text/html") {
					return // the page shows the evidence; the other formats check it
				}
				verifyEvidence(t, tb, o, d, m.Reason, notify.Approve)
			})
		}
	}
}

// verifyEvidence does what a relying party does offline: check the
// signature over SignedData with the key published at PublicKeyUrl, and
// that SignedData names this request, this decision and the push shown.
func verifyEvidence(t *testing.T, tb *testBroker, o outcome, d *notifytest.Device, reason string, decision notify.Decision) {
	t.Helper()
	ev := o.evidence
	if ev["LegalId"] != d.LegalID || ev["Decision"] != string(decision) || ev["Algorithm"] != "Ed25519" {
		t.Fatalf("evidence %v", ev)
	}
	resp := tb.do(http.MethodGet, strings.TrimPrefix(ev["PublicKeyUrl"], tb.url("")), "", "", nil)
	var pub struct{ Id, State, PublicKey string }
	if err := json.Unmarshal(resp.body, &pub); err != nil || resp.status != 200 {
		t.Fatalf("GET %s: %d %s", ev["PublicKeyUrl"], resp.status, resp.body)
	}
	if pub.Id != d.LegalID || pub.State != "Approved" || pub.PublicKey != ev["PublicKey"] {
		t.Fatalf("published key %+v does not match evidence %v", pub, ev)
	}
	key, _ := identity.ParsePublicKey(pub.PublicKey)
	signed, _ := base64.StdEncoding.DecodeString(ev["SignedData"])
	sig, _ := base64.StdEncoding.DecodeString(ev["Signature"])
	push, _ := base64.StdEncoding.DecodeString(ev["Push"])
	if err := identity.Verify(key, signed, sig); err != nil {
		t.Fatalf("evidence signature: %v", err)
	}
	var shown notify.Push
	if err := json.Unmarshal(push, &shown); err != nil {
		t.Fatal(err)
	}
	if !ed25519.PublicKey(key).Equal(d.Key.Public()) || shown.Reason != reason || shown.RequestID != o.requestID {
		t.Fatalf("push %+v does not match the request %s", shown, o.requestID)
	}
	if string(signed) != string(notify.AnswerForm(shown, push, decision, ev["Match"])) {
		t.Fatalf("SignedData is not the answer form of the push:\n%s", signed)
	}
}

func TestDeny(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19800101-0000", "NO", notifytest.Always(notify.Deny))
	for _, enc := range allEncodings {
		t.Run(enc, func(t *testing.T) {
			m := mfaBody{PNR: "19800101-0000", COUNTRY: "NO", Timeout: 30, Reason: "Approve payment"}
			start := time.Now()
			o := tb.postMFA(context.Background(), enc, m, "application/json")
			if o.status != http.StatusForbidden || o.code != "denied" {
				t.Fatalf("got %d %s, want 403 denied", o.status, o.code)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("a denial did not end the wait")
			}
			verifyEvidence(t, tb, o, d, m.Reason, notify.Deny)
		})
	}
}

// TestServerTiming checks that an answer tells the broker's own time from
// the wait for the person: the device's pause shows in the wait, and the
// two together are no more than the caller waited.
func TestServerTiming(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	const think = 50 * time.Millisecond
	tb.person("19650505-5555", "FI", func(notify.Prompt) (notify.Decision, bool) {
		time.Sleep(think)
		return notify.Approve, true
	})
	tb.person("19650505-6666", "FI", nil) // never answers
	for _, tc := range []struct {
		name, pnr, code string
		timeout         int
		// waited: the answer says how long the broker waited for a device.
		waited bool
	}{
		{"approved", "19650505-5555", "approved", 30, true},
		{"timed out", "19650505-6666", "timeout", 1, true},
		{"unknown person", "19650505-0000", "unknown-person", 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mfaBody{PNR: tc.pnr, COUNTRY: "FI", Timeout: tc.timeout, Reason: "Sign in"}
			ct, body := m.encode("json")
			start := time.Now()
			resp := tb.do(http.MethodPost, "/MFA", ct, "application/json", strings.NewReader(body))
			took := time.Since(start)
			if o := tb.parseOutcome(resp, "application/json"); o.code != tc.code {
				t.Fatalf("got %d %s, want %s", o.status, o.code, tc.code)
			}
			header := resp.header.Get("Server-Timing")
			metrics := map[string]time.Duration{}
			for _, m := range regexp.MustCompile(`(\w+);desc="[^"]*";dur=([0-9.]+)`).FindAllStringSubmatch(header, -1) {
				ms, err := strconv.ParseFloat(m[2], 64)
				if err != nil {
					t.Fatal(err)
				}
				metrics[m[1]] = time.Duration(ms * float64(time.Millisecond))
			}
			own, hasOwn := metrics["broker"]
			wait, hasWait := metrics["device"]
			if !hasOwn || hasWait != tc.waited || len(metrics) != len(strings.Split(header, ",")) {
				t.Fatalf("Server-Timing %q: want broker, and device only after a push", header)
			}
			if tc.waited && wait < think {
				t.Fatalf("Server-Timing %q: the device's wait is under its %s pause", header, think)
			}
			// The broker's own work is a sliver of any wait for a person:
			// a generous bound, which counting the wait as work breaks.
			if tc.waited && own > wait/4 {
				t.Fatalf("Server-Timing %q counts the wait as the broker's own work", header)
			}
			if own+wait > took {
				t.Fatalf("Server-Timing %q adds up to more than the %s the caller waited", header, took)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19700101-1111", "DK", nil) // never answers
	for _, enc := range allEncodings {
		t.Run(enc, func(t *testing.T) {
			o := tb.postMFA(context.Background(), enc, mfaBody{PNR: "19700101-1111", COUNTRY: "DK", Timeout: 1, Reason: "Sign in"}, "text/plain")
			if o.status != http.StatusRequestTimeout || o.code != "timeout" {
				t.Fatalf("got %d %s, want 408 timeout", o.status, o.code)
			}
			poll.Until(t, "withdrawal after timeout", func() bool {
				ws := d.WithdrawalsFor(o.requestID)
				return len(ws) == 1 && ws[0].Why == notify.WhyTimeout
			})
		})
	}
}

func TestUnknownPersonPushesNothing(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19600101-2222", "FI", notifytest.Always(notify.Approve))
	// Same PNR, other country; other PNR, same country; a pending (not yet
	// approved) identity; and a rejected one.
	pendingID, _ := tb.applyIdentity("PNR", "19600101-3333", "COUNTRY", "FI")
	rejectedID, _ := tb.applyIdentity("PNR", "19600101-4444", "COUNTRY", "FI")
	if out, err := tb.operator("identity", "reject", rejectedID); err != nil {
		t.Fatal(out)
	}
	_ = pendingID
	cases := []mfaBody{
		{PNR: "19600101-2222", COUNTRY: "SE"},
		{PNR: "19600101-2223", COUNTRY: "FI"},
		{PNR: "19600101-3333", COUNTRY: "FI"},
		{PNR: "19600101-4444", COUNTRY: "FI"},
	}
	for _, enc := range allEncodings {
		for _, m := range cases {
			m.Timeout, m.Reason = 5, "x"
			o := tb.postMFA(context.Background(), enc, m, "application/xml")
			if o.status != http.StatusNotFound || o.code != "unknown-person" {
				t.Fatalf("%s %s/%s: got %d %s, want 404 unknown-person", enc, m.COUNTRY, m.PNR, o.status, o.code)
			}
			if strings.Contains(o.message, m.PNR) {
				t.Fatalf("answer echoes the PNR: %s", o.message)
			}
		}
	}
	tb.barrier(d, "19600101-2222", "FI")
}

// requester is a relying party with its own approved identity.
func (tb *testBroker) requester() (string, ed25519.PrivateKey) {
	id, key := tb.applyIdentity("ORGNAME", "Example Bank AB", "EMAIL", "mfa@bank.example")
	tb.approve(id)
	return id, key
}

// sign signs as a requester must: over the canonical form, in which line
// breaks in Reason are LF whatever the encoding carries. It fills in
// Issued and a fresh Nonce unless they are set.
func sign(key ed25519.PrivateKey, m *mfaBody) {
	if m.Issued == "" {
		m.Issued = time.Now().UTC().Format(time.RFC3339)
	}
	if m.Nonce == "" {
		m.Nonce = notify.NewRequestID()
	}
	reason := strings.ReplaceAll(strings.ReplaceAll(m.Reason, "\r\n", "\n"), "\r", "\n")
	req := api.Request{PNR: m.PNR, Country: m.COUNTRY, Timeout: m.Timeout, Reason: reason, LegalID: m.LegalId, Issued: m.Issued, Nonce: m.Nonce}
	if m.NumberMatching != "" {
		on := m.NumberMatching == "true" || m.NumberMatching == "1"
		req.NumberMatching = &on
	}
	m.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, req.SigningForm()))
}

func TestSignedRequests(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19550505-5555", "SE", notifytest.Always(notify.Approve))
	rpID, rpKey := tb.requester()
	otherID, otherKey := tb.applyIdentity("ORGNAME", "Not Approved Ltd")
	_ = otherKey
	for _, enc := range allEncodings {
		t.Run(enc, func(t *testing.T) {
			m := mfaBody{PNR: "19550505-5555", COUNTRY: "SE", Timeout: 30, Reason: "Transfer 100 EUR\r\nto account 1234", LegalId: rpID}
			sign(rpKey, &m)
			o := tb.postMFA(context.Background(), enc, m, "application/json")
			if o.status != http.StatusOK || o.code != "approved" {
				t.Fatalf("signed request: %d %s (%s)", o.status, o.code, o.message)
			}
			p := d.NextPrompt()
			if r := p.Push.Requester; !r.Verified || r.LegalID != rpID || r.Name != "Example Bank AB" {
				t.Fatalf("device was shown requester %+v", r)
			}

			bad := []struct {
				name  string
				mod   func(*mfaBody)
				code  string
				field string
			}{
				{"tampered reason", func(b *mfaBody) { b.Reason += "!" }, "invalid-signature", "Signature"},
				{"tampered timeout", func(b *mfaBody) { b.Timeout++ }, "invalid-signature", "Signature"},
				{"tampered nonce", func(b *mfaBody) { b.Nonce = notify.NewRequestID() }, "invalid-signature", "Signature"},
				{"other key", func(b *mfaBody) { b.Nonce = ""; sign(otherKey, b) }, "invalid-signature", "Signature"},
				{"unknown requester", func(b *mfaBody) { b.LegalId, b.Nonce = "nobody@legal.broker.test", ""; sign(rpKey, b) }, "unknown-requester", "LegalId"},
				{"requester not approved", func(b *mfaBody) { b.LegalId, b.Nonce = otherID, ""; sign(otherKey, b) }, "unknown-requester", "LegalId"},
				{"replayed", func(*mfaBody) {}, "replayed", "Nonce"},
				{"signed an hour ago", func(b *mfaBody) {
					b.Issued, b.Nonce = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), ""
					sign(rpKey, b)
				}, "signature-expired", "Issued"},
				{"signed in the future", func(b *mfaBody) {
					b.Issued, b.Nonce = time.Now().Add(time.Hour).Format(time.RFC3339), ""
					sign(rpKey, b)
				}, "signature-expired", "Issued"},
			}
			for _, c := range bad {
				b := m
				c.mod(&b)
				o := tb.postMFA(context.Background(), enc, b, "application/json")
				if o.status != http.StatusUnauthorized || o.code != c.code || o.field != c.field {
					t.Errorf("%s: got %d %s on %q, want 401 %s on %s", c.name, o.status, o.code, o.field, c.code, c.field)
				}
			}
			tb.barrier(d, "19550505-5555", "SE")
		})
	}
}

// TestSignatureIsEncodingIndependent signs one request once and sends it in
// each encoding: the first is approved; the others are refused as replays,
// which the broker says only after the signature verified in that encoding.
func TestSignatureIsEncodingIndependent(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	tb.person("19440404-4444", "IS", notifytest.Always(notify.Approve))
	rpID, rpKey := tb.requester()
	m := mfaBody{PNR: "19440404-4444", COUNTRY: "IS", Timeout: 20, Reason: "Þú þarft að **samþykkja** \\<this> & that\r\nnow", LegalId: rpID}
	sign(rpKey, &m)
	for i, enc := range []string{"xml", "json", "form", "xml"} {
		want := "replayed"
		if i == 0 {
			want = "approved"
		}
		if o := tb.postMFA(context.Background(), enc, m, ""); o.code != want {
			t.Errorf("%s: %d %s %s, want %s", enc, o.status, o.code, o.message, want)
		}
	}
}

func TestLateDevice(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.unstartedPerson("19330303-3333", "EE", notifytest.Always(notify.Approve))
	// What the broker sends the phone, seen with the broker's credentials:
	// the push is out before the phone comes online.
	watcher := tb.brokerConn()
	pushes, err := watcher.SubscribeSync(notify.PushSubject(d.ID()))
	if err != nil {
		t.Fatal(err)
	}
	// The server must know of the subscription before the push goes out,
	// or the push passes it by.
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	done := make(chan outcome, 1)
	go func() {
		done <- tb.postMFA(context.Background(), "json", mfaBody{PNR: "19330303-3333", COUNTRY: "EE", Timeout: 30, Reason: "Late"}, "")
	}()
	if _, err := pushes.NextMsg(10 * time.Second); err != nil {
		select {
		case o := <-done:
			t.Fatalf("no push; the request ended %d %s", o.status, o.code)
		default:
			t.Fatalf("no push: %v", err)
		}
	}
	d.Start() // the phone comes online after the push was sent
	select {
	case o := <-done:
		if o.code != "approved" {
			t.Fatalf("late device: %d %s", o.status, o.code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
	}
}

func TestTwoDevicesForOnePerson(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	phone := tb.person("19220202-2222", "LV", nil)
	tablet := tb.person("19220202-2222", "LV", notifytest.Always(notify.Approve))
	o := tb.postMFA(context.Background(), "xml", mfaBody{PNR: "19220202-2222", COUNTRY: "LV", Timeout: 30, Reason: "Both"}, "")
	if o.code != "approved" || o.evidence["LegalId"] != tablet.LegalID {
		t.Fatalf("got %s from %s, want approved by the tablet", o.code, o.evidence["LegalId"])
	}
	p := phone.NextPrompt()
	if p.Push.RequestID != o.requestID {
		t.Fatalf("phone prompted for %s", p.Push.RequestID)
	}
	poll.Until(t, "phone told to withdraw", func() bool { return len(phone.WithdrawalsFor(o.requestID)) == 1 })
	if err := phone.Answer(context.Background(), p, notify.Deny); !errors.Is(err, notify.ErrRefused) {
		t.Fatalf("phone's answer after the tablet's: %v, want refused", err)
	}
}

func TestCallerDisconnects(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19110101-1111", "LT", nil)
	ctx, cancel := context.WithCancel(context.Background())
	errCh := make(chan error, 1)
	go func() {
		ct, body := mfaBody{PNR: "19110101-1111", COUNTRY: "LT", Timeout: 60, Reason: "Leaving"}.encode("json")
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tb.url("/MFA"), strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		_, err := tb.client.Do(req)
		errCh <- err
	}()
	p := d.NextPrompt()
	cancel()
	if err := <-errCh; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	poll.Until(t, "withdrawal after the caller left", func() bool {
		ws := d.WithdrawalsFor(p.Push.RequestID)
		return len(ws) == 1 && ws[0].Why == notify.WhyCancelled
	})
	poll.Until(t, "request no longer pending", func() bool { return tb.srv.Pending() == 0 })
	if err := d.Answer(context.Background(), p, notify.Approve); !errors.Is(err, notify.ErrRefused) {
		t.Fatalf("answer after the caller left: %v", err)
	}
}

// TestForgedAndReplayedAnswers attacks the answer path of a running broker:
// an answer signed with another key, and a genuine signature replayed from
// an earlier request. Neither ends the request; the genuine answer does.
func TestForgedAndReplayedAnswers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19000101-0001", "PL", nil)
	m := mfaBody{PNR: "19000101-0001", COUNTRY: "PL", Timeout: 30, Reason: "First"}

	first := make(chan outcome, 1)
	go func() { first <- tb.postMFA(context.Background(), "json", m, "") }()
	p1 := d.NextPrompt()
	if err := d.Answer(context.Background(), p1, notify.Approve); err != nil {
		t.Fatal(err)
	}
	if o := <-first; o.code != "approved" {
		t.Fatalf("first request: %s", o.code)
	}
	replay := ed25519.Sign(d.Key, notify.AnswerForm(p1.Push, p1.Raw, notify.Approve, ""))

	m.Reason = "Second"
	second := make(chan outcome, 1)
	go func() { second <- tb.postMFA(context.Background(), "json", m, "") }()
	p2 := d.NextPrompt()
	mallory, _ := identity.GenerateKey()
	for name, sig := range map[string][]byte{
		"forged":   ed25519.Sign(mallory, notify.AnswerForm(p2.Push, p2.Raw, notify.Approve, "")),
		"replayed": replay,
	} {
		a := notify.Answer{Version: notify.ProtocolVersion, RequestID: p2.Push.RequestID, LegalID: d.LegalID, Decision: notify.Approve, Signature: sig}
		if err := d.SendAnswer(context.Background(), p2.Push.AnswerSubject, a); !errors.Is(err, notify.ErrRefused) {
			t.Fatalf("%s answer: %v, want refused", name, err)
		}
	}
	select {
	case o := <-second:
		t.Fatalf("a hostile answer ended the request: %s", o.code)
	case <-time.After(100 * time.Millisecond):
	}
	if err := d.Answer(context.Background(), p2, notify.Deny); err != nil {
		t.Fatal(err)
	}
	if o := <-second; o.code != "denied" {
		t.Fatalf("second request: %s, want denied", o.code)
	}
}

// TestShutdownAnswersPending: a graceful shutdown answers every pending
// request with 503 shutting-down and withdraws its pushes.
func TestShutdownAnswersPending(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	const n = 3
	devices := make([]*notifytest.Device, n)
	results := make(chan outcome, n)
	for i := range devices {
		pnr := fmt.Sprint("18990101-999", i)
		devices[i] = tb.person(pnr, "HU", nil)
		go func(i int) {
			results <- tb.postMFA(context.Background(), allEncodings[i], mfaBody{PNR: pnr, COUNTRY: "HU", Timeout: 60, Reason: fmt.Sprint("pending ", i)}, "")
		}(i)
	}
	poll.Until(t, "all pending", func() bool { return tb.srv.Pending() == n })
	pushes := make([]string, n)
	for i, d := range devices {
		pushes[i] = d.NextPrompt().Push.RequestID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		o := <-results
		if o.status != http.StatusServiceUnavailable || o.code != "shutting-down" {
			t.Fatalf("pending request at shutdown: %d %s", o.status, o.code)
		}
	}
	for i, id := range pushes {
		poll.Until(t, "withdrawal at shutdown", func() bool {
			ws := devices[i].WithdrawalsFor(id)
			return len(ws) == 1 && ws[0].Why == notify.WhyShutdown
		})
	}
}

// TestConcurrentRequests runs many MFAs at once for many people, each
// answered by the right device only. One person's requests go one after
// the other: a second request for a person at once supersedes the first.
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	const people = 8
	var wg sync.WaitGroup
	devices := make([]*notifytest.Device, people)
	for i := range devices {
		decision := notify.Approve
		if i%2 == 1 {
			decision = notify.Deny
		}
		devices[i] = tb.person(fmt.Sprintf("1990010%d-%04d", i%10, i), "SE", notifytest.Always(decision))
	}
	for i := range devices {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for round := 0; round < 3; round++ {
				enc := allEncodings[(i+round)%3]
				o := tb.postMFA(context.Background(), enc, mfaBody{PNR: fmt.Sprintf("1990010%d-%04d", i%10, i), COUNTRY: "SE", Timeout: 30, Reason: "Concurrent"}, "")
				want := "approved"
				if i%2 == 1 {
					want = "denied"
				}
				if o.code != want || o.evidence["LegalId"] != devices[i].LegalID {
					t.Errorf("person %d: %s by %s, want %s by %s", i, o.code, o.evidence["LegalId"], want, devices[i].LegalID)
				}
			}
		}(i)
	}
	wg.Wait()
}
