package schema

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.targetNS != Namespace {
		t.Fatalf("target namespace %q, want %q", s.targetNS, Namespace)
	}
	for _, name := range []string{"MFA", "MFAResponse"} {
		if s.globals[name] == nil {
			t.Errorf("global element %s missing", name)
		}
	}
}

func TestXSDReturnsCopy(t *testing.T) {
	t.Parallel()
	a := XSD()
	if !bytes.Contains(a, []byte(`targetNamespace="`+Namespace+`"`)) {
		t.Fatal("XSD() does not look like MFA.xsd")
	}
	a[0] = 'X'
	if XSD()[0] == 'X' {
		t.Fatal("XSD() returned the embedded bytes, not a copy")
	}
}

func TestRequests(t *testing.T) {
	t.Parallel()
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range requestDocs() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checkDoc(t, s, d)
		})
	}
}

func TestResponses(t *testing.T) {
	t.Parallel()
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range responseDocs() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checkDoc(t, s, d)
		})
	}
}

// TestMessages pins the wording of a few messages, which reach API clients.
func TestMessages(t *testing.T) {
	t.Parallel()
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ xml, want string }{
		{request(okPNR, okCountry, "0", okReason), `element "Timeout": "0" is not a positive integer`},
		{request(okPNR, okCountry, "abc", okReason), `element "Timeout": "abc" is not a positive integer`},
		{request(okPNR, "se", okTimeout, okReason), `element "COUNTRY": "se" does not match the pattern "[A-Z]{2}" of type CountryCode`},
		{request(strings.Repeat("1", 65), okCountry, okTimeout, okReason), `has 65 characters; type PersonalNumber allows at most 64`},
		{request(okPNR, okCountry, okTimeout, okReason, tag("LegalId", "x"), tag("Signature", b64(63)), tag("Issued", okIssued), tag("Nonce", okNonce)), `has 63 octets; type Signature requires exactly 64`},
		{request(okPNR, okCountry, okTimeout, okReason, tag("LegalId", "x")), `element "MFA" is missing required child element "Signature"`},
		{strings.Replace(request(okPNR, okCountry, okTimeout, okReason), Namespace, "urn:x", 1), `root element "MFA" is in namespace "urn:x", but the schema expects namespace "` + Namespace + `"`},
		{strings.Replace(request(okPNR, okCountry, okTimeout, okReason), ` xmlns="`+Namespace+`"`, "", 1), `root element "MFA" is in no namespace, but the schema expects namespace "` + Namespace + `"`},
		{mfa(`<PNR xmlns="">1</PNR>`), `element "PNR" in "MFA" is in no namespace, but the schema expects namespace "` + Namespace + `"`},
		{mfa(`<m:PNR>1</m:PNR>`), `element "PNR" in "MFA" is in no namespace (its prefix "m" is not declared), but the schema expects namespace "` + Namespace + `"`},
		{`<Foo/>`, `root element "Foo" is not declared by the schema; expected "MFA" or "MFAResponse" in namespace "` + Namespace + `"`},
		{mfa(tag("COUNTRY", "SE"), tag("PNR", okPNR)), `element "COUNTRY" is out of order in "MFA"; expected "PNR"`},
		{request(okPNR, okCountry, okTimeout, strings.Repeat("r", 2001)), `"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"… has 2001 characters; type Reason allows at most 2000`},
		{request("1\t2", okCountry, okTimeout, okReason), `element "PNR": "1\t2" does not match the pattern "[^\p{Z}\p{Cc}`},
		{request("", okCountry, okTimeout, okReason), `element "PNR": "" has 0 characters; type PersonalNumber requires at least 1`},
		{request(okPNR, okCountry, okTimeout, okReason, tag("LegalId", "x"), tag("Signature", "AA=="), tag("Issued", okIssued), tag("Nonce", okNonce)), `"AA==" has 1 octet; type Signature requires exactly 64`},
	}
	for _, tc := range tests {
		err := s.Validate(parse(t, tc.xml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v\nwant a message containing %s", err, tc.want)
		}
	}
}

func TestViolationKindString(t *testing.T) {
	t.Parallel()
	for k := WrongRoot; k <= UnexpectedContent; k++ {
		if s := k.String(); s == "" || strings.HasPrefix(s, "ViolationKind(") {
			t.Errorf("kind %d has no name", int(k))
		}
	}
	if s := ViolationKind(0).String(); s != "ViolationKind(0)" {
		t.Errorf("got %q", s)
	}
}

func TestValidateNilRoot(t *testing.T) {
	t.Parallel()
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.Validate(nil).(*Violation); !ok || v.Kind != WrongRoot {
		t.Fatalf("got %v, want WrongRoot", v)
	}
}

// TestMFAXSDIsValidXSD has libxml2 compile MFA.xsd: if it were not a valid
// XSD 1.0 schema, xmllint would fail with exit status 5.
func TestMFAXSDIsValidXSD(t *testing.T) {
	t.Parallel()
	bin := xmllint(t)
	dir := t.TempDir()
	xsd, doc := filepath.Join(dir, "MFA.xsd"), filepath.Join(dir, "doc.xml")
	writeFile(t, xsd, XSD())
	writeFile(t, doc, []byte(request(okPNR, okCountry, okTimeout, okReason)))
	out, err := exec.Command(bin, "--noout", "--nonet", "--schema", xsd, doc).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("failed to compile")) {
		t.Fatalf("xmllint rejects MFA.xsd or a valid request: %v\n%s", err, out)
	}
}

// TestMFAAgreesWithXmllint validates the whole MFA corpus with libxml2 too.
func TestMFAAgreesWithXmllint(t *testing.T) {
	t.Parallel()
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	n := crossCheck(t, XSD(), s, append(requestDocs(), responseDocs()...))
	t.Logf("%d MFA documents cross-checked with xmllint", n)
}
