package main

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/legalmfa/mfa/api"
)

// FuzzReasonShowsWhatWasSigned holds the broker's Reason rules and the
// device's renderer together: every Reason the broker accepts renders, in
// every style, within a time bound far above its linear cost, and every
// word of it (each run of letters and digits) is in what the person sees.
// Whatever the markup, no text the requester signed can be hidden.
func FuzzReasonShowsWhatWasSigned(f *testing.F) {
	for _, s := range []string{
		"Log in to **Example Bank**",
		"# Pay\n\n- 100 EUR\n2. to *Shop* `A-17`\n---\n```\ncode <b>\n```",
		strings.Repeat(">", 100) + " x",
		"A<!-- and transfer 10000 EUR -->B",
		"snake_case_word and 2*3*4 and \\*x\\*",
		strings.Repeat("\u00a0\n\n", 14) + "end",
		"[t](u) &amp; <x>",
	} {
		f.Add(s)
	}
	styles := map[string]*markdown{}
	for _, name := range styleNames() {
		md, err := newMarkdown(name, 40)
		if err != nil {
			f.Fatal(err)
		}
		styles[name] = md
	}
	f.Fuzz(func(t *testing.T, reason string) {
		req := api.Request{PNR: "19791231-1234", Country: "SE", Timeout: 60, Reason: reason}
		if req.CheckFields(300) != nil {
			return // the broker refuses it: no device sees it
		}
		for name, md := range styles {
			start := time.Now()
			out := md.render(reason)
			if took := time.Since(start); took > time.Second {
				t.Fatalf("%s: %d bytes took %v to render", name, len(reason), took)
			}
			seen := strings.Join(strings.Fields(stripSGR(out)), "")
			for _, w := range strings.FieldsFunc(reason, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) {
				if !strings.Contains(seen, w) {
					t.Fatalf("%s: the word %q of %q is not shown:\n%s", name, w, reason, out)
				}
			}
		}
	})
}
