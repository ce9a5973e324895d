package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// The brokers and the device of these tests have fixed keys, so that the
// fuzzers' seeds and their cached corpus keep verifying from run to run.
func msgKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func msgPub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// Request IDs of the tests: 26 characters of lower-case base32.
const (
	msgRequestID      = "abcdefghijklmnopqrstuvwxyz"
	msgOtherRequestID = "zyxwvutsrqponmlkjihgfedcba"
)

// msgFixture is an asking broker (A), the home broker (B) of one person's
// identity, a third broker, and the identity's device key.
type msgFixture struct {
	asker, home, other, device  ed25519.PrivateKey
	askerID, homeID, otherID    string
	askerPub, homePub, otherPub ed25519.PublicKey
	// ref is B's reference of the person's identity, with the device's key.
	ref Reference
	now time.Time
	// compact messages have every field they may leave empty empty, and
	// short values in the others: the fuzzers' seeds, which the fuzzer
	// minimizes in time quadratic in their length.
	compact bool
}

func newMsgFixture(t testing.TB) *msgFixture {
	t.Helper()
	fx := &msgFixture{asker: msgKey(1), home: msgKey(2), other: msgKey(3), device: msgKey(4)}
	fx.askerPub, fx.homePub, fx.otherPub = msgPub(fx.asker), msgPub(fx.home), msgPub(fx.other)
	fx.askerID, fx.homeID, fx.otherID = api.PeerID(fx.askerPub), api.PeerID(fx.homePub), api.PeerID(fx.otherPub)
	id := testIdentity(t) // holds a PNR and COUNTRY, which no message may carry
	id.PublicKey = msgPub(fx.device)
	ref, ok := NewReference(id, fx.home, testLookupKey())
	if !ok {
		t.Fatal("no reference")
	}
	fx.ref = ref
	fx.now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	return fx
}

// newFuzzFixture is a fixture of compact messages, for the fuzzers.
func newFuzzFixture(t testing.TB) *msgFixture {
	fx := newMsgFixture(t)
	fx.compact = true
	id := testIdentity(t)
	id.ID, id.PublicKey = "p@b", msgPub(fx.device)
	fx.ref, _ = NewReference(id, fx.home, testLookupKey())
	return fx
}

// request is A's signed request to B, with number matching when match.
func (fx *msgFixture) request(match bool) AskRequest {
	r := AskRequest{
		Version: ProtocolVersion, RequestID: msgRequestID, From: fx.askerID, To: fx.homeID,
		LegalID: fx.ref.LegalID, Reason: "Log in to **Example Bank**\nfrom Stockholm",
		Requester: notify.Requester{Verified: true, LegalID: "bank@legal.a.test", Name: "Example Bank", RemoteIP: "192.0.2.7", Via: "x.test"},
		Via:       "a.test", Expires: fx.now.Add(2 * time.Minute),
	}
	if match {
		r.MatchChoices, r.Match = []string{"17", "42", "83"}, "42"
	}
	if fx.compact {
		r.Reason, r.Requester, r.Via = "x", notify.Requester{}, "a"
	}
	r.sign(fx.asker)
	return r
}

// push is what B shows the device for req.
func (fx *msgFixture) push(req AskRequest) notify.Push {
	requester := req.Requester
	requester.Via = req.Via
	if fx.compact {
		return notify.Push{
			Version: notify.ProtocolVersion, RequestID: req.RequestID, LegalID: req.LegalID, Broker: "b",
			Reason: req.Reason, MatchChoices: req.MatchChoices,
		}
	}
	return notify.Push{
		Version: notify.ProtocolVersion, RequestID: req.RequestID, LegalID: req.LegalID, Broker: "b.test",
		Reason: req.Reason, Requester: requester, Issued: fx.now.Format(notify.TimeFormat),
		Expires: req.Expires.Format(notify.TimeFormat), AnswerSubject: notify.AnswerSubject("device1", "instance1"),
		WithdrawHash: strings.Repeat("ab", 32), MatchChoices: req.MatchChoices,
	}
}

// answered is B's countersigned reply carrying the device's answer d (and
// the number picked) to the push of req.
func (fx *msgFixture) answered(req AskRequest, d notify.Decision, pick string) AskReply {
	return fx.answeredPush(req, fx.push(req), d, pick)
}

func (fx *msgFixture) answeredPush(req AskRequest, push notify.Push, d notify.Decision, pick string) AskReply {
	pushBytes := mustJSON(push)
	signed := notify.AnswerForm(push, pushBytes, d, pick)
	code := map[notify.Decision]api.Code{notify.Approve: api.CodeApproved, notify.Deny: api.CodeDenied, notify.NotMe: api.CodeDeniedNotMe}[d]
	r := AskReply{
		Version: ProtocolVersion, RequestID: req.RequestID, From: fx.homeID, To: fx.askerID, Code: code,
		Message: "The person answered.", LegalID: req.LegalID, Decision: string(d),
		SignedData: signed, DeviceSignature: ed25519.Sign(fx.device, signed), Push: pushBytes, Match: pick,
	}
	if fx.compact {
		r.Message = ""
	}
	r.sign(fx.home)
	return r
}

// unanswered is B's countersigned reply when no device answered.
func (fx *msgFixture) unanswered(req AskRequest, code api.Code, retryAfter int) AskReply {
	r := AskReply{
		Version: ProtocolVersion, RequestID: req.RequestID, From: fx.homeID, To: fx.askerID,
		Code: code, Message: "No answer.", RetryAfter: retryAfter,
	}
	if fx.compact {
		r.Message = ""
	}
	r.sign(fx.home)
	return r
}

func TestAskRequestCheck(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	for _, match := range []bool{false, true} {
		if err := fx.request(match).check(fx.askerPub, fx.homeID, fx.now); err != nil {
			t.Fatalf("a genuine request (number matching %v): %v", match, err)
		}
	}
	// Current until the nanosecond it expires.
	almost := fx.request(true)
	if err := almost.check(fx.askerPub, fx.homeID, almost.Expires.Add(-time.Nanosecond)); err != nil {
		t.Fatalf("a nanosecond before it expires: %v", err)
	}
	// Expiring as far ahead as a request may.
	longest := fx.request(true)
	longest.Expires = fx.now.Add(MaxAskLifetime)
	longest.sign(fx.asker)
	if err := longest.check(fx.askerPub, fx.homeID, fx.now); err != nil {
		t.Fatalf("expiring MaxAskLifetime ahead: %v", err)
	}

	cases := []struct {
		name string
		// why is what the refusal says: which check caught it.
		why string
		// change is made after A signed; resign has A sign the changed
		// request (the peer itself sent it so), else the signature is A's
		// over the original.
		change func(fx *msgFixture, r *AskRequest)
		resign bool
		// check as me, with peer's key, at now (the fixture's when zero).
		peer func(fx *msgFixture) ed25519.PublicKey
		me   func(fx *msgFixture) string
		now  time.Time
	}{
		// Any field changed after signing.
		{name: "RequestId altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.RequestID = msgOtherRequestID }},
		{name: "From altered", why: "it says it is from", change: func(fx *msgFixture, r *AskRequest) { r.From = fx.otherID }},
		{name: "To altered", why: "it is for", change: func(fx *msgFixture, r *AskRequest) { r.To = fx.otherID }},
		{name: "LegalId altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.LegalID = "someone-else@legal.b.test" }},
		{name: "Reason altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Reason = "Transfer 10,000 EUR" }},
		{name: "Reason emptied", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Reason = "" }},
		{name: "Requester.Verified altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Requester.Verified = false }},
		{name: "Requester.LegalId altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Requester.LegalID = "evil@legal.a.test" }},
		{name: "Requester.Name altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Requester.Name = "Your Bank" }},
		{name: "Requester.RemoteIp altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Requester.RemoteIP = "198.51.100.1" }},
		{name: "Requester.Via altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Requester.Via = "" }},
		{name: "Requester emptied", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Requester = notify.Requester{} }},
		{name: "Via altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Via = "bank.example" }},
		{name: "Via emptied", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Via = "" }},
		{name: "Expires extended", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Expires = r.Expires.Add(10 * time.Minute) }},
		{name: "Expires shortened", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Expires = r.Expires.Add(-time.Minute) }},
		{name: "Expires by a nanosecond", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Expires = r.Expires.Add(time.Nanosecond) }},
		{name: "MatchChoices added to", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.MatchChoices = append(slices.Clone(r.MatchChoices), "99") }},
		{name: "MatchChoices one changed", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.MatchChoices = []string{"17", "42", "84"} }},
		{name: "MatchChoices reordered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.MatchChoices = []string{"42", "17", "83"} }},
		{name: "MatchChoices removed", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.MatchChoices = nil }},
		{name: "Match altered", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Match = "17" }},
		{name: "Match removed", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Match = "" }},
		{name: "number matching removed", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.MatchChoices, r.Match = nil, "" }},

		// The signature itself.
		{name: "no signature", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Signature = nil }},
		{name: "signature truncated", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Signature = r.Signature[:ed25519.SignatureSize-1] }},
		{name: "signature with a byte more", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.Signature = append(slices.Clone(r.Signature), 0) }},
		{name: "signature with a bit flipped", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) {
			r.Signature = slices.Clone(r.Signature)
			r.Signature[10] ^= 1
		}},
		{name: "signature of another request", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) {
			o := *r
			o.RequestID = msgOtherRequestID
			o.sign(fx.asker)
			r.Signature = o.Signature
		}},
		{name: "signed by another broker's key, claiming A", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.sign(fx.other) }},
		{name: "signed by the home broker's own key", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.sign(fx.home) }},
		{name: "signed by the device's key", why: "signature does not verify", change: func(fx *msgFixture, r *AskRequest) { r.sign(fx.device) }},

		// From is not the peer the key is of.
		{name: "another broker's genuine request, relayed by A", why: "it says it is from", change: func(fx *msgFixture, r *AskRequest) {
			r.From = fx.otherID
			r.sign(fx.other)
		}},
		{name: "From the home broker itself", why: "it says it is from", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.From = fx.homeID }},
		{name: "From empty", why: "it says it is from", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.From = "" }},
		{name: "From in capitals", why: "it says it is from", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.From = strings.ToUpper(r.From) }},
		{name: "checked with another peer's key", why: "it says it is from", peer: func(fx *msgFixture) ed25519.PublicKey { return fx.otherPub }},
		{name: "checked with no key", why: "it says it is from", peer: func(fx *msgFixture) ed25519.PublicKey { return nil }},

		// For another broker.
		{name: "re-targeted at another broker", why: "it is for", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.To = fx.otherID }},
		{name: "To the asking broker itself", why: "it is for", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.To = fx.askerID }},
		{name: "To empty", why: "it is for", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.To = "" }},
		{name: "received by another broker", why: "it is for", me: func(fx *msgFixture) string { return fx.otherID }},

		// Not current.
		{name: "checked as it expires", why: "expired at", now: time.Date(2026, 6, 1, 12, 2, 0, 0, time.UTC)},
		{name: "checked after it expired", why: "expired at", now: time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)},
		{name: "expired when signed", why: "expired at", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.Expires = fx.now.Add(-time.Second) }},
		{name: "Expires missing", why: "expired at", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.Expires = time.Time{} }},
		{name: "expires too far ahead", why: "ahead", resign: true, change: func(fx *msgFixture, r *AskRequest) {
			r.Expires = fx.now.Add(MaxAskLifetime + time.Nanosecond)
		}},
		{name: "expires in a year", why: "ahead", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.Expires = fx.now.AddDate(1, 0, 0) }},
		{name: "expires at the end of time", why: "ahead", resign: true, change: func(fx *msgFixture, r *AskRequest) {
			r.Expires = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
		}},

		// Malformed, however well signed.
		{name: "Version 0 (missing)", why: "version", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.Version = 0 }},
		{name: "Version 2", why: "version", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.Version = ProtocolVersion + 1 }},
		{name: "Version -1", why: "version", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.Version = -1 }},
		{name: "Version altered after signing", why: "version", change: func(fx *msgFixture, r *AskRequest) { r.Version = ProtocolVersion + 1 }},
		{name: "RequestId missing", why: "malformed request ID", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.RequestID = "" }},
		{name: "RequestId in capitals", why: "malformed request ID", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.RequestID = strings.ToUpper(r.RequestID) }},
		{name: "RequestId too short", why: "malformed request ID", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.RequestID = r.RequestID[1:] }},
		{name: "RequestId too long", why: "malformed request ID", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.RequestID += "a" }},
		{name: "RequestId a subject wildcard", why: "malformed request ID", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.RequestID = "abcdefghijklmnopqrstuvwxy>" }},
		{name: "LegalId missing", why: "malformed LegalId", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.LegalID = "" }},
		{name: "LegalId without a domain", why: "malformed LegalId", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.LegalID = "4f1b2c3d" }},
		{name: "LegalId with a space", why: "malformed LegalId", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.LegalID = "a b@legal.b.test" }},
		{name: "LegalId too long", why: "malformed LegalId", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.LegalID = strings.Repeat("a", 250) + "@b.test" }},
		{name: "LegalId a personal number", why: "malformed LegalId", resign: true, change: func(fx *msgFixture, r *AskRequest) { r.LegalID = "19791231-1234" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := fx.request(true)
			if c.change != nil {
				c.change(fx, &r)
			}
			if c.resign {
				r.sign(fx.asker)
			}
			peer, me, now := fx.askerPub, fx.homeID, fx.now
			if c.peer != nil {
				peer = c.peer(fx)
			}
			if c.me != nil {
				me = c.me(fx)
			}
			if !c.now.IsZero() {
				now = c.now
			}
			if err := r.check(peer, me, now); !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("check: %v, want ErrBadMessage for %s", err, c.why)
			}
		})
	}
}

// TestAskRequestFormCoversEveryField: the signature covers every field but
// itself, whichever check would catch a change first.
func TestAskRequestFormCoversEveryField(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	base := fx.request(true)
	changes := map[string]func(*AskRequest){
		"Version":            func(r *AskRequest) { r.Version++ },
		"RequestId":          func(r *AskRequest) { r.RequestID = msgOtherRequestID },
		"From":               func(r *AskRequest) { r.From = fx.otherID },
		"To":                 func(r *AskRequest) { r.To = fx.otherID },
		"LegalId":            func(r *AskRequest) { r.LegalID = "x@y" },
		"Reason":             func(r *AskRequest) { r.Reason += "." },
		"Requester.Verified": func(r *AskRequest) { r.Requester.Verified = false },
		"Requester.LegalId":  func(r *AskRequest) { r.Requester.LegalID = "" },
		"Requester.Name":     func(r *AskRequest) { r.Requester.Name = "" },
		"Requester.RemoteIp": func(r *AskRequest) { r.Requester.RemoteIP = "" },
		"Requester.Via":      func(r *AskRequest) { r.Requester.Via = "" },
		"Via":                func(r *AskRequest) { r.Via = "" },
		"Expires":            func(r *AskRequest) { r.Expires = r.Expires.Add(time.Nanosecond) },
		"MatchChoices":       func(r *AskRequest) { r.MatchChoices = r.MatchChoices[:2] },
		"Match":              func(r *AskRequest) { r.Match = "" },
	}
	// Every field of AskRequest but Signature has a change here, Requester
	// every field of its own: a field added later must be signed too.
	for _, typ := range []reflect.Type{reflect.TypeFor[AskRequest](), reflect.TypeFor[notify.Requester]()} {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if typ == reflect.TypeFor[notify.Requester]() {
				name = "Requester." + name
			}
			if _, ok := changes[name]; !ok && name != "Signature" && name != "Requester" {
				t.Errorf("field %s of %s has no change in this test: is it signed?", name, typ)
			}
		}
	}
	for name, change := range changes {
		r := base
		r.MatchChoices = slices.Clone(base.MatchChoices)
		change(&r)
		if bytes.Equal(r.form(), base.form()) {
			t.Errorf("%s changed, and the signed form is the same", name)
		}
	}
	// The time zone Expires is written in is not part of what is signed:
	// the same instant verifies however a peer's encoder spells it.
	zoned := base
	zoned.Expires = base.Expires.In(time.FixedZone("CEST", 2*60*60))
	if !bytes.Equal(zoned.form(), base.form()) {
		t.Error("the same instant in another zone signs differently")
	}
}

func TestAskReplyCheck(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	withMatch, without := fx.request(true), fx.request(false)
	genuine := []struct {
		name  string
		req   AskRequest
		reply AskReply
	}{
		{"approved with the number", withMatch, fx.answered(withMatch, notify.Approve, "42")},
		{"approved with the wrong number", withMatch, fx.answered(withMatch, notify.Approve, "17")},
		{"denied with a number", withMatch, fx.answered(withMatch, notify.Deny, "83")},
		{"denied without a number", withMatch, fx.answered(withMatch, notify.Deny, "")},
		{"not me", withMatch, fx.answered(withMatch, notify.NotMe, "")},
		{"approved without number matching", without, fx.answered(without, notify.Approve, "")},
		{"denied without number matching", without, fx.answered(without, notify.Deny, "")},
		{"timed out", withMatch, fx.unanswered(withMatch, api.CodeTimeout, 0)},
		{"rate limited", without, fx.unanswered(without, api.CodeRateLimited, 30)},
		{"refused as malformed", without, fx.unanswered(without, api.CodeMalformed, 0)},
	}
	for _, g := range genuine {
		if err := g.reply.check(fx.homePub, g.req, fx.ref); err != nil {
			t.Errorf("a genuine reply, %s: %v", g.name, err)
		}
	}

	anotherIdentity := testIdentity(t)
	anotherIdentity.ID = "someone-else@legal.b.test"
	anotherIdentity.PublicKey = msgPub(fx.device)
	refOfAnother, _ := NewReference(anotherIdentity, fx.home, testLookupKey())
	anotherDevice := testIdentity(t) // same LegalId, another device key
	refWithAnotherKey, _ := NewReference(anotherDevice, fx.home, testLookupKey())

	approved := func(fx *msgFixture, req AskRequest) AskReply { return fx.answered(req, notify.Approve, "42") }
	timedOut := func(fx *msgFixture, req AskRequest) AskReply { return fx.unanswered(req, api.CodeTimeout, 0) }
	cases := []struct {
		name string
		// why is what the refusal says: which check caught it.
		why   string
		reply func(fx *msgFixture, req AskRequest) AskReply
		// change is made after B countersigned; recountersign has B sign
		// the changed reply: a home broker that lies, which only the
		// device's signature can catch.
		change        func(fx *msgFixture, r *AskReply)
		recountersign bool
		// req and ref the reply is checked against, and the home broker's
		// key it is checked with.
		req  func(fx *msgFixture) AskRequest
		ref  func(fx *msgFixture) Reference
		home func(fx *msgFixture) ed25519.PublicKey
	}{
		// Not this request's reply, or not from its home broker.
		{name: "Version 0 (missing)", why: "a reply to another request", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Version = 0 }},
		{name: "Version 2", why: "a reply to another request", reply: timedOut, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Version = ProtocolVersion + 1 }},
		{name: "a reply to another request", why: "a reply to another request", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.RequestID = msgOtherRequestID }},
		{name: "a reply to another request, unanswered", why: "a reply to another request", reply: timedOut, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.RequestID = msgOtherRequestID }},
		{name: "checked against another request", why: "a reply to another request", reply: approved, req: func(fx *msgFixture) AskRequest {
			r := fx.request(true)
			r.RequestID = msgOtherRequestID
			r.sign(fx.asker)
			return r
		}},
		{name: "From another broker", why: "a reply to another request", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.From = fx.otherID }},
		{name: "From empty", why: "a reply to another request", reply: timedOut, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.From = "" }},
		{name: "To another broker", why: "a reply to another request", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.To = fx.otherID }},
		{name: "To the home broker itself", why: "a reply to another request", reply: timedOut, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.To = fx.homeID }},
		{name: "another broker's genuine reply", why: "a reply to another request", reply: approved, home: func(fx *msgFixture) ed25519.PublicKey { return fx.otherPub }, change: func(fx *msgFixture, r *AskReply) {
			r.From = fx.otherID
			r.sign(fx.other)
		}},

		// Not countersigned by the home broker.
		{name: "no countersignature", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.Signature = nil }},
		{name: "no countersignature, unanswered", why: "countersignature", reply: timedOut, change: func(fx *msgFixture, r *AskReply) { r.Signature = nil }},
		{name: "countersignature truncated", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.Signature = r.Signature[:32] }},
		{name: "countersignature with a bit flipped", why: "countersignature", reply: timedOut, change: func(fx *msgFixture, r *AskReply) {
			r.Signature = slices.Clone(r.Signature)
			r.Signature[63] ^= 0x80
		}},
		{name: "countersigned by another broker", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.sign(fx.other) }},
		{name: "countersigned by the asking broker", why: "countersignature", reply: timedOut, change: func(fx *msgFixture, r *AskReply) { r.sign(fx.asker) }},
		{name: "countersigned by the device", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.sign(fx.device) }},
		{name: "checked with another key", why: "countersignature", reply: approved, home: func(fx *msgFixture) ed25519.PublicKey { return fx.otherPub }},
		{name: "checked with no key", why: "countersignature", reply: timedOut, home: func(fx *msgFixture) ed25519.PublicKey { return nil }},

		// The outcome or the evidence altered after countersigning.
		{name: "Code altered", why: "countersignature", reply: timedOut, change: func(fx *msgFixture, r *AskReply) { r.Code = api.CodeApproved }},
		{name: "Code of an answer altered", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.Code = api.CodeWrongNumber }},
		{name: "Message altered", why: "countersignature", reply: timedOut, change: func(fx *msgFixture, r *AskReply) { r.Message = "Call +1 555 0100" }},
		{name: "RetryAfter altered", why: "countersignature", reply: timedOut, change: func(fx *msgFixture, r *AskReply) { r.RetryAfter = 3600 }},
		{name: "LegalId added", why: "countersignature", reply: timedOut, change: func(fx *msgFixture, r *AskReply) { r.LegalID = fx.ref.LegalID }},
		{name: "LegalId altered", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.LegalID = "someone-else@legal.b.test" }},
		{name: "Decision altered", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.Decision = string(notify.Deny) }},
		{name: "Decision removed", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.Decision = "" }},
		{name: "SignedData altered", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) {
			r.SignedData = append(slices.Clone(r.SignedData), '\n')
		}},
		{name: "SignedData removed", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.SignedData = nil }},
		{name: "DeviceSignature altered", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) {
			r.DeviceSignature = slices.Clone(r.DeviceSignature)
			r.DeviceSignature[0] ^= 1
		}},
		{name: "DeviceSignature removed", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.DeviceSignature = nil }},
		{name: "Push altered", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) {
			r.Push = bytes.Replace(r.Push, []byte("Example Bank"), []byte("Example Bonk"), 1)
		}},
		{name: "Push removed", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.Push = nil }},
		{name: "Match altered", why: "countersignature", reply: approved, change: func(fx *msgFixture, r *AskReply) { r.Match = "17" }},

		// Countersigned, but the evidence does not hold: a home broker
		// that claims what the device did not sign.
		{name: "evidence without a decision", why: "evidence without a decision", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Decision = "" }},
		{name: "a device's signed data without a decision", why: "evidence without a decision", reply: timedOut, recountersign: true, change: func(fx *msgFixture, r *AskReply) {
			r.SignedData = []byte("MFA-Answer/1\n")
		}},
		{name: "a device signature without a decision", why: "evidence without a decision", reply: timedOut, recountersign: true, change: func(fx *msgFixture, r *AskReply) {
			r.DeviceSignature = make([]byte, ed25519.SignatureSize)
		}},
		{name: "a decision without evidence", why: "the device's signature", reply: timedOut, recountersign: true, change: func(fx *msgFixture, r *AskReply) {
			r.Decision, r.LegalID = string(notify.Approve), fx.ref.LegalID
		}},
		{name: "answered by another identity", why: "answered by another identity", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.LegalID = "someone-else@legal.b.test" }},
		{name: "answered without naming the identity", why: "answered by another identity", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.LegalID = "" }},
		{name: "the reference is of another identity", why: "answered by another identity", reply: approved, ref: func(fx *msgFixture) Reference { return refOfAnother }},
		{name: "the reference has another device key", why: "the device's signature", reply: approved, ref: func(fx *msgFixture) Reference { return refWithAnotherKey }},
		{name: "the reference has no key", why: "the device's signature", reply: approved, ref: func(fx *msgFixture) Reference {
			r := fx.ref
			r.PublicKey = nil
			return r
		}},
		{name: "signed by another device", why: "the device's signature", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) {
			r.DeviceSignature = ed25519.Sign(msgKey(9), r.SignedData)
		}},
		{name: "signed by the home broker, not the device", why: "the device's signature", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) {
			r.DeviceSignature = ed25519.Sign(fx.home, r.SignedData)
		}},
		{name: "the device's signature over other data", why: "the device's signature", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) {
			r.SignedData = append(slices.Clone(r.SignedData), '\n')
		}},
		{name: "the push is not JSON", why: "the push shown is not this request's", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Push = []byte("push") }},
		{name: "no push", why: "the push shown is not this request's", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Push = nil }},
		{name: "another push of this request", why: "the push shown is not what was asked", reply: approved, recountersign: true, change: func(fx *msgFixture, r *AskReply) {
			// The device answered one push; the reply shows another.
			p := fx.push(fx.request(true))
			p.Reason = "Something else"
			r.Push = mustJSON(p)
		}},
		{name: "the device answered another request", why: "the push shown is not this request's", reply: func(fx *msgFixture, req AskRequest) AskReply {
			p := fx.push(req)
			p.RequestID = msgOtherRequestID
			return fx.answeredPush(req, p, notify.Approve, "42")
		}},
		{name: "the device answered for another identity", why: "the push shown is not this request's", reply: func(fx *msgFixture, req AskRequest) AskReply {
			p := fx.push(req)
			p.LegalID = "someone-else@legal.b.test"
			return fx.answeredPush(req, p, notify.Approve, "42")
		}},
		{name: "a decision that is none", why: "decision \"", reply: func(fx *msgFixture, req AskRequest) AskReply {
			return fx.answered(req, notify.Decision("maybe"), "42")
		}},
		{name: "a decision in capitals", why: "decision \"", reply: func(fx *msgFixture, req AskRequest) AskReply {
			return fx.answered(req, notify.Decision("APPROVE"), "42")
		}},
		{name: "a denial turned into an approval", why: "an approval without one of the numbers offered", reply: func(fx *msgFixture, req AskRequest) AskReply {
			return fx.answered(req, notify.Deny, "")
		}, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Decision = string(notify.Approve) }},
		{name: "not me turned into a denial", why: "the device signed something other", reply: func(fx *msgFixture, req AskRequest) AskReply {
			return fx.answered(req, notify.NotMe, "")
		}, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Decision = string(notify.Deny) }},
		{name: "the number picked altered", why: "the device signed something other", reply: func(fx *msgFixture, req AskRequest) AskReply {
			return fx.answered(req, notify.Approve, "17")
		}, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Match = "42" }},
		{name: "a number added to an answer without one", why: "the device signed something other", reply: func(fx *msgFixture, req AskRequest) AskReply {
			return fx.answered(req, notify.Deny, "")
		}, recountersign: true, change: func(fx *msgFixture, r *AskReply) { r.Match = "42" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			req := fx.request(true)
			r := c.reply(fx, req)
			if c.change != nil {
				c.change(fx, &r)
			}
			if c.recountersign {
				r.sign(fx.home)
			}
			home, ref := fx.homePub, fx.ref
			if c.req != nil {
				req = c.req(fx)
			}
			if c.ref != nil {
				ref = c.ref(fx)
			}
			if c.home != nil {
				home = c.home(fx)
			}
			if err := r.check(home, req, ref); !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("check: %v, want ErrBadMessage for %s", err, c.why)
			}
		})
	}
}

// TestAskReplyFormCoversEveryField: the countersignature covers every
// field but itself, the evidence by its hash.
func TestAskReplyFormCoversEveryField(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	base := fx.answered(fx.request(true), notify.Approve, "42")
	changes := map[string]func(*AskReply){
		"Version":         func(r *AskReply) { r.Version++ },
		"RequestId":       func(r *AskReply) { r.RequestID = msgOtherRequestID },
		"From":            func(r *AskReply) { r.From = fx.otherID },
		"To":              func(r *AskReply) { r.To = fx.otherID },
		"Code":            func(r *AskReply) { r.Code = api.CodeDenied },
		"Message":         func(r *AskReply) { r.Message = "" },
		"RetryAfter":      func(r *AskReply) { r.RetryAfter = 1 },
		"LegalId":         func(r *AskReply) { r.LegalID = "" },
		"Decision":        func(r *AskReply) { r.Decision = "deny" },
		"SignedData":      func(r *AskReply) { r.SignedData = r.SignedData[1:] },
		"DeviceSignature": func(r *AskReply) { r.DeviceSignature = r.DeviceSignature[1:] },
		"Push":            func(r *AskReply) { r.Push = r.Push[:len(r.Push)-1] },
		"Match":           func(r *AskReply) { r.Match = "" },
	}
	for f := range reflect.TypeFor[AskReply]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if _, ok := changes[name]; !ok && name != "Signature" {
			t.Errorf("field %s of AskReply has no change in this test: is it signed?", name)
		}
	}
	for name, change := range changes {
		r := base
		change(&r)
		if bytes.Equal(r.form(), base.form()) {
			t.Errorf("%s changed, and the signed form is the same", name)
		}
	}
}

// servingLink is the link with a peer, serving the given requests of it;
// the contexts end when a request is withdrawn.
func servingLink(fx *msgFixture, peer ed25519.PublicKey, ids ...string) (*link, map[string]context.Context) {
	l := &link{id: api.PeerID(peer), key: peer, serving: map[string]context.CancelFunc{}, seen: map[string]time.Time{}}
	ctxs := map[string]context.Context{}
	for _, id := range ids {
		ctx, cancel := context.WithCancel(context.Background())
		if err := l.begin(id, fx.now.Add(2*time.Minute), cancel, fx.now); err != nil {
			panic(err)
		}
		ctxs[id] = ctx
	}
	return l, ctxs
}

func signedCancel(key ed25519.PrivateKey, from, to, requestID string) cancelMessage {
	c := cancelMessage{RequestID: requestID, From: from, To: to}
	c.Signature = ed25519.Sign(key, c.form())
	return c
}

// TestCancelMessage: the home broker withdraws a request only on its
// asking peer's own signed cancel, which it receives on its link with that
// peer (Federation.cancelServed; the cancel has no check of its own).
func TestCancelMessage(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	f := &Federation{me: fx.homeID} // cancelServed uses nothing else of it
	genuine := signedCancel(fx.asker, fx.askerID, fx.homeID, msgRequestID)
	cases := []struct {
		name string
		body func() []byte
		ok   bool
	}{
		{"the asking peer's cancel", func() []byte { return mustJSON(genuine) }, true},
		{"with white space around", func() []byte { return []byte(" \n" + string(mustJSON(genuine)) + "\n ") }, true},
		{"signed by another broker's key, claiming the peer", func() []byte {
			return mustJSON(signedCancel(fx.other, fx.askerID, fx.homeID, msgRequestID))
		}, false},
		{"another broker's genuine cancel", func() []byte { return mustJSON(signedCancel(fx.other, fx.otherID, fx.homeID, msgRequestID)) }, false},
		{"for another home broker", func() []byte { return mustJSON(signedCancel(fx.asker, fx.askerID, fx.otherID, msgRequestID)) }, false},
		{"To altered", func() []byte {
			c := genuine
			c.To = fx.otherID
			return mustJSON(c)
		}, false},
		{"From empty", func() []byte { return mustJSON(signedCancel(fx.asker, "", fx.homeID, msgRequestID)) }, false},
		{"RequestId altered", func() []byte {
			c := genuine
			c.RequestID = msgOtherRequestID
			return mustJSON(c)
		}, false},
		{"From altered", func() []byte {
			c := genuine
			c.From = fx.otherID
			return mustJSON(c)
		}, false},
		{"no signature", func() []byte {
			c := genuine
			c.Signature = nil
			return mustJSON(c)
		}, false},
		{"signature with a bit flipped", func() []byte {
			c := genuine
			c.Signature = slices.Clone(c.Signature)
			c.Signature[5] ^= 4
			return mustJSON(c)
		}, false},
		{"an ask's signature", func() []byte {
			r := fx.request(false)
			return mustJSON(cancelMessage{RequestID: r.RequestID, From: r.From, Signature: r.Signature})
		}, false},
		{"unknown field", func() []byte {
			return bytes.Replace(mustJSON(genuine), []byte(`{`), []byte(`{"Version":1,`), 1)
		}, false},
		{"data after it", func() []byte { return append(mustJSON(genuine), `{}`...) }, false},
		{"oversize", func() []byte {
			b := mustJSON(genuine)
			return append(b, bytes.Repeat([]byte(" "), maxMessageBytes+1-len(b))...)
		}, false},
		{"not JSON", func() []byte { return []byte("cancel " + msgRequestID) }, false},
		{"empty", func() []byte { return nil }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l, ctxs := servingLink(fx, fx.askerPub, msgRequestID, msgOtherRequestID)
			f.cancelServed(l, &nats.Msg{Subject: cancelSubject(fx.homeID), Data: c.body()})
			if got := ctxs[msgRequestID].Err() != nil; got != c.ok {
				t.Fatalf("withdrawn: %v, want %v", got, c.ok)
			}
			if ctxs[msgOtherRequestID].Err() != nil {
				t.Fatal("a request the cancel does not name was withdrawn")
			}
		})
	}
	// A cancel for a request not served is nothing.
	l, _ := servingLink(fx, fx.askerPub)
	f.cancelServed(l, &nats.Msg{Data: mustJSON(genuine)})
	// The form names what it is, so that no other signed message of the
	// peer's is a cancel.
	if kind, fields, err := identity.ParseSignedForm(genuine.form()); err != nil || kind != "MFA-Federation-Cancel/1" || len(fields) != 3 {
		t.Fatalf("form %q %v %v", kind, fields, err)
	}
}

// TestAskReplayRefused: a request ID the peer asked before is refused for
// as long as the request is current; after that, check refuses it as
// expired, and the ID is forgotten.
func TestAskReplayRefused(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	for _, lifetime := range []time.Duration{2 * time.Minute, MaxAskLifetime} {
		req := fx.request(true)
		req.Expires = fx.now.Add(lifetime)
		req.sign(fx.asker)
		l, _ := servingLink(fx, fx.askerPub)
		// serve: check, then begin.
		serve := func(at time.Time) error {
			err := req.check(fx.askerPub, fx.homeID, at)
			if err == nil {
				err = l.begin(req.RequestID, req.Expires, func() {}, at)
				l.end(req.RequestID)
			}
			return err
		}
		if err := serve(fx.now); err != nil {
			t.Fatalf("%v: %v", lifetime, err)
		}
		for _, after := range []time.Duration{0, time.Second, lifetime / 2, lifetime - time.Nanosecond, lifetime, lifetime + time.Hour} {
			if err := serve(fx.now.Add(after)); !errors.Is(err, ErrBadMessage) {
				t.Errorf("a request of %v asked again %v later: %v, want ErrBadMessage", lifetime, after, err)
			}
		}
		// Another request goes on, and the expired one's ID is forgotten.
		other := fx.request(true)
		at := fx.now.Add(lifetime + time.Hour)
		other.RequestID, other.Expires = msgOtherRequestID, at.Add(time.Minute)
		other.sign(fx.asker)
		if err := other.check(fx.askerPub, fx.homeID, at); err != nil {
			t.Fatal(err)
		}
		if err := l.begin(other.RequestID, other.Expires, func() {}, at); err != nil {
			t.Fatal(err)
		}
		l.mu.Lock()
		_, remembered := l.seen[req.RequestID]
		l.mu.Unlock()
		if remembered {
			t.Errorf("the ID of a request of %v is remembered an hour after it expired", lifetime)
		}
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	for _, match := range []bool{false, true} {
		req := fx.request(match)
		var back AskRequest
		if err := decodeStrict(mustJSON(req), &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, req) {
			t.Fatalf("round trip:\n%+v\n%+v", back, req)
		}
		if err := back.check(fx.askerPub, fx.homeID, fx.now); err != nil {
			t.Fatalf("after a round trip: %v", err)
		}
		replies := []AskReply{
			fx.answered(req, notify.Approve, req.Match),
			fx.answered(req, notify.NotMe, ""),
			fx.unanswered(req, api.CodeRateLimited, 60),
		}
		for _, reply := range replies {
			var back AskReply
			if err := decodeStrict(mustJSON(reply), &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, reply) {
				t.Fatalf("round trip:\n%+v\n%+v", back, reply)
			}
			if err := back.check(fx.homePub, req, fx.ref); err != nil {
				t.Fatalf("after a round trip: %v", err)
			}
		}
	}
	c := signedCancel(fx.asker, fx.askerID, fx.homeID, msgRequestID)
	var back cancelMessage
	if err := decodeStrict(mustJSON(c), &back); err != nil || !reflect.DeepEqual(back, c) || ed25519Verify(fx.askerPub, back.form(), back.Signature) != nil {
		t.Fatalf("cancel round trip: %+v, %v", back, err)
	}

	// A peer whose clock writes another zone: the instant is what counts.
	zoned := fx.request(true)
	zoned.Expires = zoned.Expires.In(time.FixedZone("", -5*60*60))
	b := mustJSON(zoned)
	if !bytes.Contains(b, []byte("-05:00")) {
		t.Fatalf("not in its zone: %s", b)
	}
	var fromZoned AskRequest
	if err := decodeStrict(b, &fromZoned); err != nil || fromZoned.check(fx.askerPub, fx.homeID, fx.now) != nil || !fromZoned.Expires.Equal(zoned.Expires) {
		t.Fatalf("zoned: %+v, %v", fromZoned, err)
	}

	// The largest honest messages fit: a Reason of 2,000 characters that
	// JSON escapes (6 bytes each), in the request and in the push its reply
	// carries (then in base64).
	big := fx.request(true)
	big.Reason = strings.Repeat("<", api.MaxReasonLength)
	big.LegalID = strings.Repeat("a", identity.MaxIDLength-len("@legal.b.test")) + "@legal.b.test"
	big.Requester.Name = strings.Repeat("&", 255)
	big.Requester.LegalID = big.LegalID
	big.sign(fx.asker)
	bigRef := fx.ref
	bigRef.LegalID = big.LegalID
	bigReply := fx.answered(big, notify.Approve, big.Match)
	bigReply.Message = strings.Repeat("m", 500)
	bigReply.sign(fx.home)
	var bigBack AskRequest
	var bigReplyBack AskReply
	if err := decodeStrict(mustJSON(big), &bigBack); err != nil || bigBack.check(fx.askerPub, fx.homeID, fx.now) != nil {
		t.Fatalf("the largest request (%d bytes): %v", len(mustJSON(big)), err)
	}
	if err := decodeStrict(mustJSON(bigReply), &bigReplyBack); err != nil || bigReplyBack.check(fx.homePub, big, bigRef) != nil {
		t.Fatalf("the largest reply (%d bytes): %v", len(mustJSON(bigReply)), err)
	}
}

func TestDecodeStrictRefuses(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	req := fx.request(true)
	messages := map[string]struct {
		good string
		into func() any
	}{
		"AskRequest": {string(mustJSON(req)), func() any { return new(AskRequest) }},
		"AskReply":   {string(mustJSON(fx.answered(req, notify.Approve, "42"))), func() any { return new(AskReply) }},
		"cancel":     {string(mustJSON(signedCancel(fx.asker, fx.askerID, fx.homeID, msgRequestID))), func() any { return new(cancelMessage) }},
	}
	for kind, m := range messages {
		pad := func(n int) string { return m.good + strings.Repeat(" ", n-len(m.good)) }
		for name, body := range map[string]string{
			"unknown field":            `{"PNR":"19791231-1234",` + m.good[1:],
			"unknown field at the end": m.good[:len(m.good)-1] + `,"Extra":null}`,
			"data after it":            m.good + `{}`,
			"two messages":             m.good + m.good,
			"a word after it":          m.good + ` x`,
			"a number after it":        m.good + ` 1`,
			"not JSON":                 "ask",
			"empty":                    "",
			"white space only":         " \n",
			"truncated":                m.good[:len(m.good)/2],
			"an array":                 `[` + m.good + `]`,
			"a string":                 `"` + kind + `"`,
			"a field of another type":  `{"RequestId":1}`,
			"one byte too many":        pad(maxMessageBytes + 1),
			"huge":                     `{"RequestId":"` + strings.Repeat("a", maxMessageBytes) + `"}`,
		} {
			if err := decodeStrict([]byte(body), m.into()); !errors.Is(err, ErrBadMessage) {
				t.Errorf("%s, %s: %v, want ErrBadMessage", kind, name, err)
			}
		}
		for name, body := range map[string]string{
			"as sent":                   m.good,
			"with white space after it": m.good + "\r\n\t ",
			"of the largest size":       pad(maxMessageBytes),
		} {
			if err := decodeStrict([]byte(body), m.into()); err != nil {
				t.Errorf("%s, %s: %v", kind, name, err)
			}
		}
	}

	t.Run("a closing bracket after it", func(t *testing.T) {
		t.Parallel()
		for _, tail := range []string{"}", "]", " ]]]}"} {
			if err := decodeStrict(append(mustJSON(req), tail...), new(AskRequest)); !errors.Is(err, ErrBadMessage) {
				t.Errorf("followed by %q: %v, want ErrBadMessage", tail, err)
			}
		}
	})
}

// TestAskRequestMatchChoicesFraming: the signed form tells every list of
// choices from every other.
func TestAskRequestMatchChoicesFraming(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	for _, pair := range [][2][]string{
		{{"17", "42", "83"}, {"17,42", "83"}},
		{{"17", "42", "83"}, {"17,42,83"}},
		{nil, {""}},
		{{"17"}, {"17", ""}},
	} {
		a, b := fx.request(false), fx.request(false)
		a.MatchChoices, b.MatchChoices = pair[0], pair[1]
		a.sign(fx.asker)
		b.Signature = a.Signature
		if err := b.check(fx.askerPub, fx.homeID, fx.now); !errors.Is(err, ErrBadMessage) {
			t.Errorf("signed with MatchChoices %q, sent with %q: %v, want ErrBadMessage", pair[0], pair[1], err)
		}
	}
}

// TestMessagesNameNoPerson: federation messages name a person's identity
// by its LegalId only, never by the number and country it was found by.
func TestMessagesNameNoPerson(t *testing.T) {
	t.Parallel()
	fx := newMsgFixture(t)
	req := fx.request(true) // every field set, Requester's too
	top := 0
	for _, k := range jsonKeys(t, mustJSON(req)) {
		if !strings.Contains(k, ".") {
			top++
		}
	}
	if top != reflect.TypeFor[AskRequest]().NumField() {
		t.Fatalf("not every field of the request is set: %s", mustJSON(req))
	}
	person := testIdentity(t)
	pnr, country := person.Property(identity.PropPNR), person.Property(identity.PropCountry)
	for name, b := range map[string][]byte{
		"AskRequest":      mustJSON(req),
		"AskRequest form": req.form(),
		"AskReply":        mustJSON(fx.answered(req, notify.Approve, "42")),
		"AskReply form":   fx.answered(req, notify.Approve, "42").form(),
		"the push shown":  fx.answered(req, notify.Approve, "42").Push,
		"cancel":          mustJSON(signedCancel(fx.asker, fx.askerID, fx.homeID, msgRequestID)),
	} {
		if bytes.Contains(b, []byte(pnr)) || bytes.Contains(b, []byte(`"`+country+`"`)) {
			t.Errorf("%s holds the person's number or country: %s", name, b)
		}
		if !strings.HasSuffix(name, "form") {
			for _, k := range jsonKeys(t, b) {
				if bad(k) {
					t.Errorf("%s has a field %s: %s", name, k, b)
				}
			}
			continue
		}
		_, fields, err := identity.ParseSignedForm(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fields {
			if bad(f.Name) {
				t.Errorf("%s signs a field %s", name, f.Name)
			}
		}
	}
}

// bad reports whether a field name could carry a personal number or its
// country.
func bad(name string) bool {
	n := strings.ToUpper(name)
	return strings.Contains(n, "PNR") || strings.Contains(n, "COUNTRY") || strings.Contains(n, "PERSONALNUMBER")
}

// jsonKeys lists the keys of every object in a JSON document, nested ones
// with their parents' (Requester.Name).
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				keys = append(keys, prefix+k)
				walk(prefix+k+".", e)
			}
		case []any:
			for _, e := range v {
				walk(prefix, e)
			}
		}
	}
	walk("", v)
	return keys
}

// FuzzAskRequest: any bytes a peer sends are decoded and checked without
// panicking; every refusal is ErrBadMessage; nothing verifies but what the
// peer signed, and what verifies encodes and verifies again.
func FuzzAskRequest(f *testing.F) {
	fx := newFuzzFixture(f)
	genuine := map[string]bool{}
	for _, match := range []bool{false, true} {
		r := fx.request(match)
		if err := r.check(fx.askerPub, fx.homeID, fx.now); err != nil {
			f.Fatalf("seed: %v", err)
		}
		genuine[string(r.form())] = true
		f.Add(mustJSON(r))
	}
	expired := fx.request(true)
	expired.Expires = fx.now.Add(-time.Second)
	expired.sign(fx.asker)
	f.Add(mustJSON(expired))
	f.Add([]byte(`{"Version":1,"RequestId":"abcdefghijklmnopqrstuvwxyz","From":"","To":"","LegalId":"a@b","Reason":"","Requester":{"Verified":false},"Via":"","Expires":"2026-06-01T12:02:00Z","Signature":null}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"MatchChoices":["1,2",""],"Expires":"0000-01-01T00:00:00+23:59"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r AskRequest
		if err := decodeStrict(b, &r); err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("decode: %v", err)
			}
			return
		}
		_ = r.form()
		err := r.check(fx.askerPub, fx.homeID, fx.now)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("check: %v", err)
			}
			return
		}
		if !genuine[string(r.form())] {
			t.Fatalf("a request the peer did not sign verifies: %s", b)
		}
		var again AskRequest
		if err := decodeStrict(mustJSON(r), &again); err != nil {
			t.Fatalf("a verified request does not decode again: %v", err)
		}
		if err := again.check(fx.askerPub, fx.homeID, fx.now); err != nil || !bytes.Equal(again.form(), r.form()) {
			t.Fatalf("a verified request does not verify again: %v", err)
		}
	})
}

// FuzzAskReply: any bytes a home broker answers are decoded and checked
// without panicking; every refusal is ErrBadMessage; nothing verifies but
// what the home broker countersigned, and what verifies encodes and
// verifies again.
func FuzzAskReply(f *testing.F) {
	fx := newFuzzFixture(f)
	req := fx.request(true)
	genuine := map[string]bool{}
	for _, r := range []AskReply{
		fx.answered(req, notify.Approve, "42"),
		fx.answered(req, notify.Deny, ""),
		fx.answered(req, notify.NotMe, ""),
		fx.unanswered(req, api.CodeTimeout, 0),
		fx.unanswered(req, api.CodeRateLimited, 30),
	} {
		if err := r.check(fx.homePub, req, fx.ref); err != nil {
			f.Fatalf("seed: %v", err)
		}
		genuine[string(r.form())] = true
		f.Add(mustJSON(r))
	}
	lying := fx.answered(req, notify.Deny, "")
	lying.Decision = string(notify.Approve)
	lying.sign(fx.home)
	f.Add(mustJSON(lying))
	f.Add([]byte(`{"Version":1,"RequestId":"abcdefghijklmnopqrstuvwxyz","Code":"approved","Decision":"approve","Push":"e30=","Signature":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r AskReply
		if err := decodeStrict(b, &r); err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("decode: %v", err)
			}
			return
		}
		err := r.check(fx.homePub, req, fx.ref)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("check: %v", err)
			}
			return
		}
		if !genuine[string(r.form())] {
			t.Fatalf("a reply the home broker did not countersign verifies: %s", b)
		}
		var again AskReply
		if err := decodeStrict(mustJSON(r), &again); err != nil {
			t.Fatalf("a verified reply does not decode again: %v", err)
		}
		if err := again.check(fx.homePub, req, fx.ref); err != nil || !bytes.Equal(again.form(), r.form()) {
			t.Fatalf("a verified reply does not verify again: %v", err)
		}
	})
}

// FuzzCancel: any bytes on a peer's cancel subject are read without
// panicking, and withdraw a request only when they are the peer's own
// signed cancel of it.
func FuzzCancel(f *testing.F) {
	fx := newFuzzFixture(f)
	genuine := signedCancel(fx.asker, fx.askerID, fx.homeID, msgRequestID)
	f.Add(mustJSON(genuine))
	f.Add(mustJSON(signedCancel(fx.asker, fx.askerID, fx.homeID, msgOtherRequestID)))
	f.Add(mustJSON(signedCancel(fx.other, fx.askerID, fx.homeID, msgRequestID)))
	f.Add([]byte(`{"RequestId":"abcdefghijklmnopqrstuvwxyz","From":"","Signature":""}`))
	fed := &Federation{me: fx.homeID}
	l, ctxs := servingLink(fx, fx.askerPub, msgRequestID)
	if fed.cancelServed(l, &nats.Msg{Data: mustJSON(genuine)}); ctxs[msgRequestID].Err() == nil {
		f.Fatal("the seed withdraws nothing")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, ctxs := servingLink(fx, fx.askerPub, msgRequestID)
		fed.cancelServed(l, &nats.Msg{Data: b})
		if ctxs[msgRequestID].Err() == nil {
			return
		}
		var c cancelMessage
		if err := decodeStrict(b, &c); err != nil || c.RequestID != msgRequestID || c.From != fx.askerID ||
			!bytes.Equal(c.form(), genuine.form()) || ed25519Verify(fx.askerPub, c.form(), c.Signature) != nil {
			t.Fatalf("withdrawn by a cancel the peer did not sign: %s (%v)", b, err)
		}
	})
}
