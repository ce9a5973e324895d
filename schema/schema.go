// Package schema holds MFA.xsd, the contract of the broker's XML API, and
// validates documents against it.
//
// No XSD validator for Go is usable here (the product must build with only
// Go installed, so libxml2 through cgo is out), so the package compiles XSD
// itself: a documented subset, enough for MFA.xsd, with anything outside it
// rejected at compile time. The schema file drives validation; nothing about
// the MFA elements is hard-coded.
package schema

import (
	"bytes"
	_ "embed"
	"fmt"
	"strconv"

	"github.com/legalmfa/mfa/api"
)

// Namespace is the target namespace of MFA.xsd.
const Namespace = api.XMLNamespace

//go:embed MFA.xsd
var mfaXSD []byte

// XSD returns a copy of the embedded MFA.xsd bytes (served at
// GET /Schema/MFA.xsd).
func XSD() []byte { return bytes.Clone(mfaXSD) }

// Load compiles the embedded MFA.xsd. Call once at start-up; the *Schema is
// immutable and safe for concurrent use.
func Load() (*Schema, error) {
	s, err := compile(mfaXSD)
	if err != nil {
		return nil, fmt.Errorf("schema: compiling embedded MFA.xsd: %w", err)
	}
	if s.targetNS != Namespace {
		return nil, fmt.Errorf("schema: embedded MFA.xsd has target namespace %q, want %q", s.targetNS, Namespace)
	}
	return s, nil
}

// Compile compiles any XSD document using the supported subset; unsupported
// constructs are a compile error naming them (never silently ignored).
//
// The subset: xs:schema with targetNamespace and elementFormDefault;
// xs:annotation anywhere XSD allows it (ignored); global xs:element with
// type= or an inline type; named and inline xs:complexType with element-only
// content of one xs:sequence or xs:choice, which nest and carry
// minOccurs/maxOccurs, and local xs:element particles; named and inline
// xs:simpleType by xs:restriction of a built-in or named simple type with
// the facets length, minLength, maxLength, pattern, enumeration,
// minInclusive, maxInclusive, minExclusive, maxExclusive and whiteSpace;
// the built-ins xs:string, xs:normalizedString, xs:token, xs:boolean,
// xs:integer, xs:positiveInteger, xs:nonNegativeInteger, xs:int, xs:long,
// xs:base64Binary, xs:anyURI and xs:dateTime. No attributes may be
// declared, so instances may carry only namespace declarations.
func Compile(xsd []byte) (*Schema, error) {
	s, err := compile(xsd)
	if err != nil {
		return nil, fmt.Errorf("schema: compile: %w", err)
	}
	return s, nil
}

// Schema is a compiled schema. It is never modified after Compile.
type Schema struct {
	targetNS    string
	globals     map[string]*elementDecl
	globalNames []string // declaration order, for messages
}

// ViolationKind classifies a Violation.
type ViolationKind int

const (
	// WrongRoot: the root element's name or namespace is not that of a
	// global element of the schema.
	WrongRoot ViolationKind = iota + 1
	// UnknownElement: an element its parent's content model does not
	// declare at all, or declares in another namespace.
	UnknownElement
	// UnexpectedElement: a declared element out of order.
	UnexpectedElement
	// RepeatedElement: an element occurring more often than maxOccurs
	// allows.
	RepeatedElement
	// MissingElement: a required element is absent; Element names the
	// first one missing.
	MissingElement
	// InvalidValue: text content fails its simple type.
	InvalidValue
	// UnexpectedText: non-whitespace text in element-only content.
	UnexpectedText
	// UnexpectedAttribute: any attribute other than a namespace
	// declaration.
	UnexpectedAttribute
	// UnexpectedContent: child elements inside an element of simple type.
	UnexpectedContent
)

func (k ViolationKind) String() string {
	switch k {
	case WrongRoot:
		return "WrongRoot"
	case UnknownElement:
		return "UnknownElement"
	case UnexpectedElement:
		return "UnexpectedElement"
	case RepeatedElement:
		return "RepeatedElement"
	case MissingElement:
		return "MissingElement"
	case InvalidValue:
		return "InvalidValue"
	case UnexpectedText:
		return "UnexpectedText"
	case UnexpectedAttribute:
		return "UnexpectedAttribute"
	case UnexpectedContent:
		return "UnexpectedContent"
	}
	return "ViolationKind(" + strconv.Itoa(int(k)) + ")"
}

// Violation is the first way, in document order, in which a document breaks
// the schema.
//
// Path locates it with local names from the root, such as "/MFA/Timeout";
// a step gets a 1-based position, "/MFA/PNR[2]", when its parent has more
// than one child element of that name. For UnknownElement,
// UnexpectedElement, RepeatedElement and UnexpectedContent, Path and
// Element are those of the offending element itself; for MissingElement,
// Path is the parent and Element the missing child; otherwise both are the
// element whose root, value, text or attribute is at fault.
type Violation struct {
	Kind    ViolationKind
	Path    string // e.g. "/MFA/Timeout"
	Element string // local name of the element concerned, "" if none
	Message string // e.g. `element "Timeout": "0" is not a positive integer`
}

func (v *Violation) Error() string {
	return fmt.Sprintf("%s at %s: %s", v.Kind, v.Path, v.Message)
}
