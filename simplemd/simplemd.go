// Package simplemd is the markdown a Reason is written in: a small subset,
// after BankID's simpleMarkdownV1, that the broker holds every Reason to
// and the device renders. It is written here rather than taken from a
// markdown library because its point is what it leaves out: a full
// CommonMark renderer hides text (HTML comments, link targets, reference
// definitions), turns entity references into characters nobody saw typed,
// and can be made to work for minutes on a few hundred bytes of nested
// quotes. Here every line is one block, nothing nests, parsing is one pass,
// and every character of the text shows when rendered, markup aside.
//
// The subset, line by line (lines end with LF):
//
//	# Heading, ## Heading, ### Heading     headings, three levels
//	- item, * item, + item                 bullet list items, one level
//	1. item, 1) item                       numbered list items, one level
//	```  (alone on its line)               opens and closes a code block,
//	                                       whose lines show as written
//	---, ***, ___                          a rule
//	a blank line                           separates paragraphs
//	any other line                         a line of text
//
// and within a line: **bold**, *italic* or _italic_, `code`, and a
// backslash before punctuation to write it literally (\*). Not allowed,
// because other markdown would hide or change text: HTML and autolinks
// (<…>), character references (&amp; &#x200B;), links and images
// ([text](address), ![…]), link reference definitions, block quotes (>),
// nested list items, headings past level 3, a code fence with a language
// or left open. A Reason has at most MaxLines lines.
package simplemd

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLines bounds a Reason's lines, so what a person reads fits a screen.
const MaxLines = 30

// Kind is what a line is.
type Kind int

// The kinds of lines.
const (
	Text Kind = iota
	Blank
	Heading1
	Heading2
	Heading3
	Bullet
	Numbered
	Code // a line inside a code block, shown as written
	Rule
)

// Style marks inline text.
type Style uint8

// Inline styles; Bold and Italic may combine.
const (
	Bold Style = 1 << iota
	Italic
	Monospace
)

// Span is a run of text in one style.
type Span struct {
	Text  string
	Style Style
}

// Line is one line of a Reason.
type Line struct {
	Kind Kind
	// Number is a numbered item's number as written ("3.").
	Number string
	Spans  []Span
}

// Error says what in a Reason is outside the subset, and where.
type Error struct {
	Line int // 1-based
	What string
}

func (e *Error) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.What)
}

// Parse reads a Reason, line breaks already LF. Anything outside the
// subset is an *Error naming the first such thing. Its cost is linear in
// the length of md.
func Parse(md string) ([]Line, error) {
	raw := strings.Split(md, "\n")
	if len(raw) > MaxLines {
		return nil, &Error{Line: MaxLines + 1, What: fmt.Sprintf("a Reason has at most %d lines", MaxLines)}
	}
	out := make([]Line, 0, len(raw))
	inCode, codeStart := false, 0
	for i, l := range raw {
		n := i + 1
		if isFence(l) {
			if strings.TrimSpace(strings.Trim(strings.TrimSpace(l), "`~")) != "" {
				return nil, &Error{Line: n, What: "a code fence (```) stands alone on its line, without a language"}
			}
			inCode = !inCode
			codeStart = n
			continue
		}
		if inCode {
			out = append(out, Line{Kind: Code, Spans: []Span{{Text: l, Style: Monospace}}})
			continue
		}
		line, err := parseLine(l)
		if err != nil {
			return nil, &Error{Line: n, What: err.Error()}
		}
		out = append(out, line)
	}
	if inCode {
		return nil, &Error{Line: codeStart, What: "a code block (```) is not closed"}
	}
	return out, nil
}

// isFence reports a line that opens or closes a code block: ``` or ~~~,
// perhaps indented by up to three spaces.
func isFence(l string) bool {
	t := strings.TrimLeft(l, " ")
	return len(l)-len(t) <= 3 && (strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~"))
}

type lineError string

func (e lineError) Error() string { return string(e) }

func parseLine(l string) (Line, error) {
	if strings.TrimFunc(l, unicode.IsSpace) == "" {
		return Line{Kind: Blank}, nil
	}
	indent := len(l) - len(strings.TrimLeft(l, " \t"))
	body := l[indent:]
	switch {
	case body[0] == '>':
		return Line{}, lineError("block quotes (>) are not allowed")
	case isRule(body):
		return Line{Kind: Rule}, nil
	}
	if level := headingLevel(body); level > 0 {
		if indent > 0 {
			return Line{}, lineError("a heading starts its line")
		}
		if level > 3 {
			return Line{}, lineError("headings go to level 3 (###)")
		}
		spans, err := parseInline(body[level+1:])
		return Line{Kind: Heading1 + Kind(level-1), Spans: spans}, err
	}
	if rest, ok := bulletItem(body); ok {
		if indent > 0 {
			return Line{}, lineError("nested list items are not allowed")
		}
		spans, err := parseInline(rest)
		return Line{Kind: Bullet, Spans: spans}, err
	}
	if number, rest, ok := numberedItem(body); ok {
		if indent > 0 {
			return Line{}, lineError("nested list items are not allowed")
		}
		spans, err := parseInline(rest)
		return Line{Kind: Numbered, Number: number, Spans: spans}, err
	}
	if indent == 0 && isReferenceDefinition(body) {
		return Line{}, lineError("link reference definitions ([label]: address) are not allowed")
	}
	spans, err := parseInline(l)
	return Line{Kind: Text, Spans: spans}, err
}

// headingLevel counts the #s of an ATX heading ("## Title"); 0 if the line
// is not one.
func headingLevel(s string) int {
	n := 0
	for n < len(s) && s[n] == '#' {
		n++
	}
	if n == 0 || n == len(s) || (s[n] != ' ' && s[n] != '\t') {
		return 0
	}
	return n
}

func bulletItem(s string) (string, bool) {
	if len(s) >= 2 && strings.ContainsRune("-*+", rune(s[0])) && (s[1] == ' ' || s[1] == '\t') {
		return s[2:], true
	}
	return "", false
}

func numberedItem(s string) (number, rest string, ok bool) {
	n := 0
	for n < len(s) && n < 4 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n == 0 || n > 3 || n+1 >= len(s) || (s[n] != '.' && s[n] != ')') || (s[n+1] != ' ' && s[n+1] != '\t') {
		return "", "", false
	}
	return s[:n+1], s[n+2:], true
}

// isRule reports a thematic break: three or more of one of - * _, with
// nothing but spaces between.
func isRule(s string) bool {
	var mark rune
	count := 0
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t':
		case mark == 0 && (r == '-' || r == '*' || r == '_'):
			mark, count = r, 1
		case r == mark:
			count++
		default:
			return false
		}
	}
	return count >= 3
}

// isReferenceDefinition reports "[label]: …", which CommonMark hides.
func isReferenceDefinition(s string) bool {
	if !strings.HasPrefix(s, "[") {
		return false
	}
	end := strings.Index(s, "]:")
	return end > 1 && !strings.Contains(s[1:end], "]")
}

// parseInline reads one line's inline markup: emphasis, code spans and
// escapes, refusing what would hide or change text. It is one pass with
// constant work per byte: a search for a closing delimiter that fails is
// remembered, so no later search for that delimiter scans the line again.
func parseInline(s string) ([]Span, error) {
	if err := checkInline(s); err != nil {
		return nil, err
	}
	var spans []Span
	var cur strings.Builder
	style := Style(0)
	var italic byte // the delimiter that opened italic: * or _
	flush := func() {
		if cur.Len() > 0 {
			spans = append(spans, Span{Text: cur.String(), Style: style})
			cur.Reset()
		}
	}
	// noClose[d] is set once a search for delimiter d found none: there is
	// none to the end of the line.
	noClose := map[string]bool{}
	closes := func(d string, from int) bool {
		if noClose[d] {
			return false
		}
		if strings.Contains(s[from:], d) {
			return true
		}
		noClose[d] = true
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]):
			cur.WriteByte(s[i+1])
			i += 2
			continue
		case c == '`':
			if end := strings.IndexByte(s[i+1:], '`'); end >= 0 {
				flush()
				spans = append(spans, Span{Text: s[i+1 : i+1+end], Style: style | Monospace})
				i += end + 2
				continue
			}
		case c == '*' && strings.HasPrefix(s[i:], "**"):
			if style&Bold != 0 || (i+2 < len(s) && !isSpace(s[i+2]) && closes("**", i+2)) {
				flush()
				style ^= Bold
				i += 2
				continue
			}
		case (c == '*' || c == '_') && (style&Italic == 0 || c == italic):
			if style&Italic != 0 || (i+1 < len(s) && !isSpace(s[i+1]) && closes(string(c), i+1)) {
				flush()
				style ^= Italic
				italic = c
				i++
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		cur.WriteString(s[i : i+size])
		i += size
	}
	flush()
	return spans, nil
}

// checkInline refuses, anywhere in a line outside code spans, what other
// markdown renderers would hide or change: HTML, references, links.
func checkInline(s string) error {
	inCode := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '`' {
			inCode = !inCode
			continue
		}
		if inCode {
			continue
		}
		if c == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]) {
			i++
			continue
		}
		switch {
		case c == '<' && i+1 < len(s) && (isASCIILetter(s[i+1]) || strings.IndexByte("/!?", s[i+1]) >= 0):
			return lineError("HTML and <…> links are not allowed (write \\< for a literal <)")
		case c == '&' && isReference(s[i+1:]):
			return lineError("character references (&…;) are not allowed: write the character itself")
		case c == '!' && i+1 < len(s) && s[i+1] == '[':
			return lineError("images (![…]) are not allowed")
		case c == ']' && i+1 < len(s) && s[i+1] == '(':
			return lineError("links ([text](address)) are not allowed: write the address as text")
		}
	}
	return nil
}

// isReference reports whether s, after an '&', is a character reference:
// a name, #digits or #x hex digits, then ';'.
func isReference(s string) bool {
	n := 0
	switch {
	case strings.HasPrefix(s, "#x") || strings.HasPrefix(s, "#X"):
		for n = 2; n < len(s) && n < 10 && isHex(s[n]); n++ {
		}
		return n > 2 && n < len(s) && s[n] == ';'
	case strings.HasPrefix(s, "#"):
		for n = 1; n < len(s) && n < 10 && s[n] >= '0' && s[n] <= '9'; n++ {
		}
		return n > 1 && n < len(s) && s[n] == ';'
	}
	for n < len(s) && n < 40 && (isASCIILetter(s[n]) || (n > 0 && s[n] >= '0' && s[n] <= '9')) {
		n++
	}
	return n > 0 && n < len(s) && s[n] == ';'
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isHex(c byte) bool         { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
func isSpace(c byte) bool       { return c == ' ' || c == '\t' }

func isASCIIPunct(c byte) bool {
	return c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
}
