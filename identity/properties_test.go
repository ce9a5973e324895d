package identity_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/legalmfa/mfa/identity"
)

func props(kv ...string) []identity.Property {
	var out []identity.Property
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, identity.Property{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// numbered returns n properties P0…P(n-1) with values of the given size.
func numbered(n, size int) []identity.Property {
	out := make([]identity.Property, n)
	for i := range out {
		out[i] = identity.Property{Name: fmt.Sprintf("P%d", i), Value: strings.Repeat("v", size)}
	}
	return out
}

func TestValidateProperties(t *testing.T) {
	// 16 properties of 3-byte names and 1021-byte values total exactly
	// MaxPropertiesLength.
	atTotal := make([]identity.Property, 16)
	for i := range atTotal {
		atTotal[i] = identity.Property{Name: fmt.Sprintf("A%02d", i), Value: strings.Repeat("v", identity.MaxPropertiesLength/16-3)}
	}
	overTotal := append([]identity.Property(nil), atTotal...)
	overTotal[0].Value += "v"

	for _, tc := range []struct {
		name  string
		props []identity.Property
		ok    bool
	}{
		{"typical person", props("FIRST", "Tess", "LAST", "Testsson", "PNR", "19900101-1234", "COUNTRY", "SE"), true},
		{"organisation without PNR", props("ORGNAME", "Acme AB", "EMAIL", "info@acme.example"), true},
		{"none", nil, false},
		{"empty list", []identity.Property{}, false},
		{"64 properties", numbered(identity.MaxProperties, 1), true},
		{"65 properties", numbered(identity.MaxProperties+1, 1), false},

		{"32-character name", props(strings.Repeat("N", identity.MaxPropertyName), "x"), true},
		{"33-character name", props(strings.Repeat("N", identity.MaxPropertyName+1), "x"), false},
		{"digits and underscore after the first character", props("A_1_B2", "x"), true},
		{"single letter", props("Z", "x"), true},
		{"empty name", props("", "x"), false},
		{"lower-case name", props("pnr", "x"), false},
		{"mixed-case name", props("Pnr", "x"), false},
		{"leading digit", props("1ABC", "x"), false},
		{"leading underscore", props("_ABC", "x"), false},
		{"dollar", props("$where", "x"), false},
		{"dollar after a letter", props("A$", "x"), false},
		{"dot", props("A.B", "x"), false},
		{"hyphen", props("A-B", "x"), false},
		{"space", props("A B", "x"), false},
		{"NUL in name", props("A\x00", "x"), false},
		{"non-ASCII letter", props("ÅR", "x"), false},
		{"duplicate name", props("FIRST", "a", "FIRST", "b"), false},

		{"1024-byte value", props("NOTE", strings.Repeat("v", identity.MaxPropertyValue)), true},
		{"1025-byte value", props("NOTE", strings.Repeat("v", identity.MaxPropertyValue+1)), false},
		{"1024 bytes of multibyte characters", props("NOTE", strings.Repeat("李", identity.MaxPropertyValue/3)+"x"), true},
		{"multibyte value over 1024 bytes", props("NOTE", strings.Repeat("李", identity.MaxPropertyValue/3+1)), false},
		{"spaces in a value", props("NOTE", " a b "), true},
		{"non-breaking space", props("NOTE", "a\u00a0b"), true},
		{"emoji", props("NOTE", "👍"), true},
		{"empty value", props("NOTE", ""), false},
		{"NUL", props("NOTE", "a\x00b"), false},
		{"tab", props("NOTE", "a\tb"), false},
		{"newline", props("NOTE", "a\nb"), false},
		{"carriage return", props("NOTE", "a\rb"), false},
		{"unit separator", props("NOTE", "a\x1fb"), false},
		{"DEL", props("NOTE", "a\x7fb"), false},
		{"C1 control U+0080", props("NOTE", "a\u0080b"), false},
		{"C1 control U+009F", props("NOTE", "a\u009fb"), false},
		{"invalid UTF-8", props("NOTE", "a\xffb"), false},
		{"truncated UTF-8", props("NOTE", "\xe6\x9d"), false},

		{"total exactly at the limit", atTotal, true},
		{"total one byte over the limit", overTotal, false},

		{"PNR and COUNTRY", props("PNR", "1", "COUNTRY", "SE"), true},
		{"PNR without COUNTRY", props("PNR", "1"), false},
		{"COUNTRY without PNR", props("COUNTRY", "SE"), false},
		{"COUNTRY in lower case", props("PNR", "1", "COUNTRY", "se"), false},
		{"COUNTRY reserved code", props("PNR", "1", "COUNTRY", "UK"), false},
		{"COUNTRY alpha-3", props("PNR", "1", "COUNTRY", "SWE"), false},
	} {
		err := identity.ValidateProperties(tc.props)
		if tc.ok && err != nil {
			t.Errorf("%s: %v, want valid", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{identity.NewID("example.org"), true},
		{"a@b", true},
		{strings.Repeat("a", identity.MaxIDLength-2) + "@b", true},
		{strings.Repeat("a", identity.MaxIDLength-1) + "@b", false},
		{"a@b@c", true}, // only the first @ separates; federated IDs are opaque beyond that
		{"", false},
		{"ab", false},
		{"@b", false},
		{"a@", false},
		{"@", false},
		{" a@b", false},
		{"a b@c", false},
		{"a@b\n", false},
		{"a\t@b", false},
		{"a\x00@b", false},
		{"$a@b", false},
		{"a@b$", false},
		{"å@b", false},
		{"a\x7f@b", false},
	} {
		err := identity.ValidateID(tc.id)
		if tc.ok && err != nil {
			t.Errorf("ValidateID(%q): %v, want valid", tc.id, err)
		}
		if !tc.ok && !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("ValidateID(%q): %v, want ErrInvalid", tc.id, err)
		}
	}
}

func TestNewID(t *testing.T) {
	a, b := identity.NewID("broker.example.org"), identity.NewID("broker.example.org")
	if a == b {
		t.Fatalf("two NewIDs are equal: %s", a)
	}
	local, domain, ok := strings.Cut(a, "@")
	if !ok || domain != "legal.broker.example.org" {
		t.Errorf("NewID = %q, want <uuid>@legal.broker.example.org", a)
	}
	if _, err := uuid.Parse(local); err != nil {
		t.Errorf("NewID local part %q is not a UUID: %v", local, err)
	}
	if err := identity.ValidateID(a); err != nil {
		t.Errorf("NewID gives an invalid ID: %v", err)
	}
}

func TestProperty(t *testing.T) {
	id := identity.Identity{Properties: props("FIRST", "Tess", "PNR", "1")}
	if got := id.Property("PNR"); got != "1" {
		t.Errorf("Property(PNR) = %q", got)
	}
	if got := id.Property("pnr"); got != "" {
		t.Errorf("Property(pnr) = %q, want names to be case-sensitive", got)
	}
	if got := id.Property("LAST"); got != "" {
		t.Errorf("Property(LAST) = %q, want empty", got)
	}
}

func TestDisplayName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props []identity.Property
		want  string
	}{
		{"organisation wins over a person's name", props("FIRST", "Tess", "ORGNAME", "Acme AB", "LAST", "T"), "Acme AB"},
		{"first middle last, in that order whatever the property order", props("LAST", "Testsson", "MIDDLE", "Maria", "FIRST", "Tess"), "Tess Maria Testsson"},
		{"first and last", props("FIRST", "Tess", "LAST", "Testsson"), "Tess Testsson"},
		{"last only", props("LAST", "Testsson"), "Testsson"},
		{"middle only", props("MIDDLE", "Maria"), "Maria"},
		{"multibyte", props("FIRST", "Zoë", "LAST", "李"), "Zoë 李"},
		{"no name: the ID", props("PNR", "1", "COUNTRY", "SE"), "x@legal.example.org"},
		{"no properties: the ID", nil, "x@legal.example.org"},
	} {
		id := identity.Identity{ID: "x@legal.example.org", Properties: tc.props}
		if got := id.DisplayName(); got != tc.want {
			t.Errorf("%s: DisplayName() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
