package main

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"

	"github.com/legalmfa/mfa/internal/cli"
	"github.com/legalmfa/mfa/simplemd"
)

// Everything shown from a push is attacker-influenced: a requester writes
// the Reason, and the requester's name comes from identity properties. A
// terminal obeys escape sequences in what it prints, so such text could
// move the cursor, clear the screen, retitle the window, plant a hidden
// hyperlink, or overwrite the "✔ verified" line with a forgery. These
// functions make such text inert before it is shown.

// dangerous reports runes that steer a terminal or reorder text instead of
// printing as themselves: C0 and C1 controls, DEL, and the Unicode bidi
// controls (which can make text display in a different order than it is).
func dangerous(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// sanitizeText replaces dangerous runes with visible stand-ins, so an
// attempt shows up as ␛[2J instead of acting. multiline keeps line feeds
// and tabs.
func sanitizeText(s string, multiline bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune('\ufffd')
		case multiline && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20:
			b.WriteRune(0x2400 + r) // the Control Pictures block: ␛, ␍, ␊, …
		case r == 0x7f:
			b.WriteRune('␡')
		case dangerous(r):
			b.WriteRune('\ufffd')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sanitizeLine is sanitizeText for text that must stay on one line.
func sanitizeLine(s string) string { return sanitizeText(s, false) }

// palette is a style's SGR codes; notty's are all empty.
type palette struct {
	heading, bold, italic, code, rule, marker string
}

// palettes are the styles --style names.
var palettes = map[string]palette{
	styleDark:  {heading: "1;96", bold: "1", italic: "3", code: "38;5;216", rule: "38;5;244", marker: "38;5;244"},
	styleLight: {heading: "1;34", bold: "1", italic: "3", code: "38;5;124", rule: "38;5;246", marker: "38;5;246"},
	styleNoTTY: {},
}

// styleNames lists the styles --style accepts besides "auto".
func styleNames() []string { return []string{styleDark, styleLight, styleNoTTY} }

// markdown renders a Reason for the terminal: the subset package simplemd
// defines, which the broker holds every Reason to. Its cost is linear in
// the Reason, and every character of the text shows; only the markup goes.
type markdown struct {
	p     palette
	plain bool // no colours: headings keep their #s to be seen as headings
	width int
}

func newMarkdown(style string, width int) (*markdown, error) {
	p, ok := palettes[style]
	if !ok {
		return nil, cli.Usagef("style %q: want auto or one of %s", style, strings.Join(styleNames(), ", "))
	}
	return &markdown{p: p, plain: style == styleNoTTY, width: max(width, 20)}, nil
}

// render turns a Reason into lines safe to print. A Reason outside the
// subset (which a broker that checks Reasons never sends) is shown as
// written, line by line: nothing in it is hidden.
func (m *markdown) render(md string) string {
	md = strings.ReplaceAll(sanitizeText(md, true), "\t", "    ")
	lines, err := simplemd.Parse(md)
	if err != nil {
		var out []string
		for _, l := range strings.Split(md, "\n") {
			out = append(out, m.wrap([]simplemd.Span{{Text: l}}, "", "")...)
		}
		return strings.Join(trimBlank(out), "\n")
	}
	var out []string
	blank := false
	for _, l := range lines {
		if l.Kind == simplemd.Blank {
			// A run of blank lines is one: they cannot push the rest away.
			if !blank {
				out = append(out, "")
			}
			blank = true
			continue
		}
		blank = false
		switch l.Kind {
		case simplemd.Heading1, simplemd.Heading2, simplemd.Heading3:
			prefix := ""
			if m.plain {
				prefix = strings.Repeat("#", int(l.Kind-simplemd.Heading1)+1) + " "
			}
			out = append(out, m.wrap(withStyle(l.Spans, simplemd.Bold), m.sgr(m.p.marker, prefix), strings.Repeat(" ", len(prefix)))...)
		case simplemd.Bullet:
			out = append(out, m.wrap(l.Spans, m.sgr(m.p.marker, "• "), "  ")...)
		case simplemd.Numbered:
			out = append(out, m.wrap(l.Spans, m.sgr(m.p.marker, l.Number+" "), strings.Repeat(" ", len(l.Number)+1))...)
		case simplemd.Code:
			out = append(out, m.hardWrap(l.Spans[0].Text, m.p.code)...)
		case simplemd.Rule:
			out = append(out, m.sgr(m.p.rule, strings.Repeat("─", min(m.width, 40))))
		default:
			out = append(out, m.wrap(l.Spans, "", "")...)
		}
	}
	return strings.Join(trimBlank(out), "\n")
}

// withStyle adds a style to every span: a heading's text is bold.
func withStyle(spans []simplemd.Span, s simplemd.Style) []simplemd.Span {
	out := make([]simplemd.Span, len(spans))
	for i, sp := range spans {
		out[i] = simplemd.Span{Text: sp.Text, Style: sp.Style | s}
	}
	return out
}

// sgr wraps text in an SGR code and a reset; with no code, the text.
func (m *markdown) sgr(code, text string) string {
	if code == "" || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (m *markdown) spanCode(s simplemd.Style) string {
	var codes []string
	if s&simplemd.Bold != 0 && m.p.bold != "" {
		codes = append(codes, m.p.bold)
	}
	if s&simplemd.Italic != 0 && m.p.italic != "" {
		codes = append(codes, m.p.italic)
	}
	if s&simplemd.Monospace != 0 && m.p.code != "" {
		codes = append(codes, m.p.code)
	}
	return strings.Join(codes, ";")
}

// word is a run of text without spaces, in one style.
type word struct {
	text  string
	style simplemd.Style
	// glued: no space before it; it goes on the word before in another
	// style ("**100**EUR", "a*b*c").
	glued bool
}

// words splits spans at spaces, runs of which count as one.
func words(spans []simplemd.Span) []word {
	var out []word
	space := false
	for _, sp := range spans {
		for i, f := range strings.Split(sp.Text, " ") {
			if i > 0 {
				space = true
			}
			if f == "" {
				continue
			}
			out = append(out, word{text: f, style: sp.Style, glued: !space && len(out) > 0})
			space = false
		}
	}
	return out
}

// wrap lays spans out in lines of at most m.width columns, the first
// starting with first and the rest with indent. A word longer than a line
// is broken where the line ends.
func (m *markdown) wrap(spans []simplemd.Span, first, indent string) []string {
	var lines []string
	var cur strings.Builder
	cur.WriteString(first)
	col, empty := ansi.StringWidth(first), true
	newLine := func() {
		lines = append(lines, cur.String())
		cur.Reset()
		cur.WriteString(indent)
		col, empty = ansi.StringWidth(indent), true
	}
	for _, w := range words(spans) {
		sep := !empty && !w.glued
		if sep && col+1+ansi.StringWidth(w.text) > m.width {
			newLine()
			sep = false
		}
		if sep {
			cur.WriteByte(' ')
			col++
		}
		code := m.spanCode(w.style)
		text := w.text
		for text != "" && col+ansi.StringWidth(text) > m.width {
			if col >= m.width {
				newLine()
				continue
			}
			head, tail := cutWidth(text, m.width-col)
			cur.WriteString(m.sgr(code, head))
			newLine()
			text = tail
		}
		if text != "" {
			cur.WriteString(m.sgr(code, text))
			col += ansi.StringWidth(text)
		}
		empty = false
	}
	return append(lines, cur.String())
}

// cutWidth splits s after at most cols columns (at least one rune).
func cutWidth(s string, cols int) (string, string) {
	w := 0
	for i, r := range s {
		rw := ansi.StringWidth(string(r))
		if w+rw > cols && i > 0 {
			return s[:i], s[i:]
		}
		w += rw
	}
	return s, ""
}

// hardWrap lays out a code line as written, broken where lines end.
func (m *markdown) hardWrap(text, code string) []string {
	var out []string
	for ansi.StringWidth(text) > m.width {
		head, tail := cutWidth(text, m.width)
		out = append(out, m.sgr(code, head))
		text = tail
	}
	return append(out, m.sgr(code, text))
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && visibleBlank(lines[0]) {
		lines = lines[1:]
	}
	for len(lines) > 0 && visibleBlank(lines[len(lines)-1]) {
		lines = lines[:len(lines)-1]
	}
	return lines
}

var sgr = regexp.MustCompile(`\x1b\[[0-9;:]*m`)

// stripSGR removes colours, leaving the visible text.
func stripSGR(s string) string { return sgr.ReplaceAllString(s, "") }

func visibleBlank(s string) bool { return strings.TrimSpace(stripSGR(s)) == "" }
