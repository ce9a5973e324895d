package encoding

import (
	"strconv"
	"strings"
)

// MediaType is a response format the broker offers.
type MediaType string

// The answer formats, in the broker's order of preference when the caller
// likes several equally.
const (
	MediaJSON    MediaType = "application/json"
	MediaXML     MediaType = "application/xml"
	MediaTextXML MediaType = "text/xml"
	MediaHTML    MediaType = "text/html"
	MediaText    MediaType = "text/plain"
)

// Offers lists the answer formats in order of preference.
func Offers() []MediaType {
	return []MediaType{MediaJSON, MediaXML, MediaTextXML, MediaHTML, MediaText}
}

// Negotiate picks the answer format for an Accept header (RFC 9110 §12.5.1).
// Each format gets the quality of the most specific range that matches it;
// the highest quality wins, then the most specific match, then the request's
// own format (own), then the broker's order. A missing header, like */*,
// answers in the request's own format. ok is false when nothing offered is
// acceptable.
func Negotiate(accept string, own MediaType) (chosen MediaType, ok bool) {
	if own == "" {
		own = MediaJSON
	}
	if strings.TrimSpace(accept) == "" {
		return own, true
	}
	ranges := parseAccept(accept)
	bestQ, bestSpec := 0, -1
	for _, offer := range Offers() {
		q, spec := quality(ranges, offer)
		if q == 0 {
			continue
		}
		better := q > bestQ ||
			(q == bestQ && spec > bestSpec) ||
			(q == bestQ && spec == bestSpec && offer == own)
		if better {
			chosen, bestQ, bestSpec = offer, q, spec
		}
	}
	return chosen, bestQ > 0
}

// mediaRange is one element of an Accept header. q is in thousandths, so
// that comparisons are exact.
type mediaRange struct {
	typ, subtype string
	q            int
}

// specificity ranks how closely a range names a type: */* < type/* < type/subtype.
func (r mediaRange) specificity() int {
	switch {
	case r.typ == "*":
		return 0
	case r.subtype == "*":
		return 1
	}
	return 2
}

func (r mediaRange) matches(offer MediaType) bool {
	typ, subtype, _ := strings.Cut(string(offer), "/")
	return (r.typ == "*" || r.typ == typ) && (r.subtype == "*" || r.subtype == subtype)
}

// quality finds the most specific range matching offer and returns its
// quality and specificity (0, -1 when none matches).
func quality(ranges []mediaRange, offer MediaType) (q, spec int) {
	spec = -1
	for _, r := range ranges {
		if s := r.specificity(); r.matches(offer) && s > spec {
			q, spec = r.q, s
		}
	}
	return q, spec
}

// parseAccept parses leniently: a malformed element is skipped rather than
// failing the whole header, as RFC 9110 suggests for robustness. Parameters
// other than q do not affect matching.
func parseAccept(header string) []mediaRange {
	var ranges []mediaRange
	for _, elem := range splitOutsideQuotes(header, ',') {
		parts := splitOutsideQuotes(elem, ';')
		typ, subtype, ok := strings.Cut(strings.ToLower(strings.TrimSpace(parts[0])), "/")
		if !ok || !isToken(typ) || !isToken(subtype) || (typ == "*" && subtype != "*") {
			continue
		}
		r := mediaRange{typ: typ, subtype: subtype, q: 1000}
		valid := true
		for _, p := range parts[1:] {
			name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(name), "q") {
				if r.q, valid = parseQ(strings.TrimSpace(value)); !valid {
					break
				}
				// Parameters after q are accept-extensions; they do not
				// change the range.
				break
			}
		}
		if valid {
			ranges = append(ranges, r)
		}
	}
	return ranges
}

// parseQ reads a qvalue: 0 to 1 with at most three decimals.
func parseQ(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	if len(s) > 1 && s[1] != '.' {
		return 0, false
	}
	frac := ""
	if len(s) > 2 {
		frac = s[2:]
	}
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	for len(frac) < 3 {
		frac += "0"
	}
	n, _ := strconv.Atoi(frac)
	if s[0] == '1' {
		if n != 0 {
			return 0, false
		}
		return 1000, true
	}
	return n, true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// splitOutsideQuotes splits on sep except inside quoted strings, where
// parameters may legally contain commas and semicolons.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}
