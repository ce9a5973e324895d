package schema

import (
	"fmt"
	"strings"
	"testing"
)

type regexCase struct {
	pattern string
	match   []string
	noMatch []string
	// noXmllint says why the case is not cross-checked with libxml2.
	noXmllint string
}

func regexCases() []regexCase {
	return []regexCase{
		{pattern: `[A-Z]{2}`, match: []string{"SE", "ZZ"}, noMatch: []string{"se", "SWE", "S", "", "Å1"}},
		{pattern: `abc`, match: []string{"abc"}, noMatch: []string{"ab", "abcd", "xabc"}},
		// '.' excludes only line feed and carriage return.
		{pattern: `a.c`, match: []string{"abc", "a c", "aåc", "a\tc", "a\u2028c"}, noMatch: []string{"a\nc", "a\rc", "ac"}},
		{pattern: `.*`, match: []string{"", "anything at all"}, noMatch: []string{"a\nb"}},
		{pattern: `\s+`, match: []string{" ", "\t\n\r "}, noMatch: []string{"", "a", "\u00a0"}},
		{pattern: `\S\S`, match: []string{"ab", "\u00a0x"}, noMatch: []string{"a ", "\ta"}},
		{pattern: `[^\S]`, match: []string{" ", "\t"}, noMatch: []string{"a"}},
		{pattern: `[\s\d]+`, match: []string{"1 2", "٣"}, noMatch: []string{"a"}},
		// \d is every decimal digit (Nd), not only ASCII.
		{pattern: `\d+`, match: []string{"123", "١٢٣", "０"}, noMatch: []string{"1a", "", "½"}},
		{pattern: `\D`, match: []string{"a"}, noMatch: []string{"5", "٥"}},
		// \w excludes punctuation (so '_' and '-'), separators and others.
		{pattern: `\w+`, match: []string{"abc", "a1", "é", "$", "+"}, noMatch: []string{"a b", "a-b", "a_b", "a.b"}},
		{pattern: `\W+`, match: []string{" ", "_", "-", "."}, noMatch: []string{"a", "1"}},
		{pattern: `[\w-]+`, match: []string{"a-b", "-"}, noMatch: []string{"a b", "a_b"}},
		{pattern: `\i\c*`, match: []string{"a1", "_x", ":a", "a.b-c", "Ωmega"}, noMatch: []string{"1a", "-a", ".a", "a b"}},
		{pattern: `\I\C`, match: []string{"1 ", "- "}, noMatch: []string{"a1", "1a"}},
		// '^' and '$' are ordinary characters outside classes.
		{pattern: `$^`, match: []string{"$^"}, noMatch: []string{"", "$", "^"}},
		{pattern: `[$^]+`, match: []string{"$^$"}, noMatch: []string{"a"}},
		{pattern: `a^b$`, match: []string{"a^b$"}, noMatch: []string{"ab"}},
		{pattern: `a{2,3}`, match: []string{"aa", "aaa"}, noMatch: []string{"a", "aaaa"}},
		{pattern: `a{2,}`, match: []string{"aa", "aaaaaaa"}, noMatch: []string{"a"}},
		{pattern: `a{0}`, match: []string{""}, noMatch: []string{"a"}},
		{pattern: `a{0,1000}`, match: []string{"", strings.Repeat("a", 1000)}, noMatch: []string{strings.Repeat("a", 1001)}},
		{pattern: `a?b*c+`, match: []string{"c", "abbcc", "bc"}, noMatch: []string{"ab", "aabc"}},
		{pattern: `(ab)?c|d`, match: []string{"c", "abc", "d"}, noMatch: []string{"abd", "ab", "cd"}},
		{pattern: `(a|b)*c`, match: []string{"abac", "c"}, noMatch: []string{"ab", "abca"}},
		{pattern: `a|`, match: []string{"a", ""}, noMatch: []string{"b"}},
		{pattern: `()`, match: []string{""}, noMatch: []string{"a"}},
		{pattern: `((a)(b))+`, match: []string{"ab", "abab"}, noMatch: []string{"aba"}},
		// A '{' where no atom precedes it, and any '}', stand for themselves.
		{pattern: `a}`, match: []string{"a}"}, noMatch: []string{"a"}},
		{pattern: `{`, match: []string{"{"}, noMatch: []string{""}},
		{pattern: `a{2}{3}`, match: []string{"aa{3}"}, noMatch: []string{"aaaaaa"}},
		{pattern: `[^a-c]`, match: []string{"d", "\n", "é"}, noMatch: []string{"a", "c", ""}},
		{pattern: `[a-c-]`, match: []string{"-", "b"}, noMatch: []string{"d"}},
		{pattern: `[-a]`, match: []string{"-", "a"}, noMatch: []string{"b"}},
		{pattern: `[^-a]`, match: []string{"b"}, noMatch: []string{"-", "a"}},
		{pattern: `[a\-z]`, match: []string{"-", "a", "z"}, noMatch: []string{"b"}},
		{pattern: `[\--/]`, match: []string{"-", ".", "/"}, noMatch: []string{","},
			noXmllint: `libxml2 takes [\--/] as '-' and '/' only, not as the range the spec's seRange ::= charOrEsc '-' charOrEsc makes it`},
		{pattern: `[\]]`, match: []string{"]"}, noMatch: []string{"["}},
		{pattern: `[\[\\]`, match: []string{"[", `\`}, noMatch: []string{"]"}},
		{pattern: `[a^]`, match: []string{"^", "a"}, noMatch: []string{"b"}},
		{pattern: `\.\?\*\+\(\)\{\}\[\]\|\\\-\^`, match: []string{`.?*+(){}[]|\-^`}},
		{pattern: `\n\r\t`, match: []string{"\n\r\t"}, noMatch: []string{"nrt"}},
		{pattern: `\p{Lu}\p{Ll}+`, match: []string{"Åsa", "Ωω"}, noMatch: []string{"åsa", "ÅSA"}},
		{pattern: `\P{L}+`, match: []string{"1 !"}, noMatch: []string{"a"}},
		{pattern: `\p{L}\p{M}`, match: []string{"e\u0301"}, noMatch: []string{"é"}},
		{pattern: `\p{Cc}`, match: []string{"\t", "\u0085", "\u007f"}, noMatch: []string{"a", " "}},
		{pattern: `[^\p{Cc}]+`, match: []string{"ab c", "€"}, noMatch: []string{"a\tb"}},
		{pattern: `\p{Zs}\p{Sc}\p{Pd}\p{Nd}`, match: []string{" €-1"}, noMatch: []string{"a€-1"}},
		{pattern: `\p{P}`, match: []string{"!", "_"}, noMatch: []string{"a", "+"}},
		{pattern: `[\p{N}\p{Ll}]+`, match: []string{"a1½"}, noMatch: []string{"A"}},
		{pattern: `[^\s\S]`, noMatch: []string{"a", " ", ""}},
		// MFA.xsd's PersonalNumber, Reason and LegalId patterns.
		{pattern: `[^ \p{Cc}]([^\p{Cc}]*[^ \p{Cc}])?`, match: []string{"1", "19800101-1234", "a b"}, noMatch: []string{"", " a", "a ", "a\tb", "a\u0085b"}},
		{pattern: `([^\p{Cc}]|[` + "\t\n\r" + `])+`, match: []string{"a\tb\r\nc"}, noMatch: []string{"", "a\u007fb"}},
		// XSD's C and Cn include unassigned code points (U+0378); Go's C does
		// not, and libxml2 disagrees with the spec here.
		{pattern: `\p{Cn}`, match: []string{"\u0378"}, noMatch: []string{"a"}, noXmllint: "libxml2 does not treat unassigned code points as Cn"},
		{pattern: `\p{C}`, match: []string{"\u0378", "\t"}, noMatch: []string{"a"}, noXmllint: "libxml2 does not treat unassigned code points as Cn"},
		{pattern: `\w`, match: []string{"a"}, noMatch: []string{"\u0378"}, noXmllint: "libxml2 counts unassigned code points as \\w"},
	}
}

func TestRegexMatching(t *testing.T) {
	t.Parallel()
	for _, tc := range regexCases() {
		t.Run(tc.pattern, func(t *testing.T) {
			t.Parallel()
			p, err := compilePattern(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.match {
				if !p.re.MatchString(s) {
					t.Errorf("%q does not match, but should", s)
				}
			}
			for _, s := range tc.noMatch {
				if p.re.MatchString(s) {
					t.Errorf("%q matches, but should not", s)
				}
			}
		})
	}
}

func TestRegexTranslation(t *testing.T) {
	t.Parallel()
	tests := []struct{ xsd, goRE string }{
		{`a`, `\A(?:a)\z`},
		{`$^`, `\A(?:\$\^)\z`},
		{`a{2,}b{3}c{1,2}`, `\A(?:a{2,}b{3}c{1,2})\z`},
		{`(a|b)?`, `\A(?:(?:a|b)?)\z`},
		{`.`, `\A(?:[\x{0}-\x{9}\x{B}-\x{C}\x{E}-\x{10FFFF}])\z`},
		{`\s`, `\A(?:[\x{9}-\x{A}\x{D}\x{20}])\z`},
		{`[^a-c]`, `\A(?:[\x{0}-\x{60}\x{64}-\x{10FFFF}])\z`},
		{`[-.]`, `\A(?:[\x{2D}-\x{2E}])\z`},
		{`\{x}`, `\A(?:\{x\})\z`},
		{`[^\s\S]`, `\A(?:[^\x{0}-\x{10FFFF}])\z`},
	}
	for _, tc := range tests {
		got, err := translateRegex(tc.xsd)
		if err != nil {
			t.Errorf("%s: %v", tc.xsd, err)
		} else if got != tc.goRE {
			t.Errorf("%s: got %s, want %s", tc.xsd, got, tc.goRE)
		}
	}
}

func TestRegexErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ pattern, want string }{
		{`[`, "unterminated character class"},
		{`[a`, "unterminated character class"},
		{`(a`, "missing ')'"},
		{`a)`, "unmatched ')'"},
		{`)`, "unmatched ')'"},
		{`a**`, "nothing to repeat"},
		{`*a`, "nothing to repeat"},
		{`+`, "nothing to repeat"},
		{`a|?`, "nothing to repeat"},
		{`]`, "unescaped ']'"},
		{`[]`, "empty character class"},
		{`[^]`, "empty character class"},
		{`a\`, "lone backslash"},
		{`\x41`, `unsupported escape \x`},
		{`\b`, `unsupported escape \b`},
		{`\1`, `unsupported escape \1`},
		{`\p{Xx}`, "unknown Unicode category"},
		{`\p{Cs}`, "unknown Unicode category"},
		{`\pL`, "must be followed by {name}"},
		{`\p{L`, "unterminated"},
		{`\p{IsBasicLatin}`, "block escape"},
		{`[a-z-[aeiou]]`, "subtraction"},
		{`[\p{L}-[a]]`, "subtraction"},
		{`[z-a]`, "out of order"},
		{`a{3,2}`, "maximum below minimum"},
		{`x{`, "malformed quantifier"},
		{`x{a}`, "malformed quantifier"},
		{`x{,2}`, "malformed quantifier"},
		{`a{1001}`, "above 1000"},
		{`a{0,1001}`, "above 1000"},
		{`a{99999999999999999999}`, "above 1000"},
		{`(a{100}){11}`, "exceeds Go's regexp limits"},
		{`[a-\d]`, "cannot end with a multi-character escape"},
		{`[\d-z]`, "cannot start with a multi-character escape"},
		{`[a--]`, "must be escaped"},
		{`[a-z-0]`, "must be escaped"},
		{`[a[b]`, "unescaped '['"},
	}
	for _, tc := range tests {
		_, err := compilePattern(tc.pattern)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want one containing %q", tc.pattern, err, tc.want)
		}
	}
}

// TestRegexAgreesWithXmllint runs every regexCase through libxml2 as an
// xs:pattern facet.
func TestRegexAgreesWithXmllint(t *testing.T) {
	t.Parallel()
	xmllint(t)
	n := 0
	for _, tc := range regexCases() {
		if tc.noXmllint != "" {
			continue
		}
		xsd := `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="r"><xs:simpleType>` +
			`<xs:restriction base="xs:string"><xs:pattern value="` + xmlEscape(tc.pattern) + `"/></xs:restriction>` +
			`</xs:simpleType></xs:element></xs:schema>`
		s, err := Compile([]byte(xsd))
		if err != nil {
			t.Fatal(err)
		}
		var docs []doc
		for _, v := range tc.match {
			docs = append(docs, doc{name: fmt.Sprintf("%s ~ %q", tc.pattern, v), xml: "<r>" + xmlEscape(v) + "</r>"})
		}
		for _, v := range tc.noMatch {
			docs = append(docs, doc{name: fmt.Sprintf("%s !~ %q", tc.pattern, v), xml: "<r>" + xmlEscape(v) + "</r>", kind: InvalidValue, element: "r", path: "/r"})
		}
		for _, d := range docs {
			checkDoc(t, s, d)
		}
		n += crossCheck(t, []byte(xsd), s, docs)
	}
	t.Logf("%d pattern/value pairs cross-checked with xmllint", n)
}

// xmlEscape escapes text for element content or a double-quoted attribute,
// writing whitespace and control characters as character references so
// that neither end-of-line nor attribute-value normalization alters them.
func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '"':
			b.WriteString("&quot;")
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			fmt.Fprintf(&b, "&#x%X;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
