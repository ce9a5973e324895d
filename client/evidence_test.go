package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/client"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// realApproval asks a person of the shared broker, who approves, and
// returns the evidence and what the relying party expects of it.
func realApproval(t *testing.T) (api.Evidence, client.Expectation) {
	t.Helper()
	b := sharedBroker(t)
	pnr, _ := b.person(t, notifytest.Always(notify.Approve))
	req := request(pnr)
	res, err := b.client(t).MFA(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return *res.Evidence, client.Expectation{RequestID: res.RequestID, Reason: req.Reason, PublicKey: ed25519.PublicKey(res.Evidence.PublicKey)}
}

// syntheticMatch is the evidence of an approval with number matching,
// made as a device makes it (notify.AnswerForm, MFA-Answer/2), and what
// the relying party expects of it.
func syntheticMatch(t *testing.T) (api.Evidence, client.Expectation) {
	t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	push := notify.Push{
		Version: 1, RequestID: "kxxcrsohdre66ox3wj4wemjj4v", LegalID: "1d6de039@legal.client.test", Broker: "client.test",
		Reason: "Log in to **Example Bank**", Issued: "2026-11-22T13:30:02.752Z", Expires: "2026-11-22T13:30:32.752Z",
		AnswerSubject: "mfa.answer.x.y", WithdrawHash: strings.Repeat("ab", 32), MatchChoices: []string{"17", "42", "93"},
	}
	raw, _ := json.Marshal(push)
	signed := notify.AnswerForm(push, raw, notify.Approve, "42")
	ev := api.Evidence{
		LegalID: push.LegalID, Decision: "approve", Algorithm: "Ed25519", PublicKey: key.Public().(ed25519.PublicKey),
		PublicKeyURL: "http://client.test/Identities/" + push.LegalID, SignedData: signed,
		Signature: ed25519.Sign(key, signed), Push: raw, Match: "42",
	}
	return ev, client.Expectation{RequestID: push.RequestID, Reason: push.Reason, Match: "42"}
}

func clone(ev api.Evidence) api.Evidence {
	ev.PublicKey = bytes.Clone(ev.PublicKey)
	ev.SignedData = bytes.Clone(ev.SignedData)
	ev.Signature = bytes.Clone(ev.Signature)
	ev.Push = bytes.Clone(ev.Push)
	return ev
}

// TestVerifyEvidenceTampering: evidence verifies as it came, and every
// change to it fails: each byte of SignedData, Signature, Push and
// PublicKey changed, each cut short or lengthened, the Match, the
// Decision, the identity, and each expectation it does not meet. For a
// real approval from the broker (MFA-Answer/1) and one with number
// matching (MFA-Answer/2).
func TestVerifyEvidenceTampering(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		make func(*testing.T) (api.Evidence, client.Expectation)
	}{
		{"real approval", realApproval},
		{"number matching", syntheticMatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ev, want := c.make(t)
			a, err := client.VerifyEvidence(ev, want)
			if err != nil {
				t.Fatalf("untouched evidence: %v", err)
			}
			if a.RequestID != want.RequestID || a.Decision != "approve" || a.LegalID != ev.LegalID || a.Match != ev.Match {
				t.Fatalf("signed answer %+v", a)
			}
			fails := func(what string, ev api.Evidence, want client.Expectation) {
				t.Helper()
				if _, err := client.VerifyEvidence(ev, want); !errors.Is(err, client.ErrBadEvidence) {
					t.Errorf("%s: verified (%v)", what, err)
				}
			}
			for _, f := range []struct {
				name string
				get  func(*api.Evidence) *[]byte
			}{
				{"SignedData", func(e *api.Evidence) *[]byte { return &e.SignedData }},
				{"Signature", func(e *api.Evidence) *[]byte { return &e.Signature }},
				{"Push", func(e *api.Evidence) *[]byte { return &e.Push }},
				{"PublicKey", func(e *api.Evidence) *[]byte { return &e.PublicKey }},
			} {
				n := len(*f.get(&ev))
				for i := range n {
					for _, x := range []byte{0x01, 0x80} {
						e := clone(ev)
						(*f.get(&e))[i] ^= x
						w := want
						w.PublicKey = nil // a changed key is caught by the signature too
						fails(f.name+" byte changed", e, w)
					}
				}
				for cut := range n {
					e := clone(ev)
					*f.get(&e) = (*f.get(&e))[:cut]
					fails(f.name+" cut short", e, want)
				}
				e := clone(ev)
				*f.get(&e) = append(*f.get(&e), '\n')
				fails(f.name+" lengthened", e, want)
			}
			for _, m := range []string{"", "43", "042", "17", "x"} {
				if m == ev.Match {
					continue
				}
				e := clone(ev)
				e.Match = m
				fails("Match "+m, e, want)
			}
			e := clone(ev)
			e.Decision = "deny"
			fails("Decision changed", e, want)
			e = clone(ev)
			e.LegalID += "x"
			fails("LegalId changed", e, want)
			e = clone(ev)
			e.Algorithm = "RSA"
			fails("Algorithm changed", e, want)

			other, _ := identity.GenerateKey()
			for _, w := range []struct {
				name string
				edit func(*client.Expectation)
			}{
				{"another request", func(w *client.Expectation) { w.RequestID = "abcdefghijklmnopqrstuvwxyz" }},
				{"no request", func(w *client.Expectation) { w.RequestID = "" }},
				{"another reason", func(w *client.Expectation) { w.Reason += "!" }},
				{"a denial", func(w *client.Expectation) { w.Decision = "deny" }},
				{"another number shown", func(w *client.Expectation) { w.Match = "99" }},
				{"another pinned key", func(w *client.Expectation) { w.PublicKey = other.Public().(ed25519.PublicKey) }},
				{"another identity", func(w *client.Expectation) { w.LegalID = "someone@legal.client.test" }},
				{"another broker", func(w *client.Expectation) { w.Broker = "evil.test" }},
			} {
				ww := want
				w.edit(&ww)
				fails("expecting "+w.name, ev, ww)
			}
		})
	}
}

// TestVerifyEvidenceSignedForgery: a forger who signs with a key of their
// own makes evidence that verifies only if the relying party does not pin
// the key, which is why Expectation.PublicKey (or the key from
// PublicKeyUrl) matters; a form that names another request is refused
// even with a good signature.
func TestVerifyEvidenceSignedForgery(t *testing.T) {
	t.Parallel()
	ev, want := syntheticMatch(t)
	real := ed25519.PublicKey(bytes.Clone(ev.PublicKey))
	forger, _ := identity.GenerateKey()
	e := clone(ev)
	e.PublicKey = forger.Public().(ed25519.PublicKey)
	e.Signature = ed25519.Sign(forger, e.SignedData)
	if _, err := client.VerifyEvidence(e, want); err != nil {
		t.Fatalf("self-consistent forgery without a pinned key: %v", err)
	}
	want.PublicKey = real
	if _, err := client.VerifyEvidence(e, want); !errors.Is(err, client.ErrBadEvidence) {
		t.Fatalf("forgery with a pinned key verified: %v", err)
	}

	// A good signature over a form for another request.
	var push notify.Push
	json.Unmarshal(ev.Push, &push)
	push.RequestID = "otherotherotherotherotherz"
	raw, _ := json.Marshal(push)
	e = clone(ev)
	e.Push, e.SignedData = raw, notify.AnswerForm(push, raw, notify.Approve, "42")
	e.PublicKey, e.Signature = forger.Public().(ed25519.PublicKey), ed25519.Sign(forger, e.SignedData)
	want.PublicKey = nil
	if _, err := client.VerifyEvidence(e, want); !errors.Is(err, client.ErrBadEvidence) {
		t.Fatalf("evidence for another request verified: %v", err)
	}
}

// answerForm builds a form line by line, as identity.SignedForm does.
func answerForm(kind string, kv ...string) []byte {
	f := identity.NewSignedForm(kind)
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f.Bytes()
}

var pushHash = func() string { s := sha256.Sum256([]byte("push")); return hex.EncodeToString(s[:]) }()

func validForm(version int) []byte {
	if version == 2 {
		return answerForm("MFA-Answer/2", "RequestId", "r", "LegalId", "l", "Broker", "b", "Decision", "approve", "Match", "42", "Expires", "2026-11-22T13:30:32.752Z", "Push", pushHash)
	}
	return answerForm("MFA-Answer/1", "RequestId", "r", "LegalId", "l", "Broker", "b", "Decision", "approve", "Expires", "2026-11-22T13:30:32.752Z", "Push", pushHash)
}

// TestParseSignedAnswer: the answer forms parse strictly: exactly their
// fields in their order, canonical lengths, nothing else.
func TestParseSignedAnswer(t *testing.T) {
	t.Parallel()
	for _, v := range []int{1, 2} {
		a, err := client.ParseSignedAnswer(validForm(v))
		if err != nil || a.Version != v || a.RequestID != "r" || a.Decision != "approve" || a.Push != pushHash {
			t.Fatalf("valid /%d: %+v, %v", v, a, err)
		}
		if v == 2 && a.Match != "42" {
			t.Errorf("Match %q", a.Match)
		}
	}
	ok1 := string(validForm(1))
	for _, c := range []struct{ name, form string }{
		{"empty", ""},
		{"no header line", "MFA-Answer/1"},
		{"another kind", strings.Replace(ok1, "MFA-Answer/1", "MFA-Request/1", 1)},
		{"/3", strings.Replace(ok1, "MFA-Answer/1", "MFA-Answer/3", 1)},
		{"CRLF header", strings.Replace(ok1, "MFA-Answer/1\n", "MFA-Answer/1\r\n", 1)},
		{"leading zero length", strings.Replace(ok1, "RequestId:1:r", "RequestId:01:r", 1)},
		{"plus length", strings.Replace(ok1, "RequestId:1:r", "RequestId:+1:r", 1)},
		{"length too long", strings.Replace(ok1, "RequestId:1:r", "RequestId:2:r", 1)},
		{"length too short", strings.Replace(ok1, "Broker:1:b", "Broker:0:b", 1)},
		{"huge length", strings.Replace(ok1, "Broker:1:b", "Broker:99999999999999999999:b", 1)},
		{"no length", strings.Replace(ok1, "Broker:1:b", "Broker::b", 1)},
		{"empty value", strings.Replace(ok1, "Broker:1:b", "Broker:0:", 1)},
		{"trailing bytes", ok1 + "x"},
		{"extra field", ok1 + "Match:2:42\n"},
		{"missing field", strings.Replace(ok1, "Broker:1:b\n", "", 1)},
		{"renamed field", strings.Replace(ok1, "Broker:1:b", "broker:1:b", 1)},
		{"swapped fields", strings.Replace(strings.Replace(ok1, "LegalId:1:l\n", "", 1), "Broker:1:b\n", "Broker:1:b\nLegalId:1:l\n", 1)},
		{"/1 with Match", string(answerForm("MFA-Answer/1", "RequestId", "r", "LegalId", "l", "Broker", "b", "Decision", "approve", "Match", "42", "Expires", "2026-11-22T13:30:32.752Z", "Push", pushHash))},
		{"/2 without Match", strings.Replace(ok1, "MFA-Answer/1", "MFA-Answer/2", 1)},
		{"another decision", strings.Replace(ok1, "Decision:7:approve", "Decision:7:APPROVE", 1)},
		{"match not digits", strings.Replace(string(validForm(2)), "Match:2:42", "Match:2:4x", 1)},
		{"expires not a time", strings.Replace(ok1, "2026-11-22T13:30:32.752Z", "2026-11-22 13:30:32.752Z", 1)},
		{"push upper-case hex", strings.Replace(ok1, pushHash, strings.ToUpper(pushHash), 1)},
		{"push short", strings.Replace(ok1, "Push:64:"+pushHash, "Push:62:"+pushHash[:62], 1)},
		{"no final newline", strings.TrimSuffix(ok1, "\n")},
	} {
		if a, err := client.ParseSignedAnswer([]byte(c.form)); !errors.Is(err, client.ErrBadEvidence) {
			t.Errorf("%s: parsed %+v (%v)", c.name, a, err)
		}
	}
}

// FuzzParseSignedAnswer: the parser never panics, and what it accepts is
// canonical: the form made again from the values is the input, byte for
// byte (so one signed byte string has one meaning).
func FuzzParseSignedAnswer(f *testing.F) {
	f.Add(validForm(1))
	f.Add(validForm(2))
	f.Add([]byte("MFA-Answer/2\nRequestId:0:\n"))
	f.Add([]byte("MFA-Answer/1\nRequestId:01:r\n"))
	f.Fuzz(func(t *testing.T, form []byte) {
		a, err := client.ParseSignedAnswer(form)
		if err != nil {
			if !errors.Is(err, client.ErrBadEvidence) || a != nil {
				t.Fatalf("error %v with %+v", err, a)
			}
			return
		}
		kv := []string{"RequestId", a.RequestID, "LegalId", a.LegalID, "Broker", a.Broker, "Decision", a.Decision}
		if a.Version == 2 {
			kv = append(kv, "Match", a.Match)
		}
		kv = append(kv, "Expires", a.Expires, "Push", a.Push)
		again := answerForm("MFA-Answer/"+string(rune('0'+a.Version)), kv...)
		if !bytes.Equal(again, form) {
			t.Fatalf("accepted a non-canonical form:\n%q\nis\n%q", form, again)
		}
	})
}
