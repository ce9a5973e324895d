package identity

import (
	"crypto/ed25519"
	"fmt"
	"strconv"
	"strings"
)

// SignedForm builds the canonical byte strings that signatures cover. A form
// is a header line naming what is signed, then one line per field:
//
//	<name>:<byte length of value>:<value>\n
//
// The length prefix makes the form unambiguous whatever the values contain
// (newlines included), and it is the same whichever encoding carried the
// values, so one signature verifies for XML, JSON and form requests alike.
type SignedForm struct {
	b []byte
}

// NewSignedForm starts a form whose first line is kind, such as
// "MFA-Request/1".
func NewSignedForm(kind string) *SignedForm {
	f := &SignedForm{b: make([]byte, 0, 256)}
	f.b = append(f.b, kind...)
	f.b = append(f.b, '\n')
	return f
}

// Add appends one field. Names are the program's own constants; one that
// could blur the framing is a bug, so it panics.
func (f *SignedForm) Add(name, value string) *SignedForm {
	if name == "" || strings.ContainsAny(name, ":\n") {
		panic(fmt.Sprintf("identity: signed form field name %q", name))
	}
	f.b = append(f.b, name...)
	f.b = append(f.b, ':')
	f.b = strconv.AppendInt(f.b, int64(len(value)), 10)
	f.b = append(f.b, ':')
	f.b = append(f.b, value...)
	f.b = append(f.b, '\n')
	return f
}

// Bytes returns the form built so far.
func (f *SignedForm) Bytes() []byte { return f.b }

// Verify checks an Ed25519 signature, returning ErrBadSignature when it does
// not verify.
func Verify(pub ed25519.PublicKey, data, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key has %d bytes", ErrBadSignature, len(pub))
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature has %d bytes, an Ed25519 signature has %d", ErrBadSignature, len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, data, sig) {
		return ErrBadSignature
	}
	return nil
}

// FormField is one field of a signed form.
type FormField struct {
	Name  string
	Value string
}

// ParseSignedForm reads a form back into its kind and fields, in order, so
// that whoever holds a signature can check what it covers.
func ParseSignedForm(form []byte) (kind string, fields []FormField, err error) {
	s := string(form)
	kind, rest, ok := strings.Cut(s, "\n")
	if !ok || kind == "" {
		return "", nil, fmt.Errorf("%w: signed form has no header line", ErrInvalid)
	}
	for rest != "" {
		name, after, ok := strings.Cut(rest, ":")
		if !ok || name == "" || strings.Contains(name, "\n") {
			return "", nil, fmt.Errorf("%w: signed form field without a name", ErrInvalid)
		}
		lenText, after, _ := strings.Cut(after, ":")
		n, err := strconv.Atoi(lenText)
		// Only the canonical spelling of a length counts, so that one form
		// has exactly one byte string.
		if err != nil || n < 0 || lenText != strconv.Itoa(n) || n >= len(after) || after[n] != '\n' {
			return "", nil, fmt.Errorf("%w: signed form field %q has a bad length", ErrInvalid, name)
		}
		fields = append(fields, FormField{Name: name, Value: after[:n]})
		rest = after[n+1:]
	}
	return kind, fields, nil
}
