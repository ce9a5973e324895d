package schema

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// This file turns an XSD document into elementDecl/complexType/simpleType
// values. It accepts only the subset documented on Compile: anything else
// is an error naming the construct, because a validator that skipped, say,
// an xs:attribute declaration would reject documents the schema allows (or
// one that skipped xs:totalDigits would accept ones it forbids).

const (
	xsdNS = "http://www.w3.org/2001/XMLSchema"
	xmlNS = "http://www.w3.org/XML/1998/namespace"
)

// elementDecl is an element declaration. Exactly one of simple and complex
// is set.
type elementDecl struct {
	name    string
	ns      string // the namespace instances must be in
	simple  *simpleType
	complex *complexType
}

// complexType is element-only or empty content (mixed content and
// attributes are not in the supported subset).
type complexType struct {
	name     string // "" when anonymous
	where    string // names it in compile errors
	particle *particle
	model    *contentModel
	// empty is XSD's content type "empty", which unlike element-only
	// content admits no character data at all, not even whitespace.
	empty bool
}

type particleKind int

const (
	partElement particleKind = iota + 1
	partSequence
	partChoice
)

// unbounded is maxOccurs="unbounded".
const unbounded = -1

// maxOccursLimit keeps occurrence unrolling in the automaton bounded.
const maxOccursLimit = 10000

type particle struct {
	kind     particleKind
	min, max int
	elem     *elementDecl // partElement
	children []*particle  // partSequence, partChoice
}

type compiler struct {
	targetNS   string
	qualified  bool
	builtins   map[string]*simpleType
	rawSimple  map[string]*etree.Element
	simple     map[string]*simpleType
	resolving  map[string]bool
	complex    map[string]*complexType
	rawComplex map[string]*etree.Element
	allComplex []*complexType
	// Declaration order, so that the first error reported is stable.
	simpleOrder, complexOrder []string
	// Name character classes, computed once per compile.
	nameStart, nameChar runeSet
}

func compile(xsd []byte) (*Schema, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(normalizeAttributes(xsd)); err != nil {
		return nil, fmt.Errorf("XSD is not well-formed XML: %w", err)
	}
	root := doc.Root()
	if root == nil || root.NamespaceURI() != xsdNS || root.Tag != "schema" {
		return nil, errors.New("root element is not xs:schema")
	}
	if err := checkAttrs(root, "targetNamespace", "elementFormDefault", "attributeFormDefault", "version", "id"); err != nil {
		return nil, err
	}
	c := &compiler{
		targetNS:   normalizeSpace(root.SelectAttrValue("targetNamespace", ""), wsCollapse),
		builtins:   builtinTypes(),
		rawSimple:  map[string]*etree.Element{},
		simple:     map[string]*simpleType{},
		resolving:  map[string]bool{},
		complex:    map[string]*complexType{},
		rawComplex: map[string]*etree.Element{},
		nameStart:  nameStartSet(),
		nameChar:   nameCharSet(),
	}
	if a := root.SelectAttr("targetNamespace"); a != nil && c.targetNS == "" {
		return nil, errors.New(`targetNamespace must not be empty (omit it for no namespace)`)
	}
	switch v := strings.TrimSpace(root.SelectAttrValue("elementFormDefault", "unqualified")); v {
	case "qualified":
		c.qualified = true
	case "unqualified":
	default:
		return nil, fmt.Errorf("elementFormDefault %q is not qualified or unqualified", v)
	}
	if v := strings.TrimSpace(root.SelectAttrValue("attributeFormDefault", "unqualified")); v != "qualified" && v != "unqualified" {
		return nil, fmt.Errorf("attributeFormDefault %q is not qualified or unqualified", v)
	}

	kids, err := xsdChildren(root)
	if err != nil {
		return nil, err
	}
	// Collect named definitions first: references may point forward.
	var globalEls []*etree.Element
	for _, k := range kids {
		switch k.Tag {
		case "annotation":
		case "element":
			globalEls = append(globalEls, k)
		case "simpleType", "complexType":
			name, err := c.ncName(k, "name")
			if err != nil {
				return nil, fmt.Errorf("top-level xs:%s: %w", k.Tag, err)
			}
			if c.rawSimple[name] != nil || c.rawComplex[name] != nil {
				return nil, fmt.Errorf("type %q is defined twice", name)
			}
			if k.Tag == "simpleType" {
				c.rawSimple[name] = k
				c.simpleOrder = append(c.simpleOrder, name)
			} else {
				c.rawComplex[name] = k
				c.complexOrder = append(c.complexOrder, name)
				ct := &complexType{name: name, where: fmt.Sprintf("complexType %q", name)}
				c.complex[name] = ct
				c.allComplex = append(c.allComplex, ct)
			}
		default:
			return nil, unsupported(k)
		}
	}
	for _, name := range c.simpleOrder {
		if _, err := c.simpleByName(name); err != nil {
			return nil, err
		}
	}
	for _, name := range c.complexOrder {
		if err := c.fillComplex(c.complex[name], c.rawComplex[name]); err != nil {
			return nil, fmt.Errorf("complexType %q: %w", name, err)
		}
	}
	s := &Schema{targetNS: c.targetNS, globals: map[string]*elementDecl{}}
	for _, el := range globalEls {
		if err := checkAttrs(el, "name", "type", "id"); err != nil {
			return nil, fmt.Errorf("top-level xs:element: %w", err)
		}
		name, err := c.ncName(el, "name")
		if err != nil {
			return nil, fmt.Errorf("top-level xs:element: %w", err)
		}
		if s.globals[name] != nil {
			return nil, fmt.Errorf("element %q is declared twice", name)
		}
		d, err := c.elementType(el, name, c.targetNS)
		if err != nil {
			return nil, fmt.Errorf("element %q: %w", name, err)
		}
		s.globals[name] = d
		s.globalNames = append(s.globalNames, name)
	}
	for _, ct := range c.allComplex {
		m, err := buildModel(ct.particle)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ct.where, err)
		}
		ct.model = m
	}
	return s, nil
}

// normalizeAttributes applies XML 1.0 attribute-value normalization
// (§3.3.3), which encoding/xml and so etree skip: each literal tab, line
// feed, carriage return or CR LF pair inside an attribute value becomes a
// space, while character references such as &#9; keep their character.
// Facet values depend on it: a literal line break in a pattern or
// enumeration value means a space. Comments, CDATA sections, processing
// instructions and declarations are copied untouched; malformed input is
// copied too and left for the parser to reject.
func normalizeAttributes(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		rest := in[i:]
		var n int
		switch {
		case rest[0] != '<':
			n = 1
		case bytes.HasPrefix(rest, []byte("<!--")):
			n = spanThrough(rest, "-->")
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			n = spanThrough(rest, "]]>")
		case bytes.HasPrefix(rest, []byte("<?")):
			n = spanThrough(rest, "?>")
		case bytes.HasPrefix(rest, []byte("<!")):
			// A DOCTYPE: its internal subset may hold quotes and '>'.
			n = markupLen(rest, true)
		default:
			n = markupLen(rest, false)
			out = appendTag(out, rest[:n])
			i += n
			continue
		}
		out = append(out, rest[:n]...)
		i += n
	}
	return out
}

// spanThrough is the length of b up to and including end (all of b if
// end is missing).
func spanThrough(b []byte, end string) int {
	if j := bytes.Index(b, []byte(end)); j >= 0 {
		return j + len(end)
	}
	return len(b)
}

// markupLen is the length of the tag or declaration at the start of b,
// through its closing '>' outside quotes (and, for declarations, outside
// brackets).
func markupLen(b []byte, brackets bool) int {
	depth, quote := 0, byte(0)
	for i, c := range b {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case brackets && c == '[':
			depth++
		case brackets && c == ']':
			depth--
		case c == '>' && depth <= 0:
			return i + 1
		}
	}
	return len(b)
}

// appendTag appends a tag with the whitespace in its quoted attribute
// values normalized.
func appendTag(out, tag []byte) []byte {
	quote := byte(0)
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		switch {
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0 && c == '\r' && i+1 < len(tag) && tag[i+1] == '\n':
			i++ // CR LF is one line break, so one space.
			c = ' '
		case quote != 0 && (c == '\t' || c == '\n' || c == '\r'):
			c = ' '
		}
		out = append(out, c)
	}
	return out
}

// unsupported is the error for a schema construct outside the subset.
func unsupported(el *etree.Element) error {
	return fmt.Errorf("xs:%s is unsupported here", el.Tag)
}

// xsdChildren returns the element children, rejecting text and elements
// outside the XSD namespace (allowed only inside annotations, which callers
// never descend into).
func xsdChildren(el *etree.Element) ([]*etree.Element, error) {
	var kids []*etree.Element
	for _, tok := range el.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			if strings.TrimFunc(t.Data, isXMLSpace) != "" {
				return nil, fmt.Errorf("unexpected text %q in xs:%s", strings.TrimSpace(t.Data), el.Tag)
			}
		case *etree.Element:
			if t.NamespaceURI() != xsdNS {
				return nil, fmt.Errorf("element %q in xs:%s is not in the XML Schema namespace", t.FullTag(), el.Tag)
			}
			kids = append(kids, t)
		}
	}
	return kids, nil
}

// contentChildren is xsdChildren with a leading xs:annotation removed;
// XSD allows annotation only first.
func contentChildren(el *etree.Element) ([]*etree.Element, error) {
	kids, err := xsdChildren(el)
	if err != nil {
		return nil, err
	}
	if len(kids) > 0 && kids[0].Tag == "annotation" {
		kids = kids[1:]
	}
	for _, k := range kids {
		if k.Tag == "annotation" {
			return nil, fmt.Errorf("xs:annotation must be the first child of xs:%s", el.Tag)
		}
	}
	return kids, nil
}

// checkAttrs rejects attributes the subset does not understand. Namespace
// declarations and attributes in other namespaces (which XSD allows on any
// schema element as application data) carry no validation meaning.
func checkAttrs(el *etree.Element, allowed ...string) error {
	for _, a := range el.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		if a.Space != "" {
			if ns := a.NamespaceURI(); a.Space == "xml" || (ns != xsdNS && ns != "") {
				continue
			}
			return fmt.Errorf("attribute %q on xs:%s is not allowed", a.FullKey(), el.Tag)
		}
		ok := false
		for _, name := range allowed {
			ok = ok || a.Key == name
		}
		if !ok {
			return fmt.Errorf("attribute %q on xs:%s is unsupported", a.Key, el.Tag)
		}
	}
	return nil
}

// ncName returns a required NCName attribute.
func (c *compiler) ncName(el *etree.Element, attr string) (string, error) {
	a := el.SelectAttr(attr)
	if a == nil {
		return "", fmt.Errorf("xs:%s needs a %s attribute", el.Tag, attr)
	}
	v := strings.TrimFunc(a.Value, isXMLSpace)
	if !c.isNCName(v) {
		return "", fmt.Errorf("%s %q is not a valid NCName", attr, a.Value)
	}
	return v, nil
}

// isNCName approximates XML's NCName with the same categories as \i and \c.
func (c *compiler) isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == ':' || (i == 0 && !c.nameStart.contains(r)) || !c.nameChar.contains(r) {
			return false
		}
	}
	return true
}

// resolveQName resolves a QName-valued attribute using the namespace
// declarations in scope at el. An unprefixed name takes the default
// namespace, as XSD specifies for QName values.
func (c *compiler) resolveQName(el *etree.Element, qn string) (ns, local string, err error) {
	qn = strings.TrimFunc(qn, isXMLSpace)
	prefix, local, found := strings.Cut(qn, ":")
	if !found {
		prefix, local = "", qn
	}
	if !c.isNCName(local) || (found && !c.isNCName(prefix)) {
		return "", "", fmt.Errorf("%q is not a valid QName", qn)
	}
	if prefix == "xml" {
		return xmlNS, local, nil
	}
	for e := el; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			if (prefix == "" && a.Space == "" && a.Key == "xmlns") || (prefix != "" && a.Space == "xmlns" && a.Key == prefix) {
				return a.Value, local, nil
			}
		}
	}
	if prefix != "" {
		return "", "", fmt.Errorf("prefix %q of %q is not declared", prefix, qn)
	}
	return "", local, nil
}

// typeRef resolves a type= or base= attribute.
func (c *compiler) typeRef(el *etree.Element, qn string) (*simpleType, *complexType, error) {
	ns, local, err := c.resolveQName(el, qn)
	if err != nil {
		return nil, nil, err
	}
	if ns == xsdNS {
		if b := c.builtins[local]; b != nil {
			return b, nil, nil
		}
		return nil, nil, fmt.Errorf("built-in type xs:%s is unsupported", local)
	}
	if ns != c.targetNS {
		return nil, nil, fmt.Errorf("type %q is in namespace %q, not the target namespace (xs:import is unsupported)", qn, ns)
	}
	if _, ok := c.rawSimple[local]; ok {
		t, err := c.simpleByName(local)
		return t, nil, err
	}
	if ct := c.complex[local]; ct != nil {
		return nil, ct, nil
	}
	return nil, nil, fmt.Errorf("type %q is not defined", qn)
}

// simpleByName compiles a named simple type once, detecting derivation
// cycles.
func (c *compiler) simpleByName(name string) (*simpleType, error) {
	if t := c.simple[name]; t != nil {
		return t, nil
	}
	if c.resolving[name] {
		return nil, fmt.Errorf("simpleType %q is derived from itself", name)
	}
	c.resolving[name] = true
	defer delete(c.resolving, name)
	t, err := c.simpleType(c.rawSimple[name], name)
	if err != nil {
		return nil, fmt.Errorf("simpleType %q: %w", name, err)
	}
	c.simple[name] = t
	return t, nil
}

// simpleType compiles xs:simpleType (named or inline) with xs:restriction.
func (c *compiler) simpleType(el *etree.Element, name string) (*simpleType, error) {
	allowed := []string{"id"}
	if name != "" {
		allowed = append(allowed, "name")
	}
	if err := checkAttrs(el, allowed...); err != nil {
		return nil, err
	}
	kids, err := contentChildren(el)
	if err != nil {
		return nil, err
	}
	if len(kids) != 1 {
		return nil, errors.New("xs:simpleType must contain exactly one xs:restriction")
	}
	r := kids[0]
	if r.Tag != "restriction" {
		return nil, unsupported(r)
	}
	if err := checkAttrs(r, "base", "id"); err != nil {
		return nil, err
	}
	baseAttr := r.SelectAttr("base")
	if baseAttr == nil {
		return nil, errors.New("xs:restriction without base= (an inline base type) is unsupported")
	}
	base, ct, err := c.typeRef(r, baseAttr.Value)
	if err != nil {
		return nil, fmt.Errorf("restriction base: %w", err)
	}
	if ct != nil {
		return nil, fmt.Errorf("restriction base %q is a complex type", baseAttr.Value)
	}
	facetEls, err := contentChildren(r)
	if err != nil {
		return nil, err
	}
	var raw []rawFacet
	for _, f := range facetEls {
		switch f.Tag {
		case "length", "minLength", "maxLength", "pattern", "enumeration", "whiteSpace",
			"minInclusive", "maxInclusive", "minExclusive", "maxExclusive":
		default:
			return nil, fmt.Errorf("facet or construct xs:%s is unsupported", f.Tag)
		}
		if err := checkAttrs(f, "value", "id"); err != nil {
			return nil, err
		}
		if rest, err := contentChildren(f); err != nil {
			return nil, err
		} else if len(rest) > 0 {
			return nil, fmt.Errorf("xs:%s may contain only xs:annotation", f.Tag)
		}
		v := f.SelectAttr("value")
		if v == nil {
			return nil, fmt.Errorf("xs:%s needs a value attribute", f.Tag)
		}
		raw = append(raw, rawFacet{kind: f.Tag, value: v.Value})
	}
	return deriveSimple(name, base, raw)
}

// fillComplex compiles the content of an xs:complexType into ct.
func (c *compiler) fillComplex(ct *complexType, el *etree.Element) error {
	allowed := []string{"id", "mixed"}
	if ct.name != "" {
		allowed = append(allowed, "name")
	}
	if err := checkAttrs(el, allowed...); err != nil {
		return err
	}
	if m := strings.TrimFunc(el.SelectAttrValue("mixed", "false"), isXMLSpace); m != "false" && m != "0" {
		return errors.New("mixed content is unsupported")
	}
	kids, err := contentChildren(el)
	if err != nil {
		return err
	}
	switch {
	case len(kids) == 0:
		ct.empty = true
	case len(kids) == 1 && (kids[0].Tag == "sequence" || kids[0].Tag == "choice"):
		p, err := c.particle(kids[0])
		if err != nil {
			return err
		}
		ct.particle = p // nil for maxOccurs="0": no content at all
		// Structures §3.4.2: a childless sequence, or a childless choice
		// with minOccurs 0, also makes the content type empty.
		groupKids, _ := contentChildren(kids[0])
		ct.empty = len(groupKids) == 0 && (kids[0].Tag == "sequence" || p == nil || p.min == 0)
	case len(kids) == 1:
		return unsupported(kids[0])
	default:
		// A second child would be an attribute declaration or similar.
		return unsupported(kids[1])
	}
	return nil
}

// particle compiles xs:sequence, xs:choice or a local xs:element. It
// returns nil for a particle with maxOccurs="0".
func (c *compiler) particle(el *etree.Element) (*particle, error) {
	p := &particle{}
	var err error
	switch el.Tag {
	case "sequence", "choice":
		if err := checkAttrs(el, "minOccurs", "maxOccurs", "id"); err != nil {
			return nil, err
		}
		p.kind = partSequence
		if el.Tag == "choice" {
			p.kind = partChoice
		}
		kids, err := contentChildren(el)
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			switch k.Tag {
			case "element", "sequence", "choice":
			default:
				return nil, unsupported(k)
			}
			child, err := c.particle(k)
			if err != nil {
				return nil, err
			}
			if child != nil {
				p.children = append(p.children, child)
			}
		}
	case "element":
		if el.SelectAttr("ref") != nil {
			return nil, errors.New("element references (xs:element ref=) are unsupported")
		}
		if err := checkAttrs(el, "name", "type", "minOccurs", "maxOccurs", "id"); err != nil {
			return nil, err
		}
		name, err := c.ncName(el, "name")
		if err != nil {
			return nil, err
		}
		ns := ""
		if c.qualified {
			ns = c.targetNS
		}
		p.kind = partElement
		if p.elem, err = c.elementType(el, name, ns); err != nil {
			return nil, fmt.Errorf("element %q: %w", name, err)
		}
	default:
		return nil, unsupported(el)
	}
	if p.min, err = occurs(el, "minOccurs"); err != nil {
		return nil, err
	}
	if p.max, err = occurs(el, "maxOccurs"); err != nil {
		return nil, err
	}
	if p.max != unbounded && p.min > p.max {
		return nil, fmt.Errorf("xs:%s has minOccurs %d greater than maxOccurs %d", el.Tag, p.min, p.max)
	}
	if p.max == 0 {
		// XSD: such a particle corresponds to no component at all, so its
		// element is not part of the content model.
		return nil, nil
	}
	return p, nil
}

// occurs parses minOccurs or maxOccurs (default 1).
func occurs(el *etree.Element, attr string) (int, error) {
	a := el.SelectAttr(attr)
	if a == nil {
		return 1, nil
	}
	v := normalizeSpace(a.Value, wsCollapse)
	if attr == "maxOccurs" && v == "unbounded" {
		return unbounded, nil
	}
	n, ok := parseInteger(v)
	if !ok || n.cmp(intVal{}) < 0 {
		return 0, fmt.Errorf("%s %q is not a non-negative integer", attr, a.Value)
	}
	if n.cmp(intVal{small: maxOccursLimit}) > 0 {
		return 0, fmt.Errorf("%s %q is above the supported limit of %d", attr, a.Value, maxOccursLimit)
	}
	return int(n.small), nil
}

// elementType compiles the type of an element declaration: type= or one
// inline xs:simpleType/xs:complexType.
func (c *compiler) elementType(el *etree.Element, name, ns string) (*elementDecl, error) {
	d := &elementDecl{name: name, ns: ns}
	kids, err := contentChildren(el)
	if err != nil {
		return nil, err
	}
	var inline *etree.Element
	for _, k := range kids {
		switch {
		case (k.Tag == "simpleType" || k.Tag == "complexType") && inline == nil:
			inline = k
		case k.Tag == "simpleType" || k.Tag == "complexType":
			return nil, errors.New("more than one inline type")
		default:
			// xs:key, xs:unique, xs:keyref.
			return nil, unsupported(k)
		}
	}
	typeAttr := el.SelectAttr("type")
	switch {
	case typeAttr != nil && inline != nil:
		return nil, errors.New("has both type= and an inline type")
	case typeAttr != nil:
		st, ct, err := c.typeRef(el, typeAttr.Value)
		if err != nil {
			return nil, err
		}
		d.simple, d.complex = st, ct
	case inline == nil:
		return nil, errors.New("has no type (xs:anyType is unsupported)")
	case inline.Tag == "simpleType":
		if d.simple, err = c.simpleType(inline, ""); err != nil {
			return nil, err
		}
	default:
		ct := &complexType{where: fmt.Sprintf("the type of element %q", name)}
		c.allComplex = append(c.allComplex, ct)
		if err := c.fillComplex(ct, inline); err != nil {
			return nil, err
		}
		d.complex = ct
	}
	return d, nil
}
