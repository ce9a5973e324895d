package schema

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// doc is one test document with the outcome the validator must report.
type doc struct {
	name    string
	xml     string
	kind    ViolationKind // 0 when valid
	element string
	path    string
	// noXmllint, when set, says why the document is left out of the
	// cross-check with xmllint: a place where libxml2 departs from the
	// XSD 1.0 specification, which we follow.
	noXmllint string
}

// Valid field values for MFA requests.
const (
	okPNR     = "198001011234"
	okCountry = "SE"
	okTimeout = "120"
	okReason  = "Log in to **Example** from Stockholm"
	okLegalID = "2f1c7a9e-0d4b-4e8f-9a51-7c3d2b1e6f40@legal.example.org"
	okIssued  = "2026-11-22T13:45:00Z"
	okNonce   = "n0nce-0123456789_abc"
)

// b64 is the base64 of n octets.
func b64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func tag(name, text string) string { return "<" + name + ">" + text + "</" + name + ">" }

func mfa(children ...string) string {
	return `<MFA xmlns="` + Namespace + `">` + strings.Join(children, "") + `</MFA>`
}

// request is an MFA request with the given field values, followed by
// extra children.
func request(pnr, country, timeout, reason string, extra ...string) string {
	return mfa(append([]string{tag("PNR", pnr), tag("COUNTRY", country), tag("Timeout", timeout), tag("Reason", reason)}, extra...)...)
}

// legal is the tail of a signed request.
func legal() []string {
	return []string{tag("LegalId", okLegalID), tag("Signature", b64(64)), tag("Issued", okIssued), tag("Nonce", okNonce)}
}

func requestDocs() []doc {
	valid := request(okPNR, okCountry, okTimeout, okReason)
	inv := func(name, xml, element, path string) doc {
		return doc{name: name, xml: xml, kind: InvalidValue, element: element, path: path}
	}
	timeout := func(v string) doc {
		return inv("Timeout "+strconv.Quote(v), request(okPNR, okCountry, v, okReason), "Timeout", "/MFA/Timeout")
	}
	pnr := func(name, v string) doc {
		return inv(name, request(v, okCountry, okTimeout, okReason), "PNR", "/MFA/PNR")
	}
	country := func(v string) doc {
		return inv("COUNTRY "+strconv.Quote(v), request(okPNR, v, okTimeout, okReason), "COUNTRY", "/MFA/COUNTRY")
	}
	reason := func(name, v string) doc {
		return inv(name, request(okPNR, okCountry, okTimeout, v), "Reason", "/MFA/Reason")
	}
	signature := func(name, v string) doc {
		return inv(name, request(okPNR, okCountry, okTimeout, okReason, tag("LegalId", okLegalID), tag("Signature", v), tag("Issued", okIssued), tag("Nonce", okNonce)), "Signature", "/MFA/Signature")
	}
	return []doc{
		// Valid.
		{name: "minimal", xml: valid},
		{name: "with LegalId and Signature", xml: request(okPNR, okCountry, okTimeout, okReason, legal()...)},
		{name: "prefixed namespace", xml: `<m:MFA xmlns:m="` + Namespace + `"><m:PNR>` + okPNR + `</m:PNR><m:COUNTRY>SE</m:COUNTRY>` +
			`<m:Timeout>60</m:Timeout><m:Reason>r</m:Reason><m:LegalId>x</m:LegalId><m:Signature>` + b64(64) + `</m:Signature>` +
			`<m:Issued>` + okIssued + `</m:Issued><m:Nonce>` + okNonce + `</m:Nonce></m:MFA>`},
		{name: "default namespace root, prefixed children", xml: `<MFA xmlns="` + Namespace + `" xmlns:m="` + Namespace + `"><m:PNR>1</m:PNR>` +
			`<COUNTRY>SE</COUNTRY><m:Timeout>1</m:Timeout><Reason>r</Reason></MFA>`},
		{name: "whitespace, comments and PIs between elements", xml: "<?xml version=\"1.0\"?>\n<!-- request -->\n<MFA xmlns=\"" + Namespace + "\">\n" +
			"  <!-- who -->\n  <PNR>" + okPNR + "</PNR>\n\t<COUNTRY>SE</COUNTRY>\r\n  <?app hint?>\n  <Timeout>120</Timeout>\n" +
			"  <Reason>" + okReason + "</Reason>\n  <LegalId>" + okLegalID + "</LegalId>\n  <Signature>\n    " + b64(48) + "\n    " + b64(16) + "\n  </Signature>\n  <Issued> " + okIssued + " </Issued>\n  <Nonce>" + okNonce + "</Nonce>\n</MFA>\n"},
		{name: "whitespace CDATA between elements", xml: strings.Replace(valid, "<PNR>", "<![CDATA[ \n ]]><PNR>", 1),
			noXmllint: "libxml2 rejects whitespace in a CDATA section as character content; the infoset has no CDATA sections, only whitespace characters, which element-only content allows"},
		{name: "Timeout with leading zeros and plus sign", xml: request(okPNR, okCountry, "+007", okReason)},
		{name: "Timeout surrounded by whitespace", xml: request(okPNR, okCountry, " \n120\t", okReason)},
		{name: "Timeout 10^40", xml: request(okPNR, okCountry, "1"+strings.Repeat("0", 40), okReason),
			noXmllint: "libxml2 accepts at most 24 integer digits; XSD integers are unbounded (the range is checked elsewhere)"},
		{name: "PNR of 64 multibyte characters", xml: request(strings.Repeat("å", 64), okCountry, okTimeout, okReason)},
		{name: "PNR with inner spaces", xml: request("19800101 1234", okCountry, okTimeout, okReason)},
		{name: "PNR of one character", xml: request("1", okCountry, okTimeout, okReason)},
		{name: "Reason of 2000 characters", xml: request(okPNR, okCountry, okTimeout, strings.Repeat("ä", 2000))},
		{name: "Reason with tab, LF and CR", xml: request(okPNR, okCountry, okTimeout, "line 1&#13;\nline&#9;2")},
		{name: "Reason in CDATA", xml: request(okPNR, okCountry, okTimeout, "<![CDATA[<b>bold</b> & more]]>")},
		{name: "Reason split by comment and CDATA", xml: request(okPNR, okCountry, okTimeout, "a<!-- c -->b<![CDATA[c]]>d")},
		{name: "Reason of only spaces", xml: request(okPNR, okCountry, okTimeout, "   ")},
		{name: "Signature with spaces between characters", xml: request(okPNR, okCountry, okTimeout, okReason,
			tag("LegalId", okLegalID), tag("Signature", strings.Join(strings.Split(b64(64), ""), " ")), tag("Issued", okIssued), tag("Nonce", okNonce))},

		// Wrong root.
		{name: "wrong root", xml: `<Request xmlns="` + Namespace + `"/>`, kind: WrongRoot, element: "Request", path: "/Request"},
		{name: "root in wrong namespace", xml: strings.Replace(valid, Namespace, "urn:other", 1), kind: WrongRoot, element: "MFA", path: "/MFA"},
		{name: "root without namespace", xml: strings.Replace(valid, ` xmlns="`+Namespace+`"`, "", 1), kind: WrongRoot, element: "MFA", path: "/MFA"},
		{name: "response element as request root is fine but empty", xml: `<MFAResponse xmlns="` + Namespace + `"/>`,
			kind: MissingElement, element: "Code", path: "/MFAResponse"},

		// Elements.
		{name: "child without namespace", xml: mfa(`<PNR xmlns="">1</PNR>`), kind: UnknownElement, element: "PNR", path: "/MFA/PNR"},
		{name: "child in other namespace", xml: mfa(`<o:PNR xmlns:o="urn:other">1</o:PNR>`), kind: UnknownElement, element: "PNR", path: "/MFA/PNR"},
		{name: "unknown element", xml: request(okPNR, okCountry, okTimeout, okReason, tag("Extra", "1")), kind: UnknownElement, element: "Extra", path: "/MFA/Extra"},
		{name: "signed without Nonce", xml: request(okPNR, okCountry, okTimeout, okReason, legal()[:3]...), kind: MissingElement, element: "Nonce", path: "/MFA"},
		{name: "Nonce too short", xml: request(okPNR, okCountry, okTimeout, okReason, append(legal()[:3], tag("Nonce", "abc"))...), kind: InvalidValue, element: "Nonce", path: "/MFA/Nonce"},
		{name: "Issued without time zone", xml: request(okPNR, okCountry, okTimeout, okReason, legal()[0], legal()[1], tag("Issued", "2026-11-22T13:45:00"), legal()[3]), kind: InvalidValue, element: "Issued", path: "/MFA/Issued"},
		{name: "unknown element first", xml: mfa(tag("Foo", ""), tag("PNR", okPNR)), kind: UnknownElement, element: "Foo", path: "/MFA/Foo"},
		{name: "out of order", xml: mfa(tag("COUNTRY", "SE"), tag("PNR", okPNR), tag("Timeout", "1"), tag("Reason", "r")),
			kind: UnexpectedElement, element: "COUNTRY", path: "/MFA/COUNTRY"},
		{name: "Signature before LegalId", xml: request(okPNR, okCountry, okTimeout, okReason, tag("Signature", b64(64)), tag("LegalId", okLegalID)),
			kind: UnexpectedElement, element: "Signature", path: "/MFA/Signature"},
		{name: "repeated PNR", xml: mfa(tag("PNR", okPNR), tag("PNR", okPNR), tag("COUNTRY", "SE"), tag("Timeout", "1"), tag("Reason", "r")),
			kind: RepeatedElement, element: "PNR", path: "/MFA/PNR[2]"},
		{name: "repeated Reason at end", xml: request(okPNR, okCountry, okTimeout, okReason, tag("Reason", "again")),
			kind: RepeatedElement, element: "Reason", path: "/MFA/Reason[2]"},
		{name: "repeated LegalId and Signature", xml: request(okPNR, okCountry, okTimeout, okReason, append(legal(), legal()...)...),
			kind: RepeatedElement, element: "LegalId", path: "/MFA/LegalId[2]"},
		{name: "empty MFA", xml: mfa(), kind: MissingElement, element: "PNR", path: "/MFA"},
		{name: "missing Reason", xml: mfa(tag("PNR", okPNR), tag("COUNTRY", "SE"), tag("Timeout", "1")), kind: MissingElement, element: "Reason", path: "/MFA"},
		{name: "missing Reason before LegalId", xml: mfa(append([]string{tag("PNR", okPNR), tag("COUNTRY", "SE"), tag("Timeout", "1")}, legal()...)...),
			kind: MissingElement, element: "Reason", path: "/MFA"},
		{name: "missing COUNTRY", xml: mfa(tag("PNR", okPNR), tag("Timeout", "1"), tag("Reason", "r")), kind: MissingElement, element: "COUNTRY", path: "/MFA"},
		{name: "LegalId without Signature", xml: request(okPNR, okCountry, okTimeout, okReason, tag("LegalId", okLegalID)),
			kind: MissingElement, element: "Signature", path: "/MFA"},
		{name: "Signature without LegalId", xml: request(okPNR, okCountry, okTimeout, okReason, tag("Signature", b64(64))),
			kind: MissingElement, element: "LegalId", path: "/MFA"},

		// Values.
		timeout("0"), timeout("-1"), timeout("-0"), timeout("abc"), timeout("1.5"), timeout(""), timeout("1e3"),
		timeout("+"), timeout("0x10"), timeout("1 2"), timeout("١٢"),
		country("se"), country("SWE"), country(" SE"), country(""), country("ÅÄ"),
		pnr("PNR with leading space", " "+okPNR), pnr("PNR with trailing space", okPNR+" "),
		pnr("PNR with tab", "1980&#9;1234"), pnr("PNR with newline", "1980\n1234"), pnr("PNR with NEL (C1 control)", "1980&#x85;1234"),
		pnr("PNR with DEL", "1980&#x7F;1234"), pnr("PNR of 65 characters", strings.Repeat("1", 65)),
		pnr("PNR of 65 multibyte characters", strings.Repeat("å", 65)), pnr("empty PNR", ""), pnr("PNR of one space", " "),
		reason("Reason of 2001 characters", strings.Repeat("r", 2001)), reason("empty Reason", ""),
		reason("Reason with DEL", "a&#x7F;b"), reason("Reason with C1 control", "a&#x9B;b"),
		signature("Signature not base64", "!!!!"), signature("Signature of 63 octets", b64(63)), signature("Signature of 65 octets", b64(65)),
		signature("Signature with bad padding", "AB=="+b64(63)[4:]), signature("Signature without padding", strings.TrimRight(b64(64), "=")),
		signature("empty Signature", ""),
		inv("LegalId with space", request(okPNR, okCountry, okTimeout, okReason, append([]string{tag("LegalId", "a b")}, legal()[1:]...)...), "LegalId", "/MFA/LegalId"),
		inv("LegalId of 256 characters", request(okPNR, okCountry, okTimeout, okReason, append([]string{tag("LegalId", strings.Repeat("x", 256))}, legal()[1:]...)...), "LegalId", "/MFA/LegalId"),

		// Attributes, text and content.
		{name: "attribute on root", xml: strings.Replace(valid, `<MFA `, `<MFA id="1" `, 1), kind: UnexpectedAttribute, element: "MFA", path: "/MFA"},
		{name: "attribute on field", xml: strings.Replace(valid, `<PNR>`, `<PNR type="se">`, 1), kind: UnexpectedAttribute, element: "PNR", path: "/MFA/PNR"},
		{name: "xml:lang on Reason", xml: strings.Replace(valid, `<Reason>`, `<Reason xml:lang="en">`, 1), kind: UnexpectedAttribute, element: "Reason", path: "/MFA/Reason"},
		{name: "namespaced attribute", xml: strings.Replace(valid, `<Timeout>`, `<Timeout xmlns:x="urn:x" x:unit="s">`, 1), kind: UnexpectedAttribute, element: "Timeout", path: "/MFA/Timeout"},
		{name: "text in element-only content", xml: strings.Replace(valid, `<COUNTRY>`, `and <COUNTRY>`, 1), kind: UnexpectedText, element: "MFA", path: "/MFA"},
		{name: "CDATA text in element-only content", xml: strings.Replace(valid, `</MFA>`, `<![CDATA[x]]></MFA>`, 1), kind: UnexpectedText, element: "MFA", path: "/MFA"},
		{name: "child element inside PNR", xml: request(`1980<b>0101</b>1234`, okCountry, okTimeout, okReason), kind: UnexpectedContent, element: "b", path: "/MFA/PNR/b"},
		{name: "MFA child inside Reason", xml: request(okPNR, okCountry, okTimeout, "<PNR>1</PNR>"), kind: UnexpectedContent, element: "PNR", path: "/MFA/Reason/PNR"},

		// The first violation in document order wins.
		{name: "invalid value before unknown element", xml: request(okPNR, okCountry, "0", okReason, tag("Foo", "")), kind: InvalidValue, element: "Timeout", path: "/MFA/Timeout"},
		{name: "unknown element before invalid value", xml: mfa(tag("PNR", okPNR), tag("Foo", ""), tag("Timeout", "0")), kind: UnknownElement, element: "Foo", path: "/MFA/Foo"},
		{name: "attribute before invalid child", xml: strings.Replace(request(" x", okCountry, okTimeout, okReason), `<MFA `, `<MFA a="1" `, 1), kind: UnexpectedAttribute, element: "MFA", path: "/MFA"},
		{name: "invalid child before missing element", xml: mfa(tag("PNR", " x")), kind: InvalidValue, element: "PNR", path: "/MFA/PNR"},
	}
}

func responseDocs() []doc {
	resp := func(children ...string) string {
		return `<MFAResponse xmlns="` + Namespace + `">` + strings.Join(children, "") + `</MFAResponse>`
	}
	evidence := func(override map[string]string) string {
		fields := []struct{ name, value string }{
			{"LegalId", okLegalID}, {"Decision", "approve"}, {"Algorithm", "Ed25519"}, {"PublicKey", b64(32)},
			{"PublicKeyUrl", "https://legal.example.org/Keys/2f1c7a9e?fmt=raw#k1"}, {"SignedData", b64(200)},
			{"Signature", b64(64)}, {"Push", b64(120)},
		}
		var b strings.Builder
		b.WriteString("<Evidence>")
		for _, f := range fields {
			v, ok := override[f.name]
			if !ok {
				v = f.value
			} else if v == "-" {
				continue
			}
			b.WriteString(tag(f.name, v))
		}
		b.WriteString("</Evidence>")
		return b.String()
	}
	code, msg, rid := tag("Code", "approved"), tag("Message", "Approved."), tag("RequestId", "abcdefghijklmnopqrstuvwxyz")
	inv := func(name, xml, element, path string) doc {
		return doc{name: name, xml: xml, kind: InvalidValue, element: element, path: path}
	}
	ev := func(field, value string) doc {
		return inv("Evidence "+field+" "+strconv.Quote(value), resp(code, msg, rid, evidence(map[string]string{field: value})), field, "/MFAResponse/Evidence/"+field)
	}
	return []doc{
		{name: "approved with Evidence", xml: resp(code, msg, rid, evidence(nil))},
		{name: "approved without Evidence", xml: resp(code, msg, rid)},
		{name: "error with Field", xml: resp(tag("Code", "invalid-field"), tag("Message", `element "Timeout": "0" is not a positive integer`), tag("Field", "Timeout"))},
		{name: "retry with RetryAfter 0", xml: resp(tag("Code", "push-unavailable"), msg, tag("RetryAfter", "0"))},
		{name: "RetryAfter -0", xml: resp(tag("Code", "push-unavailable"), msg, tag("RetryAfter", "-0"))},
		{name: "empty Message", xml: resp(tag("Code", "timeout"), "<Message/>")},
		{name: "all optional fields", xml: resp(tag("Code", "denied"), msg, rid, tag("Field", "PNR"), tag("RetryAfter", "30"), evidence(map[string]string{"Decision": "deny"}))},
		{name: "PublicKeyUrl with space and non-ASCII", xml: resp(code, msg, rid, evidence(map[string]string{"PublicKeyUrl": "https://legal.example.org/Nycklar/å b"}))},
		{name: "relative PublicKeyUrl", xml: resp(code, msg, rid, evidence(map[string]string{"PublicKeyUrl": "/Keys/1"}))},
		{name: "empty Push", xml: resp(code, msg, rid, evidence(map[string]string{"Push": ""}))},

		inv("unknown Code", resp(tag("Code", "bogus"), msg), "Code", "/MFAResponse/Code"),
		inv("Code with spaces", resp(tag("Code", " approved "), msg), "Code", "/MFAResponse/Code"),
		inv("Code in upper case", resp(tag("Code", "APPROVED"), msg), "Code", "/MFAResponse/Code"),
		inv("RequestId in upper case", resp(code, msg, tag("RequestId", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")), "RequestId", "/MFAResponse/RequestId"),
		inv("RequestId of 25 characters", resp(code, msg, tag("RequestId", "abcdefghijklmnopqrstuvwxy")), "RequestId", "/MFAResponse/RequestId"),
		inv("RequestId with digit 1", resp(code, msg, tag("RequestId", "1bcdefghijklmnopqrstuvwxyz")), "RequestId", "/MFAResponse/RequestId"),
		inv("Field of 65 characters", resp(code, msg, tag("Field", strings.Repeat("f", 65))), "Field", "/MFAResponse/Field"),
		inv("empty Field", resp(code, msg, tag("Field", "")), "Field", "/MFAResponse/Field"),
		inv("RetryAfter -1", resp(code, msg, tag("RetryAfter", "-1")), "RetryAfter", "/MFAResponse/RetryAfter"),
		ev("Decision", "approved"), ev("Algorithm", "ed25519"), ev("PublicKey", b64(31)), ev("PublicKey", b64(64)),
		ev("PublicKeyUrl", "%zz"), ev("PublicKeyUrl", "1abc:def"), ev("PublicKeyUrl", "https://a/#x#y"), ev("PublicKeyUrl", "http://[::1/"),
		ev("SignedData", "AAA"), ev("Signature", b64(32)), ev("Push", "A==="), ev("LegalId", ""),

		{name: "missing Message", xml: resp(code), kind: MissingElement, element: "Message", path: "/MFAResponse"},
		{name: "missing Code", xml: resp(msg, rid), kind: MissingElement, element: "Code", path: "/MFAResponse"},
		{name: "Evidence missing Push", xml: resp(code, msg, evidence(map[string]string{"Push": "-"})), kind: MissingElement, element: "Push", path: "/MFAResponse/Evidence"},
		{name: "Evidence missing Decision", xml: resp(code, msg, evidence(map[string]string{"Decision": "-"})), kind: MissingElement, element: "Decision", path: "/MFAResponse/Evidence"},
		{name: "Field before RequestId", xml: resp(code, msg, tag("Field", "PNR"), rid), kind: UnexpectedElement, element: "RequestId", path: "/MFAResponse/RequestId"},
		{name: "Message before Code", xml: resp(msg, code), kind: UnexpectedElement, element: "Message", path: "/MFAResponse/Message"},
		{name: "Evidence twice", xml: resp(code, msg, evidence(nil), evidence(nil)), kind: RepeatedElement, element: "Evidence", path: "/MFAResponse/Evidence[2]"},
		{name: "request element in response", xml: resp(code, msg, tag("PNR", "1")), kind: UnknownElement, element: "PNR", path: "/MFAResponse/PNR"},
		{name: "text in Evidence", xml: resp(code, msg, strings.Replace(evidence(nil), "<Push>", "x<Push>", 1)), kind: UnexpectedText, element: "Evidence", path: "/MFAResponse/Evidence"},
		{name: "Evidence as text", xml: resp(code, msg, tag("Evidence", "signed")), kind: UnexpectedText, element: "Evidence", path: "/MFAResponse/Evidence"},
		{name: "attribute on Evidence", xml: resp(code, msg, strings.Replace(evidence(nil), "<Evidence>", `<Evidence v="1">`, 1)), kind: UnexpectedAttribute, element: "Evidence", path: "/MFAResponse/Evidence"},
	}
}

// parse parses a test document; the corpus is well-formed by construction.
func parse(t testing.TB, xml string) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(xml); err != nil {
		t.Fatalf("test document is not well-formed: %v\n%s", err, xml)
	}
	return d.Root()
}

// checkDoc validates d and compares the outcome with what d expects.
func checkDoc(t *testing.T, s *Schema, d doc) {
	t.Helper()
	err := s.Validate(parse(t, d.xml))
	if d.kind == 0 {
		if err != nil {
			t.Fatalf("valid document rejected: %v\n%s", err, d.xml)
		}
		return
	}
	var v *Violation
	if !errors.As(err, &v) {
		t.Fatalf("got %v, want a %v violation\n%s", err, d.kind, d.xml)
	}
	if v.Kind != d.kind || v.Element != d.element || v.Path != d.path {
		t.Fatalf("got %v (Element %q, Path %q), want %v (Element %q, Path %q)\n%s",
			v.Kind, v.Element, v.Path, d.kind, d.element, d.path, d.xml)
	}
	if v.Message == "" || !strings.Contains(v.Error(), v.Message) {
		t.Fatalf("violation without a usable message: %#v", v)
	}
}

// xmllint returns the path of xmllint, or skips the test when it is not
// installed, except on CI, which installs libxml2-utils and must not let
// the cross-check go missing silently.
func xmllint(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("xmllint is not on PATH; CI must install libxml2-utils for the cross-check with libxml2")
		}
		t.Skip("xmllint is not on PATH (apt-get install libxml2-utils); skipping the cross-check with libxml2")
	}
	return p
}

// xmllintVerdicts validates documents against xsd with xmllint and returns
// whether each one validates. It fails the test if xmllint cannot compile
// the schema or gives no verdict for a document.
func xmllintVerdicts(t *testing.T, xsd []byte, docs []string) []bool {
	t.Helper()
	bin := xmllint(t)
	dir := t.TempDir()
	xsdPath := filepath.Join(dir, "schema.xsd")
	if err := os.WriteFile(xsdPath, xsd, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--noout", "--nonet", "--schema", xsdPath}
	paths := make([]string, len(docs))
	for i, d := range docs {
		paths[i] = filepath.Join(dir, "doc"+strconv.Itoa(i)+".xml")
		if err := os.WriteFile(paths[i], []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, paths[i])
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 5 {
		t.Fatalf("xmllint cannot compile the schema:\n%s", out)
	} else if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running xmllint: %v", err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		lines[l] = true
	}
	verdicts := make([]bool, len(docs))
	for i, p := range paths {
		switch {
		case lines[p+" validates"]:
			verdicts[i] = true
		case lines[p+" fails to validate"]:
		default:
			t.Fatalf("xmllint gave no verdict for document %d:\n%s\n%s", i, docs[i], out)
		}
	}
	return verdicts
}

// crossCheck asserts that xmllint and s agree on which documents are valid.
func crossCheck(t *testing.T, xsd []byte, s *Schema, docs []doc) (checked int) {
	t.Helper()
	var sel []doc
	var xmls []string
	for _, d := range docs {
		if d.noXmllint == "" {
			sel = append(sel, d)
			xmls = append(xmls, d.xml)
		}
	}
	verdicts := xmllintVerdicts(t, xsd, xmls)
	for i, d := range sel {
		err := s.Validate(parse(t, d.xml))
		if ours := err == nil; ours != verdicts[i] {
			t.Errorf("%s: xmllint says valid=%v, we say valid=%v (%v)\n%s", d.name, verdicts[i], ours, err, d.xml)
		}
	}
	return len(sel)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
