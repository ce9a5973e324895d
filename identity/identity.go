// Package identity owns legal identities: their model, life cycle, keys and
// signatures, and the stores that keep them.
package identity

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// State is where an identity is in its life cycle.
type State string

// The states of a legal identity. Only Approved identities within their
// validity window can be used for MFA or to sign requests.
const (
	Created     State = "Created"
	Approved    State = "Approved"
	Rejected    State = "Rejected"
	Obsoleted   State = "Obsoleted"
	Compromised State = "Compromised"
)

// States lists every state, in life-cycle order.
func States() []State {
	return []State{Created, Approved, Rejected, Obsoleted, Compromised}
}

// ParseState accepts a state name in any letter case.
func ParseState(s string) (State, error) {
	for _, st := range States() {
		if strings.EqualFold(string(st), s) {
			return st, nil
		}
	}
	return "", fmt.Errorf("%w: unknown state %q", ErrInvalid, s)
}

// CanTransition reports whether an identity may move from one state to
// another. Rejected, Obsoleted and Compromised are final.
func CanTransition(from, to State) bool {
	switch from {
	case Created:
		return to == Approved || to == Rejected
	case Approved:
		return to == Obsoleted || to == Compromised || to == Rejected
	}
	return false
}

// Well-known property names. PNR and COUNTRY are what MFA looks a person up by.
const (
	PropPNR     = "PNR"
	PropCountry = "COUNTRY"
	PropFirst   = "FIRST"
	PropMiddle  = "MIDDLE"
	PropLast    = "LAST"
	PropOrgName = "ORGNAME"
	PropEmail   = "EMAIL"
)

// Limits on identity properties. They keep documents small and every name
// safe as a field name in any store (no '$', '.', or NUL can pass).
const (
	MaxProperties       = 64
	MaxPropertyName     = 32
	MaxPropertyValue    = 1024
	MaxPropertiesLength = 16 * 1024
)

// Property is one name/value pair of an identity, such as PNR or FIRST.
type Property struct {
	Name  string `json:"Name"`
	Value string `json:"Value"`
}

// Identity is a legal identity: a set of properties about a person or
// organisation, bound to the public key of the device that applied for it.
type Identity struct {
	ID         string
	State      State
	Properties []Property
	PublicKey  ed25519.PublicKey
	// From and To bound when an Approved identity may be used. They are set
	// on approval; a zero To never occurs for an Approved identity.
	From time.Time
	To   time.Time
	// Created and Updated are store bookkeeping, in UTC.
	Created time.Time
	Updated time.Time
	// Version increases with every change, so that stores can refuse a
	// change made against a stale copy.
	Version int64
}

// Property returns the first value of the named property, or "".
func (id Identity) Property(name string) string {
	for _, p := range id.Properties {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// ValidAt reports whether the identity may be used for MFA at t.
func (id Identity) ValidAt(t time.Time) bool {
	return id.State == Approved && !t.Before(id.From) && !t.After(id.To)
}

// DisplayName is how the identity is presented to a person asked to approve a
// request from it: an organisation name, a personal name, or the ID.
func (id Identity) DisplayName() string {
	if org := id.Property(PropOrgName); org != "" {
		return org
	}
	var parts []string
	for _, n := range []string{PropFirst, PropMiddle, PropLast} {
		if v := id.Property(n); v != "" {
			parts = append(parts, v)
		}
	}
	if len(parts) > 0 {
		return strings.Join(parts, " ")
	}
	return id.ID
}

// DeviceID is the identity's device identifier (see DeviceIDOf).
func (id Identity) DeviceID() string { return DeviceIDOf(id.PublicKey) }

// NewID creates a fresh identity ID on the broker's domain:
// <uuid>@legal.<domain>.
func NewID(domain string) string {
	return uuid.NewString() + "@legal." + domain
}

// ValidateProperties checks a property list against the documented limits.
// Names are upper-case ASCII letters, digits and underscores starting with a
// letter; values are valid UTF-8 without control characters.
func ValidateProperties(props []Property) error {
	if len(props) == 0 {
		return fmt.Errorf("%w: an identity needs at least one property", ErrInvalid)
	}
	if len(props) > MaxProperties {
		return fmt.Errorf("%w: %d properties, at most %d allowed", ErrInvalid, len(props), MaxProperties)
	}
	total := 0
	seen := make(map[string]bool, len(props))
	for i, p := range props {
		if err := validatePropertyName(p.Name); err != nil {
			return fmt.Errorf("%w: property %d: %v", ErrInvalid, i+1, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: property %s appears more than once", ErrInvalid, p.Name)
		}
		seen[p.Name] = true
		if err := validatePropertyValue(p.Value); err != nil {
			return fmt.Errorf("%w: property %s: %v", ErrInvalid, p.Name, err)
		}
		total += len(p.Name) + len(p.Value)
	}
	if total > MaxPropertiesLength {
		return fmt.Errorf("%w: properties total %d bytes, at most %d allowed", ErrInvalid, total, MaxPropertiesLength)
	}
	if c := propertyValue(props, PropCountry); c != "" && !IsCountryCode(c) {
		return fmt.Errorf("%w: property COUNTRY %q is not an ISO 3166-1 alpha-2 code", ErrInvalid, c)
	}
	if (propertyValue(props, PropPNR) == "") != (propertyValue(props, PropCountry) == "") {
		return fmt.Errorf("%w: properties PNR and COUNTRY go together: give both or neither", ErrInvalid)
	}
	return nil
}

func propertyValue(props []Property, name string) string {
	return Identity{Properties: props}.Property(name)
}

func validatePropertyName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	if len(name) > MaxPropertyName {
		return fmt.Errorf("name longer than %d characters", MaxPropertyName)
	}
	for i, r := range name {
		switch {
		case r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_'):
		default:
			return fmt.Errorf("name %q: only A-Z, and after the first character 0-9 and _, are allowed", name)
		}
	}
	return nil
}

func validatePropertyValue(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	if len(v) > MaxPropertyValue {
		return fmt.Errorf("value longer than %d bytes", MaxPropertyValue)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("value is not valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("value contains control character U+%04X", r)
		}
		if IsDisguising(r) {
			return fmt.Errorf("value contains U+%04X, which can disguise how a name is shown", r)
		}
	}
	return nil
}

// IsDisguising reports the invisible characters that can make a name shown
// on a device read as something else: bidirectional embeddings, overrides,
// isolates and marks, zero-width space, line and paragraph separators, and
// the byte-order mark. Zero-width joiners stay allowed; scripts need them.
func IsDisguising(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200b, r == 0x2028, r == 0x2029, r == 0xfeff:
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c: // left-to-right, right-to-left and Arabic letter marks
		return true
	}
	return false
}

// MaxIDLength bounds identity IDs, ours and those of federated brokers.
const MaxIDLength = 255

// ValidateID checks that s can be an identity ID: <local>@<domain>, printable
// ASCII without spaces, at most MaxIDLength bytes.
func ValidateID(s string) error {
	if s == "" || len(s) > MaxIDLength {
		return fmt.Errorf("%w: identity ID must be 1 to %d characters", ErrInvalid, MaxIDLength)
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == '$' {
			return fmt.Errorf("%w: identity ID %q contains a character other than printable ASCII", ErrInvalid, s)
		}
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return fmt.Errorf("%w: identity ID %q is not of the form <id>@<domain>", ErrInvalid, s)
	}
	return nil
}

// Validate checks everything a store must refuse to keep: a malformed ID,
// unknown state, bad properties, a key of the wrong size, or an Approved
// identity without a validity window.
func (id Identity) Validate() error {
	if err := ValidateID(id.ID); err != nil {
		return err
	}
	// Exactly one spelling per state: a store keeping "approved" would never
	// match Approved in lookups or transitions.
	if st, err := ParseState(string(id.State)); err != nil || st != id.State {
		return fmt.Errorf("%w: unknown state %q", ErrInvalid, id.State)
	}
	if err := ValidateProperties(id.Properties); err != nil {
		return err
	}
	if len(id.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key has %d bytes, an Ed25519 key has %d", ErrInvalid, len(id.PublicKey), ed25519.PublicKeySize)
	}
	if id.State == Approved && !id.To.After(id.From) {
		return fmt.Errorf("%w: an Approved identity needs a validity window that ends after it starts", ErrInvalid)
	}
	for _, t := range []time.Time{id.From, id.To, id.Created, id.Updated} {
		// Years 1 to 9999 fit every store's time type (BSON counts
		// milliseconds in an int64); anything else is a mistake.
		if !t.IsZero() && (t.Year() < 1 || t.Year() > 9999) {
			return fmt.Errorf("%w: time %s is outside the years 1 to 9999", ErrInvalid, t)
		}
	}
	if id.Version < 0 || id.Version == math.MaxInt64 {
		return fmt.Errorf("%w: version %d is out of range", ErrInvalid, id.Version)
	}
	return nil
}
