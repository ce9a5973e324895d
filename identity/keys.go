package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GenerateKey creates a new Ed25519 identity key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return key, nil
}

// WriteKeyFile stores a private key as PKCS#8 PEM, readable by its owner only.
// It refuses to overwrite an existing file: losing a key loses an identity.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: private key has %d bytes, an Ed25519 key has %d", ErrInvalid, len(key), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	return createFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// createFile creates path with data, readable by its owner only, unless
// the name is taken (an error wrapping os.ErrExist). The file appears
// complete or not at all: it is written and synced under a temporary name,
// then linked into place, which fails if the name is taken, so of several
// processes creating it at once exactly one wins and a crash leaves no
// short file behind.
func createFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory of %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".new-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("permissions of %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// LoadOrCreateSecret reads a random secret of size bytes from path,
// creating it the first time as createFile does: replicas starting at once
// on a shared file all end up with the one that was written first.
func LoadOrCreateSecret(path string, size int) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b = make([]byte, size)
		rand.Read(b) // never fails: crypto/rand aborts the process instead
		err = createFile(path, b)
		if errors.Is(err, os.ErrExist) {
			b, err = os.ReadFile(path) // another process was first: use theirs
		}
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", path, err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("secret %s has %d bytes, want %d: it was not made by the broker; remove it to make a new one", path, len(b), size)
	}
	return b, nil
}

// ReadKeyFile loads a PKCS#8 PEM Ed25519 private key.
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("key file %s: no PKCS#8 PEM block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key file %s: not an Ed25519 key", path)
	}
	return key, nil
}

// LoadOrCreateKeyFile reads the key at path, creating it first if the file
// does not exist.
func LoadOrCreateKeyFile(path string) (ed25519.PrivateKey, error) {
	key, err := ReadKeyFile(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	if key, err = GenerateKey(); err != nil {
		return nil, err
	}
	if err := WriteKeyFile(path, key); err != nil {
		if errors.Is(err, os.ErrExist) {
			// Another process created it first; use theirs.
			return ReadKeyFile(path)
		}
		return nil, err
	}
	return key, nil
}

// EncodePublicKey is the wire form of a public key: standard base64 of the
// 32 raw Ed25519 bytes.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads the wire form of a public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not valid base64: %v", ErrInvalid, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key has %d bytes, an Ed25519 key has %d", ErrInvalid, len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

var deviceIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// DeviceIDOf names the device that holds a key in NATS subjects. It is a
// hash of the public key, so subjects carry neither personal data nor the
// identity's ID, and only those who already know the key can link them.
func DeviceIDOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(append([]byte("mfa-device-id\x00"), pub...))
	return deviceIDEncoding.EncodeToString(sum[:20])
}
