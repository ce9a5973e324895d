package api_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/api"
)

func newPub(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestPeerID: a peer ID is the first 20 bytes of the key's SHA-256 in
// lower-case unpadded base32, so one NATS subject token of a-z and 2-7,
// the same for the same key and different for different keys.
func TestPeerID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		pub := newPub(t)
		id := api.PeerID(pub)
		sum := sha256.Sum256(pub)
		want := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
		if id != want {
			t.Fatalf("PeerID = %q, want %q", id, want)
		}
		if len(id) != 32 || api.PeerIDLength != 32 || !api.IsPeerID(id) {
			t.Fatalf("PeerID %q: length %d, IsPeerID %v", id, len(id), api.IsPeerID(id))
		}
		// One subject token: no separators or wildcards, nothing upper case.
		if strings.ContainsAny(id, ".*> \t") || strings.ToLower(id) != id {
			t.Fatalf("PeerID %q is not one lower-case subject token", id)
		}
		if api.PeerID(pub) != id {
			t.Fatal("PeerID is not deterministic")
		}
		if seen[id] {
			t.Fatalf("two keys share the peer ID %q", id)
		}
		seen[id] = true
	}
}

func TestIsPeerID(t *testing.T) {
	t.Parallel()
	valid := api.PeerID(newPub(t))
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{valid, true},
		{strings.Repeat("a", 32), true},
		{strings.Repeat("a", 31), false},
		{strings.Repeat("a", 33), false},
		{strings.ToUpper(valid), false},
		{strings.Repeat("a", 31) + "1", false}, // base32 has no 0, 1, 8, 9
		{strings.Repeat("a", 31) + ".", false},
		{strings.Repeat("a", 31) + "*", false},
		{"", false},
	} {
		if got := api.IsPeerID(tc.s); got != tc.want {
			t.Errorf("IsPeerID(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

// TestPublicKeyPEM: the broker key as OCM's publicKeyPem, read back; and
// what is not exactly one Ed25519 PUBLIC KEY block is refused.
func TestPublicKeyPEM(t *testing.T) {
	t.Parallel()
	pub := newPub(t)
	pemText, err := api.EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pemText, "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA") || !strings.HasSuffix(pemText, "\n-----END PUBLIC KEY-----\n") {
		t.Fatalf("PEM %q", pemText)
	}
	got, err := api.ParsePublicKeyPEM(pemText)
	if err != nil || !got.Equal(pub) {
		t.Fatalf("ParsePublicKeyPEM: %x, %v; want %x", got, err, pub)
	}
	if _, err := api.EncodePublicKeyPEM(pub[:31]); err == nil {
		t.Error("EncodePublicKeyPEM of 31 bytes succeeded")
	}
	other, _ := api.EncodePublicKeyPEM(newPub(t))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}))
	for _, tc := range []struct{ name, pem string }{
		{"empty", ""},
		{"no block", "MCowBQYDK2VwAyEA"},
		{"private key", strings.ReplaceAll(pemText, "PUBLIC KEY", "PRIVATE KEY")},
		{"headers", strings.Replace(pemText, "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1)},
		{"two blocks", pemText + other},
		{"trailing text", pemText + "and more"},
		{"truncated", pemText[:40]},
		{"ECDSA key", ecPEM},
		{"garbage DER", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
	} {
		if _, err := api.ParsePublicKeyPEM(tc.pem); err == nil {
			t.Errorf("%s: ParsePublicKeyPEM succeeded", tc.name)
		}
	}
	// White space around the one block is fine.
	if got, err := api.ParsePublicKeyPEM("\n" + pemText + "\n\n"); err != nil || !got.Equal(pub) {
		t.Errorf("with white space around: %v", err)
	}
}

func TestCheckLeafURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"nats-leaf://broker.example.org:7422", true},
		{"tls://broker.example.org:7422", true},
		{"nats-leaf://127.0.0.1:1", true},
		{"nats-leaf://[::1]:65535", true},
		{"nats://broker.example.org:7422", false},
		{"ws://broker.example.org:7422", false},
		{"https://broker.example.org:7422", false},
		{"nats-leaf://broker.example.org", false},
		{"nats-leaf://broker.example.org:", false},
		{"nats-leaf://broker.example.org:0", false},
		{"nats-leaf://broker.example.org:65536", false},
		{"nats-leaf://broker.example.org:07422", false},
		{"nats-leaf://:7422", false},
		{"nats-leaf://user:secret@broker.example.org:7422", false},
		{"nats-leaf://broker.example.org:7422/", false},
		{"nats-leaf://broker.example.org:7422/path", false},
		{"nats-leaf://broker.example.org:7422?x=1", false},
		{"nats-leaf://broker.example.org:7422#f", false},
		{"nats-leaf:broker.example.org:7422", false},
		{"", false},
		{"nats-leaf://broker example:7422", false},
	} {
		if err := api.CheckLeafURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckLeafURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}

func TestOCMDiscoveryMFACapable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		caps []string
		want bool
	}{
		{nil, false},
		{[]string{"/notifications", "/invite-accepted"}, false},
		{[]string{"/mfa-capable"}, true},
		{[]string{"enforce-mfa"}, true},
		{[]string{"notifications", "enforce-mfa"}, true},
		{[]string{"mfa-capable"}, false},  // neither spelling
		{[]string{"/enforce-mfa"}, false}, // neither spelling
		{[]string{"ENFORCE-MFA"}, false},
	} {
		if got := (api.OCMDiscovery{Capabilities: tc.caps}).MFACapable(); got != tc.want {
			t.Errorf("MFACapable(%q) = %v, want %v", tc.caps, got, tc.want)
		}
	}
}
