package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/legalmfa/mfa/identity"
)

// formatVersion is written to the meta bucket and as the first byte of every
// record. Bump it when the layout of records or index keys changes, and teach
// Open to migrate older files.
const formatVersion = 1

// errCorrupt marks bytes in the file that this code did not write.
var errCorrupt = errors.New("corrupt record")

// State codes in records. A byte instead of the name keeps records small and
// lets List and FindValid skip identities by state without decoding them.
var stateCodes = [...]identity.State{
	1: identity.Created,
	2: identity.Approved,
	3: identity.Rejected,
	4: identity.Obsoleted,
	5: identity.Compromised,
}

func stateCode(s identity.State) (byte, bool) {
	for i, st := range stateCodes {
		if i > 0 && st == s {
			return byte(i), true
		}
	}
	return 0, false
}

// Record layout, format version 1 (the ID is the bucket key, not repeated):
//
//	byte     format version
//	byte     state code
//	varint   Version
//	4 times  From, To, Created, Updated: varint Unix seconds, uvarint nanoseconds
//	uvarint  public key length, key bytes
//	uvarint  property count, then per property: uvarint length, name, uvarint length, value
//
// A hand-written layout rather than JSON: FindValid decodes a record per
// match on the MFA hot path, and this is several times faster to decode and
// about half the size, which matters for the page cache at millions of
// identities. Times keep full nanosecond precision in UTC.
func encodeRecord(id identity.Identity) ([]byte, error) {
	code, ok := stateCode(id.State)
	if !ok {
		return nil, fmt.Errorf("%w: unknown state %q", identity.ErrInvalid, id.State)
	}
	n := 2 + binary.MaxVarintLen64*9 + len(id.PublicKey) + 2*binary.MaxVarintLen64*len(id.Properties)
	for _, p := range id.Properties {
		n += len(p.Name) + len(p.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, formatVersion, code)
	b = binary.AppendVarint(b, id.Version)
	for _, t := range []time.Time{id.From, id.To, id.Created, id.Updated} {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	b = appendBytes(b, id.PublicKey)
	b = binary.AppendUvarint(b, uint64(len(id.Properties)))
	for _, p := range id.Properties {
		b = appendBytes(b, []byte(p.Name))
		b = appendBytes(b, []byte(p.Value))
	}
	return b, nil
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// peekState reads only the state of a record.
func peekState(v []byte) (identity.State, error) {
	if len(v) < 2 || v[0] != formatVersion || int(v[1]) >= len(stateCodes) || v[1] == 0 {
		return "", errCorrupt
	}
	return stateCodes[v[1]], nil
}

// decodeRecord copies everything out of v: bbolt's values point into the
// memory map and are only valid inside the transaction.
func decodeRecord(key, v []byte) (identity.Identity, error) {
	st, err := peekState(v)
	if err != nil {
		return identity.Identity{}, err
	}
	d := decoder{b: v[2:]}
	id := identity.Identity{ID: string(key), State: st}
	id.Version = d.varint()
	for _, t := range []*time.Time{&id.From, &id.To, &id.Created, &id.Updated} {
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= uint64(time.Second) {
			d.fail()
		}
		*t = time.Unix(sec, int64(nsec)).UTC()
	}
	id.PublicKey = bytes.Clone(d.bytes())
	count := d.uvarint()
	if count > identity.MaxProperties {
		d.fail()
	}
	if count > 0 && d.err == nil {
		id.Properties = make([]identity.Property, count)
		for i := range id.Properties {
			id.Properties[i] = identity.Property{Name: string(d.bytes()), Value: string(d.bytes())}
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return identity.Identity{}, errCorrupt
	}
	return id, nil
}

// decoder reads varints and length-prefixed byte strings, remembering the
// first failure so the caller checks once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	d.err = errCorrupt
	d.b = nil
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

// referencePrefixLen is the length of the hash that starts every key in the
// references bucket.
const referencePrefixLen = sha256.Size

// referencePrefix is the references-bucket key prefix of one person. The
// pair is length-framed so no two (COUNTRY, PNR) pairs hash the same input,
// and the hash gives every person a fixed-size prefix whatever the PNR's
// format, so FindValid is a single seek.
func referencePrefix(country, pnr string) [referencePrefixLen]byte {
	b := make([]byte, 0, 32+len(country)+len(pnr))
	b = append(b, "mfa-reference/1\x00"...)
	b = appendBytes(b, []byte(country))
	b = appendBytes(b, []byte(pnr))
	return sha256.Sum256(b)
}

// referenceKey is the references-bucket key of an identity, or nil for an
// identity that cannot be looked up by PNR and COUNTRY: the person's
// prefix, the state's code, the ID. With the state in the key, the MFA
// lookup seeks the person's Approved identities and reads no other, however
// many applications carry the same PNR (index version 2).
func referenceKey(id identity.Identity) []byte {
	pnr, country := id.Property(identity.PropPNR), id.Property(identity.PropCountry)
	code, ok := stateCode(id.State)
	if pnr == "" || country == "" || !ok {
		return nil
	}
	p := referencePrefix(country, pnr)
	return append(append(p[:], code), id.ID...)
}

// countryKey is the countries-bucket key of an identity, or nil for one
// that is not Approved or has no COUNTRY: the country, a NUL, the ID. An
// identity with a COUNTRY has a PNR too (identity.ValidateProperties).
func countryKey(id identity.Identity) []byte {
	country := id.Property(identity.PropCountry)
	if id.State != identity.Approved || country == "" || id.Property(identity.PropPNR) == "" {
		return nil
	}
	k := make([]byte, 0, len(country)+1+len(id.ID))
	k = append(k, country...)
	k = append(k, 0)
	return append(k, id.ID...)
}

// indexVersion is the layout of the index keys, in the meta bucket; Open
// rebuilds the indexes of a file with an older one. Version 3 added the
// countries bucket.
const indexVersion = 3
