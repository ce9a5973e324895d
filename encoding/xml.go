package encoding

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/legalmfa/mfa/api"

	"github.com/beevik/etree"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"

	"github.com/legalmfa/mfa/schema"
)

// maxXMLDepth is far deeper than any valid MFA document (three levels) and
// stops deeply nested bodies early.
const maxXMLDepth = 16

// requestElement is the root element of an MFA request.
const requestElement = "MFA"

func (d *Decoder) decodeXML(body []byte, charset string) (api.Fields, *api.Error) {
	settings := etree.ReadSettings{MaxDepth: maxXMLDepth, CharsetReader: transcodeCharset, PreserveDuplicateAttrs: true}
	// A byte-order mark says the encoding when no charset does: UTF-16 is
	// XML's other encoding every parser must read (XML 1.0, 4.3.3).
	if charset == "" {
		switch {
		case bytes.HasPrefix(body, []byte{0xff, 0xfe}):
			charset = "utf-16le"
		case bytes.HasPrefix(body, []byte{0xfe, 0xff}):
			charset = "utf-16be"
		}
	}
	if charset != "" && !isUTF8Label(charset) {
		// The Content-Type's charset overrides the XML declaration (RFC 7303),
		// so transcode up front and then ignore what the declaration says.
		r, err := transcodeCharset(charset, bytes.NewReader(body))
		if err != nil {
			return api.Fields{}, api.Errorf(api.CodeUnsupportedMediaType, "", "%v", err)
		}
		if body, err = io.ReadAll(r); err != nil {
			return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body is not valid %s: %v", charset, err)
		}
		settings.CharsetReader = func(_ string, input io.Reader) (io.Reader, error) { return input, nil }
	}
	// The byte-order mark is not text outside the root: it goes.
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	doc := etree.NewDocument()
	doc.ReadSettings = settings
	if err := doc.ReadFromBytes(body); err != nil {
		var unsupported unsupportedCharsetError
		if errors.As(err, &unsupported) {
			return api.Fields{}, api.Errorf(api.CodeUnsupportedMediaType, "", "%v", unsupported)
		}
		// The parser's own words quote the document, which may hold a
		// personal number: say where, not what.
		var syntax *xml.SyntaxError
		if errors.As(err, &syntax) {
			return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body is not well-formed XML (line %d)", syntax.Line)
		}
		return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body is not well-formed XML")
	}
	if err := checkAttributes(&doc.Element); err != nil {
		return api.Fields{}, err
	}
	if hasDirective(&doc.Element) {
		return api.Fields{}, api.Errorf(api.CodeMalformed, "", "DOCTYPE and other <!…> declarations are not allowed in MFA requests")
	}
	// etree reads a sequence of top-level elements without complaint; XML
	// allows exactly one, with nothing but markup and space around it.
	if n := len(doc.ChildElements()); n != 1 {
		if n == 0 {
			return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body has no root element")
		}
		return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body has %d root elements; a well-formed XML document has exactly one", n)
	}
	for _, t := range doc.Child {
		if cd, ok := t.(*etree.CharData); ok && strings.Trim(cd.Data, " \t\r\n") != "" {
			return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body has text outside its root element")
		}
	}
	root := doc.Root()
	if root.Tag != requestElement || root.NamespaceURI() != api.XMLNamespace {
		return api.Fields{}, api.Errorf(api.CodeSchemaViolation, "", "the root element must be MFA in namespace %s, not %s", api.XMLNamespace, describeElement(root))
	}
	if err := d.schema.Validate(root); err != nil {
		return api.Fields{}, violationError(err)
	}
	var raw api.Fields
	for _, child := range root.ChildElements() {
		i := api.FieldIndex(child.Tag)
		if i < 0 {
			// The schema admits only the request fields; this guards the
			// day someone extends the schema and forgets the decoder.
			return api.Fields{}, api.Errorf(api.CodeUnknownField, child.Tag, "element %s is not an MFA request field", fieldName(child.Tag))
		}
		raw.Set(i, xmlFieldValue(child.Tag, textContent(child)))
	}
	return raw, nil
}

// xmlFieldValue applies the schema's whitespace rules: xs:positiveInteger
// and xs:base64Binary collapse whitespace; strings keep theirs.
func xmlFieldValue(name, text string) string {
	switch name {
	case api.FieldTimeout, api.FieldIssued:
		return strings.Trim(text, " \t\r\n")
	case api.FieldSignature:
		return strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, text)
	}
	return text
}

// textContent concatenates an element's character data, CDATA included,
// across any comments between them.
func textContent(e *etree.Element) string {
	var b strings.Builder
	for _, t := range e.Child {
		if cd, ok := t.(*etree.CharData); ok {
			b.WriteString(cd.Data)
		}
	}
	return b.String()
}

// checkAttributes refuses what XML forbids and etree lets through: an
// attribute given twice on one element (two xmlns, the last of which
// would win), and the xml prefix bound to anything (XML Namespaces, 3).
func checkAttributes(e *etree.Element) *api.Error {
	seen := make(map[string]bool, len(e.Attr))
	for _, a := range e.Attr {
		if seen[a.FullKey()] {
			return api.Errorf(api.CodeMalformed, "", "an attribute appears twice on element %s, which is not well-formed XML", fieldName(e.Tag))
		}
		seen[a.FullKey()] = true
		if a.Space == "xmlns" && (a.Key == "xml" || a.Key == "xmlns") {
			return api.Errorf(api.CodeMalformed, "", "the prefixes xml and xmlns cannot be bound, which this document does")
		}
	}
	for _, c := range e.ChildElements() {
		if err := checkAttributes(c); err != nil {
			return err
		}
	}
	return nil
}

func hasDirective(e *etree.Element) bool {
	for _, t := range e.Child {
		switch t := t.(type) {
		case *etree.Directive:
			return true
		case *etree.Element:
			if hasDirective(t) {
				return true
			}
		}
	}
	return false
}

func describeElement(e *etree.Element) string {
	if ns := e.NamespaceURI(); ns != "" {
		return fmt.Sprintf("%s in another namespace", fieldName(e.Tag))
	}
	return fmt.Sprintf("%s in no namespace", fieldName(e.Tag))
}

// violationError maps a schema violation to the outcome code that names the
// same fault in JSON and form requests.
func violationError(err error) *api.Error {
	var v *schema.Violation
	if !errors.As(err, &v) {
		return api.Errorf(api.CodeSchemaViolation, "", "the body is not valid against MFA.xsd: %v", err)
	}
	code := api.CodeSchemaViolation
	switch v.Kind {
	case schema.UnknownElement:
		code = api.CodeUnknownField
	case schema.RepeatedElement:
		code = api.CodeDuplicateField
	case schema.MissingElement:
		code = api.CodeMissingField
	case schema.InvalidValue:
		code = api.CodeInvalidField
	}
	// Field only ever names a request field, and the message is the
	// decoder's own: the validator's quotes the caller's text, which may
	// be a personal number anywhere in a mixed-up document.
	field := v.Element
	if api.FieldIndex(field) < 0 {
		field = ""
	}
	return &api.Error{Code: code, Field: field, Message: violationMessage(v.Kind, fieldName(v.Element))}
}

// violationMessage says what is wrong with an MFA document without
// repeating its content; name is the element's, as fieldName shows it.
func violationMessage(kind schema.ViolationKind, name string) string {
	const order = "PNR, COUNTRY, Timeout, Reason, then for a signed request LegalId, Signature, Issued and Nonce"
	switch kind {
	case schema.UnknownElement:
		return fmt.Sprintf("element %s is not an MFA request field: the fields are %s", name, order)
	case schema.UnexpectedElement:
		return fmt.Sprintf("element %s is out of order: the order is %s", name, order)
	case schema.RepeatedElement:
		return fmt.Sprintf("element %s appears more than once", name)
	case schema.MissingElement:
		return fmt.Sprintf("element %s is required", name)
	case schema.InvalidValue:
		return fmt.Sprintf("element %s does not have a valid value: %s", name, fieldRule(name))
	case schema.UnexpectedText:
		return fmt.Sprintf("element %s contains text where only elements belong", name)
	case schema.UnexpectedAttribute:
		return fmt.Sprintf("element %s has an attribute: MFA requests carry none but namespace declarations", name)
	case schema.UnexpectedContent:
		return fmt.Sprintf("element %s contains an element, but holds only text", name)
	}
	return "the body is not valid against MFA.xsd"
}

// fieldRule states a field's rule, as MFA.xsd and the README give it.
func fieldRule(quotedName string) string {
	switch quotedName {
	case `"PNR"`:
		return "a personal number of 1 to 64 characters, no control characters, no space at either end"
	case `"COUNTRY"`:
		return "an ISO 3166-1 alpha-2 code in upper case, such as SE"
	case `"Timeout"`:
		return "a positive whole number of seconds"
	case `"Reason"`:
		return "markdown text, not blank, at most 2,000 characters"
	case `"LegalId"`:
		return "an identity ID of the form <id>@<domain>"
	case `"Signature"`:
		return "a base64 Ed25519 signature of 64 bytes"
	case `"Issued"`:
		return "an RFC 3339 time with a time zone, such as 2026-11-22T13:45:00Z"
	case `"Nonce"`:
		return "16 to 64 characters of A-Z, a-z, 0-9, - and _"
	}
	return "see MFA.xsd"
}

type unsupportedCharsetError struct{ label string }

func (e unsupportedCharsetError) Error() string {
	return fmt.Sprintf("charset %s is not supported: send UTF-8", quote(e.label, 40))
}

// transcodeCharset decodes the character sets browsers know (WHATWG
// encoding labels) into UTF-8.
func transcodeCharset(label string, input io.Reader) (io.Reader, error) {
	if isUTF8Label(label) {
		return input, nil
	}
	if l := strings.ToLower(label); l == "utf-16" || l == "utf16" {
		// The byte-order mark says which UTF-16; little-endian without one.
		return unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewDecoder().Reader(input), nil
	}
	enc, err := htmlindex.Get(label)
	if err != nil {
		return nil, unsupportedCharsetError{label: label}
	}
	return enc.NewDecoder().Reader(input), nil
}
