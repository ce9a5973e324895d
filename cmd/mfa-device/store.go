package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/legalmfa/mfa/identity"
)

// File names inside the device directory.
const (
	keyFileName    = "device.key"
	configFileName = "device.json"
)

// deviceDir is the directory that holds one device identity: its private
// key and what it learnt when it applied.
type deviceDir struct{ path string }

// deviceConfig is device.json.
type deviceConfig struct {
	BrokerURL string `json:"BrokerUrl"`
	// NATSURL is where listen connects: what the broker advertised, or
	// what --nats-url said at apply time.
	NATSURL string `json:"NatsUrl"`
	Domain  string `json:"Domain"`
	// BrokerPublicKey verifies that pushes come from the broker.
	BrokerPublicKey string `json:"BrokerPublicKey"`
	// MaxTimeout is the broker's largest request Timeout, in seconds, when
	// the device applied; sign warns past it.
	MaxTimeout int       `json:"MaxTimeout,omitempty"`
	LegalID    string    `json:"LegalId"`
	AppliedAt  time.Time `json:"AppliedAt"`
	// CAFile, when set, is the CA that the broker's HTTPS and NATS TLS
	// certificates are checked against instead of the system's.
	CAFile string `json:"CaFile,omitempty"`
}

func (d deviceDir) keyPath() string    { return filepath.Join(d.path, keyFileName) }
func (d deviceDir) configPath() string { return filepath.Join(d.path, configFileName) }

// ensure creates the directory, private to its owner.
func (d deviceDir) ensure() error {
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return fmt.Errorf("create device directory: %w", err)
	}
	return nil
}

// errKeyExists: init refuses to replace a key, because the identity bound
// to it would be lost for good.
var errKeyExists = errors.New("a device key exists already")

// createKey makes and stores a new identity key.
func (d deviceDir) createKey() (ed25519.PrivateKey, error) {
	if err := d.ensure(); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(d.keyPath()); err == nil {
		return nil, fmt.Errorf("%w at %s; refusing to overwrite it (an identity cannot be recovered without its key): use another --dir for a new identity", errKeyExists, d.keyPath())
	}
	key, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := identity.WriteKeyFile(d.keyPath(), key); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w at %s; refusing to overwrite it", errKeyExists, d.keyPath())
		}
		return nil, err
	}
	return key, nil
}

// loadKey reads the identity key.
func (d deviceDir) loadKey() (ed25519.PrivateKey, error) {
	key, err := identity.ReadKeyFile(d.keyPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no device key in %s: run 'mfa-device init' or 'mfa-device apply' first", d.path)
	}
	return key, err
}

// hasKey reports whether the key file exists.
func (d deviceDir) hasKey() (bool, error) {
	_, err := os.Lstat(d.keyPath())
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, err
}

// errNotApplied: the device has no identity yet.
var errNotApplied = errors.New("this device has not applied for an identity")

// loadConfig reads device.json.
func (d deviceDir) loadConfig() (deviceConfig, error) {
	data, err := os.ReadFile(d.configPath())
	if errors.Is(err, os.ErrNotExist) {
		return deviceConfig{}, fmt.Errorf("%w (no %s): run 'mfa-device apply' first", errNotApplied, d.configPath())
	}
	if err != nil {
		return deviceConfig{}, err
	}
	var c deviceConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return deviceConfig{}, fmt.Errorf("%s: %w", d.configPath(), err)
	}
	if c.LegalID == "" {
		return deviceConfig{}, fmt.Errorf("%w: %s names no LegalId", errNotApplied, d.configPath())
	}
	return c, nil
}

// saveConfig writes device.json atomically, so a crash leaves either the
// old file or the new one.
func (d deviceDir) saveConfig(c deviceConfig) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := d.ensure(); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.path, configFileName+".*.tmp")
	if err != nil {
		return fmt.Errorf("save %s: %w", configFileName, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", configFileName, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", configFileName, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", configFileName, err)
	}
	if err := os.Rename(f.Name(), d.configPath()); err != nil {
		return fmt.Errorf("save %s: %w", configFileName, err)
	}
	return nil
}

// brokerKey parses the broker's public key saved at apply time.
func (c deviceConfig) brokerKey() (ed25519.PublicKey, error) {
	k, err := identity.ParsePublicKey(c.BrokerPublicKey)
	if err != nil {
		return nil, fmt.Errorf("%s: BrokerPublicKey: %w", configFileName, err)
	}
	return k, nil
}
