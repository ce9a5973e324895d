package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/legalmfa/mfa/api"
)

// SignedAnswer is a device's signed answer, read from Evidence.SignedData:
// the MFA-Answer/1 form, or MFA-Answer/2 for an order with number
// matching (see the README's "Signed forms").
type SignedAnswer struct {
	// Version is 1 or 2.
	Version   int
	RequestID string
	// LegalID is the identity whose key signed.
	LegalID string
	// Broker is the domain of the broker that asked.
	Broker string
	// Decision is approve, deny or not-me.
	Decision string
	// Match is the number the person picked (version 2 only; empty for a
	// denial without one).
	Match string
	// Expires is when the request expired, as signed.
	Expires string
	// Push is the hex SHA-256 of the push the device showed.
	Push string
}

// The lines of the answer forms, in order.
var (
	answerFieldsV1 = []string{"RequestId", "LegalId", "Broker", "Decision", "Expires", "Push"}
	answerFieldsV2 = []string{"RequestId", "LegalId", "Broker", "Decision", "Match", "Expires", "Push"}
)

// maxFormValue bounds a value of an answer form: every real one is short.
const maxFormValue = 4096

// ParseSignedAnswer reads an MFA-Answer/1 or MFA-Answer/2 form strictly:
// its header line, then exactly its fields in their order, each
// <name>:<byte length>:<value>\n with the length in canonical decimal,
// nothing after the last. Decision must be approve, deny or not-me, Match
// empty or decimal digits, Expires an RFC 3339 time and Push 64 lower-case
// hex digits. A form that parses is the only byte string that gives its
// values. It checks no signature: VerifyEvidence does.
func ParseSignedAnswer(form []byte) (*SignedAnswer, error) {
	kind, rest, ok := bytes.Cut(form, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: the signed answer has no header line", ErrBadEvidence)
	}
	a := &SignedAnswer{}
	var names []string
	switch string(kind) {
	case "MFA-Answer/1":
		a.Version, names = 1, answerFieldsV1
	case "MFA-Answer/2":
		a.Version, names = 2, answerFieldsV2
	default:
		return nil, fmt.Errorf("%w: the signed data is not an MFA-Answer/1 or /2 form", ErrBadEvidence)
	}
	values := make([]string, len(names))
	for i, name := range names {
		var err error
		values[i], rest, err = formLine(rest, name)
		if err != nil {
			return nil, err
		}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: the signed answer has more after its last field", ErrBadEvidence)
	}
	field := func(name string) string { return values[slices.Index(names, name)] }
	a.RequestID, a.LegalID, a.Broker = field("RequestId"), field("LegalId"), field("Broker")
	a.Decision, a.Expires, a.Push = field("Decision"), field("Expires"), field("Push")
	if a.Version == 2 {
		a.Match = field("Match")
	}
	switch {
	case a.RequestID == "" || a.LegalID == "" || a.Broker == "":
		return nil, fmt.Errorf("%w: the signed answer has an empty RequestId, LegalId or Broker", ErrBadEvidence)
	case a.Decision != "approve" && a.Decision != "deny" && a.Decision != "not-me":
		return nil, fmt.Errorf("%w: the signed answer's Decision is not approve, deny or not-me", ErrBadEvidence)
	case !isDigits(a.Match):
		return nil, fmt.Errorf("%w: the signed answer's Match is not a number", ErrBadEvidence)
	case !isLowerHex(a.Push, sha256.Size*2):
		return nil, fmt.Errorf("%w: the signed answer's Push is not a hex SHA-256", ErrBadEvidence)
	}
	if _, err := time.Parse(time.RFC3339Nano, a.Expires); err != nil {
		return nil, fmt.Errorf("%w: the signed answer's Expires is not an RFC 3339 time", ErrBadEvidence)
	}
	return a, nil
}

// formLine reads one "<name>:<len>:<value>\n" line of the named field.
func formLine(b []byte, name string) (value string, rest []byte, err error) {
	bad := func(what string) error {
		return fmt.Errorf("%w: the signed answer's %s line %s", ErrBadEvidence, name, what)
	}
	after, ok := bytes.CutPrefix(b, []byte(name+":"))
	if !ok {
		return "", nil, bad("is missing or out of order")
	}
	lenText, after, ok := bytes.Cut(after, []byte(":"))
	if !ok || len(lenText) == 0 || len(lenText) > 4 {
		return "", nil, bad("has no length")
	}
	n, err := strconv.Atoi(string(lenText))
	// Only the canonical spelling counts: one form, one byte string.
	if err != nil || n < 0 || n > maxFormValue || string(lenText) != strconv.Itoa(n) {
		return "", nil, bad("has a bad length")
	}
	if n >= len(after) || after[n] != '\n' {
		return "", nil, bad("does not end where its length says")
	}
	return string(after[:n]), after[n+1:], nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Expectation is what evidence must prove.
type Expectation struct {
	// RequestID is the request the relying party asked (Result.RequestID,
	// Order.RequestID). Required.
	RequestID string
	// Decision is the decision to prove: approve (the default), deny or
	// not-me.
	Decision string
	// Reason, when set, must be the Reason of the push the person was
	// shown (line breaks compared as LF).
	Reason string
	// Match, when set, is the number the relying party showed its user
	// (Order.NumberMatch): the person must have picked it, under an
	// MFA-Answer/2 signature.
	Match string
	// PublicKey, when set, is the key the relying party trusts for the
	// person's identity: Evidence.PublicKey must be it.
	PublicKey ed25519.PublicKey
	// LegalID and Broker, when set, must be the signer's identity and the
	// broker's domain.
	LegalID string
	Broker  string
}

// pushFields are the parts of a push the evidence is checked against.
type pushFields struct {
	RequestID    string   `json:"RequestId"`
	LegalID      string   `json:"LegalId"`
	Broker       string   `json:"Broker"`
	Reason       string   `json:"Reason"`
	Expires      string   `json:"Expires"`
	MatchChoices []string `json:"MatchChoices"`
}

// VerifyEvidence checks offline that ev proves want, as the README's
// "Verifying the evidence offline" does by hand: the Ed25519 Signature
// verifies over SignedData with PublicKey; SignedData is an MFA-Answer/1
// (or, with number matching, MFA-Answer/2) form naming want.RequestID, the
// Decision (which ev.Decision and want.Decision also say), ev.LegalID,
// and the hex SHA-256 of ev.Push; an /2 form's Match is ev.Match (and
// want.Match, when given), an /1 form has no Match; and the Push JSON
// names the same request, identity, broker and expiry, has MatchChoices
// exactly when the form is /2, and holds want.Reason when given.
//
// It fetches nothing. PublicKey comes with the evidence, so a signature
// that verifies proves only that whoever holds that key signed: the
// caller must trust the key, by pinning it (want.PublicKey) or by
// fetching the identity from PublicKeyUrl over HTTPS from a broker it
// trusts and comparing (GET /Identities/{id}: Algorithm, PublicKey, State).
func VerifyEvidence(ev api.Evidence, want Expectation) (*SignedAnswer, error) {
	fail := func(format string, a ...any) (*SignedAnswer, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadEvidence}, a...)...)
	}
	decision := want.Decision
	if decision == "" {
		decision = "approve"
	}
	switch {
	case want.RequestID == "":
		return fail("the Expectation names no RequestID")
	case ev.Algorithm != "Ed25519":
		return fail("algorithm %q, want Ed25519", ev.Algorithm)
	case len(ev.PublicKey) != ed25519.PublicKeySize:
		return fail("the public key has %d bytes, an Ed25519 key %d", len(ev.PublicKey), ed25519.PublicKeySize)
	case want.PublicKey != nil && !bytes.Equal(want.PublicKey, ev.PublicKey):
		return fail("the public key is not the one expected")
	case len(ev.Signature) != ed25519.SignatureSize || !ed25519.Verify(ed25519.PublicKey(ev.PublicKey), ev.SignedData, ev.Signature):
		return fail("the signature does not verify over SignedData with PublicKey")
	}
	a, err := ParseSignedAnswer(ev.SignedData)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(ev.Push)
	switch {
	case a.RequestID != want.RequestID:
		return fail("the device signed request %q, not %q", a.RequestID, want.RequestID)
	case a.Decision != decision || ev.Decision != decision:
		return fail("the decision signed is %q (evidence says %q), not %q", a.Decision, ev.Decision, decision)
	case a.LegalID != ev.LegalID:
		return fail("the signed answer names identity %q, the evidence %q", a.LegalID, ev.LegalID)
	case want.LegalID != "" && a.LegalID != want.LegalID:
		return fail("signed by identity %q, not %q", a.LegalID, want.LegalID)
	case want.Broker != "" && a.Broker != want.Broker:
		return fail("asked by broker %q, not %q", a.Broker, want.Broker)
	case a.Push != hex.EncodeToString(sum[:]):
		return fail("Push is not the push the device signed for")
	case a.Version == 1 && ev.Match != "":
		return fail("the evidence has a Match its MFA-Answer/1 signature does not cover")
	case a.Version == 1 && want.Match != "":
		return fail("number matching was expected, but the answer is MFA-Answer/1")
	case a.Version == 2 && a.Match != ev.Match:
		return fail("the signed Match is %q, the evidence's %q", a.Match, ev.Match)
	case a.Version == 2 && want.Match != "" && a.Match != want.Match:
		return fail("the person picked %q, not the %q shown", a.Match, want.Match)
	}
	var push pushFields
	if err := json.Unmarshal(ev.Push, &push); err != nil {
		return fail("Push is not a push's JSON")
	}
	switch {
	case push.RequestID != a.RequestID || push.LegalID != a.LegalID || push.Broker != a.Broker || push.Expires != a.Expires:
		return fail("the push is not for the request, identity, broker and expiry the answer names")
	case (len(push.MatchChoices) > 0) != (a.Version == 2):
		return fail("the push's number choices do not go with an MFA-Answer/%d signature", a.Version)
	case a.Version == 2 && a.Decision == "approve" && !slices.Contains(push.MatchChoices, a.Match):
		return fail("the number picked was not among the push's choices")
	case want.Reason != "" && push.Reason != normaliseBreaks(want.Reason):
		return fail("the person was shown another Reason")
	}
	return a, nil
}

// Verify checks the approval's evidence with VerifyEvidence, taking the
// RequestID from the result and, for an order with number matching, Match
// from its NumberMatch, when want leaves them empty. Give want.Reason, and
// pin want.PublicKey where you can.
func (r *Result) Verify(want Expectation) (*SignedAnswer, error) {
	if r.Evidence == nil {
		return nil, fmt.Errorf("%w: the approval carries no evidence", ErrBadEvidence)
	}
	if want.RequestID == "" {
		want.RequestID = r.RequestID
	}
	if want.Match == "" && r.Order != nil {
		want.Match = r.Order.NumberMatch
	}
	return VerifyEvidence(*r.Evidence, want)
}
