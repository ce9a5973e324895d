package identity_test

import (
	"crypto/ed25519"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/legalmfa/mfa/identity"
)

func TestPropertyValuesCannotDisguiseNames(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"Bank\u202eevil", "Ban\u200bk", "a\u2028b", "\ufeffBank", "x\u2067y\u2069"} {
		err := identity.ValidateProperties(props("ORGNAME", v))
		if !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", v, err)
		}
	}
	// Joiners are part of ordinary writing in several scripts.
	for _, v := range []string{"می\u200cخواهم", "👩\u200d💻"} {
		if err := identity.ValidateProperties(props("ORGNAME", v)); err != nil {
			t.Errorf("%q refused: %v", v, err)
		}
	}
}

func TestValidateRefusesMiscasedState(t *testing.T) {
	t.Parallel()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{ID: identity.NewID("example.org"), State: "created", Properties: props("PNR", "1", "COUNTRY", "SE"), PublicKey: key.Public().(ed25519.PublicKey)}
	if err := id.Validate(); !errors.Is(err, identity.ErrInvalid) {
		t.Fatalf("state %q accepted: %v", id.State, err)
	}
}

func TestChangeNeedsTime(t *testing.T) {
	t.Parallel()
	c := identity.Change{From: identity.Created, To: identity.Rejected}
	if _, err := c.Apply(identity.Identity{State: identity.Created}); !errors.Is(err, identity.ErrInvalid) {
		t.Fatalf("change without a time: %v", err)
	}
	c.At = time.Now()
	if _, err := c.Apply(identity.Identity{State: identity.Created}); err != nil {
		t.Fatal(err)
	}
}

func TestParseSignedFormCanonicalLengths(t *testing.T) {
	t.Parallel()
	for _, form := range []string{"K\nA:+1:x\n", "K\nA:01:x\n", "K\nA:-0:\n"} {
		if _, _, err := identity.ParseSignedForm([]byte(form)); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("%q parsed: %v", form, err)
		}
	}
}

func TestSignedFormRefusesAmbiguousNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "A:1:x\nB", "A\nB"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("name %q accepted", name)
				}
			}()
			identity.NewSignedForm("K").Add(name, "y")
		}()
	}
}

func TestWriteKeyFileRefusesBadKeysAndLeavesNoTemporaries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := identity.WriteKeyFile(filepath.Join(dir, "k.pem"), make([]byte, 10)); !errors.Is(err, identity.ErrInvalid) {
		t.Fatalf("short key: %v", err)
	}
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "k.pem")
	if err := identity.WriteKeyFile(path, key); err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteKeyFile(path, key); err == nil {
		t.Fatal("overwrote a key file")
	}
	matches, _ := filepath.Glob(filepath.Join(dir, ".key-*"))
	if len(matches) != 0 {
		t.Fatalf("temporary files left behind: %v", matches)
	}
}

func TestValidateBoundsTimesAndVersions(t *testing.T) {
	t.Parallel()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	base := identity.Identity{ID: identity.NewID("example.org"), State: identity.Created, Properties: props("PNR", "1", "COUNTRY", "SE"), PublicKey: key.Public().(ed25519.PublicKey), Version: 1}
	for name, mod := range map[string]func(*identity.Identity){
		"year 10000":       func(id *identity.Identity) { id.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year 0":           func(id *identity.Identity) { id.Updated = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) },
		"negative version": func(id *identity.Identity) { id.Version = -1 },
		"maximal version":  func(id *identity.Identity) { id.Version = math.MaxInt64 },
	} {
		id := base
		mod(&id)
		if err := id.Validate(); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
}
