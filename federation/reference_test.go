package federation

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/identity"
)

func testIdentity(t testing.TB) identity.Identity {
	t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return identity.Identity{
		ID: "4f1b2c3d-0000-4000-8000-000000000001@legal.b.test", State: identity.Approved,
		Properties: []identity.Property{{Name: "PNR", Value: "19791231-1234"}, {Name: "COUNTRY", Value: "SE"}, {Name: "FIRST", Value: "Alice"}},
		PublicKey:  key.Public().(ed25519.PublicKey), From: from, To: from.AddDate(2, 0, 0), Version: 3,
	}
}

func testLookupKey() LookupKey { return LookupKey(bytes.Repeat([]byte{7}, LookupKeySize)) }

func TestReferenceSignedByItsHome(t *testing.T) {
	t.Parallel()
	home, _ := identity.GenerateKey()
	other, _ := identity.GenerateKey()
	id := testIdentity(t)
	r, ok := NewReference(id, home, testLookupKey())
	if !ok {
		t.Fatal("no reference for a person")
	}
	homePub := home.Public().(ed25519.PublicKey)
	if err := r.Verify(homePub); err != nil {
		t.Fatal(err)
	}
	// Nothing of the person in it but the lookup hash: no number, no name.
	enc := r.Encode()
	for _, secret := range []string{"19791231", "Alice", "SE\x00"} {
		if bytes.Contains(enc, []byte(secret)) {
			t.Fatalf("the reference holds %q: %s", secret, enc)
		}
	}
	back, err := DecodeReference(enc)
	if err != nil || back.Verify(homePub) != nil || !back.To.Equal(r.To) || back.LegalID != r.LegalID {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if !back.ValidAt(id.From.Add(time.Hour)) || back.ValidAt(id.To.Add(time.Hour)) {
		t.Fatal("validity window")
	}
	tamper := []struct {
		name   string
		change func(*Reference)
	}{
		{"state", func(r *Reference) { r.State = identity.Approved; r.Version-- }},
		{"key", func(r *Reference) { r.PublicKey = other.Public().(ed25519.PublicKey) }},
		{"validity", func(r *Reference) { r.To = r.To.AddDate(10, 0, 0) }},
		{"lookup", func(r *Reference) { r.Lookup = testLookupKey().Hash("SE", "19800101-0000") }},
		{"LegalId", func(r *Reference) { r.LegalID = "someone-else@legal.b.test" }},
		{"version", func(r *Reference) { r.Version = 99 }},
		{"home", func(r *Reference) { r.Home = api.PeerID(other.Public().(ed25519.PublicKey)) }},
	}
	for _, c := range tamper {
		changed := r
		c.change(&changed)
		if err := changed.Verify(homePub); !errors.Is(err, ErrBadReference) {
			t.Errorf("%s changed: %v", c.name, err)
		}
	}
	// Signed by another broker, claiming to be this one's: refused.
	forged, _ := NewReference(id, other, testLookupKey())
	forged.Home = r.Home
	if err := forged.Verify(homePub); !errors.Is(err, ErrBadReference) {
		t.Fatalf("forged: %v", err)
	}
	// From another peer than its home: refused, however well signed.
	if err := r.Verify(other.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadReference) {
		t.Fatalf("relayed by another peer: %v", err)
	}
	requester := id
	requester.Properties = []identity.Property{{Name: "ORGNAME", Value: "Example Bank"}}
	if _, ok := NewReference(requester, home, testLookupKey()); ok {
		t.Fatal("a requester without a number has a reference")
	}
}

func TestLookupHash(t *testing.T) {
	t.Parallel()
	k := testLookupKey()
	h := k.Hash("SE", "19791231-1234")
	if !isLookup(h) || h != k.Hash("SE", "19791231-1234") {
		t.Fatalf("hash %q", h)
	}
	other := LookupKey(bytes.Repeat([]byte{8}, LookupKeySize))
	for _, different := range []string{k.Hash("NO", "19791231-1234"), k.Hash("SE", "19791231-1235"), k.Hash("S", "E19791231-1234"), other.Hash("SE", "19791231-1234")} {
		if different == h {
			t.Fatal("two people, or two keys, share a hash")
		}
	}
}

func TestDecodeReferenceRefuses(t *testing.T) {
	t.Parallel()
	home, _ := identity.GenerateKey()
	r, _ := NewReference(testIdentity(t), home, testLookupKey())
	good := string(r.Encode())
	for name, body := range map[string]string{
		"unknown field": strings.Replace(good, `{"Home"`, `{"Extra":1,"Home"`, 1),
		"trailing":      good + `{}`,
		"not JSON":      "reference",
		"huge":          `{"LegalId":"` + strings.Repeat("a", maxReferenceBytes) + `"}`,
	} {
		if _, err := DecodeReference([]byte(body)); !errors.Is(err, ErrBadReference) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzReference: any bytes are decoded and verified without panicking, and
// none but the home broker's own signed references verify.
func FuzzReference(f *testing.F) {
	home, _ := identity.GenerateKey()
	id := testIdentity(f)
	r, _ := NewReference(id, home, testLookupKey())
	f.Add(r.Encode())
	f.Add([]byte(`{"Home":"x","LegalId":"a@b","Lookup":"","PublicKey":"","State":"Approved","Version":1}`))
	f.Add([]byte(`null`))
	homePub := home.Public().(ed25519.PublicKey)
	genuine := string(r.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeReference(b)
		if err != nil {
			return
		}
		if got.Verify(homePub) == nil && !bytes.Equal(got.form(), r.form()) {
			t.Fatalf("a reference the home did not sign verifies: %s (genuine %s)", b, genuine)
		}
	})
}
