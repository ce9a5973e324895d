package identity_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/identity"
)

func TestApplicationRoundTrip(t *testing.T) {
	key := mustKey(t)
	ps := props("FIRST", "Åsa", "LAST", "Li 李", "PNR", "19900101-1234", "COUNTRY", "SE")
	app := identity.NewApplication("broker.example.org", ps, key)
	if !bytes.Equal(app.PublicKey, key.Public().(ed25519.PublicKey)) {
		t.Error("application does not carry the signing key's public key")
	}
	if err := app.Verify("broker.example.org"); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	form := string(identity.ApplicationForm("broker.example.org", ps, app.PublicKey))
	want := "MFA-Apply/1\nDomain:18:broker.example.org\nPublicKey:44:" + identity.EncodePublicKey(app.PublicKey) + "\n" +
		"FIRST:4:Åsa\nLAST:6:Li 李\nPNR:13:19900101-1234\nCOUNTRY:2:SE\n"
	if form != want {
		t.Errorf("ApplicationForm:\n%q\nwant\n%q", form, want)
	}
}

func TestApplicationTampering(t *testing.T) {
	const domain = "broker.example.org"
	key := mustKey(t)
	ps := props("FIRST", "Tess", "PNR", "19900101-1234", "COUNTRY", "SE")
	good := identity.NewApplication(domain, ps, key)
	clone := func() identity.Application {
		a := good
		a.Properties = slices.Clone(good.Properties)
		a.PublicKey = bytes.Clone(good.PublicKey)
		a.Proof = bytes.Clone(good.Proof)
		return a
	}
	other := mustKey(t)

	for _, tc := range []struct {
		name   string
		domain string
		mutate func(a *identity.Application)
		want   error
	}{
		{"changed PNR", domain, func(a *identity.Application) { a.Properties[1].Value = "19900101-1235" }, identity.ErrBadSignature},
		{"changed name", domain, func(a *identity.Application) { a.Properties[0].Value = "Tes" }, identity.ErrBadSignature},
		{"added property", domain, func(a *identity.Application) {
			a.Properties = append(a.Properties, identity.Property{Name: "EMAIL", Value: "x@example.org"})
		}, identity.ErrBadSignature},
		{"removed property", domain, func(a *identity.Application) { a.Properties = a.Properties[:1] }, identity.ErrBadSignature},
		{"reordered properties", domain, func(a *identity.Application) {
			a.Properties[1], a.Properties[2] = a.Properties[2], a.Properties[1]
		}, identity.ErrBadSignature},
		{"other domain", "other.example.org", func(a *identity.Application) {}, identity.ErrBadSignature},
		{"domain suffix", "example.org", func(a *identity.Application) {}, identity.ErrBadSignature},
		{"other key, same proof", domain, func(a *identity.Application) { a.PublicKey = other.Public().(ed25519.PublicKey) }, identity.ErrBadSignature},
		{"other key's proof", domain, func(a *identity.Application) {
			a.Proof = identity.NewApplication(domain, ps, other).Proof
		}, identity.ErrBadSignature},
		{"proof for another domain", domain, func(a *identity.Application) {
			a.Proof = identity.NewApplication("other.example.org", ps, key).Proof
		}, identity.ErrBadSignature},
		{"no proof", domain, func(a *identity.Application) { a.Proof = nil }, identity.ErrBadSignature},
		{"invalid properties", domain, func(a *identity.Application) { a.Properties[0].Name = "first" }, identity.ErrInvalid},
		{"short key", domain, func(a *identity.Application) { a.PublicKey = a.PublicKey[:16] }, identity.ErrInvalid},
	} {
		a := clone()
		tc.mutate(&a)
		err := a.Verify(tc.domain)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == identity.ErrBadSignature && !strings.Contains(err.Error(), "proof of possession") {
			t.Errorf("%s: error %q does not say the proof failed", tc.name, err)
		}
	}
	if err := good.Verify(domain); err != nil {
		t.Errorf("tampering tests modified the original application: %v", err)
	}
}
