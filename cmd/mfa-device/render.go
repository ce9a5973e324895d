package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"charm.land/glamour/v2"
	"charm.land/glamour/v2/styles"

	"github.com/legalmfa/mfa/internal/cli"
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

// charRef matches markdown's numeric character references, which the
// markdown parser turns into the characters they name: &#27; would be an
// ESC that no filter of the raw text saw.
var charRef = regexp.MustCompile(`&#([xX][0-9a-fA-F]{1,8}|[0-9]{1,10});`)

// defuseCharRefs escapes the '&' of numeric references to dangerous
// characters (and to U+0000), so they show as text.
func defuseCharRefs(md string) string {
	return charRef.ReplaceAllStringFunc(md, func(ref string) string {
		num := ref[2 : len(ref)-1]
		base := 10
		if num[0] == 'x' || num[0] == 'X' {
			num, base = num[1:], 16
		}
		n, err := strconv.ParseUint(num, base, 32)
		if err != nil || n > utf8.MaxRune || n == 0 || dangerous(rune(n)) {
			return "&amp;" + ref[1:]
		}
		return ref
	})
}

// filterTerminal keeps only SGR sequences (colours, bold, underline) from
// rendered output, and drops every other escape sequence and control. The
// renderer itself emits OSC 8 hyperlinks, whose target can differ from the
// visible text; without them the URL is printed beside the text.
func filterTerminal(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c == 0x1b {
			i = skipEscape(s, i, &b)
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '\n':
			b.WriteByte('\n')
		case r == '\t':
			b.WriteString("    ")
		case r == utf8.RuneError && size <= 1:
			b.WriteRune('\ufffd')
		case dangerous(r):
			// dropped
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// skipEscape consumes the escape sequence starting at s[i] (an ESC),
// copying it to b only when it is a complete SGR sequence, and returns the
// index after it.
func skipEscape(s string, i int, b *strings.Builder) int {
	start := i
	i++
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[': // CSI: parameters, intermediates, one final byte
		i++
		for i < len(s) && s[i] >= 0x30 && s[i] <= 0x3f {
			i++
		}
		inter := i
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
			if s[i] == 'm' && inter == i {
				b.WriteString(s[start : i+1])
			}
			return i + 1
		}
		return i
	case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: up to BEL or ST
		for i++; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return i
	}
	return i + 1 // a two-byte escape such as ESC 7 or ESC c
}

// trailingPadding is the run of spaces and SGR codes the renderer pads
// each line with to the wrap width; dropping it keeps lines as wide as
// their text, which the terminal screen relies on to count rows.
var trailingPadding = regexp.MustCompile(`(?:\x1b\[[0-9;:]*m| )+$`)

// markdown renders Reason text for the terminal.
type markdown struct {
	tr *glamour.TermRenderer
}

// styleNames lists the styles --style accepts besides "auto".
func styleNames() []string {
	names := make([]string, 0, len(styles.DefaultStyles))
	for n := range styles.DefaultStyles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// newMarkdown makes a renderer with a fixed style, so output does not
// depend on probing the terminal (which tests and pipes cannot answer).
func newMarkdown(style string, width int) (*markdown, error) {
	cfg, ok := styles.DefaultStyles[style]
	if !ok {
		return nil, cli.Usagef("style %q: want auto or one of %s", style, strings.Join(styleNames(), ", "))
	}
	c := *cfg
	// The prompt draws its own gutter; the style's margin would only
	// indent the Reason further.
	noMargin := uint(0)
	c.Document.Margin = &noMargin
	tr, err := glamour.NewTermRenderer(glamour.WithStyles(c), glamour.WithWordWrap(width))
	if err != nil {
		return nil, fmt.Errorf("markdown renderer: %w", err)
	}
	return &markdown{tr: tr}, nil
}

// render turns untrusted markdown into lines safe to print: controls are
// neutralised before parsing, and the output is filtered again after.
func (m *markdown) render(md string) string {
	md = defuseCharRefs(sanitizeText(md, true))
	out, err := m.tr.Render(md)
	if err != nil {
		out = md // the sanitised source still says what was asked
	}
	lines := strings.Split(filterTerminal(out), "\n")
	for i, l := range lines {
		trimmed := trailingPadding.ReplaceAllString(l, "")
		if strings.Contains(trimmed, "\x1b[") {
			trimmed += "\x1b[0m"
		}
		lines[i] = trimmed
	}
	for len(lines) > 0 && visibleBlank(lines[0]) {
		lines = lines[1:]
	}
	for len(lines) > 0 && visibleBlank(lines[len(lines)-1]) {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

var sgr = regexp.MustCompile(`\x1b\[[0-9;:]*m`)

// stripSGR removes colours, leaving the visible text.
func stripSGR(s string) string { return sgr.ReplaceAllString(s, "") }

func visibleBlank(s string) bool { return strings.TrimSpace(stripSGR(s)) == "" }
