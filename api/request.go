package api

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/simplemd"
)

// Field names, spelled exactly as the spec spells them in every encoding.
const (
	FieldPNR       = "PNR"
	FieldCountry   = "COUNTRY"
	FieldTimeout   = "Timeout"
	FieldReason    = "Reason"
	FieldLegalID   = "LegalId"
	FieldSignature = "Signature"
	FieldIssued    = "Issued"
	FieldNonce     = "Nonce"
	// FieldNumberMatching is a field of orders only (POST /Orders).
	FieldNumberMatching = "NumberMatching"
)

// fieldNames lists the request fields in the XML element order.
var fieldNames = [...]string{FieldPNR, FieldCountry, FieldTimeout, FieldReason, FieldLegalID, FieldSignature, FieldIssued, FieldNonce, FieldNumberMatching}

// signedFields are the fields a signed request has and an unsigned one
// does not; LegalId names the signer.
var signedFields = [...]string{FieldSignature, FieldIssued, FieldNonce}

// Documented limits on request fields.
const (
	MaxPNRLength     = 64   // characters
	MaxReasonLength  = 2000 // characters, after line breaks are normalised
	MaxLegalIDLength = identity.MaxIDLength
	SignatureSize    = 64 // bytes: one Ed25519 signature
	MinNonceLength   = 16
	MaxNonceLength   = 64
	MaxIssuedLength  = 40
)

// Request is a decoded, validated MFA request. Whichever encoding carried
// it, the same request gives the same value, so it signs and behaves the same.
type Request struct {
	PNR     string
	Country string
	// Timeout is in whole seconds, 1 to the broker's maximum.
	Timeout int
	// Reason is markdown with line breaks normalised to LF.
	Reason    string
	LegalID   string
	Signature []byte
	// Issued and Nonce make a signed request usable once: the broker
	// accepts it only near the time it says it was signed, and only once.
	// Issued is kept as sent, since the signature covers the text.
	Issued   string
	IssuedAt time.Time
	Nonce    string
	// NumberMatching is an order's choice, nil when the request does not
	// say (the broker's default then applies).
	NumberMatching *bool
}

// Signed reports whether the requester signed the request.
func (r Request) Signed() bool { return r.LegalID != "" }

// SigningForm is what a requester's Signature covers: every field but the
// signature itself, in the documented canonical form (see identity.SignedForm):
//
//	MFA-Request/1\n
//	PNR:<len>:<PNR>\n
//	COUNTRY:<len>:<COUNTRY>\n
//	Timeout:<len>:<decimal seconds, no sign or leading zeros>\n
//	Reason:<len>:<Reason, line breaks as LF>\n
//	LegalId:<len>:<LegalId>\n
//	Issued:<len>:<Issued, as sent>\n
//	Nonce:<len>:<Nonce>\n
//	NumberMatching:<len>:true|false\n   only when the order says
//
// The last line is there only when the request has the field, so a
// request without it signs exactly as before the field existed.
func (r Request) SigningForm() []byte {
	f := identity.NewSignedForm("MFA-Request/1").
		Add(FieldPNR, r.PNR).
		Add(FieldCountry, r.Country).
		Add(FieldTimeout, strconv.Itoa(r.Timeout)).
		Add(FieldReason, r.Reason).
		Add(FieldLegalID, r.LegalID).
		Add(FieldIssued, r.Issued).
		Add(FieldNonce, r.Nonce)
	if r.NumberMatching != nil {
		f.Add(FieldNumberMatching, strconv.FormatBool(*r.NumberMatching))
	}
	return f.Bytes()
}

// CheckFields applies the field rules to a request a requester is about to
// sign: PNR, COUNTRY, Timeout (1 to maxTimeout), Reason (with LF line
// breaks, as it will be signed) and, when set, LegalId. Signature is not
// looked at. It returns the first fault as an *Error, or nil.
func (r Request) CheckFields(maxTimeout int) error {
	if _, err := checkPNR(r.PNR); err != nil {
		return err
	}
	if _, err := checkCountry(r.Country); err != nil {
		return err
	}
	if _, err := checkTimeout(strconv.Itoa(r.Timeout), maxTimeout); err != nil {
		return err
	}
	reason, err := checkReason(r.Reason)
	if err != nil {
		return err
	}
	if reason != r.Reason {
		return Errorf(CodeInvalidField, FieldReason, "Reason must have LF line breaks, as it is signed")
	}
	if r.LegalID != "" {
		if _, err := checkLegalID(r.LegalID); err != nil {
			return err
		}
		if _, err := checkIssued(r.Issued); err != nil {
			return err
		}
		if err := checkNonce(r.Nonce); err != nil {
			return err
		}
	}
	return nil
}

// NumFields is how many fields a request can have.
const NumFields = len(fieldNames)

// FieldIndex is the position of a field in the XML element order, or -1
// for a name that is not a request field (names are case-sensitive).
func FieldIndex(name string) int {
	for i, n := range fieldNames {
		if n == name {
			return i
		}
	}
	return -1
}

// FieldName is the name of the field at position i.
func FieldName(i int) string { return fieldNames[i] }

// Optional reports whether the field at position i may be absent: the
// fields of a signed request, and an order's NumberMatching.
func Optional(i int) bool { return i >= FieldIndex(FieldLegalID) }

// Fields holds a request's values as an encoding carried them, before the
// rules every encoding shares are applied (Build).
type Fields struct {
	values  [NumFields]string
	present [NumFields]bool
}

// Set records the value of the field at position i.
func (raw *Fields) Set(i int, v string) {
	raw.values[i], raw.present[i] = v, true
}

// Has reports whether the field at position i was given.
func (raw *Fields) Has(i int) bool { return raw.present[i] }

func (raw *Fields) get(name string) (string, bool) {
	i := FieldIndex(name)
	return raw.values[i], raw.present[i]
}

// Build applies the field rules every encoding shares and returns the
// request, or the first fault as an *Error naming its field.
func (raw *Fields) Build(maxTimeout int) (Request, *Error) {
	for _, name := range []string{FieldPNR, FieldCountry, FieldTimeout, FieldReason} {
		if _, ok := raw.get(name); !ok {
			return Request{}, Errorf(CodeMissingField, name, "field %s is required", name)
		}
	}
	var req Request
	var err *Error
	pnr, _ := raw.get(FieldPNR)
	if req.PNR, err = checkPNR(pnr); err != nil {
		return Request{}, err
	}
	country, _ := raw.get(FieldCountry)
	if req.Country, err = checkCountry(country); err != nil {
		return Request{}, err
	}
	timeout, _ := raw.get(FieldTimeout)
	if req.Timeout, err = checkTimeout(timeout, maxTimeout); err != nil {
		return Request{}, err
	}
	reason, _ := raw.get(FieldReason)
	if req.Reason, err = checkReason(reason); err != nil {
		return Request{}, err
	}
	legalID, signed := raw.get(FieldLegalID)
	for _, name := range signedFields {
		_, has := raw.get(name)
		switch {
		case signed && !has:
			return Request{}, Errorf(CodeMissingField, name, "field %s is required when LegalId is given: a signed request has LegalId, Signature, Issued and Nonce", name)
		case has && !signed:
			return Request{}, Errorf(CodeMissingField, FieldLegalID, "field LegalId is required when %s is given: it names the identity whose key made the signature", name)
		}
	}
	if signed {
		if req.LegalID, err = checkLegalID(legalID); err != nil {
			return Request{}, err
		}
		signature, _ := raw.get(FieldSignature)
		if req.Signature, err = checkSignature(signature); err != nil {
			return Request{}, err
		}
		req.Issued, _ = raw.get(FieldIssued)
		if req.IssuedAt, err = checkIssued(req.Issued); err != nil {
			return Request{}, err
		}
		req.Nonce, _ = raw.get(FieldNonce)
		if err = checkNonce(req.Nonce); err != nil {
			return Request{}, err
		}
	}
	if v, ok := raw.get(FieldNumberMatching); ok {
		on, err := checkBoolean(FieldNumberMatching, v)
		if err != nil {
			return Request{}, err
		}
		req.NumberMatching = &on
	}
	return req, nil
}

// checkBoolean accepts the lexical forms of xs:boolean: true, false, 1, 0.
func checkBoolean(name, v string) (bool, *Error) {
	switch v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, Errorf(CodeInvalidField, name, "%s must be true or false", name)
}

// Error messages about a field never repeat its value: a personal number
// is personal data and must not travel back through error messages, logs
// or proxies, and a caller that mixes up fields may have put one anywhere.

// CheckReason applies the Reason's rules (UTF-8, not blank, length,
// control and invisible characters, the markdown subset) to a Reason with
// LF line breaks, as a request carries it; its error is an *Error. A home
// broker checks a Reason a federated peer passes on with it, as it would
// its own caller's.
func CheckReason(reason string) error {
	got, err := checkReason(reason)
	if err != nil {
		return err
	}
	if got != reason {
		return Errorf(CodeInvalidField, FieldReason, "Reason must have LF line breaks")
	}
	return nil
}

// checkPNR checks a personal number.
func checkPNR(v string) (string, *Error) {
	switch {
	case v == "":
		return "", Errorf(CodeInvalidField, FieldPNR, "PNR must not be empty")
	case !utf8.ValidString(v):
		return "", Errorf(CodeInvalidField, FieldPNR, "PNR is not valid UTF-8")
	case utf8.RuneCountInString(v) > MaxPNRLength:
		return "", Errorf(CodeInvalidField, FieldPNR, "PNR is longer than %d characters", MaxPNRLength)
	}
	if first, _ := utf8.DecodeRuneInString(v); unicode.Is(unicode.Z, first) {
		return "", Errorf(CodeInvalidField, FieldPNR, "PNR must not begin with a space")
	}
	if last, _ := utf8.DecodeLastRuneInString(v); unicode.Is(unicode.Z, last) {
		return "", Errorf(CodeInvalidField, FieldPNR, "PNR must not end with a space")
	}
	if r, bad := firstControl(v, false); bad {
		return "", Errorf(CodeInvalidField, FieldPNR, "PNR contains the control or invisible character U+%04X", r)
	}
	return v, nil
}

func checkCountry(v string) (string, *Error) {
	if !identity.IsCountryCode(v) {
		if up := strings.ToUpper(v); up != v && identity.IsCountryCode(up) {
			// Two letters cannot be anyone's personal number: safe to repeat.
			return "", Errorf(CodeInvalidField, FieldCountry, "COUNTRY must be in upper case: %s, not %s", up, v)
		}
		return "", Errorf(CodeInvalidField, FieldCountry, "COUNTRY must be an assigned ISO 3166-1 alpha-2 code in upper case, such as SE or US")
	}
	return v, nil
}

// checkTimeout accepts the lexical form of xs:positiveInteger: digits with
// an optional plus sign and leading zeros.
func checkTimeout(v string, maxTimeout int) (int, *Error) {
	if strings.HasPrefix(v, "-") && strings.Trim(v[1:], "0123456789") == "" && len(v) > 1 {
		return 0, Errorf(CodeInvalidField, FieldTimeout, "Timeout must be at least 1 second")
	}
	digits := strings.TrimPrefix(v, "+")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, Errorf(CodeInvalidField, FieldTimeout, "Timeout must be a whole number of seconds, such as 60")
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, Errorf(CodeInvalidField, FieldTimeout, "Timeout must be at least 1 second")
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n > maxTimeout {
		return 0, Errorf(CodeInvalidField, FieldTimeout, "Timeout must not exceed %d seconds", maxTimeout)
	}
	return n, nil
}

func checkReason(v string) (string, *Error) {
	if !utf8.ValidString(v) {
		return "", Errorf(CodeInvalidField, FieldReason, "Reason is not valid UTF-8")
	}
	// XML parsers turn CRLF and CR into LF; doing the same for JSON and forms
	// keeps one request, and so one signature, identical in every encoding.
	v = strings.ReplaceAll(v, "\r\n", "\n")
	v = strings.ReplaceAll(v, "\r", "\n")
	switch {
	case strings.TrimSpace(v) == "":
		return "", Errorf(CodeInvalidField, FieldReason, "Reason must not be empty: it tells the person why they are asked")
	case utf8.RuneCountInString(v) > MaxReasonLength:
		return "", Errorf(CodeInvalidField, FieldReason, "Reason is longer than %d characters", MaxReasonLength)
	}
	if r, bad := firstControl(v, true); bad {
		return "", Errorf(CodeInvalidField, FieldReason, "Reason contains the control or invisible character U+%04X, which could disguise what the person reads", r)
	}
	if _, err := simplemd.Parse(v); err != nil {
		return "", Errorf(CodeInvalidField, FieldReason, "Reason is outside the markdown devices show: %v (see Reason markdown in the README)", err)
	}
	return v, nil
}

func checkLegalID(v string) (string, *Error) {
	if err := identity.ValidateID(v); err != nil {
		return "", Errorf(CodeInvalidField, FieldLegalID, "LegalId must be an identity ID of the form <id>@<domain> in printable ASCII, at most %d characters", MaxLegalIDLength)
	}
	return v, nil
}

func checkSignature(v string) ([]byte, *Error) {
	sig, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil {
		return nil, Errorf(CodeInvalidField, FieldSignature, "Signature is not valid base64")
	}
	if len(sig) != SignatureSize {
		return nil, Errorf(CodeInvalidField, FieldSignature, "Signature has %d bytes; an Ed25519 signature has %d", len(sig), SignatureSize)
	}
	return sig, nil
}

// checkIssued reads the time a request was signed: RFC 3339 with a time
// zone, as XML's xs:dateTime also allows.
func checkIssued(v string) (time.Time, *Error) {
	if len(v) > MaxIssuedLength {
		return time.Time{}, Errorf(CodeInvalidField, FieldIssued, "Issued is longer than %d characters", MaxIssuedLength)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, Errorf(CodeInvalidField, FieldIssued, "Issued must be an RFC 3339 time with a time zone, such as 2026-11-22T13:45:00Z")
	}
	return t, nil
}

func checkNonce(v string) *Error {
	if len(v) < MinNonceLength || len(v) > MaxNonceLength || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return Errorf(CodeInvalidField, FieldNonce, "Nonce must be %d to %d characters of A-Z, a-z, 0-9, - and _", MinNonceLength, MaxNonceLength)
	}
	return nil
}

// firstControl finds the first C0/C1 control character, or invisible
// character that changes how the text reads (identity.IsDisguising); tab
// and line feed are allowed where text spans lines.
func firstControl(v string, multiline bool) (rune, bool) {
	for _, r := range v {
		if multiline && (r == '\t' || r == '\n') {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || identity.IsDisguising(r) {
			return r, true
		}
	}
	return 0, false
}
