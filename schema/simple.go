package schema

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/netip"
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

var wsNames = [...]string{wsPreserve: "preserve", wsReplace: "replace", wsCollapse: "collapse"}

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
	unit := "characters"
	if t.prim == primBase64 {
		unit = "octets"
	}
	if f.length >= 0 && int64(tv.length) != f.length {
		return fail("%s has %d %s; %s requires exactly %d", quoteValue(tv.str), tv.length, unit, t.displayName(), f.length)
	}
	if f.minLength >= 0 && int64(tv.length) < f.minLength {
		return fail("%s has %d %s; %s requires at least %d", quoteValue(tv.str), tv.length, unit, t.displayName(), f.minLength)
	}
	if f.maxLength >= 0 && int64(tv.length) > f.maxLength {
		return fail("%s has %d %s; %s allows at most %d", quoteValue(tv.str), tv.length, unit, t.displayName(), f.maxLength)
	}
	if len(f.patterns) > 0 && !matchesAny(f.patterns, tv.str) {
		if len(f.patterns) == 1 {
			return fail("%s does not match the pattern %q of %s", quoteValue(tv.str), f.patterns[0].source, t.displayName())
		}
		srcs := make([]string, len(f.patterns))
		for i, p := range f.patterns {
			srcs[i] = strconv.Quote(p.source)
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

// isXMLString reports whether s is valid UTF-8 made of XML 1.0 characters,
// the lexical space of xs:string. Parsed documents always are; trees built
// by hand need not be.
func isXMLString(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

// intVal is an integer of any size. Values with at most 18 significant
// digits (|v| < 10^18) live in small; larger ones in big, so every big value
// has a greater magnitude than every small one.
type intVal struct {
	small int64
	big   *big.Int
}

// parseInteger parses the lexical space of xs:integer: an optional sign and
// one or more decimal digits, leading zeros allowed.
func parseInteger(s string) (intVal, bool) {
	i := 0
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		i = 1
	}
	if i == len(s) {
		return intVal{}, false
	}
	for j := i; j < len(s); j++ {
		if s[j] < '0' || s[j] > '9' {
			return intVal{}, false
		}
	}
	digits := strings.TrimLeft(s[i:], "0")
	if len(digits) <= 18 {
		var v int64
		for j := 0; j < len(digits); j++ {
			v = v*10 + int64(digits[j]-'0')
		}
		if neg {
			v = -v
		}
		return intVal{small: v}, true
	}
	b, _ := new(big.Int).SetString(digits, 10)
	if neg {
		b.Neg(b)
	}
	return intVal{big: b}, true
}

func (a intVal) cmp(b intVal) int {
	switch {
	case a.big == nil && b.big == nil:
		switch {
		case a.small < b.small:
			return -1
		case a.small > b.small:
			return 1
		}
		return 0
	case a.big != nil && b.big != nil:
		return a.big.Cmp(b.big)
	case a.big != nil:
		return a.big.Sign()
	default:
		return -b.big.Sign()
	}
}

func (a intVal) String() string {
	if a.big != nil {
		return a.big.String()
	}
	return strconv.FormatInt(a.small, 10)
}

// base64Octets checks the XSD 1.0 (Second Edition) lexical space of
// base64Binary on a collapsed value and returns the number of octets it
// encodes. The grammar allows one space between any two characters, and
// the character before padding must have the unused low bits clear.
func base64Octets(s string) (int, bool) {
	n, pad := 0, 0
	var last byte // the last non-padding character
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			continue
		case c == '=':
			pad++
			if pad > 2 {
				return 0, false
			}
		case pad > 0 || b64Value(c) < 0:
			return 0, false
		default:
			last = c
		}
		n++
	}
	if n%4 != 0 {
		return 0, false
	}
	switch pad {
	case 1:
		if b64Value(last)&0x3 != 0 {
			return 0, false
		}
	case 2:
		if b64Value(last)&0xF != 0 {
			return 0, false
		}
	}
	return n/4*3 - pad, true
}

func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}

// decodeBase64 decodes a value base64Octets accepted.
func decodeBase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		return nil
	}
	return b
}

// isAnyURI implements the XSD 1.0 lexical space of anyURI: after the XLink
// escaping of disallowed characters (spaces, non-ASCII and a few
// punctuation characters), the value must be a URI reference. RFC 3986's
// grammar is used, as libxml2 does.
func isAnyURI(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
		}
	}
	// The escaped characters all become valid pct-encoded triplets, so
	// checking the unescaped string with them treated as ordinary path
	// characters is equivalent.
	rest := s
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		if !uriChars(rest[i+1:], "/?:@") {
			return false
		}
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		if !uriChars(rest[i+1:], "/?:@") {
			return false
		}
		rest = rest[:i]
	}
	if i := strings.IndexAny(rest, ":/"); i >= 0 && rest[i] == ':' {
		if !isScheme(rest[:i]) {
			return false
		}
		// A ':' before any '/' makes the prefix a scheme, which is also
		// why a relative reference's first segment cannot contain ':'.
		rest = rest[i+1:]
	}
	if strings.HasPrefix(rest, "//") {
		auth := rest[2:]
		path := ""
		if i := strings.IndexByte(auth, '/'); i >= 0 {
			auth, path = auth[:i], auth[i:]
		}
		if !isAuthority(auth) {
			return false
		}
		rest = path
	}
	return uriChars(rest, "/:@")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// uriChars reports whether s consists of unreserved, sub-delims,
// pct-encoded (already checked), characters that XLink escaping would
// encode, and the extra characters given.
func uriChars(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80 || c <= ' ' || strings.IndexByte("<>\"{}|\\^`", c) >= 0:
			// Escaped by the XLink procedure into valid %XX triplets.
		case isAlpha(c) || c >= '0' && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=%", c) >= 0:
		case strings.IndexByte(extra, c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isAuthority(s string) bool {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		if !uriChars(s[:i], ":") {
			return false
		}
		s = s[i+1:]
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		lit := s[1:end]
		if strings.HasPrefix(lit, "v") || strings.HasPrefix(lit, "V") {
			dot := strings.IndexByte(lit, '.')
			if dot < 2 || dot == len(lit)-1 || !uriChars(lit[dot+1:], ":") {
				return false
			}
		} else if a, err := netip.ParseAddr(lit); err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		host, port = "", s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return uriChars(host, "")
}

// dateTime is a parsed xs:dateTime. The year is kept as its digits so that
// years of any size are accepted, as XSD requires.
type dateTime struct {
	neg                              bool
	year                             string // digits, no sign
	month, day, hour, minute, second int
	frac                             string // fractional second digits, trailing zeros removed
	hasTZ                            bool
	tzMinutes                        int
}

// parseDateTime parses '-'? yyyy '-' mm '-' dd 'T' hh ':' mm ':' ss ('.' s+)? zone?
func parseDateTime(s string) (dateTime, bool) {
	var d dateTime
	i := 0
	if strings.HasPrefix(s, "-") {
		d.neg = true
		i = 1
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	d.year = s[i:j]
	if len(d.year) < 4 || (len(d.year) > 4 && d.year[0] == '0') || strings.Trim(d.year, "0") == "" {
		return d, false
	}
	rest := s[j:]
	two := func(sep byte) (int, bool) {
		if len(rest) < 3 || rest[0] != sep || !isDigit(rest[1]) || !isDigit(rest[2]) {
			return 0, false
		}
		v := int(rest[1]-'0')*10 + int(rest[2]-'0')
		rest = rest[3:]
		return v, true
	}
	var ok bool
	if d.month, ok = two('-'); !ok || d.month < 1 || d.month > 12 {
		return d, false
	}
	if d.day, ok = two('-'); !ok || d.day < 1 || d.day > daysIn(d.year, d.month) {
		return d, false
	}
	if d.hour, ok = two('T'); !ok || d.hour > 24 {
		return d, false
	}
	if d.minute, ok = two(':'); !ok || d.minute > 59 {
		return d, false
	}
	if d.second, ok = two(':'); !ok || d.second > 59 {
		return d, false
	}
	if strings.HasPrefix(rest, ".") {
		k := 1
		for k < len(rest) && isDigit(rest[k]) {
			k++
		}
		if k == 1 {
			return d, false
		}
		d.frac = strings.TrimRight(rest[1:k], "0")
		rest = rest[k:]
	}
	if d.hour == 24 && (d.minute != 0 || d.second != 0 || d.frac != "") {
		return d, false
	}
	switch {
	case rest == "":
	case rest == "Z":
		d.hasTZ = true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
		isDigit(rest[1]) && isDigit(rest[2]) && isDigit(rest[4]) && isDigit(rest[5]):
		h := int(rest[1]-'0')*10 + int(rest[2]-'0')
		m := int(rest[4]-'0')*10 + int(rest[5]-'0')
		if h > 14 || m > 59 || (h == 14 && m != 0) {
			return d, false
		}
		d.hasTZ = true
		d.tzMinutes = h*60 + m
		if rest[0] == '-' {
			d.tzMinutes = -d.tzMinutes
		}
	default:
		return d, false
	}
	return d, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isLeap applies the Gregorian rule to the year as written, as XSD 1.0
// (Second Edition) and libxml2 do. Divisibility by 400 depends only on the
// last four digits, since 10000 is a multiple of 400.
func isLeap(yearDigits string) bool {
	tail := yearDigits
	if len(tail) > 4 {
		tail = tail[len(tail)-4:]
	}
	y, _ := strconv.Atoi(tail)
	return y%4 == 0 && (y%100 != 0 || y%400 == 0)
}

func daysIn(yearDigits string, month int) int {
	switch month {
	case 2:
		if isLeap(yearDigits) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// dtKey is a dateTime on one timeline: the year is astronomical (1 BCE,
// written -0001, is year 0) and the time of day is in minutes.
type dtKey struct {
	year       *big.Int
	month, day int
	minutes    int
	second     int
	frac       string
}

// key normalizes d to UTC as if its zone were offset minutes east of UTC.
func (d dateTime) key(offset int) dtKey {
	y, _ := new(big.Int).SetString(d.year, 10)
	if d.neg {
		y.Neg(y)
		y.Add(y, big.NewInt(1))
	}
	k := dtKey{year: y, month: d.month, day: d.day, minutes: d.hour*60 + d.minute - offset, second: d.second, frac: d.frac}
	for k.minutes >= 24*60 {
		k.minutes -= 24 * 60
		k.shiftDay(1)
	}
	for k.minutes < 0 {
		k.minutes += 24 * 60
		k.shiftDay(-1)
	}
	return k
}

func (k *dtKey) writtenYear() string {
	if k.year.Sign() > 0 {
		return k.year.String()
	}
	y := new(big.Int).Sub(k.year, big.NewInt(1))
	return new(big.Int).Abs(y).String()
}

func (k *dtKey) shiftDay(delta int) {
	k.day += delta
	if k.day > daysIn(k.writtenYear(), k.month) {
		k.day = 1
		k.month++
		if k.month > 12 {
			k.month = 1
			k.year.Add(k.year, big.NewInt(1))
		}
	}
	if k.day < 1 {
		k.month--
		if k.month < 1 {
			k.month = 12
			k.year.Sub(k.year, big.NewInt(1))
		}
		k.day = daysIn(k.writtenYear(), k.month)
	}
}

func (a dtKey) cmp(b dtKey) int {
	if c := a.year.Cmp(b.year); c != 0 {
		return c
	}
	for _, p := range [...][2]int{{a.month, b.month}, {a.day, b.day}, {a.minutes, b.minutes}, {a.second, b.second}} {
		switch {
		case p[0] < p[1]:
			return -1
		case p[0] > p[1]:
			return 1
		}
	}
	// Fractions without trailing zeros compare as strings once padded.
	fa, fb := a.frac, b.frac
	for len(fa) < len(fb) {
		fa += "0"
	}
	for len(fb) < len(fa) {
		fb += "0"
	}
	return strings.Compare(fa, fb)
}

// compare orders dateTimes per XSD 1.0 §3.2.7.4: a value without a time
// zone is only known to be before or after one with a zone if it is so for
// every zone from -14:00 to +14:00.
func (d dateTime) compare(o dateTime) int {
	const maxTZ = 14 * 60
	switch {
	case d.hasTZ == o.hasTZ:
		return d.key(d.tzMinutes).cmp(o.key(o.tzMinutes))
	case d.hasTZ:
		p := d.key(d.tzMinutes)
		if p.cmp(o.key(maxTZ)) < 0 {
			return -1
		}
		if p.cmp(o.key(-maxTZ)) > 0 {
			return 1
		}
	default:
		q := o.key(o.tzMinutes)
		if d.key(-maxTZ).cmp(q) < 0 {
			return -1
		}
		if d.key(maxTZ).cmp(q) > 0 {
			return 1
		}
	}
	return cmpIndeterminate
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
			ws, v := -1, normalizeSpace(f.value, wsCollapse)
			for i, n := range wsNames {
				if v == n {
					ws = i
				}
			}
			if ws < 0 {
				return nil, fmt.Errorf("xs:whiteSpace value %q is not preserve, replace or collapse", f.value)
			}
			if whiteSpace(ws) < base.ws {
				return nil, fmt.Errorf("xs:whiteSpace %q cannot relax %q of base type %s", f.value, wsNames[base.ws], base.name)
			}
			t.ws = whiteSpace(ws)
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
