package schema

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// XSD 1.0 regular expressions (XML Schema Part 2, Appendix F) are translated
// to Go's RE2 syntax rather than interpreted, so that matching is linear time
// and the translation is done once, at Compile time.
//
// Character classes are computed as explicit rune-range sets and emitted as
// Go classes of \x{..} ranges. Doing the set algebra ourselves (instead of
// passing \S, \W, \p{..} through) is what makes constructs like [\w-] or
// [^\S\d] exact: Go cannot nest a negated class inside another class, and
// Go's \s, \w and \p{C} mean something different from XSD's.
//
// Approximations, documented because they are deliberate:
//   - \i and \c are defined by XML 1.0 (Second Edition) Appendix B in terms
//     of Unicode 2.0 tables. We use the Unicode categories that Appendix B
//     says the tables were derived from (\i: Ll Lu Lo Lt Nl, '_' and ':';
//     \c: those plus Mc Me Mn Lm Nd, '.', '-' and the Extender characters),
//     over Go's current Unicode tables.
//   - All categories use Go's Unicode version, which is newer than the one
//     XSD 1.0 names; characters assigned since then may classify differently
//     than in older processors.
//
// Unsupported, and so a compile error rather than a silent mismatch:
// character-class subtraction ([a-z-[aeiou]]), Unicode block escapes
// (\p{IsBasicLatin}) and counted repetition above Go's limit of 1000.

// maxRepeat is Go's regexp/syntax limit on counted repetition.
const maxRepeat = 1000

// pattern is one compiled xs:pattern facet value.
type pattern struct {
	source string // as written in the schema, for messages
	re     *regexp.Regexp
}

// compilePattern translates an XSD regular expression and compiles it.
func compilePattern(src string) (*pattern, error) {
	goSrc, err := translateRegex(src)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(goSrc)
	if err != nil {
		if isRegexpLimit(err) {
			return nil, fmt.Errorf("pattern %q is unsupported: it exceeds Go's regexp limits (nested counts multiply to more than %d, or the expression is too large): %w", src, maxRepeat, err)
		}
		return nil, fmt.Errorf("pattern %q: translated expression does not compile: %w", src, err)
	}
	return &pattern{source: src, re: re}, nil
}

// isRegexpLimit reports whether a Go regexp error is one of its size
// limits rather than a syntax error (which would be a translator bug).
func isRegexpLimit(err error) bool {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case syntax.ErrInvalidRepeatSize, syntax.ErrLarge, syntax.ErrNestingDepth:
		return true
	}
	return false
}

// translateRegex returns a Go regexp equivalent to the XSD regular
// expression src. XSD patterns match the whole value, so the result is
// anchored with \A and \z (Go's $ would also be fine, but \z says it plainly).
func translateRegex(src string) (string, error) {
	t := &regexTranslator{src: []rune(src)}
	t.out.WriteString(`\A(?:`)
	if err := t.regExp(); err != nil {
		return "", fmt.Errorf("pattern %q: %w", src, err)
	}
	if t.pos < len(t.src) {
		// regExp only stops early at a ')' without a matching '('.
		return "", fmt.Errorf("pattern %q: unmatched ')' at offset %d", src, t.pos)
	}
	t.out.WriteString(`)\z`)
	return t.out.String(), nil
}

type regexTranslator struct {
	src   []rune
	pos   int
	depth int
	out   strings.Builder
}

func (t *regexTranslator) eof() bool { return t.pos >= len(t.src) }

func (t *regexTranslator) peek() rune {
	if t.eof() {
		return -1
	}
	return t.src[t.pos]
}

func (t *regexTranslator) peekAt(i int) rune {
	if t.pos+i >= len(t.src) {
		return -1
	}
	return t.src[t.pos+i]
}

// regExp ::= branch ( '|' branch )*
func (t *regexTranslator) regExp() error {
	for {
		if err := t.branch(); err != nil {
			return err
		}
		if t.peek() != '|' {
			return nil
		}
		t.pos++
		t.out.WriteByte('|')
	}
}

// branch ::= piece*
func (t *regexTranslator) branch() error {
	for !t.eof() {
		switch t.peek() {
		case '|':
			return nil
		case ')':
			if t.depth == 0 {
				return fmt.Errorf("unmatched ')' at offset %d", t.pos)
			}
			return nil
		}
		if err := t.piece(); err != nil {
			return err
		}
	}
	return nil
}

// piece ::= atom quantifier?
func (t *regexTranslator) piece() error {
	if err := t.atom(); err != nil {
		return err
	}
	switch c := t.peek(); c {
	case '?', '*', '+':
		t.pos++
		t.out.WriteRune(c)
	case '{':
		// XSD 1.0's grammar leaves it open whether a '{' after an atom that
		// does not start a well-formed quantity is a literal; libxml2 (and
		// XSD 1.1) reject it, and so do we.
		lo, hi, n, ok := t.quantity()
		if !ok {
			return fmt.Errorf("malformed quantifier at offset %d (write \\{ for a literal '{')", t.pos)
		}
		if hi >= 0 && hi < lo {
			return fmt.Errorf("quantifier {%d,%d} at offset %d has maximum below minimum", lo, hi, t.pos)
		}
		if lo > maxRepeat || hi > maxRepeat {
			return fmt.Errorf("quantifier at offset %d: counts above %d are unsupported", t.pos, maxRepeat)
		}
		t.pos += n
		switch {
		case hi == lo:
			fmt.Fprintf(&t.out, "{%d}", lo)
		case hi < 0:
			fmt.Fprintf(&t.out, "{%d,}", lo)
		default:
			fmt.Fprintf(&t.out, "{%d,%d}", lo, hi)
		}
	}
	return nil
}

// quantity parses '{' n (',' m?)? '}' at the current position without
// consuming it. hi is -1 for an open upper bound; n is the length in runes.
func (t *regexTranslator) quantity() (lo, hi, n int, ok bool) {
	i := t.pos + 1
	digits := func() (int, bool) {
		start := i
		for i < len(t.src) && t.src[i] >= '0' && t.src[i] <= '9' {
			i++
		}
		if i == start {
			return 0, false
		}
		v, err := strconv.Atoi(string(t.src[start:i]))
		if err != nil {
			// Too many digits: certainly above maxRepeat.
			return maxRepeat + 1, true
		}
		return v, true
	}
	lo, ok = digits()
	if !ok {
		return 0, 0, 0, false
	}
	hi = lo
	if i < len(t.src) && t.src[i] == ',' {
		i++
		hi = -1
		if i < len(t.src) && t.src[i] != '}' {
			if hi, ok = digits(); !ok {
				return 0, 0, 0, false
			}
		}
	}
	if i >= len(t.src) || t.src[i] != '}' {
		return 0, 0, 0, false
	}
	return lo, hi, i + 1 - t.pos, true
}

// atom ::= Char | charClass | ( '(' regExp ')' )
func (t *regexTranslator) atom() error {
	c := t.peek()
	switch c {
	case '(':
		t.pos++
		t.depth++
		t.out.WriteString("(?:")
		if err := t.regExp(); err != nil {
			return err
		}
		if t.peek() != ')' {
			return fmt.Errorf("missing ')' at end of pattern")
		}
		t.pos++
		t.depth--
		t.out.WriteByte(')')
	case '[':
		t.pos++
		set, err := t.charClassExpr()
		if err != nil {
			return err
		}
		t.out.WriteString(set.goClass())
	case '\\':
		r, set, err := t.escape()
		if err != nil {
			return err
		}
		if set != nil {
			t.out.WriteString(set.goClass())
		} else {
			t.out.WriteString(regexp.QuoteMeta(string(r)))
		}
	case '.':
		t.pos++
		t.out.WriteString(dotSet().goClass())
	case '?', '*', '+':
		return fmt.Errorf("quantifier %q at offset %d has nothing to repeat", c, t.pos)
	case ']':
		return fmt.Errorf("unescaped ']' at offset %d", t.pos)
	default:
		// Includes '^' and '$', which are ordinary in XSD, and '{' and '}'
		// where no atom precedes them; QuoteMeta escapes the ones Go
		// treats specially.
		t.pos++
		t.out.WriteString(regexp.QuoteMeta(string(c)))
	}
	return nil
}

// charClassExpr parses a character group after its '['. Returns the set
// with negation already applied.
func (t *regexTranslator) charClassExpr() (runeSet, error) {
	start := t.pos - 1
	neg := false
	if t.peek() == '^' {
		neg = true
		t.pos++
	}
	var set runeSet
	first := true
	for {
		if t.eof() {
			return nil, fmt.Errorf("unterminated character class starting at offset %d", start)
		}
		c := t.peek()
		switch {
		case c == ']':
			if first {
				return nil, fmt.Errorf("empty character class at offset %d", start)
			}
			t.pos++
			if neg {
				set = set.complement()
			}
			return set, nil
		case c == '[':
			return nil, fmt.Errorf("unescaped '[' inside character class at offset %d", t.pos)
		case c == '-':
			switch next := t.peekAt(1); {
			case next == '[':
				return nil, fmt.Errorf("character class subtraction at offset %d is unsupported", t.pos)
			case first || next == ']':
				// XSD allows an unescaped '-' only at either end of a group.
				t.pos++
				set = set.union(runeSet{{'-', '-'}})
				first = false
				continue
			default:
				return nil, fmt.Errorf("'-' at offset %d must be escaped (\\-) inside a character class", t.pos)
			}
		}
		var lo rune
		if c == '\\' {
			r, multi, err := t.escape()
			if err != nil {
				return nil, err
			}
			if multi != nil {
				if t.peek() == '-' && t.peekAt(1) != ']' && t.peekAt(1) != '[' {
					return nil, fmt.Errorf("a range at offset %d cannot start with a multi-character escape", t.pos)
				}
				set = set.union(multi)
				first = false
				continue
			}
			lo = r
		} else {
			lo = c
			t.pos++
		}
		hi := lo
		if t.peek() == '-' && t.peekAt(1) != ']' && t.peekAt(1) != '[' && t.peekAt(1) != -1 {
			t.pos++
			e := t.peek()
			switch e {
			case '\\':
				r, multi, err := t.escape()
				if err != nil {
					return nil, err
				}
				if multi != nil {
					return nil, fmt.Errorf("a range at offset %d cannot end with a multi-character escape", t.pos)
				}
				hi = r
			case '-', '[':
				return nil, fmt.Errorf("%q at offset %d must be escaped", e, t.pos)
			default:
				hi = e
				t.pos++
			}
			if hi < lo {
				return nil, fmt.Errorf("character range %q-%q is out of order", lo, hi)
			}
		}
		set = set.union(runeSet{{lo, hi}})
		first = false
	}
}

// escape parses a backslash escape. It returns either a single rune (set nil)
// or a character set.
func (t *regexTranslator) escape() (rune, runeSet, error) {
	at := t.pos
	t.pos++ // the backslash
	if t.eof() {
		return 0, nil, fmt.Errorf("pattern ends with a lone backslash")
	}
	c := t.src[t.pos]
	t.pos++
	switch c {
	case 'n':
		return '\n', nil, nil
	case 'r':
		return '\r', nil, nil
	case 't':
		return '\t', nil, nil
	case '\\', '|', '.', '?', '*', '+', '(', ')', '{', '}', '-', '[', ']', '^':
		return c, nil, nil
	case 's':
		return 0, spaceSet(), nil
	case 'S':
		return 0, spaceSet().complement(), nil
	case 'd':
		return 0, tableSet(unicode.Nd), nil
	case 'D':
		return 0, tableSet(unicode.Nd).complement(), nil
	case 'w':
		return 0, wordSet(), nil
	case 'W':
		return 0, wordSet().complement(), nil
	case 'i':
		return 0, nameStartSet(), nil
	case 'I':
		return 0, nameStartSet().complement(), nil
	case 'c':
		return 0, nameCharSet(), nil
	case 'C':
		return 0, nameCharSet().complement(), nil
	case 'p', 'P':
		if t.peek() != '{' {
			return 0, nil, fmt.Errorf("\\%c at offset %d must be followed by {name}", c, at)
		}
		end := slices.Index(t.src[t.pos:], '}')
		if end < 0 {
			return 0, nil, fmt.Errorf("unterminated \\%c{ at offset %d", c, at)
		}
		name := string(t.src[t.pos+1 : t.pos+end])
		t.pos += end + 1
		set, err := categorySet(name)
		if err != nil {
			return 0, nil, err
		}
		if c == 'P' {
			set = set.complement()
		}
		return 0, set, nil
	}
	return 0, nil, fmt.Errorf("unsupported escape \\%c at offset %d", c, at)
}

// categorySet returns the characters of an XSD general category name.
func categorySet(name string) (runeSet, error) {
	switch {
	case strings.HasPrefix(name, "Is"):
		return nil, fmt.Errorf("Unicode block escape \\p{%s} is unsupported", name)
	case name == "Cn":
		return unassignedSet(), nil
	case name == "C":
		// Spelled out so that C is exactly XSD's Cc|Cf|Co|Cn (plus
		// surrogates, which never occur in XML) whatever Go's own C table
		// covers.
		return tableSet(unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs).union(unassignedSet()), nil
	case name == "Cs":
		// Not an XSD category (surrogates are not XML characters).
		return nil, fmt.Errorf("unknown Unicode category \\p{%s}", name)
	}
	tab, ok := unicode.Categories[name]
	if !ok {
		return nil, fmt.Errorf("unknown Unicode category \\p{%s}", name)
	}
	return tableSet(tab), nil
}

// runeRange is an inclusive range of code points.
type runeRange struct{ lo, hi rune }

// runeSet is a sorted list of disjoint, non-adjacent ranges.
type runeSet []runeRange

func (s runeSet) union(o runeSet) runeSet {
	all := make(runeSet, 0, len(s)+len(o))
	all = append(all, s...)
	all = append(all, o...)
	slices.SortFunc(all, func(a, b runeRange) int { return int(a.lo) - int(b.lo) })
	out := all[:0]
	for _, r := range all {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

func (s runeSet) complement() runeSet {
	var out runeSet
	next := rune(0)
	for _, r := range s {
		if r.lo > next {
			out = append(out, runeRange{next, r.lo - 1})
		}
		next = r.hi + 1
	}
	if next <= unicode.MaxRune {
		out = append(out, runeRange{next, unicode.MaxRune})
	}
	return out
}

func (s runeSet) contains(r rune) bool {
	_, found := slices.BinarySearchFunc(s, r, func(rr runeRange, r rune) int {
		switch {
		case rr.hi < r:
			return -1
		case rr.lo > r:
			return 1
		}
		return 0
	})
	return found
}

// goClass renders the set as a Go character class.
func (s runeSet) goClass() string {
	if len(s) == 0 {
		// Matches nothing, e.g. [^\s\S].
		return `[^\x{0}-\x{10FFFF}]`
	}
	var b strings.Builder
	b.WriteByte('[')
	for _, r := range s {
		fmt.Fprintf(&b, `\x{%X}`, r.lo)
		if r.hi != r.lo {
			fmt.Fprintf(&b, `-\x{%X}`, r.hi)
		}
	}
	b.WriteByte(']')
	return b.String()
}

func tableSet(tabs ...*unicode.RangeTable) runeSet {
	var s runeSet
	add := func(lo, hi, stride rune) {
		if stride == 1 {
			s = append(s, runeRange{lo, hi})
			return
		}
		for r := lo; r <= hi; r += stride {
			s = append(s, runeRange{r, r})
		}
	}
	for _, tab := range tabs {
		for _, r := range tab.R16 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride))
		}
		for _, r := range tab.R32 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride))
		}
	}
	return s.union(nil)
}

func runes(rs ...rune) runeSet {
	var s runeSet
	for _, r := range rs {
		s = append(s, runeRange{r, r})
	}
	return s.union(nil)
}

// unassignedSet is XSD's \p{Cn}: code points in no general category.
func unassignedSet() runeSet {
	// Not unicode.C: Go's C table also covers unassigned code points.
	return tableSet(unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z,
		unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs).complement()
}

// dotSet is XSD's '.': every character except line feed and carriage return.
func dotSet() runeSet { return runes('\n', '\r').complement() }

// spaceSet is XSD's \s. Go's \s also includes form feed.
func spaceSet() runeSet { return runes(' ', '\t', '\n', '\r') }

// wordSet is XSD 1.0's \w: [#x0000-#x10FFFF]-[\p{P}\p{Z}\p{C}], which is
// exactly the letters, marks, numbers and symbols.
func wordSet() runeSet { return tableSet(unicode.L, unicode.M, unicode.N, unicode.S) }

// nameStartSet approximates \i (see the file comment).
func nameStartSet() runeSet {
	return tableSet(unicode.Ll, unicode.Lu, unicode.Lo, unicode.Lt, unicode.Nl).union(runes('_', ':'))
}

// nameCharSet approximates \c (see the file comment).
func nameCharSet() runeSet {
	extenders := runeSet{
		{0x00B7, 0x00B7}, {0x02D0, 0x02D1}, {0x0387, 0x0387}, {0x0640, 0x0640},
		{0x0E46, 0x0E46}, {0x0EC6, 0x0EC6}, {0x3005, 0x3005}, {0x3031, 0x3035},
		{0x309D, 0x309E}, {0x30FC, 0x30FE},
	}
	return nameStartSet().
		union(tableSet(unicode.Mc, unicode.Me, unicode.Mn, unicode.Lm, unicode.Nd)).
		union(runes('.', '-')).
		union(extenders)
}
