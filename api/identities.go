package api

import (
	"time"

	"github.com/legalmfa/mfa/identity"
)

// ApplicationRequest is the body of POST /Identities.
type ApplicationRequest struct {
	Properties []identity.Property `json:"Properties"`
	// PublicKey is the device's Ed25519 key, base64.
	PublicKey string `json:"PublicKey"`
	// Proof is the key's signature over identity.ApplicationForm, base64.
	Proof string `json:"Proof"`
}

// PublicIdentity is what anyone may learn about an identity: enough to
// verify its signatures, and nothing personal.
type PublicIdentity struct {
	ID        string    `json:"Id"`
	State     string    `json:"State"`
	Algorithm string    `json:"Algorithm"`
	PublicKey string    `json:"PublicKey"`
	ValidFrom time.Time `json:"ValidFrom,omitzero"`
	ValidTo   time.Time `json:"ValidTo,omitzero"`
	Broker    string    `json:"Broker"`
}

// BrokerInfo is GET /Broker: what a device needs to connect and verify.
type BrokerInfo struct {
	Domain string `json:"Domain"`
	// PublicKey verifies the broker's signature on every push.
	PublicKey  string `json:"PublicKey"`
	NATSURL    string `json:"NatsUrl"`
	MaxTimeout int    `json:"MaxTimeout"`
	Schema     string `json:"Schema"`
	// Version is the broker's software version.
	Version string `json:"Version"`
}

// ApplicationResponse is the answer to an application.
type ApplicationResponse struct {
	Identity PublicIdentity `json:"Identity"`
	Broker   BrokerInfo     `json:"Broker"`
}
