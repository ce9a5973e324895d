package schema

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// xsdWith wraps top-level declarations in a schema with target namespace
// urn:t (prefix t) and qualified local elements.
func xsdWith(decls string) string {
	return `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t" elementFormDefault="qualified">` +
		decls + `</xs:schema>`
}

// rootWith declares global element r with the given content particle.
func rootWith(content string) string {
	return xsdWith(`<xs:element name="r"><xs:complexType>` + content + `</xs:complexType></xs:element>`)
}

func structureErrorCases() []compileErrorCase {
	return []compileErrorCase{
		{"not XML", `<xs:schema`, "not well-formed", true},
		{"root not xs:schema", `<schema xmlns="urn:x"/>`, "not xs:schema", true},
		{"UPA: optional element then same element", rootWith(`<xs:sequence><xs:element name="a" type="xs:int" minOccurs="0"/><xs:element name="a" type="xs:int"/></xs:sequence>`),
			`the type of element "r": content model is ambiguous: element "a" could match two different particles (Unique Particle Attribution)`, true},
		{"UPA: choice between a and a-then-b", rootWith(`<xs:choice><xs:element name="a" type="xs:int"/><xs:sequence><xs:element name="a" type="xs:int"/><xs:element name="b" type="xs:int"/></xs:sequence></xs:choice>`),
			"Unique Particle Attribution", true},
		{"UPA: repeated group then element", rootWith(`<xs:sequence><xs:sequence maxOccurs="unbounded"><xs:element name="a" type="xs:int"/></xs:sequence><xs:element name="a" type="xs:int"/></xs:sequence>`),
			"Unique Particle Attribution", true},
		{"same name, different types", rootWith(`<xs:sequence><xs:element name="a" type="xs:int"/><xs:element name="b" type="xs:int"/><xs:element name="a" type="xs:string"/></xs:sequence>`),
			"different types", true},
		{"minOccurs above maxOccurs", rootWith(`<xs:sequence><xs:element name="a" type="xs:int" minOccurs="3" maxOccurs="2"/></xs:sequence>`), "greater than maxOccurs", true},
		{"maxOccurs not a number", rootWith(`<xs:sequence><xs:element name="a" type="xs:int" maxOccurs="many"/></xs:sequence>`), "not a non-negative integer", true},
		{"negative minOccurs", rootWith(`<xs:sequence minOccurs="-1"><xs:element name="a" type="xs:int"/></xs:sequence>`), "not a non-negative integer", true},
		{"duplicate global element", xsdWith(`<xs:element name="r" type="xs:int"/><xs:element name="r" type="xs:string"/>`), "declared twice", true},
		{"duplicate type name", xsdWith(`<xs:simpleType name="T"><xs:restriction base="xs:int"/></xs:simpleType><xs:complexType name="T"/>`), "defined twice", true},
		{"type and inline type", xsdWith(`<xs:element name="r" type="xs:int"><xs:simpleType><xs:restriction base="xs:int"/></xs:simpleType></xs:element>`), "both type= and an inline type", true},
		{"annotation not first", xsdWith(`<xs:element name="r"><xs:complexType><xs:sequence/><xs:annotation/></xs:complexType></xs:element>`), "must be the first child", true},
		{"text in schema", xsdWith(`hello`), "unexpected text", true},
		{"foreign element in sequence", rootWith(`<xs:sequence><x:e xmlns:x="urn:x"/></xs:sequence>`), "not in the XML Schema namespace", true},
		{"bad elementFormDefault", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="maybe"/>`, "elementFormDefault", true},
		{"empty targetNamespace", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace=""/>`, "targetNamespace must not be empty", true},
		{"blank targetNamespace", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace=" "/>`, "targetNamespace must not be empty", true},
		{"minOccurs on global element", xsdWith(`<xs:element name="r" type="xs:int" minOccurs="0"/>`), `"minOccurs"`, true},
		{"element name not an NCName", xsdWith(`<xs:element name="a:b" type="xs:int"/>`), "not a valid NCName", true},
		{"element without name", xsdWith(`<xs:element type="xs:int"/>`), "needs a name", true},
		{"type from unimported namespace", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:o="urn:o"><xs:element name="r" type="o:T"/></xs:schema>`,
			"xs:import is unsupported", true},
		{"two content particles", rootWith(`<xs:sequence/><xs:choice/>`), "xs:choice is unsupported here", true},

		// Valid XSD outside the subset.
		{"element without type", xsdWith(`<xs:element name="r"/>`), "xs:anyType is unsupported", false},
		{"xs:anyType", xsdWith(`<xs:element name="r" type="xs:anyType"/>`), "xs:anyType is unsupported", false},
		{"xs:decimal element", xsdWith(`<xs:element name="r" type="xs:decimal"/>`), "xs:decimal is unsupported", false},
		{"xs:any", rootWith(`<xs:sequence><xs:any/></xs:sequence>`), "xs:any is unsupported", false},
		{"xs:attribute", rootWith(`<xs:sequence/><xs:attribute name="id" type="xs:int"/>`), "xs:attribute is unsupported", false},
		{"xs:attribute alone", rootWith(`<xs:attribute name="id" type="xs:int"/>`), "xs:attribute is unsupported", false},
		{"xs:all", rootWith(`<xs:all><xs:element name="a" type="xs:int"/></xs:all>`), "xs:all is unsupported", false},
		{"xs:group", xsdWith(`<xs:group name="g"><xs:sequence/></xs:group>`), "xs:group is unsupported", false},
		{"xs:simpleContent", rootWith(`<xs:simpleContent><xs:extension base="xs:int"/></xs:simpleContent>`), "xs:simpleContent is unsupported", false},
		{"xs:complexContent", rootWith(`<xs:complexContent><xs:restriction base="xs:anyType"/></xs:complexContent>`), "xs:complexContent is unsupported", false},
		{"mixed content", xsdWith(`<xs:element name="r"><xs:complexType mixed="true"><xs:sequence/></xs:complexType></xs:element>`), "mixed content is unsupported", false},
		{"element ref", xsdWith(`<xs:element name="a" type="xs:int"/><xs:element name="r"><xs:complexType><xs:sequence><xs:element ref="t:a"/></xs:sequence></xs:complexType></xs:element>`),
			"element references (xs:element ref=) are unsupported", false},
		{"xs:import", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:import namespace="urn:x"/></xs:schema>`, "xs:import is unsupported", false},
		{"xs:key", xsdWith(`<xs:element name="r" type="xs:int"><xs:key name="k"><xs:selector xpath="."/><xs:field xpath="."/></xs:key></xs:element>`), "xs:key is unsupported", false},
		{"nillable", xsdWith(`<xs:element name="r" type="xs:int" nillable="true"/>`), `"nillable" on xs:element is unsupported`, false},
		{"default value", rootWith(`<xs:sequence><xs:element name="a" type="xs:int" default="1"/></xs:sequence>`), `"default" on xs:element is unsupported`, false},
		{"local form", rootWith(`<xs:sequence><xs:element name="a" type="xs:int" form="unqualified"/></xs:sequence>`), `"form" on xs:element is unsupported`, false},
		{"abstract type", xsdWith(`<xs:complexType name="C" abstract="true"/>`), `"abstract" on xs:complexType is unsupported`, false},
		{"blockDefault", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" blockDefault="#all"/>`, `"blockDefault" on xs:schema is unsupported`, false},
		{"maxOccurs above limit", rootWith(`<xs:sequence><xs:element name="a" type="xs:int" maxOccurs="20000"/></xs:sequence>`), "above the supported limit", false},
		{"automaton too large", rootWith(`<xs:sequence maxOccurs="100"><xs:sequence maxOccurs="100"><xs:element name="a" type="xs:int" maxOccurs="100"/></xs:sequence></xs:sequence>`),
			"too large", false},
		{"nullable group repeated", rootWith(`<xs:sequence minOccurs="0" maxOccurs="10000"><xs:element name="a" type="xs:int" minOccurs="0"/></xs:sequence>`),
			"too large", false},
	}
}

func TestStructureCompileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range structureErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCompileError(t, tc)
		})
	}
}

// libxml2Lax names the invalid schemas libxml2 compiles anyway, with the
// constraint it does not enforce. We follow the specifications.
func libxml2Lax() map[string]string {
	return map[string]string{
		"same name, different types": "XSD 1.0 Structures: Element Declarations Consistent",
		"empty targetNamespace":      "Namespaces in XML 1.0 §2.2: the empty string cannot be a namespace name",
		"blank targetNamespace":      "Namespaces in XML 1.0 §2.2: the empty string cannot be a namespace name",
		"maxLength twice":            "XSD 1.0 Datatypes: Single Facet Value",
		"minLength above maxLength":  "XSD 1.0 Datatypes: minLength-less-than-equal-to-maxLength",
		"whiteSpace relaxed":         "XSD 1.0 Datatypes: whiteSpace valid restriction",
	}
}

// TestCompileErrorsAgreeWithXmllint confirms that the schemas we reject as
// invalid XSD are invalid for libxml2 too, and that those we reject as
// outside our subset are valid XSD (so the rejection is about us).
func TestCompileErrorsAgreeWithXmllint(t *testing.T) {
	t.Parallel()
	bin := xmllint(t)
	dir := t.TempDir()
	docPath := filepath.Join(dir, "doc.xml")
	writeFile(t, docPath, []byte(`<r/>`))
	n, lax := 0, libxml2Lax()
	for i, tc := range append(structureErrorCases(), facetErrorCases()...) {
		if tc.want == "too large" {
			// Valid XSD, but libxml2 takes very long to compile these.
			continue
		}
		xsdPath := filepath.Join(dir, "s"+strings.Repeat("x", i)+".xsd")
		writeFile(t, xsdPath, []byte(tc.xsd))
		out, err := exec.Command(bin, "--noout", "--nonet", "--schema", xsdPath, docPath).CombinedOutput()
		var exit *exec.ExitError
		rejected := errors.As(err, &exit) && exit.ExitCode() == 5
		if want := tc.specInvalid && lax[tc.name] == ""; rejected != want {
			t.Errorf("%s: xmllint rejects the schema: %v, want %v\n%s", tc.name, rejected, want, out)
		}
		n++
	}
	t.Logf("%d rejected schemas cross-checked with xmllint", n)
}

func TestCompileAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, xsd string }{
		{"annotations and appinfo", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:annotation><xs:appinfo><any xmlns="urn:x"/></xs:appinfo>` +
			`<xs:documentation xml:lang="en">d</xs:documentation></xs:annotation><xs:element name="r"><xs:annotation/><xs:simpleType><xs:annotation/>` +
			`<xs:restriction base="xs:int"><xs:annotation/><xs:maxInclusive value="3"><xs:annotation/></xs:maxInclusive></xs:restriction></xs:simpleType></xs:element>` +
			`<xs:annotation/></xs:schema>`},
		{"foreign attributes and ids", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:x="urn:x" x:note="n" id="s" version="1" xml:lang="en">` +
			`<xs:element name="r" id="e" x:a="1"><xs:complexType id="c" mixed="false"><xs:sequence id="q"><xs:element name="a" type="xs:int" id="l"/></xs:sequence></xs:complexType></xs:element></xs:schema>`},
		{"no target namespace", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="r" type="T"/><xs:simpleType name="T"><xs:restriction base="xs:string"/></xs:simpleType></xs:schema>`},
		{"empty content", xsdWith(`<xs:element name="r"><xs:complexType/></xs:element>`)},
		{"recursive type", xsdWith(`<xs:element name="r" type="t:Node"/><xs:complexType name="Node"><xs:sequence><xs:element name="n" type="t:Node" minOccurs="0" maxOccurs="unbounded"/></xs:sequence></xs:complexType>`)},
		{"maxOccurs 0", rootWith(`<xs:sequence><xs:element name="a" type="xs:int" minOccurs="0" maxOccurs="0"/></xs:sequence>`)},
		{"whitespace in attribute values", rootWith(`<xs:sequence minOccurs=" 0 " maxOccurs=" unbounded "><xs:element name=" a " type=" xs:int "/></xs:sequence>`)},
	}
	for _, tc := range tests {
		if _, err := Compile([]byte(tc.xsd)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestNormalizeAttributes(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"<a v=\"x\ty\nz\r\nw\rq\"/>", `<a v="x y z w q"/>`},
		{"<a v='1\t2' w=\"'\t'\">t\tx</a>", `<a v='1 2' w="' '">t` + "\t" + `x</a>`},
		{"<a v=\"&#9;>\"\n\tw='\n'>", "<a v=\"&#9;>\"\n\tw=' '>"},
		{"<!-- \"\t --><?pi \"\t?><![CDATA[\"\t]]><b/>", "<!-- \"\t --><?pi \"\t?><![CDATA[\"\t]]><b/>"},
		{"<!DOCTYPE a [<!ENTITY e \"\t>\">]><a v=\"\t\"/>", "<!DOCTYPE a [<!ENTITY e \"\t>\">]><a v=\" \"/>"},
		{"<a v=\"\t", "<a v=\" "},
		{"<!--\t", "<!--\t"},
	}
	for _, tc := range tests {
		if got := string(normalizeAttributes([]byte(tc.in))); got != tc.want {
			t.Errorf("normalizeAttributes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
