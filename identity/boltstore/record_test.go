package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/legalmfa/mfa/identity"
)

func sampleRecord() identity.Identity {
	return identity.Identity{
		ID:    "0b6f2c1e-5d9a-4c57-8f3e-2a1b0c9d8e7f@legal.example.org",
		State: identity.Compromised,
		Properties: []identity.Property{
			{Name: identity.PropPNR, Value: "19900101-1234"},
			{Name: identity.PropCountry, Value: "SE"},
			{Name: identity.PropLast, Value: "Åström 李"},
		},
		PublicKey: bytes.Repeat([]byte{0xab}, 32),
		From:      time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), // before the epoch
		To:        time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC),         // past int64 nanoseconds
		Created:   time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 7200)),
		// Updated left zero.
		Version: 1 << 40,
	}
}

func TestRecordRoundTrip(t *testing.T) {
	want := sampleRecord()
	val, err := encodeRecord(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord([]byte(want.ID), val)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.State != want.State || got.Version != want.Version ||
		!bytes.Equal(got.PublicKey, want.PublicKey) || fmt.Sprint(got.Properties) != fmt.Sprint(want.Properties) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		name      string
		got, want time.Time
	}{{"From", got.From, want.From}, {"To", got.To, want.To}, {"Created", got.Created, want.Created}, {"Updated", got.Updated, want.Updated}} {
		if !tc.got.Equal(tc.want) || tc.got.Location() != time.UTC {
			t.Errorf("%s: %v, want %v in UTC", tc.name, tc.got, tc.want)
		}
	}
	if !got.Updated.IsZero() {
		t.Errorf("zero Updated came back as %v", got.Updated)
	}
	if peeked, err := peekState(val); err != nil || peeked != want.State {
		t.Errorf("peekState: %v, %v", peeked, err)
	}
	// Decoding must copy: bbolt reuses the memory behind values.
	for i := range val {
		val[i] = 0
	}
	if !bytes.Equal(got.PublicKey, want.PublicKey) || got.Properties[2].Value != want.Properties[2].Value {
		t.Error("decoded identity shares memory with the encoded record")
	}
}

func TestRecordRejectsCorruption(t *testing.T) {
	val, err := encodeRecord(sampleRecord())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeRecord([]byte("x@y"), rawRecord(uint64(time.Second-1))); err != nil {
		t.Fatalf("hand-built control record does not decode: %v", err)
	}
	for n := range len(val) {
		if _, err := decodeRecord([]byte("x@y"), val[:n]); !errors.Is(err, errCorrupt) {
			t.Errorf("record cut to %d of %d bytes: %v, want errCorrupt", n, len(val), err)
		}
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(val)) }
	for name, bad := range map[string][]byte{
		"trailing byte":     mutate(func(b []byte) []byte { return append(b, 0) }),
		"format version 0":  mutate(func(b []byte) []byte { b[0] = 0; return b }),
		"format version 2":  mutate(func(b []byte) []byte { b[0] = formatVersion + 1; return b }),
		"state code 0":      mutate(func(b []byte) []byte { b[1] = 0; return b }),
		"state code 6":      mutate(func(b []byte) []byte { b[1] = byte(len(stateCodes)); return b }),
		"nanoseconds ≥ 1 s": rawRecord(uint64(time.Second)),
	} {
		if _, err := decodeRecord([]byte("x@y"), bad); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want errCorrupt", name, err)
		}
	}
}

// rawRecord builds a minimal Created record by hand whose From has the
// given nanosecond field, which encodeRecord itself keeps below a second.
func rawRecord(fromNanos uint64) []byte {
	b := []byte{formatVersion, 1, 0} // format, Created, Version 0
	b = append(b, 0)                 // From seconds
	b = binary.AppendUvarint(b, fromNanos)
	for range 3 {
		b = append(b, 0, 0) // To, Created, Updated
	}
	return append(b, 0, 0) // no key, no properties
}

func TestReferenceKey(t *testing.T) {
	id := sampleRecord()
	ref := referenceKey(id)
	p := referencePrefix("SE", "19900101-1234")
	code, _ := stateCode(id.State)
	if !bytes.HasPrefix(ref, p[:]) || ref[len(p)] != code || string(ref[len(p)+1:]) != id.ID {
		t.Errorf("reference key %x is not prefix ‖ state ‖ ID", ref)
	}
	// Framing: moving bytes between the fields must change the prefix.
	for _, other := range [][2]string{{"SE1", "9900101-1234"}, {"S", "E19900101-1234"}, {"19900101-1234", "SE"}, {"se", "19900101-1234"}} {
		if q := referencePrefix(other[0], other[1]); q == p {
			t.Errorf("(%q, %q) has the same prefix as (SE, 19900101-1234)", other[0], other[1])
		}
	}
	id.Properties = id.Properties[2:]
	if ref := referenceKey(id); ref != nil {
		t.Errorf("identity without PNR has reference key %x", ref)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	val, err := encodeRecord(sampleRecord())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(val)
	f.Add(rawRecord(0))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := decodeRecord([]byte("x@y"), b)
		if err != nil {
			return
		}
		// Whatever decodes must survive a write and a read unchanged.
		val, err := encodeRecord(id)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		again, err := decodeRecord([]byte("x@y"), val)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if fmt.Sprintf("%#v", again) != fmt.Sprintf("%#v", id) {
			t.Fatalf("record changed on a round trip:\n%#v\n%#v", id, again)
		}
	})
}
