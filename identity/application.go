package identity

import (
	"crypto/ed25519"
	"fmt"
)

// Application is a device's request for a legal identity: the properties it
// claims and its public key, with a proof that it holds the private key.
type Application struct {
	Properties []Property
	PublicKey  ed25519.PublicKey
	Proof      []byte
}

// ApplicationForm is what the proof signs. It names the broker's domain, so
// an application cannot be replayed to another broker.
func ApplicationForm(domain string, props []Property, pub ed25519.PublicKey) []byte {
	f := NewSignedForm("MFA-Apply/1").Add("Domain", domain).Add("PublicKey", EncodePublicKey(pub))
	for _, p := range props {
		f.Add(p.Name, p.Value)
	}
	return f.Bytes()
}

// NewApplication signs an application for domain with key.
func NewApplication(domain string, props []Property, key ed25519.PrivateKey) Application {
	pub := key.Public().(ed25519.PublicKey)
	return Application{
		Properties: props,
		PublicKey:  pub,
		Proof:      ed25519.Sign(key, ApplicationForm(domain, props, pub)),
	}
}

// Verify checks the properties and the proof of possession.
func (a Application) Verify(domain string) error {
	if err := ValidateProperties(a.Properties); err != nil {
		return err
	}
	if len(a.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key has %d bytes, an Ed25519 key has %d", ErrInvalid, len(a.PublicKey), ed25519.PublicKeySize)
	}
	if err := Verify(a.PublicKey, ApplicationForm(domain, a.Properties, a.PublicKey), a.Proof); err != nil {
		return fmt.Errorf("proof of possession: %w", err)
	}
	return nil
}
