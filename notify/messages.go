// Package notify carries MFA requests over NATS: the broker's push to
// devices, their signed answers, withdrawals, and the device-side client.
//
// Subjects never contain personal data or identity IDs: devices are named by
// a hash of their public key (identity.DeviceIDOf), requests by a random ID.
//
//	mfa.push.<device>                       pushes and withdrawals (core NATS; every broker listens too)
//	mfa.sync.<device>                       a device asks every broker for what it missed (request/reply)
//	mfa.answer.<device>.<broker>            a device's signed answers to one broker process (request/reply),
//	                                        and its receipts: a push delivered, a prompt shown (no reply)
//
// Pushes are not stored in NATS: a pending request lives in the memory of
// the broker process that holds it, and dies with it, so that broker is
// also what resends the push to a device that syncs.
package notify

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/identity"
)

// Subject prefixes.
const (
	pushPrefix   = "mfa.push."
	syncPrefix   = "mfa.sync."
	answerPrefix = "mfa.answer."
)

// Message headers on the push subject.
const (
	headerKind      = "Mfa-Kind"
	headerSignature = "Mfa-Signature"
	// headerRequest and headerIssued (Unix nanoseconds) on a push tell the
	// other broker replicas, who hear every push, which request is now the
	// newest for the device, so each ends its older ones for it.
	headerRequest = "Mfa-Request"
	headerIssued  = "Mfa-Issued"
	kindPush      = "push"
	kindWithdraw  = "withdraw"
	// kindReceipt, on an answer subject, is a device saying how far a
	// push has got; without it, the message is an answer.
	kindReceipt = "receipt"
)

// TimeFormat is how times appear in pushes and signed forms: UTC with
// milliseconds, so that the text is the same whoever formats it.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// ProtocolVersion is the version of pushes, withdrawals and answers.
const ProtocolVersion = 2

// PushSubject is where a device receives its pushes.
func PushSubject(deviceID string) string { return pushPrefix + deviceID }

// SyncSubject is where a device asks for pushes it missed.
func SyncSubject(deviceID string) string { return syncPrefix + deviceID }

// AnswerSubject is where a device answers the requests one broker process
// holds; the answer names its request. The subject has no request ID in
// it, so a device publishes on one subject whatever it answers, and the
// NATS server's per-client permission and routing caches stay small
// instead of filling up with a new subject for every answer.
func AnswerSubject(deviceID, brokerInstance string) string {
	return answerPrefix + deviceID + "." + brokerInstance
}

// parseAnswerSubject splits an AnswerSubject; ok is false for anything
// else.
func parseAnswerSubject(subject string) (deviceID, brokerInstance string, ok bool) {
	rest, found := strings.CutPrefix(subject, answerPrefix)
	deviceID, brokerInstance, two := strings.Cut(rest, ".")
	if !found || !two || deviceID == "" || brokerInstance == "" || strings.Contains(brokerInstance, ".") {
		return "", "", false
	}
	return deviceID, brokerInstance, true
}

// Decision is a person's answer.
type Decision string

// The answers a person can give. NotMe is a denial that also reports the
// request as not the person's own doing: a sign someone is trying to get
// in, which the broker answers by blocking that requester for a while.
const (
	Approve Decision = "approve"
	Deny    Decision = "deny"
	NotMe   Decision = "not-me"
)

// ParseDecision accepts exactly "approve", "deny" or "not-me".
func ParseDecision(s string) (Decision, error) {
	switch d := Decision(s); d {
	case Approve, Deny, NotMe:
		return d, nil
	}
	return "", fmt.Errorf("decision %q: want %q, %q or %q", s, Approve, Deny, NotMe)
}

// Requester is who asks, as shown to the person.
type Requester struct {
	// Verified is true when the request was signed by an approved identity;
	// LegalID and Name then describe it. Otherwise only RemoteIP is known.
	Verified bool   `json:"Verified"`
	LegalID  string `json:"LegalId,omitempty"`
	Name     string `json:"Name,omitempty"`
	RemoteIP string `json:"RemoteIp,omitempty"`
	// Via, for a request that came from a federated peer broker, is that
	// broker's domain: the requester asked there, and the broker that
	// holds the person's identity passed the request on.
	Via string `json:"Via,omitempty"`
}

// Push is what a device is asked. Its JSON bytes are signed by the broker,
// shown to the person, and hashed into the device's answer.
type Push struct {
	Version       int       `json:"Version"`
	RequestID     string    `json:"RequestId"`
	LegalID       string    `json:"LegalId"`
	Broker        string    `json:"Broker"`
	Reason        string    `json:"Reason"`
	Requester     Requester `json:"Requester"`
	Issued        string    `json:"Issued"`
	Expires       string    `json:"Expires"`
	AnswerSubject string    `json:"AnswerSubject"`
	// WithdrawHash is the hex SHA-256 of a token only the broker can make
	// and reveals only in this request's withdrawal: the signed push
	// vouches for the withdrawal, which then needs no signature of its own.
	WithdrawHash string `json:"WithdrawHash"`
	// MatchChoices, for an order with number matching, are the numbers the
	// person picks from: one is what the relying party shows them. An
	// approval must name the one picked (Answer.Match), signed in
	// MFA-Answer/2. A device that predates the field approves without a
	// number, and the broker refuses that approval as from an outdated app.
	MatchChoices []string `json:"MatchChoices,omitempty"`
}

// NeedsMatch reports whether the person must pick a number to approve.
func (p Push) NeedsMatch() bool { return len(p.MatchChoices) > 0 }

// ExpiresAt parses Expires.
func (p Push) ExpiresAt() (time.Time, error) { return time.Parse(TimeFormat, p.Expires) }

// Withdrawal tells devices a request is over and its prompt must go. It
// is genuine if its Token hashes to the push's WithdrawHash.
type Withdrawal struct {
	Version   int    `json:"Version"`
	RequestID string `json:"RequestId"`
	Why       string `json:"Why"`
	Token     string `json:"Token"`
}

// withdrawTokenSize is the size of a withdrawal token, in bytes.
const withdrawTokenSize = sha256.Size

// withdrawToken derives a request's withdrawal token from a secret of the
// broker process, and the commitment the push carries. Derived rather than
// stored, the token is at hand for a request the broker no longer holds: a
// device that was away when it ended is told so when it syncs.
func withdrawToken(secret []byte, requestID string) (token, hash string) {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(requestID))
	b := mac.Sum(nil)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(b), hex.EncodeToString(sum[:])
}

// newSecret returns withdrawTokenSize random bytes.
func newSecret() []byte {
	b := make([]byte, withdrawTokenSize)
	rand.Read(b) // never fails: crypto/rand aborts the process instead
	return b
}

// tokenMatches reports whether token is the one hash commits to.
func tokenMatches(token, hash string) bool {
	raw, err := hex.DecodeString(token)
	if err != nil || len(raw) != withdrawTokenSize {
		return false
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]) == hash
}

// Reasons a request is withdrawn.
const (
	WhyAnswered  = "answered"
	WhyTimeout   = "timeout"
	WhyCancelled = "cancelled"
	WhyShutdown  = "shutdown"
	// WhySuperseded: a newer request for the same identity replaced it.
	WhySuperseded = "superseded"
	// WhyEnded: the request ended while the device was away, and the
	// broker that held it no longer knows how.
	WhyEnded = "ended"
)

// Answer is a device's signed decision on one push.
type Answer struct {
	Version   int      `json:"Version"`
	RequestID string   `json:"RequestId"`
	LegalID   string   `json:"LegalId"`
	Decision  Decision `json:"Decision"`
	// Match is the number picked, for a push with MatchChoices; an approval
	// of such a push must have one, a denial may.
	Match     string `json:"Match,omitempty"`
	Signature []byte `json:"Signature"`
}

// AnswerReply is the broker's receipt for an answer.
type AnswerReply struct {
	Accepted bool   `json:"Accepted"`
	Error    string `json:"Error,omitempty"`
	// WrongNumber is set when an approval picked a number other than the
	// one the relying party shows: the answer ended the request, as a
	// denial.
	WrongNumber bool `json:"WrongNumber,omitempty"`
}

// Stage is how far a push has got on a device, which the device tells the
// broker in a receipt.
type Stage string

// The stages a device reports.
const (
	// StageDelivered: the device has the push.
	StageDelivered Stage = "delivered"
	// StageShown: the device shows the prompt to the person.
	StageShown Stage = "shown"
)

// Progress is what a pending request's OnProgress hears: a stage a device
// reached, or Outdated when a device's app could not answer as the
// request needs (an approval without a number to a push with
// MatchChoices).
type Progress struct {
	Stage    Stage
	Outdated bool
}

// receipt is a device's report of a stage, on its answer subject.
type receipt struct {
	RequestID string `json:"RequestId"`
	Stage     Stage  `json:"Stage"`
}

// syncRequest is what a device that asks what it missed sends: the prompts
// it still shows, so that the broker holding each can withdraw those that
// ended meanwhile. An empty body is a sync with nothing held.
type syncRequest struct {
	Held []heldPrompt `json:"Held,omitempty"`
}

// heldPrompt names a prompt a device shows and the broker process that
// holds its request (from the push's AnswerSubject).
type heldPrompt struct {
	RequestID string `json:"RequestId"`
	Broker    string `json:"Broker"`
}

// maxHeld bounds the prompts listed in a sync, to keep it within the small
// payload devices may send. Supersession leaves one pending request per
// identity, so a device rarely shows more than one.
const maxHeld = 32

// syncReceipt is one broker's reply to a sync: how many pushes it resent
// and how many held prompts it withdrew, both on the device's push
// subject. Every broker answers; the device reads the first.
type syncReceipt struct {
	Resent    int `json:"Resent"`
	Withdrawn int `json:"Withdrawn"`
}

// AnswerForm is what a device signs: its decision bound to one request, one
// identity, one expiry, one broker, and the exact push it was shown.
//
//	MFA-Answer/1\n
//	RequestId:<len>:<request id>\n
//	LegalId:<len>:<legal id>\n
//	Broker:<len>:<broker domain>\n
//	Decision:<len>:approve|deny|not-me\n
//	Expires:<len>:<expiry, TimeFormat>\n
//	Push:<len>:<hex SHA-256 of the push bytes>\n
//
// To a push with MatchChoices the answer is MFA-Answer/2, the same with
// the number picked after the decision ("" for a denial without one):
//
//	MFA-Answer/2\n
//	RequestId, LegalId, Broker, Decision as above
//	Match:<len>:<the number picked>\n
//	Expires, Push as above
func AnswerForm(push Push, pushBytes []byte, d Decision, match string) []byte {
	if !push.NeedsMatch() {
		return answerForm("MFA-Answer/1", push, pushBytes, d, nil)
	}
	return answerForm("MFA-Answer/2", push, pushBytes, d, &match)
}

func answerForm(kind string, push Push, pushBytes []byte, d Decision, match *string) []byte {
	sum := sha256.Sum256(pushBytes)
	f := identity.NewSignedForm(kind).
		Add("RequestId", push.RequestID).
		Add("LegalId", push.LegalID).
		Add("Broker", push.Broker).
		Add("Decision", string(d))
	if match != nil {
		f.Add("Match", *match)
	}
	return f.Add("Expires", push.Expires).
		Add("Push", hex.EncodeToString(sum[:])).
		Bytes()
}

// NewMatch draws the number a relying party shows and the choices a
// device offers: distinct two-digit numbers, the right one among
// decoys at a random place.
func NewMatch(choices int) (code string, offered []string) {
	seen := make(map[string]bool, choices)
	for len(offered) < choices {
		n := 10 + randIntN(90)
		s := strconv.Itoa(n)
		if seen[s] {
			continue
		}
		seen[s] = true
		offered = append(offered, s)
	}
	return offered[randIntN(choices)], offered
}

// MatchChoices is how many numbers a device offers: the right one and two
// decoys, as the common authenticator apps do. A person guessing picks
// right one time in three, and a wrong pick ends the request.
const MatchChoices = 3

// NewRequestID returns a fresh random request ID: 128 bits as 26
// characters of lower-case base32.
func NewRequestID() string { return strings.ToLower(rand.Text()) }

// IsRequestID reports whether s has the form of a request ID.
func IsRequestID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// NewInstanceID names one running broker process in answer subjects.
func NewInstanceID() string { return strings.ToLower(rand.Text()[:16]) }

// signMessage signs a push or withdrawal body with the broker's key.
func signMessage(key ed25519.PrivateKey, kind string, body []byte) []byte {
	return ed25519.Sign(key, messageForm(kind, body))
}

// messageForm binds the message kind into the broker's signature, so a
// signed withdrawal can never pass for a push or the reverse.
func messageForm(kind string, body []byte) []byte {
	return identity.NewSignedForm("MFA-Broker-Message/1").Add("Kind", kind).Add("Body", string(body)).Bytes()
}

func verifyMessage(pub ed25519.PublicKey, kind string, body, sig []byte) error {
	return identity.Verify(pub, messageForm(kind, body), sig)
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own message structs are marshalled; they always encode.
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	return b
}

func encodeSignature(sig []byte) string { return base64.StdEncoding.EncodeToString(sig) }

func decodeSignature(s string) ([]byte, error) {
	sig, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signature header: %w", err)
	}
	return sig, nil
}

// randIntN is a uniform random number in [0, n) from crypto/rand: the
// number a relying party shows must not be predictable.
func randIntN(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err) // crypto/rand does not fail; it aborts the process instead
	}
	return int(v.Int64())
}
