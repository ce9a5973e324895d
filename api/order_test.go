package api_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/identity"
)

func TestIsOrderRef(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]bool{
		"abcdefghijklmnopqrstuvwxyz":  true,
		"234567abcdefghijklmnopqrst":  true,
		"abcdefghijklmnopqrstuvwxy":   false,
		"abcdefghijklmnopqrstuvwxyza": false,
		"Abcdefghijklmnopqrstuvwxyz":  false,
		"abcdefghijklmnopqrstuvwxy1":  false,
		"abcdefghijklmnopqrstuvwxy/":  false,
		"":                            false,
	} {
		if got := api.IsOrderRef(ref); got != want {
			t.Errorf("IsOrderRef(%q) = %v", ref, got)
		}
	}
}

func TestOrderAccess(t *testing.T) {
	t.Parallel()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const ref, id = "abcdefghijklmnopqrstuvwxyz", "bank@legal.broker.test"
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	a := api.SignOrderAccess("GET", ref, id, key, now)
	got, err := api.ParseOrderAccess(a.Header())
	if err != nil {
		t.Fatal(err)
	}
	if got.LegalID != id || got.Issued != "2026-12-03T09:00:00Z" || !got.IssuedAt.Equal(now) {
		t.Fatalf("parsed %+v", got)
	}
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), api.OrderAccessForm("GET", ref, id, got.Issued), got.Signature) {
		t.Fatal("the signature does not verify over the form")
	}
	if ed25519.Verify(key.Public().(ed25519.PublicKey), api.OrderAccessForm("DELETE", ref, id, got.Issued), got.Signature) {
		t.Fatal("a collect's signature verifies for a cancel")
	}
	sig := a.Header()[strings.LastIndexByte(a.Header(), ' ')+1:]
	for name, header := range map[string]string{
		"empty":              "",
		"another scheme":     "Bearer " + ref,
		"scheme only":        api.OrderAuthScheme,
		"two values":         api.OrderAuthScheme + " " + id + " " + a.Issued,
		"four values":        a.Header() + " x",
		"double space":       api.OrderAuthScheme + "  " + id + " " + a.Issued + " " + sig,
		"bad LegalId":        api.OrderAuthScheme + " bank " + a.Issued + " " + sig,
		"bad Issued":         api.OrderAuthScheme + " " + id + " yesterday " + sig,
		"bad base64":         api.OrderAuthScheme + " " + id + " " + a.Issued + " ***",
		"short signature":    api.OrderAuthScheme + " " + id + " " + a.Issued + " AAAA",
		"a PNR as LegalId":   api.OrderAuthScheme + " 19791231-1234 " + a.Issued + " " + sig,
		"a PNR as Issued":    api.OrderAuthScheme + " " + id + " 19791231-1234 " + sig,
		"a PNR as signature": api.OrderAuthScheme + " " + id + " " + a.Issued + " 19791231-1234",
	} {
		_, err := api.ParseOrderAccess(header)
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeInvalidSignature || e.Field != "Authorization" {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(e.Message, "19791231") {
			t.Errorf("%s: the message repeats the value: %s", name, e.Message)
		}
	}
	// The scheme's name is case-insensitive, as HTTP's are.
	if _, err := api.ParseOrderAccess(strings.ToLower(api.OrderAuthScheme) + a.Header()[len(api.OrderAuthScheme):]); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseOrderAccess: any header is read without panicking, refused
// with the one code and field, never with the header's text in the
// message; one it accepts writes back as itself.
func FuzzParseOrderAccess(f *testing.F) {
	key, err := identity.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(api.SignOrderAccess("GET", "abcdefghijklmnopqrstuvwxyz", "bank@legal.broker.test", key, time.Now()).Header())
	f.Add("MFA-Ed25519 a@b 2026-12-03T09:00:00+01:00 " + strings.Repeat("A", 86) + "==")
	f.Add("Bearer x")
	f.Add("MFA-Ed25519 \x00 \xff x")
	// What the messages say of their own accord: a header that is part of
	// that text is not being repeated.
	var own strings.Builder
	for _, h := range []string{"", "MFA-Ed25519 x", "MFA-Ed25519 x y z", "MFA-Ed25519 a@b y z", "MFA-Ed25519 a@b 2026-12-03T09:00:00Z z", "MFA-Ed25519 a@b 2026-12-03T09:00:00Z AAAA"} {
		_, err := api.ParseOrderAccess(h)
		own.WriteString(err.Error())
	}
	f.Fuzz(func(t *testing.T, header string) {
		a, err := api.ParseOrderAccess(header)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) || e.Code != api.CodeInvalidSignature || e.Field != "Authorization" {
				t.Fatalf("%q: %v", header, err)
			}
			if len(header) > 8 && strings.Contains(e.Message, header) && !strings.Contains(own.String(), header) {
				t.Fatalf("the message repeats the header: %s", e.Message)
			}
			return
		}
		if !strings.EqualFold(a.Header(), header) && a.Header() != api.OrderAuthScheme+header[len(api.OrderAuthScheme):] {
			t.Fatalf("%q parsed as %+v, which writes as %q", header, a, a.Header())
		}
		if len(a.Signature) != ed25519.SignatureSize {
			t.Fatalf("signature of %d bytes", len(a.Signature))
		}
	})
}
