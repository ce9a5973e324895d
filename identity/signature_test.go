package identity_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/legalmfa/mfa/identity"
)

func mustKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestSignedFormBytes(t *testing.T) {
	got := identity.NewSignedForm("MFA-Request/1").
		Add("PNR", "19900101-1234").
		Add("Reason", "Log in to **Bank**\nfrom Stockholm").
		Add("Name", "Åsa 李").
		Add("CRLF", "a\r\nb").
		Add("Empty", "").
		Bytes()
	// Lengths are in bytes, not characters: Å is 2 bytes and 李 is 3.
	want := "MFA-Request/1\n" +
		"PNR:13:19900101-1234\n" +
		"Reason:33:Log in to **Bank**\nfrom Stockholm\n" +
		"Name:8:Åsa 李\n" +
		"CRLF:4:a\r\nb\n" +
		"Empty:0:\n"
	if string(got) != want {
		t.Errorf("form:\n%q\nwant:\n%q", got, want)
	}
	if got := identity.NewSignedForm("K").Bytes(); string(got) != "K\n" {
		t.Errorf("empty form %q, want %q", got, "K\n")
	}
}

func TestSignedFormUnambiguous(t *testing.T) {
	// A value that looks like further fields must not produce the same
	// bytes as those fields.
	one := identity.NewSignedForm("K").Add("A", "x\nPNR:3:999").Bytes()
	two := identity.NewSignedForm("K").Add("A", "x").Add("PNR", "999").Bytes()
	if bytes.Equal(one, two) {
		t.Errorf("one field and two fields give the same form %q", one)
	}
	if want := "K\nA:11:x\nPNR:3:999\n"; string(one) != want {
		t.Errorf("form %q, want %q", one, want)
	}
	// Moving bytes between neighbouring fields changes the form.
	a := identity.NewSignedForm("K").Add("A", "12").Add("B", "3").Bytes()
	b := identity.NewSignedForm("K").Add("A", "1").Add("B", "23").Bytes()
	if bytes.Equal(a, b) {
		t.Errorf("different splits give the same form %q", a)
	}
}

func TestParseSignedForm(t *testing.T) {
	form := identity.NewSignedForm("MFA-Answer/1").
		Add("Request", "r-1").
		Add("Shown", "two\nlines: 5:x\n").
		Add("Name", "Åsa 李").
		Add("Empty", "")
	kind, fields, err := identity.ParseSignedForm(form.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []identity.FormField{{"Request", "r-1"}, {"Shown", "two\nlines: 5:x\n"}, {"Name", "Åsa 李"}, {"Empty", ""}}
	if kind != "MFA-Answer/1" || fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Errorf("ParseSignedForm = %q, %q; want MFA-Answer/1, %q", kind, fields, want)
	}
	for _, bad := range []string{
		"",
		"K",
		"\nA:1:x\n",
		"K\nA",
		"K\nA:1",
		"K\nA:1:x",
		"K\nA:2:x\n",
		"K\nA:0:x\n",
		"K\nA:x:x\n",
		"K\nA:-1:x\n",
		"K\n:1:x\n",
		"K\nA:1:x\nB",
	} {
		if _, _, err := identity.ParseSignedForm([]byte(bad)); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("ParseSignedForm(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

func TestVerify(t *testing.T) {
	key := mustKey(t)
	pub := key.Public().(ed25519.PublicKey)
	data := identity.NewSignedForm("K").Add("A", "1").Bytes()
	sig := ed25519.Sign(key, data)
	if err := identity.Verify(pub, data, sig); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	other := mustKey(t).Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name           string
		pub, data, sig []byte
	}{
		{"signature bit flipped", pub, data, flip(sig, 10)},
		{"data changed", pub, flip(data, len(data)-2), sig},
		{"data extended", pub, append(bytes.Clone(data), 'x'), sig},
		{"other key", other, data, sig},
		{"no key", nil, data, sig},
		{"31-byte key", pub[:31], data, sig},
		{"33-byte key", append(bytes.Clone(pub), 0), data, sig},
		{"private key as public key", key, data, sig},
		{"no signature", pub, data, nil},
		{"63-byte signature", pub, data, sig[:63]},
		{"65-byte signature", pub, data, append(bytes.Clone(sig), 0)},
		{"zero signature", pub, data, make([]byte, ed25519.SignatureSize)},
	} {
		if err := identity.Verify(tc.pub, tc.data, tc.sig); !errors.Is(err, identity.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", tc.name, err)
		}
	}
}
