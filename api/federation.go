package api

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Discovery: where a broker says what it is to other brokers. Every broker
// serves all of these, whether or not it federates.
const (
	// PathOCMDiscovery and PathOCMProvider serve the OpenCloudMesh
	// discovery document (OCMDiscovery); OCM requires both, the second
	// being its legacy name.
	PathOCMDiscovery = "/.well-known/ocm"
	PathOCMProvider  = "/ocm-provider"
	// PathMFACapable answers 200 to say the broker is MFA-capable, as OCM
	// 1.1's /mfa-capable capability has it. OCM paths are relative to the
	// discovery document's endPoint, so the broker answers at
	// PathOCMEndPoint+PathMFACapable too.
	PathMFACapable = "/mfa-capable"
	// PathOCMEndPoint is the discovery document's endPoint below the
	// broker's base URL. The broker implements no OCM share API: the one
	// thing that answers below it is PathMFACapable.
	PathOCMEndPoint = "/ocm"
	// PathFederation serves the broker's own federation document
	// (FederationDocument).
	PathFederation = "/.well-known/mfa-federation"
)

// OCM values of the discovery document.
const (
	// OCMAPIVersion is the OCM version whose discovery document the broker
	// serves: 1.2 is the first to define the enforce-mfa capability.
	OCMAPIVersion = "1.2.0"
	// OCMCapabilityMFACapable is the MFA capability as OCM 1.1 spells it
	// (an API path), and OCMCapabilityEnforceMFA as OCM 1.2 and later do.
	// The broker advertises both, and a peer that advertises either is
	// MFA-capable.
	OCMCapabilityMFACapable = "/mfa-capable"
	OCMCapabilityEnforceMFA = "enforce-mfa"
	// OCMProvider is the friendly name in the discovery document.
	OCMProvider = "legal-identity MFA broker"
	// OCMKeyFragment ends the publicKey's keyId: OCM's convention is
	// <endPoint>#signature.
	OCMKeyFragment = "#signature"
)

// OCMDiscovery is the OpenCloudMesh discovery document, GET
// /.well-known/ocm and /ocm-provider. Field names and casing are OCM's.
// The broker fills in what OCM requires and what says it is MFA-capable;
// it shares no resources, so ResourceTypes is empty.
type OCMDiscovery struct {
	Enabled    bool   `json:"enabled"`
	APIVersion string `json:"apiVersion"`
	// EndPoint is the base URL of the OCM API: <broker base URL>/ocm.
	EndPoint      string            `json:"endPoint"`
	Provider      string            `json:"provider,omitempty"`
	ResourceTypes []OCMResourceType `json:"resourceTypes"`
	Capabilities  []string          `json:"capabilities,omitempty"`
	PublicKey     *OCMPublicKey     `json:"publicKey,omitempty"`
}

// MFACapable reports whether the document advertises MFA capability, in
// either of OCM's spellings.
func (d OCMDiscovery) MFACapable() bool {
	for _, c := range d.Capabilities {
		if c == OCMCapabilityMFACapable || c == OCMCapabilityEnforceMFA {
			return true
		}
	}
	return false
}

// OCMResourceType is one kind of resource an OCM server shares. Protocols'
// values are strings in OCM 1.2 and objects in later drafts; they are kept
// as they came.
type OCMResourceType struct {
	Name       string                     `json:"name"`
	ShareTypes []string                   `json:"shareTypes"`
	Protocols  map[string]json.RawMessage `json:"protocols"`
}

// OCMPublicKey is the key an OCM server signs with. For the broker it is
// the broker key, the same key as FederationDocument.PublicKey.
type OCMPublicKey struct {
	// KeyID is <endPoint>#signature.
	KeyID string `json:"keyId"`
	// PublicKeyPEM is the key as a PEM "PUBLIC KEY" block (PKIX).
	PublicKeyPEM string `json:"publicKeyPem"`
}

// FederationDocument is GET /.well-known/mfa-federation: what a broker
// that may peer with this one needs to know of it. Peering starts here:
// the operator compares the key's fingerprint out of band before approving.
type FederationDocument struct {
	// Domain is the broker's domain: its identities are
	// <uuid>@legal.<domain>.
	Domain string `json:"Domain"`
	// PublicKey is the broker key, base64, as GET /Broker gives it. It
	// signs the broker's pushes, references and federation answers.
	PublicKey string `json:"PublicKey"`
	// PeerID names the broker among its peers: PeerID(PublicKey).
	PeerID string `json:"PeerId"`
	// LeafURL is where peers connect their NATS leaf node (nats-leaf:// or
	// tls://); absent when the broker does not federate.
	LeafURL string `json:"LeafUrl,omitempty"`
	// Countries are the ISO 3166-1 alpha-2 codes of the Approved
	// identities the broker holds, sorted; a minute old at most.
	Countries []string `json:"Countries"`
	// Version is the broker's software version.
	Version string `json:"Version"`
	// MFACapable is always true: a broker serves MFA.
	MFACapable bool `json:"MfaCapable"`
}

// peerIDEncoding is lower-case base32 without padding: letters a-z and
// digits 2-7 only, one NATS subject token.
var peerIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// peerIDBytes is how much of the key's SHA-256 a peer ID keeps: 160 bits
// put a collision between two brokers' keys out of reach, in 32 characters.
const peerIDBytes = 20

// PeerIDLength is the length of a peer ID.
var PeerIDLength = peerIDEncoding.EncodedLen(peerIDBytes)

// PeerID names a broker by its key: the first 20 bytes of the SHA-256 of
// the Ed25519 public key, in lower-case base32 without padding (32
// characters of a-z and 2-7). It names the broker in NATS account names
// and subjects, so it is one subject token and carries nothing a broker
// chose but its key.
func PeerID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return peerIDEncoding.EncodeToString(sum[:peerIDBytes])
}

// IsPeerID reports whether s is spelled as a peer ID.
func IsPeerID(s string) bool {
	if len(s) != PeerIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// EncodePublicKeyPEM is an Ed25519 key as OCM's publicKeyPem: a PEM
// "PUBLIC KEY" block of its PKIX (SubjectPublicKeyInfo) encoding.
func EncodePublicKeyPEM(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("an Ed25519 public key has %d bytes, not %d", ed25519.PublicKeySize, len(pub))
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// ParsePublicKeyPEM reads an Ed25519 key written by EncodePublicKeyPEM:
// exactly one PEM "PUBLIC KEY" block without headers, holding an Ed25519
// key, and nothing but white space around it.
func ParsePublicKeyPEM(s string) (ed25519.PublicKey, error) {
	block, rest := pem.Decode([]byte(s))
	switch {
	case block == nil:
		return nil, errors.New("publicKeyPem holds no PEM block")
	case block.Type != "PUBLIC KEY":
		return nil, fmt.Errorf("publicKeyPem holds a %q block, not PUBLIC KEY", truncate(block.Type, 32))
	case len(block.Headers) > 0:
		return nil, errors.New("publicKeyPem's block has headers")
	case strings.TrimSpace(string(rest)) != "":
		return nil, errors.New("publicKeyPem has data after its PEM block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("publicKeyPem: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("publicKeyPem holds a %T key, not Ed25519", key)
	}
	return pub, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Leaf URL schemes a federation document may give: nats-leaf:// (plain
// TCP, or TLS when the listener requires it) and tls:// (TLS always).
const (
	LeafSchemePlain = "nats-leaf"
	LeafSchemeTLS   = "tls"
)

// CheckLeafURL reports whether s is a leaf-node URL a peer may be told to
// connect to: nats-leaf:// or tls://, a host and a port, and nothing else.
// Credentials in the URL are refused: a peer authenticates with its own
// broker key, and a URL is shown and logged.
func CheckLeafURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("the leaf URL does not parse")
	}
	switch {
	case u.Scheme != LeafSchemePlain && u.Scheme != LeafSchemeTLS:
		return fmt.Errorf("the leaf URL's scheme must be %s:// or %s://", LeafSchemePlain, LeafSchemeTLS)
	case u.Opaque != "" || u.Host == "":
		return errors.New("the leaf URL has no host")
	case u.User != nil:
		return errors.New("the leaf URL must not hold credentials")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return errors.New("the leaf URL must be only a scheme, a host and a port")
	case u.Hostname() == "":
		return errors.New("the leaf URL has no host")
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 || u.Port() != strconv.Itoa(port) {
		return errors.New("the leaf URL needs a port from 1 to 65535")
	}
	return nil
}
