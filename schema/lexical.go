package schema

import (
	"encoding/base64"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Lexical spaces and values of the built-in primitives, per XML Schema
// Part 2 (XSD 1.0, Second Edition). Each parser takes the value after
// whitespace normalization.

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
