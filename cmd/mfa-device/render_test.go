package main

import (
	"strings"
	"testing"
)

// hostile is Reason text that tries every way we know to take over a
// terminal or to forge the verified-requester line.
var hostile = strings.Join([]string{
	"Log in to **Example Bank**",
	"\x1b[2J\x1b[H", // clear the screen, cursor home
	"\x1b[3A\r✔ verified: Real Bank (bank@legal.broker.test)", // overwrite the requester line
	"\x1b]0;pwned\x07",   // retitle the window (BEL)
	"\x1b]0;pwned\x1b\\", // retitle the window (ST)
	"\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", // hidden hyperlink
	"\x1bP+q544e\x1b\\", // DCS query
	"\u009b2J",          // 8-bit CSI
	"\x9b2J",            // raw C1 byte, not valid UTF-8
	"&#27;[2J &#x1b;[1A &#X1B;c &#155;2J &#0; &#8238;", // escapes by character reference
	"\u202eevil\u202c \u2066x\u2069",                   // bidi overrides
	"a\rb\x08c\x7fd",                                   // carriage return, backspace, DEL
	"[ok](https://example.com) and <script>alert(1)</script>",
}, "\n")

func TestSanitizeText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in  string
		multiline bool
		want      string
	}{
		{"plain", "Log in to Bank", false, "Log in to Bank"},
		{"escape shows as a picture", "\x1b[2J", false, "␛[2J"},
		{"carriage return", "a\rb", true, "a␍b"},
		{"newline kept when multiline", "a\nb\tc", true, "a\nb\tc"},
		{"newline shown on one line", "a\nb\tc", false, "a␊b c"},
		{"DEL", "a\x7f", false, "a␡"},
		{"C1 rune", "a\u009bb", false, "a\ufffdb"},
		{"invalid UTF-8", "a\x9bb", false, "a\ufffdb"},
		{"bidi override", "a\u202eb\u2066c", false, "a\ufffdb\ufffdc"},
		{"ordinary Unicode kept", "Åsa ✔ 日本", false, "Åsa ✔ 日本"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := sanitizeText(tt.in, tt.multiline); got != tt.want {
				t.Errorf("sanitizeText(%q, %v) = %q, want %q", tt.in, tt.multiline, got, tt.want)
			}
		})
	}
}

// assertInert fails if s holds anything a terminal would act on other than
// SGR colours.
func assertInert(t *testing.T, s string) {
	t.Helper()
	for _, r := range stripSGR(s) {
		if r != '\n' && dangerous(r) {
			t.Fatalf("output holds U+%04X:\n%q", r, s)
		}
	}
}

func TestMarkdownRenderIsInert(t *testing.T) {
	t.Parallel()
	for _, style := range styleNames() {
		t.Run(style, func(t *testing.T) {
			t.Parallel()
			md, err := newMarkdown(style, 60)
			if err != nil {
				t.Fatal(err)
			}
			out := md.render(hostile)
			assertInert(t, out)
			plain := stripSGR(out)
			if !strings.Contains(plain, "Example Bank") {
				t.Errorf("the ordinary text is lost:\n%s", plain)
			}
			if !strings.Contains(plain, "␛[2J") || !strings.Contains(plain, "&#27;[2J") {
				t.Errorf("escape attempts should show as text:\n%s", plain)
			}
			if strings.Contains(out, "\x1b]") {
				t.Errorf("a hyperlink or title escape survived: %q", out)
			}
			// A Reason outside the subset (no broker that checks sends one)
			// shows as written: its markup is text, nothing is hidden.
			if !strings.Contains(plain, "<script>alert(1)</script>") || !strings.Contains(plain, "[ok](https://example.com)") {
				t.Errorf("text outside the subset is not shown as written:\n%s", plain)
			}
		})
	}
}

func TestMarkdownNoTTYHasNoEscapes(t *testing.T) {
	t.Parallel()
	md, err := newMarkdown("notty", 60)
	if err != nil {
		t.Fatal(err)
	}
	out := md.render("# Heading\n\nLog in to **Example Bank**\n\n- one\n- two\n")
	if strings.ContainsRune(out, 0x1b) {
		t.Fatalf("notty output holds escapes: %q", out)
	}
	for _, want := range []string{"Heading", "Example Bank", "one", "two"} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered Reason lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %q keeps the renderer's padding", l)
		}
	}
	if strings.HasPrefix(out, "\n") || strings.HasSuffix(out, "\n") {
		t.Errorf("blank lines around the Reason: %q", out)
	}
}

// TestRenderSubset: each kind of line as the person sees it with no
// colours, and the same text with them.
func TestRenderSubset(t *testing.T) {
	t.Parallel()
	const reason = "# Pay 100 EUR\n\n\n\nto **Example Shop**, order `A-17`\n- one\n12. twelve\n---\n```\n  x := <b>\n```\nwith \\*stars\\*"
	md, err := newMarkdown(styleNoTTY, 60)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Pay 100 EUR\n\nto Example Shop, order A-17\n• one\n12. twelve\n" + strings.Repeat("─", 40) + "\n  x := <b>\nwith *stars*"
	if got := md.render(reason); got != want {
		t.Errorf("notty:\n%s\nwant:\n%s", got, want)
	}
	for _, style := range []string{styleDark, styleLight} {
		md, err := newMarkdown(style, 60)
		if err != nil {
			t.Fatal(err)
		}
		out := md.render(reason)
		if !strings.Contains(out, "\x1b[1mExample\x1b[0m") || strings.Contains(stripSGR(out), "# Pay") || !strings.Contains(stripSGR(out), "Pay 100 EUR") {
			t.Errorf("%s:\n%q", style, out)
		}
	}
}

// TestRenderWraps: lines fit the width, words stay whole unless longer than
// a line, and continuation lines of list items are indented.
func TestRenderWraps(t *testing.T) {
	t.Parallel()
	md, err := newMarkdown(styleNoTTY, 20)
	if err != nil {
		t.Fatal(err)
	}
	out := md.render("- alpha beta gamma delta epsilon\n" + strings.Repeat("x", 45))
	want := "• alpha beta gamma\n  delta epsilon\n" + strings.Repeat("x", 20) + "\n" + strings.Repeat("x", 20) + "\nxxxxx"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	for _, l := range strings.Split(out, "\n") {
		if w := len([]rune(l)); w > 20 {
			t.Errorf("line %q is %d columns", l, w)
		}
	}
}

func TestUnknownStyle(t *testing.T) {
	t.Parallel()
	if _, err := newMarkdown("no-such-style", 60); err == nil || !strings.Contains(err.Error(), "notty") {
		t.Fatalf("err = %v, want one listing the styles", err)
	}
}
