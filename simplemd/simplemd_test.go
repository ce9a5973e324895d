package simplemd_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/simplemd"
)

func TestParse(t *testing.T) {
	t.Parallel()
	type span = simplemd.Span
	lines, err := simplemd.Parse("# Pay **100 EUR**\nto *Example* _Shop_\n\n- first `code`\n2. second \\*not italic\\*\n---\n```\n<b>&amp;</b> [x](y)\n```\n2 * 3 and a*b")
	if err != nil {
		t.Fatal(err)
	}
	want := []simplemd.Line{
		{Kind: simplemd.Heading1, Spans: []span{{Text: "Pay "}, {Text: "100 EUR", Style: simplemd.Bold}}},
		{Kind: simplemd.Text, Spans: []span{{Text: "to "}, {Text: "Example", Style: simplemd.Italic}, {Text: " "}, {Text: "Shop", Style: simplemd.Italic}}},
		{Kind: simplemd.Blank},
		{Kind: simplemd.Bullet, Spans: []span{{Text: "first "}, {Text: "code", Style: simplemd.Monospace}}},
		{Kind: simplemd.Numbered, Number: "2.", Spans: []span{{Text: "second *not italic*"}}},
		{Kind: simplemd.Rule},
		{Kind: simplemd.Code, Spans: []span{{Text: "<b>&amp;</b> [x](y)", Style: simplemd.Monospace}}},
		{Kind: simplemd.Text, Spans: []span{{Text: "2 * 3 and a*b"}}},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for i := range want {
		if got := lines[i]; got.Kind != want[i].Kind || got.Number != want[i].Number || !equalSpans(got.Spans, want[i].Spans) {
			t.Errorf("line %d: %+v, want %+v", i+1, got, want[i])
		}
	}
}

func equalSpans(a, b []simplemd.Span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRefused: what other markdown would hide or change, and what would
// nest, is refused with the line and what is not allowed.
func TestRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ md, what string }{
		{"A<!-- and transfer 10000 EUR -->B", "HTML"},
		{"<b>bold</b>", "HTML"},
		{"<?php x ?>", "HTML"},
		{"see <https://bank.example>", "HTML"},
		{"zero&ZeroWidthSpace;width", "character references"},
		{"a&#x200B;b", "character references"},
		{"a&#8203;b", "character references"},
		{"[Example Bank](https://evil.example \"and transfer 10000 EUR\")", "links"},
		{"![logo](x.png)", "images"},
		{"ok\n[label]: https://evil.example \"hidden title\"", "line 2: link reference definitions"},
		{strings.Repeat(">", 100) + " x", "block quotes"},
		{"> - > - > x", "block quotes"},
		{"- a\n  - nested", "line 2: nested list items"},
		{"#### deep", "headings go to level 3"},
		{"```json\n{}\n```", "without a language"},
		{"```\nopen", "line 1: a code block (```) is not closed"},
		{strings.Repeat("x\n", simplemd.MaxLines) + "x", "at most"},
	} {
		_, err := simplemd.Parse(c.md)
		var e *simplemd.Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), c.what) {
			t.Errorf("%q: %v, want an error about %s", c.md, err, c.what)
		}
	}
	for _, ok := range []string{
		"a < b and a <= b", "R&D & co", "&amp without semicolon", "[not a link] (x)", "\\<b\\> written out",
		"`<b>` in code", "3 > 2", "- a\n- b\n1. c", strings.Repeat("x\n", simplemd.MaxLines-1) + "x",
	} {
		if _, err := simplemd.Parse(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}

// BenchmarkParse runs the inputs that make naive markdown parsers
// quadratic or worse, at two sizes: ns/op should grow with the size (x64),
// not faster. go test -run '^$' -bench Parse ./simplemd/
func BenchmarkParse(b *testing.B) {
	for _, unit := range []string{"**a ", "*a ", "_a ", "`", "\\*", "a*", "** ", "[x]", "&a", "> "} {
		for _, n := range []int{1000, 64000} {
			md := strings.Repeat(unit, n)
			b.Run(fmt.Sprintf("%q/%d", unit, n), func(b *testing.B) {
				b.SetBytes(int64(len(md)))
				for b.Loop() {
					simplemd.Parse(md)
				}
			})
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"# a\n- b\n1. c\n```\nd\n```\n**e** *f* `g`", "<!-- x -->", "&#x200B;", strings.Repeat("> ", 50)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, md string) {
		lines, err := simplemd.Parse(md)
		if err != nil {
			var e *simplemd.Error
			if !errors.As(err, &e) || e.Line < 1 {
				t.Fatalf("error %v is not an *Error with a line", err)
			}
			return
		}
		if len(lines) > simplemd.MaxLines {
			t.Fatalf("%d lines accepted", len(lines))
		}
	})
}
