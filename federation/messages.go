package federation

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// Subjects in a peer's account. Each names the broker it is for, since
// both brokers' connections share the account's subjects across the link.
//
//	mfa.fed.ask.<home>      a peer asks the home broker to ask one of its people (request/reply)
//	mfa.fed.cancel.<home>   the asking peer's caller went away: withdraw
//	mfa.fed.ping.<broker>   is the link up? (request/reply; used on an external NATS server)
func askSubject(home string) string    { return "mfa.fed.ask." + home }
func cancelSubject(home string) string { return "mfa.fed.cancel." + home }
func pingSubject(broker string) string { return "mfa.fed.ping." + broker }

// Errors of the federation's messages.
var (
	// ErrBadMessage: a federation message that is malformed, not signed by
	// the peer it came from, for another broker, expired or replayed. It
	// changes nothing.
	ErrBadMessage = errors.New("invalid federation message")
	// ErrPeerUnavailable: the home broker could not be reached, or its
	// link dropped while it was asked.
	ErrPeerUnavailable = errors.New("the peer broker is unavailable")
)

// ProtocolVersion is the version of the federation's messages.
const ProtocolVersion = 1

// MaxAskLifetime bounds how far ahead an ask may expire. The home broker
// remembers an ask's ID until then, to refuse it replayed; the bound keeps
// that memory small whatever a peer sends.
const MaxAskLifetime = time.Hour

// maxMessageBytes bounds a federation message: an ask carries a Reason of
// at most 2,000 characters; a reply, the device's evidence.
const maxMessageBytes = 32 << 10

// AskRequest is what a broker sends the home broker of an identity it was
// asked about: the request as it verified it, naming the identity, never
// the person's number. It is signed by the asking broker's key.
type AskRequest struct {
	Version   int    `json:"Version"`
	RequestID string `json:"RequestId"`
	// From asks To, the home broker of LegalID.
	From      string           `json:"From"`
	To        string           `json:"To"`
	LegalID   string           `json:"LegalId"`
	Reason    string           `json:"Reason"`
	Requester notify.Requester `json:"Requester"`
	// Via is the asking broker's domain, shown to the person.
	Via     string    `json:"Via"`
	Expires time.Time `json:"Expires"`
	// MatchChoices and Match, for an order with number matching.
	MatchChoices []string `json:"MatchChoices,omitempty"`
	Match        string   `json:"Match,omitempty"`
	Signature    []byte   `json:"Signature"`
}

func (r AskRequest) form() []byte {
	f := identity.NewSignedForm("MFA-Federation-Ask/1").
		Add("Version", strconv.Itoa(r.Version)).
		Add("RequestId", r.RequestID).
		Add("From", r.From).
		Add("To", r.To).
		Add("LegalId", r.LegalID).
		Add("Reason", r.Reason).
		Add("Requester", string(mustJSON(r.Requester))).
		Add("Via", r.Via).
		Add("Expires", r.Expires.UTC().Format(time.RFC3339Nano)).
		// As JSON: joined, ["1,2"] and ["1","2"] would sign alike.
		Add("MatchChoices", string(mustJSON(r.MatchChoices))).
		Add("Match", r.Match)
	return f.Bytes()
}

// sign signs the request as From.
func (r *AskRequest) sign(key ed25519.PrivateKey) { r.Signature = ed25519.Sign(key, r.form()) }

// check verifies a request this broker (me) received from peer: signed
// by it, from it, for this broker, current, well formed.
func (r AskRequest) check(peer ed25519.PublicKey, me string, now time.Time) error {
	switch {
	case r.Version != ProtocolVersion:
		return fmt.Errorf("%w: version %d", ErrBadMessage, r.Version)
	case r.From != api.PeerID(peer):
		return fmt.Errorf("%w: it says it is from %s", ErrBadMessage, r.From)
	case r.To != me:
		return fmt.Errorf("%w: it is for %s", ErrBadMessage, r.To)
	case !notify.IsRequestID(r.RequestID):
		return fmt.Errorf("%w: malformed request ID", ErrBadMessage)
	case identity.ValidateID(r.LegalID) != nil:
		return fmt.Errorf("%w: malformed LegalId", ErrBadMessage)
	case !now.Before(r.Expires):
		return fmt.Errorf("%w: expired at %s", ErrBadMessage, r.Expires.UTC().Format(time.RFC3339))
	case r.Expires.After(now.Add(MaxAskLifetime)):
		return fmt.Errorf("%w: it expires more than %v ahead", ErrBadMessage, MaxAskLifetime)
	}
	if err := identity.Verify(peer, r.form(), r.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return nil
}

// AskReply is the home broker's answer: how the request ended there, with
// the device's signed answer when a device answered, countersigned by the
// home broker.
type AskReply struct {
	Version   int      `json:"Version"`
	RequestID string   `json:"RequestId"`
	From      string   `json:"From"`
	To        string   `json:"To"`
	Code      api.Code `json:"Code"`
	Message   string   `json:"Message,omitempty"`
	// RetryAfter, in seconds, as the home broker would tell a caller.
	RetryAfter int `json:"RetryAfter,omitempty"`
	// The device's answer, when one decided: what it signed, its
	// signature, the push it was shown, the number it picked.
	LegalID         string `json:"LegalId,omitempty"`
	Decision        string `json:"Decision,omitempty"`
	SignedData      []byte `json:"SignedData,omitempty"`
	DeviceSignature []byte `json:"DeviceSignature,omitempty"`
	Push            []byte `json:"Push,omitempty"`
	Match           string `json:"Match,omitempty"`
	Signature       []byte `json:"Signature"`
}

func (r AskReply) form() []byte {
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	return identity.NewSignedForm("MFA-Federation-Reply/1").
		Add("Version", strconv.Itoa(r.Version)).
		Add("RequestId", r.RequestID).
		Add("From", r.From).
		Add("To", r.To).
		Add("Code", string(r.Code)).
		Add("Message", r.Message).
		Add("RetryAfter", strconv.Itoa(r.RetryAfter)).
		Add("LegalId", r.LegalID).
		Add("Decision", r.Decision).
		Add("SignedData", sum(r.SignedData)).
		Add("DeviceSignature", hex.EncodeToString(r.DeviceSignature)).
		Add("Push", sum(r.Push)).
		Add("Match", r.Match).
		Bytes()
}

func (r *AskReply) sign(key ed25519.PrivateKey) { r.Signature = ed25519.Sign(key, r.form()) }

// check verifies a reply to req from its home broker, and, when a device
// answered, the device's signature with the identity's key from the home
// broker's reference, over an answer form that names this request.
func (r AskReply) check(home ed25519.PublicKey, req AskRequest, ref Reference) error {
	switch {
	case r.Version != ProtocolVersion || r.RequestID != req.RequestID || r.From != req.To || r.To != req.From:
		return fmt.Errorf("%w: a reply to another request, or from another broker", ErrBadMessage)
	}
	if err := identity.Verify(home, r.form(), r.Signature); err != nil {
		return fmt.Errorf("%w: the home broker's countersignature: %w", ErrBadMessage, err)
	}
	if r.Decision == "" {
		if r.SignedData != nil || r.DeviceSignature != nil {
			return fmt.Errorf("%w: evidence without a decision", ErrBadMessage)
		}
		return nil
	}
	if r.LegalID != req.LegalID || r.LegalID != ref.LegalID {
		return fmt.Errorf("%w: answered by another identity", ErrBadMessage)
	}
	if err := identity.Verify(ref.PublicKey, r.SignedData, r.DeviceSignature); err != nil {
		return fmt.Errorf("%w: the device's signature: %w", ErrBadMessage, err)
	}
	var push notify.Push
	if err := json.Unmarshal(r.Push, &push); err != nil || push.RequestID != req.RequestID || push.LegalID != req.LegalID {
		return fmt.Errorf("%w: the push shown is not this request's", ErrBadMessage)
	}
	// What the person was shown is what was asked: the evidence proves
	// it, number matching included. Via is the home broker's to say.
	shownBy, askedBy := push.Requester, req.Requester
	shownBy.Via, askedBy.Via = "", ""
	if push.Reason != req.Reason || shownBy != askedBy || !slices.Equal(push.MatchChoices, req.MatchChoices) {
		return fmt.Errorf("%w: the push shown is not what was asked", ErrBadMessage)
	}
	if len(req.MatchChoices) > 0 && !slices.Contains(req.MatchChoices, r.Match) && r.Decision == string(notify.Approve) {
		return fmt.Errorf("%w: an approval without one of the numbers offered", ErrBadMessage)
	}
	decision, err := notify.ParseDecision(r.Decision)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if string(notify.AnswerForm(push, r.Push, decision, r.Match)) != string(r.SignedData) {
		return fmt.Errorf("%w: the device signed something other than its answer to this push", ErrBadMessage)
	}
	return nil
}

// cancelMessage asks the home broker To to withdraw a request; one person
// may have identities at several, each asked under the same RequestId.
type cancelMessage struct {
	RequestID string `json:"RequestId"`
	From      string `json:"From"`
	To        string `json:"To"`
	Signature []byte `json:"Signature"`
}

func (c cancelMessage) form() []byte {
	return identity.NewSignedForm("MFA-Federation-Cancel/1").Add("RequestId", c.RequestID).Add("From", c.From).Add("To", c.To).Bytes()
}

func decodeStrict(b []byte, v any) error {
	if len(b) > maxMessageBytes {
		return fmt.Errorf("%w: %d bytes", ErrBadMessage, len(b))
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	// Not dec.More: it is false before a stray "}" or "]".
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the message", ErrBadMessage)
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return b
}
