package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"time"

	"github.com/legalmfa/mfa/identity"
)

// Order is where an order stands, in the answers of /Orders.
type Order struct {
	// Ref names the order in /Orders/{Ref}. It is a bearer secret: whoever
	// holds it may collect and cancel an unsigned order.
	Ref string `json:"Ref"`
	// Expires is when the order ends unanswered, RFC 3339 in UTC.
	Expires string `json:"Expires"`
	// Hint says how far a pending order has got; absent once it ended.
	Hint Hint `json:"Hint,omitempty"`
	// NumberMatch is the number the relying party shows its user, who must
	// pick it on the device; absent without number matching.
	NumberMatch string `json:"NumberMatch,omitempty"`
}

// Hint tells how far a pending order has got, after BankID's hint codes.
type Hint string

// The hints of a pending order, in the order they are reached. A hint
// never goes back, except that HintAppOutdated replaces any hint and a
// later HintShown (another device) replaces it in turn.
const (
	// HintPushed: the push went out; no device has said it has it (it may
	// be offline: it gets the push when it connects).
	HintPushed Hint = "pushed"
	// HintDelivered: a device has the push.
	HintDelivered Hint = "delivered"
	// HintShown: a device shows the request to the person.
	HintShown Hint = "shown"
	// HintAppOutdated: a device answered without picking a number, which
	// this order needs; its app must be updated. The order waits on for
	// another device, or its timeout.
	HintAppOutdated Hint = "app-outdated"
)

// Hints lists every hint.
func Hints() []Hint { return []Hint{HintPushed, HintDelivered, HintShown, HintAppOutdated} }

// Limits of orders that are part of the contract.
const (
	// MaxCollectWait is the longest ?wait= a collect may ask for, in
	// seconds: under the 60 s idle timeout of common load balancers.
	MaxCollectWait = 30
	// OrderRefLength is the length of an order reference.
	OrderRefLength = 26
)

// IsOrderRef reports whether s has the form of an order reference: 128
// random bits as 26 characters of lower-case base32.
func IsOrderRef(s string) bool {
	if len(s) != OrderRefLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// OrderAuthScheme is the Authorization scheme with which a requester
// collects or cancels an order it signed:
//
//	Authorization: MFA-Ed25519 <LegalId> <Issued> <Signature>
//
// Signature is standard base64 of the requester's Ed25519 signature over
// OrderAccessForm. None of the three can hold a space.
const OrderAuthScheme = "MFA-Ed25519"

// OrderAccess is a requester's proof that it may collect or cancel an
// order it signed.
type OrderAccess struct {
	LegalID   string
	Issued    string
	IssuedAt  time.Time
	Signature []byte
}

// OrderAccessForm is what an OrderAccess signature covers: the method, so
// that a collect's signature cannot cancel, the order, the requester and
// the time, which the broker accepts as near its own as a signed request's:
//
//	MFA-Order-Access/1\n
//	Method:<len>:GET|DELETE\n
//	Order:<len>:<Ref>\n
//	LegalId:<len>:<LegalId>\n
//	Issued:<len>:<Issued>\n
func OrderAccessForm(method, ref, legalID, issued string) []byte {
	return identity.NewSignedForm("MFA-Order-Access/1").
		Add("Method", method).
		Add("Order", ref).
		Add(FieldLegalID, legalID).
		Add(FieldIssued, issued).
		Bytes()
}

// Header is the Authorization header's value.
func (a OrderAccess) Header() string {
	return OrderAuthScheme + " " + a.LegalID + " " + a.Issued + " " + base64.StdEncoding.EncodeToString(a.Signature)
}

// ParseOrderAccess reads an Authorization header of OrderAuthScheme. Its
// errors are *Error with CodeInvalidSignature, and never repeat the value.
func ParseOrderAccess(header string) (OrderAccess, error) {
	const field = "Authorization"
	scheme, rest, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, OrderAuthScheme) {
		return OrderAccess{}, Errorf(CodeInvalidSignature, field, "an order its requester signed is collected and cancelled with its signature: Authorization: %s <LegalId> <Issued> <Signature>", OrderAuthScheme)
	}
	parts := strings.Split(rest, " ")
	if len(parts) != 3 {
		return OrderAccess{}, Errorf(CodeInvalidSignature, field, "the %s Authorization header has three values separated by single spaces: LegalId, Issued, Signature", OrderAuthScheme)
	}
	legalID, err := checkLegalID(parts[0])
	if err != nil {
		return OrderAccess{}, Errorf(CodeInvalidSignature, field, "%s", err.Message)
	}
	at, err := checkIssued(parts[1])
	if err != nil {
		return OrderAccess{}, Errorf(CodeInvalidSignature, field, "%s", err.Message)
	}
	// Go's base64 skips line breaks even when strict; a header's value
	// has none, and a signature that decoded around one would not be the
	// one written back.
	if strings.ContainsAny(parts[2], "\r\n") {
		return OrderAccess{}, Errorf(CodeInvalidSignature, field, "the signature is one line of base64")
	}
	sig, err := checkSignature(parts[2])
	if err != nil {
		return OrderAccess{}, Errorf(CodeInvalidSignature, field, "%s", err.Message)
	}
	return OrderAccess{LegalID: legalID, Issued: parts[1], IssuedAt: at, Signature: sig}, nil
}

// SignOrderAccess makes the Authorization a requester sends to collect
// (GET) or cancel (DELETE) an order it signed, dated now.
func SignOrderAccess(method, ref, legalID string, key ed25519.PrivateKey, now time.Time) OrderAccess {
	issued := now.UTC().Format(time.RFC3339)
	return OrderAccess{LegalID: legalID, Issued: issued, IssuedAt: now, Signature: ed25519.Sign(key, OrderAccessForm(method, ref, legalID, issued))}
}
