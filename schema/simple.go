package schema

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// primitive is the XSD primitive a simple type derives from; it decides the
// lexical space, how values compare and which facets apply.
type primitive int

const (
	primString primitive = iota + 1
	primAnyURI
	primBoolean
	primInteger // xs:decimal restricted to integers: the only decimals supported
	primBase64
	primDateTime
)

// whiteSpace is the whiteSpace facet. Its order matters: a restriction may
// only move towards collapse.
type whiteSpace int

const (
	wsPreserve whiteSpace = iota
	wsReplace
	wsCollapse
)

func (ws whiteSpace) String() string {
	switch ws {
	case wsPreserve:
		return "preserve"
	case wsReplace:
		return "replace"
	}
	return "collapse"
}

// simpleType is one derivation step. Validation checks the facets of every
// step from the primitive down, which is what makes patterns of different
// steps AND-ed while patterns of one step are OR-ed.
type simpleType struct {
	name    string // "PersonalNumber" or "xs:int"; "" when anonymous
	base    *simpleType
	prim    primitive
	builtin bool
	desc    string // built-ins: noun phrase for "… is not <desc>"
	lexDesc string // desc of the nearest built-in, for lexical failures
	ws      whiteSpace
	facets  facetSet
	chain   []*simpleType // primitive first, this step last

	// Effective constraints, only for checking that a restriction of this
	// type does not widen it.
	effLength, effMinLength, effMaxLength int64 // -1 when absent
	effLower, effUpper                    *bound
}

type facetSet struct {
	length, minLength, maxLength int64 // -1 when absent
	patterns                     []*pattern
	enums                        []enumValue
	lower, upper                 *bound
}

type enumValue struct {
	lexical string
	val     typedValue
}

type bound struct {
	lexical string
	val     typedValue
	excl    bool
}

// typedValue is a parsed value. Only the fields of its primitive are set.
type typedValue struct {
	str    string // the normalized lexical form
	length int    // characters, or octets for base64Binary
	n      intVal
	dt     dateTime
}

// displayName names the type in messages.
func (t *simpleType) displayName() string {
	if t.name == "" {
		return "the anonymous type"
	}
	return "type " + t.name
}

// check validates a raw value (text content as it appears in the document).
// It returns "" when valid, else a sentence fragment saying why. It does not
// allocate when the value is valid, except for the rare big integers and
// enumerated base64 values.
func (t *simpleType) check(raw string) string {
	v := normalizeSpace(raw, t.ws)
	tv, ok := parseValue(t.prim, v)
	if !ok {
		return fmt.Sprintf("%s is not %s", quoteValue(v), t.lexDesc)
	}
	for _, st := range t.chain {
		if msg := st.checkFacets(&tv); msg != "" {
			return msg
		}
	}
	return ""
}

func (t *simpleType) checkFacets(tv *typedValue) string {
	f := &t.facets
	fail := func(format string, args ...any) string {
		if t.builtin {
			return fmt.Sprintf("%s is not %s", quoteValue(tv.str), t.desc)
		}
		return fmt.Sprintf(format, args...)
	}
	measure := func() string {
		unit := "character"
		if t.prim == primBase64 {
			unit = "octet"
		}
		if tv.length != 1 {
			unit += "s"
		}
		return fmt.Sprintf("%s has %d %s", quoteValue(tv.str), tv.length, unit)
	}
	if f.length >= 0 && int64(tv.length) != f.length {
		return fail("%s; %s requires exactly %d", measure(), t.displayName(), f.length)
	}
	if f.minLength >= 0 && int64(tv.length) < f.minLength {
		return fail("%s; %s requires at least %d", measure(), t.displayName(), f.minLength)
	}
	if f.maxLength >= 0 && int64(tv.length) > f.maxLength {
		return fail("%s; %s allows at most %d", measure(), t.displayName(), f.maxLength)
	}
	if len(f.patterns) > 0 && !matchesAny(f.patterns, tv.str) {
		if len(f.patterns) == 1 {
			return fail("%s does not match the pattern %s of %s", quoteValue(tv.str), quotePattern(f.patterns[0].source), t.displayName())
		}
		srcs := make([]string, len(f.patterns))
		for i, p := range f.patterns {
			srcs[i] = quotePattern(p.source)
		}
		return fail("%s matches none of the patterns %s of %s", quoteValue(tv.str), strings.Join(srcs, ", "), t.displayName())
	}
	if len(f.enums) > 0 && !t.inEnumeration(tv) {
		const shown = 6
		var vals []string
		for i, e := range f.enums {
			if i == shown {
				vals = append(vals, "…")
				break
			}
			vals = append(vals, strconv.Quote(e.lexical))
		}
		return fail("%s is not one of the values allowed by %s (%s)", quoteValue(tv.str), t.displayName(), strings.Join(vals, ", "))
	}
	if b := f.lower; b != nil {
		c := compareValues(t.prim, tv, &b.val)
		if c == cmpIndeterminate || c < 0 || (b.excl && c == 0) {
			rel := "at least"
			if b.excl {
				rel = "greater than"
			}
			return fail("%s is out of range: %s requires a value %s %s", quoteValue(tv.str), t.displayName(), rel, b.lexical)
		}
	}
	if b := f.upper; b != nil {
		c := compareValues(t.prim, tv, &b.val)
		if c == cmpIndeterminate || c > 0 || (b.excl && c == 0) {
			rel := "at most"
			if b.excl {
				rel = "less than"
			}
			return fail("%s is out of range: %s requires a value %s %s", quoteValue(tv.str), t.displayName(), rel, b.lexical)
		}
	}
	return ""
}

func matchesAny(ps []*pattern, s string) bool {
	for _, p := range ps {
		if p.re.MatchString(s) {
			return true
		}
	}
	return false
}

func (t *simpleType) inEnumeration(tv *typedValue) bool {
	if t.prim == primBase64 {
		// Compare decoded octets: "AAAA" and "AA AA" are the same value.
		got := decodeBase64(tv.str)
		for i := range t.facets.enums {
			if bytes.Equal(got, decodeBase64(t.facets.enums[i].val.str)) {
				return true
			}
		}
		return false
	}
	for i := range t.facets.enums {
		if compareValues(t.prim, tv, &t.facets.enums[i].val) == 0 {
			return true
		}
	}
	return false
}

// cmpIndeterminate is the result of comparing dateTimes with and without a
// time zone whose order depends on the unknown zone.
const cmpIndeterminate = 2

// compareValues orders two values of the same primitive: -1, 0, 1 or
// cmpIndeterminate. Strings and URIs only compare for equality (0 or 1).
func compareValues(p primitive, a, b *typedValue) int {
	switch p {
	case primInteger:
		return a.n.cmp(b.n)
	case primDateTime:
		return a.dt.compare(b.dt)
	}
	if a.str == b.str {
		return 0
	}
	return 1
}

// normalizeSpace applies the whiteSpace facet. It returns s itself when
// nothing changes, which is the common case, so valid values cost no
// allocation.
func normalizeSpace(s string, ws whiteSpace) string {
	switch ws {
	case wsReplace:
		if strings.ContainsAny(s, "\t\n\r") {
			return strings.Map(func(r rune) rune {
				if r == '\t' || r == '\n' || r == '\r' {
					return ' '
				}
				return r
			}, s)
		}
	case wsCollapse:
		if needsCollapse(s) {
			return strings.Join(strings.FieldsFunc(s, isXMLSpace), " ")
		}
	}
	return s
}

func isXMLSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

func needsCollapse(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\t', '\n', '\r':
			return true
		case ' ':
			if i == 0 || i == len(s)-1 || s[i+1] == ' ' {
				return true
			}
		}
	}
	return false
}

// quoteValue quotes a value for a message, shortened so a 2000-character
// field does not produce a 2000-character message, and with control
// characters visible.
func quoteValue(s string) string {
	const limit = 40
	if utf8.RuneCountInString(s) <= limit {
		return strconv.Quote(s)
	}
	n := 0
	for i := range s {
		if n == limit {
			return strconv.Quote(s[:i]) + "…"
		}
		n++
	}
	return strconv.Quote(s)
}

// quotePattern quotes a pattern for a message without doubling its
// backslashes, which are XSD syntax the reader should see as written.
func quotePattern(src string) string {
	return strings.ReplaceAll(strconv.Quote(src), `\\`, `\`)
}

// parseValue checks the lexical space of a primitive and parses the
// (already whitespace-normalized) value.
func parseValue(p primitive, s string) (typedValue, bool) {
	tv := typedValue{str: s}
	switch p {
	case primString:
		if !isXMLString(s) {
			return tv, false
		}
		tv.length = utf8.RuneCountInString(s)
	case primAnyURI:
		if !isXMLString(s) || !isAnyURI(s) {
			return tv, false
		}
		tv.length = utf8.RuneCountInString(s)
	case primBoolean:
		switch s {
		case "true", "false", "1", "0":
		default:
			return tv, false
		}
	case primInteger:
		n, ok := parseInteger(s)
		if !ok {
			return tv, false
		}
		tv.n = n
	case primBase64:
		n, ok := base64Octets(s)
		if !ok {
			return tv, false
		}
		tv.length = n
	case primDateTime:
		dt, ok := parseDateTime(s)
		if !ok {
			return tv, false
		}
		tv.dt = dt
	default:
		return tv, false
	}
	return tv, true
}

// builtinTypes returns the supported built-in simple types by local name.
// They are created per Compile so that no state is shared between schemas.
func builtinTypes() map[string]*simpleType {
	m := map[string]*simpleType{}
	add := func(name string, base *simpleType, prim primitive, ws whiteSpace, desc string, lower, upper string) *simpleType {
		t := &simpleType{
			name: "xs:" + name, base: base, prim: prim, builtin: true, desc: desc, lexDesc: desc, ws: ws,
			facets:    facetSet{length: -1, minLength: -1, maxLength: -1},
			effLength: -1, effMinLength: -1, effMaxLength: -1,
		}
		if base != nil {
			t.chain = append(t.chain, base.chain...)
			t.effLower, t.effUpper = base.effLower, base.effUpper
		}
		t.chain = append(t.chain, t)
		if lower != "" {
			n, _ := parseInteger(lower)
			t.facets.lower = &bound{lexical: lower, val: typedValue{str: lower, n: n}}
			t.effLower = t.facets.lower
		}
		if upper != "" {
			n, _ := parseInteger(upper)
			t.facets.upper = &bound{lexical: upper, val: typedValue{str: upper, n: n}}
			t.effUpper = t.facets.upper
		}
		m[name] = t
		return t
	}
	str := add("string", nil, primString, wsPreserve, "a string", "", "")
	ns := add("normalizedString", str, primString, wsReplace, "a normalized string", "", "")
	add("token", ns, primString, wsCollapse, "a token", "", "")
	add("anyURI", nil, primAnyURI, wsCollapse, "a URI (xs:anyURI)", "", "")
	add("boolean", nil, primBoolean, wsCollapse, "a boolean (true, false, 1 or 0)", "", "")
	integer := add("integer", nil, primInteger, wsCollapse, "an integer", "", "")
	nonNeg := add("nonNegativeInteger", integer, primInteger, wsCollapse, "a non-negative integer", "0", "")
	add("positiveInteger", nonNeg, primInteger, wsCollapse, "a positive integer", "1", "")
	long := add("long", integer, primInteger, wsCollapse, "a 64-bit integer (xs:long)", "-9223372036854775808", "9223372036854775807")
	add("int", long, primInteger, wsCollapse, "a 32-bit integer (xs:int)", "-2147483648", "2147483647")
	add("base64Binary", nil, primBase64, wsCollapse, "valid base64 (xs:base64Binary)", "", "")
	add("dateTime", nil, primDateTime, wsCollapse, "a dateTime (xs:dateTime)", "", "")
	return m
}

// rawFacet is a facet as written in the schema.
type rawFacet struct {
	kind  string // local name: "pattern", "maxLength", …
	value string
}

// facetApplies is XSD Part 2's table of applicable facets, for the
// primitives we support.
func facetApplies(p primitive, kind string) bool {
	switch kind {
	case "pattern", "whiteSpace":
		return true
	case "enumeration":
		return p != primBoolean
	case "length", "minLength", "maxLength":
		return p == primString || p == primAnyURI || p == primBase64
	case "minInclusive", "maxInclusive", "minExclusive", "maxExclusive":
		return p == primInteger || p == primDateTime
	}
	return false
}

// deriveSimple builds the restriction of base by the given facets,
// enforcing the constraints XSD puts on facets so that an invalid schema
// fails to compile rather than validating something other than it says.
func deriveSimple(name string, base *simpleType, raw []rawFacet) (*simpleType, error) {
	t := &simpleType{
		name: name, base: base, prim: base.prim, lexDesc: base.lexDesc, ws: base.ws,
		facets:       facetSet{length: -1, minLength: -1, maxLength: -1},
		effLength:    base.effLength,
		effMinLength: base.effMinLength,
		effMaxLength: base.effMaxLength,
		effLower:     base.effLower,
		effUpper:     base.effUpper,
	}
	seen := map[string]bool{}
	var enumLex []string
	for _, f := range raw {
		if !facetApplies(base.prim, f.kind) {
			return nil, fmt.Errorf("facet xs:%s does not apply to values of base type %s", f.kind, base.name)
		}
		if f.kind != "pattern" && f.kind != "enumeration" && seen[f.kind] {
			return nil, fmt.Errorf("facet xs:%s appears twice", f.kind)
		}
		seen[f.kind] = true
		switch f.kind {
		case "whiteSpace":
			var ws whiteSpace
			switch normalizeSpace(f.value, wsCollapse) {
			case "preserve":
				ws = wsPreserve
			case "replace":
				ws = wsReplace
			case "collapse":
				ws = wsCollapse
			default:
				return nil, fmt.Errorf("xs:whiteSpace value %q is not preserve, replace or collapse", f.value)
			}
			if ws < base.ws {
				return nil, fmt.Errorf("xs:whiteSpace %q cannot relax %q of base type %s", f.value, base.ws, base.name)
			}
			t.ws = ws
		case "length", "minLength", "maxLength":
			n, ok := parseInteger(normalizeSpace(f.value, wsCollapse))
			if !ok || n.big != nil || n.small < 0 {
				return nil, fmt.Errorf("xs:%s value %q is not a non-negative integer", f.kind, f.value)
			}
			switch f.kind {
			case "length":
				t.facets.length = n.small
			case "minLength":
				t.facets.minLength = n.small
			default:
				t.facets.maxLength = n.small
			}
		case "pattern":
			p, err := compilePattern(f.value)
			if err != nil {
				return nil, fmt.Errorf("xs:pattern: %w", err)
			}
			t.facets.patterns = append(t.facets.patterns, p)
		case "enumeration":
			enumLex = append(enumLex, f.value)
		case "minInclusive", "minExclusive", "maxInclusive", "maxExclusive":
			v := normalizeSpace(f.value, wsCollapse)
			tv, ok := parseValue(base.prim, v)
			if !ok {
				return nil, fmt.Errorf("xs:%s value %q is not %s", f.kind, f.value, base.lexDesc)
			}
			b := &bound{lexical: v, val: tv, excl: strings.HasSuffix(f.kind, "Exclusive")}
			if strings.HasPrefix(f.kind, "min") {
				if t.facets.lower != nil {
					return nil, fmt.Errorf("xs:minInclusive and xs:minExclusive cannot both be given")
				}
				t.facets.lower = b
			} else {
				if t.facets.upper != nil {
					return nil, fmt.Errorf("xs:maxInclusive and xs:maxExclusive cannot both be given")
				}
				t.facets.upper = b
			}
		default:
			return nil, fmt.Errorf("facet xs:%s is unsupported", f.kind)
		}
	}
	if err := t.checkLengths(base); err != nil {
		return nil, err
	}
	if err := t.checkBounds(); err != nil {
		return nil, err
	}
	// Enumeration values must be values of the base type.
	for _, lex := range enumLex {
		if msg := base.check(lex); msg != "" {
			return nil, fmt.Errorf("xs:enumeration value: %s", msg)
		}
		tv, _ := parseValue(base.prim, normalizeSpace(lex, base.ws))
		t.facets.enums = append(t.facets.enums, enumValue{lexical: lex, val: tv})
	}
	t.chain = append(append([]*simpleType{}, base.chain...), t)
	return t, nil
}

// checkLengths enforces XSD's rules on length facets within a step and
// against the base type, and records the effective values.
func (t *simpleType) checkLengths(base *simpleType) error {
	f := &t.facets
	if f.length >= 0 && (f.minLength >= 0 || f.maxLength >= 0) {
		return fmt.Errorf("xs:length cannot be combined with xs:minLength or xs:maxLength in one restriction")
	}
	if f.length >= 0 {
		if base.effLength >= 0 && f.length != base.effLength {
			return fmt.Errorf("xs:length %d differs from length %d of base type %s", f.length, base.effLength, base.name)
		}
		t.effLength = f.length
	}
	if f.minLength >= 0 {
		if base.effMinLength >= 0 && f.minLength < base.effMinLength {
			return fmt.Errorf("xs:minLength %d is below minLength %d of base type %s", f.minLength, base.effMinLength, base.name)
		}
		t.effMinLength = f.minLength
	}
	if f.maxLength >= 0 {
		if base.effMaxLength >= 0 && f.maxLength > base.effMaxLength {
			return fmt.Errorf("xs:maxLength %d exceeds maxLength %d of base type %s", f.maxLength, base.effMaxLength, base.name)
		}
		t.effMaxLength = f.maxLength
	}
	if t.effMinLength >= 0 && t.effMaxLength >= 0 && t.effMinLength > t.effMaxLength {
		return fmt.Errorf("minLength %d is greater than maxLength %d", t.effMinLength, t.effMaxLength)
	}
	if t.effLength >= 0 && (t.effMinLength > t.effLength || (t.effMaxLength >= 0 && t.effMaxLength < t.effLength)) {
		return fmt.Errorf("length %d is outside minLength/maxLength", t.effLength)
	}
	return nil
}

// checkBounds enforces that bounds do not widen the base type's range and
// leave a consistent range.
func (t *simpleType) checkBounds() error {
	cmp := func(a, b *bound) int { return compareValues(t.prim, &a.val, &b.val) }
	name := func(b *bound, lower bool) string {
		switch {
		case lower && b.excl:
			return "minExclusive " + b.lexical
		case lower:
			return "minInclusive " + b.lexical
		case b.excl:
			return "maxExclusive " + b.lexical
		}
		return "maxInclusive " + b.lexical
	}
	if lo, old := t.facets.lower, t.effLower; lo != nil {
		if old != nil {
			c := cmp(lo, old)
			if c < 0 || (c == 0 && !lo.excl && old.excl) {
				return fmt.Errorf("%s is below the base type's %s", name(lo, true), name(old, true))
			}
		}
		t.effLower = lo
	}
	if hi, old := t.facets.upper, t.effUpper; hi != nil {
		if old != nil {
			c := cmp(hi, old)
			if c == 1 || (c == 0 && !hi.excl && old.excl) {
				return fmt.Errorf("%s is above the base type's %s", name(hi, false), name(old, false))
			}
		}
		t.effUpper = hi
	}
	if lo, hi := t.effLower, t.effUpper; lo != nil && hi != nil {
		c := cmp(lo, hi)
		if c == 1 || (c == 0 && lo.excl != hi.excl) {
			return fmt.Errorf("%s is not below %s", name(lo, true), name(hi, false))
		}
	}
	return nil
}
