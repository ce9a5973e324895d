package identity_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/legalmfa/mfa/identity"
)

// The signature work every MFA does: the broker signs the push and the
// withdrawal and verifies the device's answer; the device verifies both
// broker messages and signs its answer. Run with
//
//	go test -run '^$' -bench . -benchmem ./identity/

// benchAnswerForm is an MFA-Answer/1 form of typical size.
func benchAnswerForm() []byte {
	return identity.NewSignedForm("MFA-Answer/1").
		Add("RequestId", "kxxcrsohdre66ox3wj4wemjj4v").
		Add("LegalId", "1d6de039-679a-4184-b781-28d530a5449f@legal.localhost").
		Add("Broker", "localhost").
		Add("Decision", "approve").
		Add("Expires", "2026-11-22T13:30:32.752Z").
		Add("Push", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08").
		Bytes()
}

// BenchmarkVerify is identity.Verify of a device's answer: the broker's
// most expensive step per MFA.
func BenchmarkVerify(b *testing.B) {
	key, err := identity.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	form := benchAnswerForm()
	sig := ed25519.Sign(key, form)
	pub := key.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if err := identity.Verify(pub, form, sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign is one Ed25519 signature, as the broker makes twice per
// MFA (push, withdrawal) and the device once (answer).
func BenchmarkSign(b *testing.B) {
	key, err := identity.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	form := benchAnswerForm()
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(key, form)
	}
}

// BenchmarkSignedForm builds the canonical form that is signed.
func BenchmarkSignedForm(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchAnswerForm()
	}
}

// BenchmarkDeviceIDOf names a device in NATS subjects; the pusher does it
// once per target of every MFA.
func BenchmarkDeviceIDOf(b *testing.B) {
	key, err := identity.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		identity.DeviceIDOf(pub)
	}
}
