package mongostore

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/legalmfa/mfa/identity"
)

// Collection names, after the domain.
const (
	CollIdentities = "LegalIdentities"
	CollReferences = "LegalIdentityReferences"
	CollChanges    = "LegalIdentityChanges"
)

// documentFormat is written into every identity document, so that a later
// broker can tell documents of another layout apart.
const documentFormat = 1

// MaxDocumentSize bounds the encoded size of an identity document. The
// limits of identity.Validate keep a valid identity under about 25 KiB; the
// guard is here so that a future change of those limits cannot send a
// document near MongoDB's 16 MiB limit, and it is checked before anything is
// written.
const MaxDocumentSize = 64 << 10

// identityDoc is one document of LegalIdentities. Properties are an array
// of {name, value} sub-documents, so user data is never a field name.
type identityDoc struct {
	ID         string         `bson:"_id"`
	Format     int32          `bson:"format"`
	State      string         `bson:"state"`
	Properties []propertyDoc  `bson:"properties"`
	PublicKey  bson.Binary    `bson:"publicKey"`
	DeviceID   string         `bson:"deviceId"`
	From       *bson.DateTime `bson:"from,omitempty"`
	To         *bson.DateTime `bson:"to,omitempty"`
	Created    bson.DateTime  `bson:"created"`
	Updated    bson.DateTime  `bson:"updated"`
	Version    int64          `bson:"version"`
}

type propertyDoc struct {
	Name  string `bson:"name"`
	Value string `bson:"value"`
}

// referenceDoc is one document of LegalIdentityReferences: the MFA lookup
// index, PNR+COUNTRY → legal ID and provider, kept for every identity that
// has both properties. The PNR is kept in plain text, as it is in the
// identity's properties: a hash would hide nothing the identity does not
// show, and plain values let operators query and federation share it.
type referenceDoc struct {
	LegalID  string         `bson:"_id"`
	Country  string         `bson:"country"`
	PNR      string         `bson:"pnr"`
	Provider string         `bson:"provider"`
	State    string         `bson:"state"`
	From     *bson.DateTime `bson:"from,omitempty"`
	To       *bson.DateTime `bson:"to,omitempty"`
	Version  int64          `bson:"version"`
	Written  bson.DateTime  `bson:"written"`
	// Token is random per write, so that undoing a write cannot undo
	// someone else's.
	Token string `bson:"token"`
}

// changeDoc is one document of LegalIdentityChanges: a state transition,
// whose unique _id "<identity ID>#<version it makes>" is the compare-and-set
// that lets exactly one of two racing transitions win (see Transition).
// Pending is set until the identity and its reference show the change.
type changeDoc struct {
	ID         string         `bson:"_id"`
	IdentityID string         `bson:"identityId"`
	Version    int64          `bson:"version"`
	From       string         `bson:"from"`
	To         string         `bson:"to"`
	At         bson.DateTime  `bson:"at"`
	ValidFrom  *bson.DateTime `bson:"validFrom,omitempty"`
	ValidTo    *bson.DateTime `bson:"validTo,omitempty"`
	Pending    bool           `bson:"pending,omitempty"`
	Written    bson.DateTime  `bson:"written"`
}

func changeID(id string, version int64) string { return fmt.Sprintf("%s#%d", id, version) }

// Times are kept as BSON dates: UTC, milliseconds.
var (
	// BSON dates reach much further, but a time outside these years is a
	// bug or an attack, and Go times beyond ±292 million years would wrap
	// when converted to milliseconds.
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)
)

func checkTime(name string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("%w: %s %v is outside the years 1 to 9999", identity.ErrInvalid, name, t)
	}
	return nil
}

func date(t time.Time) bson.DateTime { return bson.NewDateTimeFromTime(t) }

func optDate(t time.Time) *bson.DateTime {
	if t.IsZero() {
		return nil
	}
	d := date(t)
	return &d
}

func fromDate(d bson.DateTime) time.Time { return d.Time().UTC() }

func fromOptDate(d *bson.DateTime) time.Time {
	if d == nil {
		return time.Time{}
	}
	return fromDate(*d)
}

// storedTime is t as the store keeps it.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return fromDate(date(t))
}

// stored returns the identity as it reads back from the store: times in
// UTC, to the millisecond.
func stored(id identity.Identity) identity.Identity {
	id.From, id.To = storedTime(id.From), storedTime(id.To)
	id.Created, id.Updated = storedTime(id.Created), storedTime(id.Updated)
	return id
}

// validate is what Create and Transition check before anything reaches
// the database: identity.Validate, which refuses unsafe names and values,
// plus the store's own limits on times and on the encoded size.
func validate(id identity.Identity) error {
	if err := id.Validate(); err != nil {
		return err
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"From", id.From}, {"To", id.To}, {"Created", id.Created}, {"Updated", id.Updated}} {
		if err := checkTime(t.name, t.t); err != nil {
			return err
		}
	}
	return nil
}

func encodeIdentity(id identity.Identity) (identityDoc, error) {
	doc := identityDoc{
		ID:         id.ID,
		Format:     documentFormat,
		State:      string(id.State),
		Properties: make([]propertyDoc, len(id.Properties)),
		PublicKey:  bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: bytes.Clone(id.PublicKey)},
		DeviceID:   id.DeviceID(),
		From:       optDate(id.From),
		To:         optDate(id.To),
		Created:    date(id.Created),
		Updated:    date(id.Updated),
		Version:    id.Version,
	}
	for i, p := range id.Properties {
		doc.Properties[i] = propertyDoc{Name: p.Name, Value: p.Value}
	}
	if err := checkSize(doc, MaxDocumentSize); err != nil {
		return identityDoc{}, err
	}
	return doc, nil
}

// checkSize refuses a document whose BSON encoding is larger than limit.
func checkSize(doc any, limit int) error {
	raw, err := bson.Marshal(doc)
	if err != nil {
		return fmt.Errorf("%w: cannot encode the document: %v", identity.ErrInvalid, err)
	}
	if len(raw) > limit {
		return fmt.Errorf("%w: the identity document would be %d bytes, the store takes at most %d", identity.ErrInvalid, len(raw), limit)
	}
	return nil
}

// decodeIdentity turns a stored document back into an identity, refusing
// one that the broker could not have written (another format, a bad key):
// such a document is reported, not used.
func decodeIdentity(doc identityDoc) (identity.Identity, error) {
	if doc.Format != documentFormat {
		return identity.Identity{}, fmt.Errorf("identity document %s has format %d, this broker reads format %d", doc.ID, doc.Format, documentFormat)
	}
	if len(doc.PublicKey.Data) != ed25519.PublicKeySize {
		return identity.Identity{}, fmt.Errorf("identity document %s has a public key of %d bytes", doc.ID, len(doc.PublicKey.Data))
	}
	id := identity.Identity{
		ID:         doc.ID,
		State:      identity.State(doc.State),
		Properties: make([]identity.Property, len(doc.Properties)),
		PublicKey:  ed25519.PublicKey(bytes.Clone(doc.PublicKey.Data)),
		From:       fromOptDate(doc.From),
		To:         fromOptDate(doc.To),
		Created:    fromDate(doc.Created),
		Updated:    fromDate(doc.Updated),
		Version:    doc.Version,
	}
	for i, p := range doc.Properties {
		id.Properties[i] = identity.Property{Name: p.Name, Value: p.Value}
	}
	return id, nil
}

// reference returns the reference document of an identity, or false when
// the identity has no PNR and COUNTRY and so cannot be looked up for MFA.
func reference(id identity.Identity, now time.Time) (referenceDoc, bool) {
	pnr, country := id.Property(identity.PropPNR), id.Property(identity.PropCountry)
	if pnr == "" || country == "" {
		return referenceDoc{}, false
	}
	return referenceDoc{
		LegalID:  id.ID,
		Country:  country,
		PNR:      pnr,
		Provider: "", // this broker; federation will add other providers
		State:    string(id.State),
		From:     optDate(id.From),
		To:       optDate(id.To),
		Version:  id.Version,
		Written:  date(now),
	}, true
}

// redact returns a MongoDB URI without its user information, for messages.
func redact(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return "(unparsable URI)"
	}
	if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
		rest = rest[at+1:]
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	return scheme + "://" + rest
}
