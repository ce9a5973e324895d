package identity_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/legalmfa/mfa/identity"
)

func TestKeyFileRoundTrip(t *testing.T) {
	key := mustKey(t)
	path := filepath.Join(t.TempDir(), "keys", "nested", "device.pem")
	if err := identity.WriteKeyFile(path, key); err != nil {
		t.Fatal(err)
	}
	got, err := identity.ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(got) {
		t.Error("key read back differs from the key written")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("key directory mode %v is open to others", perm)
	}
	data, _ := os.ReadFile(path)
	if block, _ := pem.Decode(data); block == nil || block.Type != "PRIVATE KEY" {
		t.Errorf("key file is not a PKCS#8 PEM block: %q", data)
	}
}

func TestWriteKeyFileRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.pem")
	first := mustKey(t)
	if err := identity.WriteKeyFile(path, first); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err := identity.WriteKeyFile(path, mustKey(t))
	if !errors.Is(err, os.ErrExist) {
		t.Errorf("second WriteKeyFile: %v, want os.ErrExist", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("refused WriteKeyFile changed the file")
	}
}

func TestReadKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(mustKey(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.ReadKeyFile(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
	for name, data := range map[string][]byte{
		"empty":          nil,
		"not PEM":        []byte("hello"),
		"public key PEM": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		"garbage DER":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
		"ECDSA key":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
	} {
		if _, err := identity.ReadKeyFile(write(name, data)); err == nil {
			t.Errorf("ReadKeyFile of %s succeeded", name)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.pem")
	first, err := identity.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := identity.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Equal(second) {
		t.Error("second LoadOrCreateKeyFile made a new key")
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := identity.LoadOrCreateKeyFile(bad); err == nil {
		t.Error("LoadOrCreateKeyFile replaced or accepted an unreadable key file")
	}
	if data, _ := os.ReadFile(bad); string(data) != "not a key" {
		t.Error("LoadOrCreateKeyFile overwrote an unreadable key file")
	}
}

func TestPublicKeyEncoding(t *testing.T) {
	pub := mustKey(t).Public().(ed25519.PublicKey)
	s := identity.EncodePublicKey(pub)
	if len(s) != 44 {
		t.Errorf("encoded key %q has %d characters, want 44", s, len(s))
	}
	for _, in := range []string{s, " " + s + "\n"} {
		got, err := identity.ParsePublicKey(in)
		if err != nil || !bytes.Equal(got, pub) {
			t.Errorf("ParsePublicKey(%q) = %x, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "!!!", s[:43], identity.EncodePublicKey(make([]byte, 31)), identity.EncodePublicKey(make([]byte, 64))} {
		if _, err := identity.ParsePublicKey(in); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("ParsePublicKey(%q): %v, want ErrInvalid", in, err)
		}
	}
}

func TestDeviceIDOf(t *testing.T) {
	// Devices subscribe to subjects named by this ID, so it must never
	// change for a given key: a fixed vector guards the derivation.
	if got, want := identity.DeviceIDOf(make(ed25519.PublicKey, 32)), "bwbjn5tofq2avm3piiloquevcleklo34"; got != want {
		t.Errorf("DeviceIDOf(zero key) = %q, want %q", got, want)
	}
	shape := regexp.MustCompile(`^[a-z2-7]{32}$`)
	seen := map[string]bool{}
	for range 100 {
		pub := mustKey(t).Public().(ed25519.PublicKey)
		id := identity.DeviceIDOf(pub)
		if !shape.MatchString(id) {
			t.Errorf("DeviceIDOf = %q, want 32 characters of [a-z2-7]", id)
		}
		if again := identity.DeviceIDOf(bytes.Clone(pub)); again != id {
			t.Errorf("DeviceIDOf is not stable: %q then %q", id, again)
		}
		if got := (identity.Identity{PublicKey: pub}).DeviceID(); got != id {
			t.Errorf("Identity.DeviceID = %q, DeviceIDOf = %q", got, id)
		}
		// The documented derivation: a domain-separated SHA-256, truncated
		// to 160 bits, in lower-case unpadded base32.
		sum := sha256.Sum256(append([]byte("mfa-device-id\x00"), pub...))
		want := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding).EncodeToString(sum[:20])
		if id != want {
			t.Errorf("DeviceIDOf = %q, want %q", id, want)
		}
		if seen[id] {
			t.Errorf("two keys share device ID %q", id)
		}
		seen[id] = true
	}
}

// TestLoadOrCreateSecret: the first call makes the secret, later ones read
// it; processes racing to make it all get the one that was written; a
// file that is not a whole secret is refused by name, not used.
func TestLoadOrCreateSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "pnr-hash.key")
	const racers = 16
	got := make([][]byte, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = identity.LoadOrCreateSecret(path, 32)
		}()
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil || len(got[i]) != 32 || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("racer %d: %x, %v; racer 0 got %x", i, got[i], errs[i], got[0])
		}
	}
	again, err := identity.LoadOrCreateSecret(path, 32)
	if err != nil || !bytes.Equal(again, got[0]) {
		t.Fatalf("read again: %x, %v", again, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v, %v", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "sub", ".new-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadOrCreateSecret(short, 32); err == nil || !strings.Contains(err.Error(), "short.key has 3 bytes") {
		t.Fatalf("a short secret: %v", err)
	}
}
