// Package federation lets a broker serve MFA for the people whose identities
// another broker holds, when the two operators have approved each other and
// the home broker shares its references: peering, the signed identity
// references peers replicate, and the requests one broker forwards to the
// home broker of a person's identity.
//
// The transport is NATS: a leaf-node link between the two brokers' servers,
// bound on each side to an account of that peer's own, so that nothing of
// the broker's own traffic (pushes, answers, its buckets) can cross, and
// JetStream, which mirrors the references a home broker shares with a peer
// into that peer's account. What is written by hand here is only what NATS
// does not do: the message formats, their signatures, and who may see what.
package federation

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/identity"
)

// Errors of references.
var (
	// ErrBadReference: a reference that is malformed, or whose home broker's
	// signature does not verify. It is ignored.
	ErrBadReference = errors.New("invalid identity reference")
)

// Reference is what a home broker tells its peers of one of its
// identities: enough to find it by a person's number without the number,
// to route an MFA request to the home broker, and to verify the device's
// signed answer. A reference is signed by the home broker's key; a peer
// believes nothing in it that the signature does not cover.
type Reference struct {
	// Home is the home broker's peer ID (api.PeerID of its key).
	Home    string `json:"Home"`
	LegalID string `json:"LegalId"`
	// Lookup is the keyed hash of COUNTRY and PNR (LookupKey.Hash): a
	// peer finds the reference by hashing the number it was asked for.
	Lookup    string            `json:"Lookup"`
	PublicKey ed25519.PublicKey `json:"PublicKey"`
	State     identity.State    `json:"State"`
	From      time.Time         `json:"ValidFrom"`
	To        time.Time         `json:"ValidTo"`
	// Version is the identity's version at the home broker: a peer keeps
	// the reference with the highest, so a late copy of an older one
	// cannot bring a revoked identity back.
	Version   int64  `json:"Version"`
	Signature []byte `json:"Signature"`
}

// ValidAt reports whether the identity the reference names may be asked
// for MFA at t.
func (r Reference) ValidAt(t time.Time) bool {
	return r.State == identity.Approved && !t.Before(r.From) && !t.After(r.To)
}

// form is what the home broker signs:
//
//	MFA-Reference/1\n
//	Home, LegalId, Lookup, PublicKey (base64), State,
//	ValidFrom, ValidTo (RFC 3339, UTC, nanoseconds), Version (decimal)
func (r Reference) form() []byte {
	return identity.NewSignedForm("MFA-Reference/1").
		Add("Home", r.Home).
		Add("LegalId", r.LegalID).
		Add("Lookup", r.Lookup).
		Add("PublicKey", identity.EncodePublicKey(r.PublicKey)).
		Add("State", string(r.State)).
		Add("ValidFrom", r.From.UTC().Format(time.RFC3339Nano)).
		Add("ValidTo", r.To.UTC().Format(time.RFC3339Nano)).
		Add("Version", strconv.FormatInt(r.Version, 10)).
		Bytes()
}

// NewReference makes the signed reference of an identity held here. key is
// this broker's key, lookup the key of its lookup hashes. An identity
// without a PNR and COUNTRY (a requester) has no reference: nobody looks it
// up by number.
func NewReference(id identity.Identity, key ed25519.PrivateKey, lookup LookupKey) (Reference, bool) {
	pnr, country := id.Property(identity.PropPNR), id.Property(identity.PropCountry)
	if pnr == "" || country == "" {
		return Reference{}, false
	}
	r := Reference{
		Home:      api.PeerID(key.Public().(ed25519.PublicKey)),
		LegalID:   id.ID,
		Lookup:    lookup.Hash(country, pnr),
		PublicKey: id.PublicKey,
		State:     id.State,
		From:      id.From.UTC(),
		To:        id.To.UTC(),
		Version:   id.Version,
	}
	r.Signature = ed25519.Sign(key, r.form())
	return r, true
}

// Verify checks the reference against the key of the peer it came from:
// signed by that key, naming that peer as its home, well formed.
func (r Reference) Verify(home ed25519.PublicKey) error {
	switch {
	case r.Home != api.PeerID(home):
		return fmt.Errorf("%w: it names %s as its home, and came from %s", ErrBadReference, r.Home, api.PeerID(home))
	case identity.ValidateID(r.LegalID) != nil:
		return fmt.Errorf("%w: malformed LegalId", ErrBadReference)
	case !isLookup(r.Lookup):
		return fmt.Errorf("%w: malformed lookup hash", ErrBadReference)
	case len(r.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: public key of %d bytes", ErrBadReference, len(r.PublicKey))
	}
	if _, err := identity.ParseState(string(r.State)); err != nil {
		return fmt.Errorf("%w: %w", ErrBadReference, err)
	}
	if err := identity.Verify(home, r.form(), r.Signature); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadReference, r.LegalID, err)
	}
	return nil
}

// maxReferenceBytes bounds a reference as a peer reads it: a few hundred
// bytes, with room.
const maxReferenceBytes = 4 << 10

// DecodeReference reads a reference as stored and sent: JSON, exact field
// names, nothing else. It does not verify the signature (Verify does).
func DecodeReference(b []byte) (Reference, error) {
	if len(b) > maxReferenceBytes {
		return Reference{}, fmt.Errorf("%w: %d bytes", ErrBadReference, len(b))
	}
	var r Reference
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Reference{}, fmt.Errorf("%w: %w", ErrBadReference, err)
	}
	// Not dec.More: it is false before a stray "}" or "]".
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Reference{}, fmt.Errorf("%w: data after the reference", ErrBadReference)
	}
	return r, nil
}

// Encode is the reference as stored and sent.
func (r Reference) Encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		// A Reference always encodes: strings, bytes, times and a number.
		panic(fmt.Sprintf("encode reference: %v", err))
	}
	return b
}

// LookupKey is a home broker's secret for the lookup hashes of its
// references. The broker gives it to the peers it shares references with,
// so that they can hash the number they are asked for; to anyone else a
// lookup hash says nothing of the number. A peer holding the key can test
// guesses: a personal number has little entropy (a birth date and a few
// digits), so the hash protects numbers from logs, backups and outsiders,
// not from a peer set on guessing them. That peer is one the operator
// approved to ask these people for MFA anyway.
type LookupKey []byte

// LookupKeySize is the size of a lookup key, in bytes.
const LookupKeySize = 32

// DeriveLookupKey is a broker's lookup key, derived from its key: the
// replicas of a broker share the key, and so hash alike without a file of
// their own to agree on. It is one-way: the peers that receive it learn
// nothing of the broker key.
func DeriveLookupKey(brokerKey ed25519.PrivateKey) LookupKey {
	mac := hmac.New(sha256.New, brokerKey.Seed())
	mac.Write([]byte("mfa-federation-lookup-key"))
	return LookupKey(mac.Sum(nil))
}

// Hash is the lookup hash of a person: HMAC-SHA-256 over COUNTRY, a NUL
// and the PNR, in lower-case base32 without padding (a NATS subject token
// and a key-value key).
func (k LookupKey) Hash(country, pnr string) string {
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(country))
	mac.Write([]byte{0})
	mac.Write([]byte(pnr))
	return strings.ToLower(lookupEncoding.EncodeToString(mac.Sum(nil)))
}

var lookupEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// lookupLength is the length of a lookup hash: 32 bytes in base32.
var lookupLength = lookupEncoding.EncodedLen(sha256.Size)

func isLookup(s string) bool {
	if len(s) != lookupLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
