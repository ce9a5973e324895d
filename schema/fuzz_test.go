package schema

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// FuzzValidate parses arbitrary bytes with etree and validates them against
// MFA.xsd and the test schemas. Validation must never panic, and must
// return nil or a well-formed *Violation.
func FuzzValidate(f *testing.F) {
	schemas := []*Schema{}
	for _, xsd := range []string{string(XSD()), typesXSD, groupsXSD, treeXSD} {
		s, err := Compile([]byte(xsd))
		if err != nil {
			f.Fatal(err)
		}
		schemas = append(schemas, s)
	}
	for _, docs := range [][]doc{requestDocs(), responseDocs(), typedDocs(), groupsDocs(), treeDocs()} {
		for _, d := range docs {
			f.Add([]byte(d.xml))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := etree.NewDocument()
		if d.ReadFromBytes(data) != nil {
			return
		}
		for _, s := range schemas {
			err := s.Validate(d.Root())
			if err == nil {
				continue
			}
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("Validate returned %T, not *Violation: %v", err, err)
			}
			if v.Kind < WrongRoot || v.Kind > UnexpectedContent || v.Message == "" || !strings.HasPrefix(v.Path, "/") {
				t.Fatalf("malformed violation %#v", v)
			}
		}
	})
}

// FuzzPattern translates arbitrary XSD patterns. A pattern either fails to
// translate with an error, or translates to a Go expression that compiles
// unless it runs into one of Go's size limits.
func FuzzPattern(f *testing.F) {
	for _, tc := range regexCases() {
		f.Add(tc.pattern)
	}
	f.Add(`[a-z-[aeiou]]`)
	f.Add(`\p{IsBasicLatin}+`)
	f.Add(`(a{2,3}|[^\s\d]?)*\i\c*`)
	f.Fuzz(func(t *testing.T, src string) {
		goSrc, err := translateRegex(src)
		if err != nil {
			return
		}
		if _, err := regexp.Compile(goSrc); err != nil && !isRegexpLimit(err) {
			t.Fatalf("%q translated to %q, which does not compile: %v", src, goSrc, err)
		}
	})
}

// FuzzCompile compiles arbitrary schema documents; Compile must return a
// schema or an error, never panic.
func FuzzCompile(f *testing.F) {
	f.Add(XSD())
	for _, xsd := range []string{typesXSD, groupsXSD, treeXSD} {
		f.Add([]byte(xsd))
	}
	for _, tc := range append(structureErrorCases(), facetErrorCases()...) {
		if tc.want != "too large" {
			// Those take long by design; seeded, they slow the fuzzer down.
			f.Add([]byte(tc.xsd))
		}
	}
	f.Fuzz(func(t *testing.T, xsd []byte) {
		s, err := Compile(xsd)
		if err == nil && s == nil {
			t.Fatal("Compile returned neither schema nor error")
		}
	})
}
