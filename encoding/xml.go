package encoding

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/beevik/etree"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/legalmfa/mfa/schema"
)

// maxXMLDepth is far deeper than any valid MFA document (three levels) and
// stops deeply nested bodies early.
const maxXMLDepth = 16

// requestElement is the root element of an MFA request.
const requestElement = "MFA"

func (d *Decoder) decodeXML(body []byte, charset string) (rawRequest, *Error) {
	settings := etree.ReadSettings{MaxDepth: maxXMLDepth, CharsetReader: transcodeCharset}
	if charset != "" && !isUTF8Label(charset) {
		// The Content-Type's charset overrides the XML declaration (RFC 7303),
		// so transcode up front and then ignore what the declaration says.
		r, err := transcodeCharset(charset, bytes.NewReader(body))
		if err != nil {
			return rawRequest{}, errorf(CodeUnsupportedMediaType, "", "%v", err)
		}
		if body, err = io.ReadAll(r); err != nil {
			return rawRequest{}, errorf(CodeMalformed, "", "the body is not valid %s: %v", charset, err)
		}
		settings.CharsetReader = func(_ string, input io.Reader) (io.Reader, error) { return input, nil }
	}
	doc := etree.NewDocument()
	doc.ReadSettings = settings
	if err := doc.ReadFromBytes(body); err != nil {
		var unsupported unsupportedCharsetError
		if errors.As(err, &unsupported) {
			return rawRequest{}, errorf(CodeUnsupportedMediaType, "", "%v", unsupported)
		}
		return rawRequest{}, errorf(CodeMalformed, "", "the body is not well-formed XML: %v", err)
	}
	if hasDirective(&doc.Element) {
		return rawRequest{}, errorf(CodeMalformed, "", "DOCTYPE and other <!…> declarations are not allowed in MFA requests")
	}
	// etree reads a sequence of top-level elements without complaint; XML
	// allows exactly one, with nothing but markup and space around it.
	if n := len(doc.ChildElements()); n != 1 {
		if n == 0 {
			return rawRequest{}, errorf(CodeMalformed, "", "the body has no root element")
		}
		return rawRequest{}, errorf(CodeMalformed, "", "the body has %d root elements; a well-formed XML document has exactly one", n)
	}
	for _, t := range doc.Child {
		if cd, ok := t.(*etree.CharData); ok && strings.Trim(cd.Data, " \t\r\n") != "" {
			return rawRequest{}, errorf(CodeMalformed, "", "the body has text outside its root element")
		}
	}
	root := doc.Root()
	if root.Tag != requestElement || root.NamespaceURI() != schema.Namespace {
		return rawRequest{}, errorf(CodeSchemaViolation, "", "the root element must be MFA in namespace %s, not %s", schema.Namespace, describeElement(root))
	}
	if err := d.schema.Validate(root); err != nil {
		return rawRequest{}, violationError(err)
	}
	var raw rawRequest
	for _, child := range root.ChildElements() {
		i := fieldIndex(child.Tag)
		if i < 0 {
			// The schema admits only the request fields; this guards the
			// day someone extends the schema and forgets the decoder.
			return rawRequest{}, errorf(CodeUnknownField, child.Tag, "element %s is not an MFA request field", quote(child.Tag, 64))
		}
		raw.set(i, xmlFieldValue(child.Tag, textContent(child)))
	}
	return raw, nil
}

// xmlFieldValue applies the schema's whitespace rules: xs:positiveInteger
// and xs:base64Binary collapse whitespace; strings keep theirs.
func xmlFieldValue(name, text string) string {
	switch name {
	case FieldTimeout, FieldIssued:
		return strings.Trim(text, " \t\r\n")
	case FieldSignature:
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
		return fmt.Sprintf("%s in namespace %s", quote(e.Tag, 64), quote(ns, 128))
	}
	return fmt.Sprintf("%s in no namespace", quote(e.Tag, 64))
}

// violationError maps a schema violation to the outcome code that names the
// same fault in JSON and form requests.
func violationError(err error) *Error {
	var v *schema.Violation
	if !errors.As(err, &v) {
		return errorf(CodeSchemaViolation, "", "the body is not valid against MFA.xsd: %v", err)
	}
	code := CodeSchemaViolation
	switch v.Kind {
	case schema.UnknownElement:
		code = CodeUnknownField
	case schema.RepeatedElement:
		code = CodeDuplicateField
	case schema.MissingElement:
		code = CodeMissingField
	case schema.InvalidValue:
		code = CodeInvalidField
	}
	// Field only ever names a request field: an unknown element's name is
	// the caller's text and goes in the message.
	field := v.Element
	if fieldIndex(field) < 0 {
		field = ""
	}
	msg := v.Message
	if field == FieldPNR && code == CodeInvalidField {
		// The validator quotes offending values; a PNR must not be echoed.
		msg = "element PNR is not a valid personal number: 1 to 64 characters, no control characters, no space at either end"
	}
	return &Error{Code: code, Field: field, Message: msg}
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
	enc, err := htmlindex.Get(label)
	if err != nil {
		return nil, unsupportedCharsetError{label: label}
	}
	return enc.NewDecoder().Reader(input), nil
}
