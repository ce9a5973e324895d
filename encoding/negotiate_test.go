package encoding_test

import (
	"testing"

	"github.com/legalmfa/mfa/encoding"
)

func TestNegotiate(t *testing.T) {
	t.Parallel()
	const (
		j  = encoding.MediaJSON
		x  = encoding.MediaXML
		tx = encoding.MediaTextXML
		h  = encoding.MediaHTML
		p  = encoding.MediaText
	)
	cases := []struct {
		accept string
		own    encoding.MediaType
		want   encoding.MediaType
		ok     bool
	}{
		{"", j, j, true},
		{"", tx, tx, true},
		{"", x, x, true},
		{"", "", j, true},
		{"*/*", tx, tx, true},
		{"*/*", j, j, true},
		{"application/json", tx, j, true},
		{"text/plain", j, p, true},
		{"text/html", j, h, true},
		{"application/xml", j, x, true},
		{"text/xml", j, tx, true},
		// Browsers.
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", j, h, true},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", tx, h, true},
		// q-values decide, whatever the order.
		{"application/json;q=0.5, text/plain", j, p, true},
		{"text/plain;q=0.2, application/xml;q=0.9, application/json;q=0.8", j, x, true},
		{"application/json; q=1.0, text/plain; q=0.999", p, j, true},
		// The most specific range sets a type's quality.
		{"text/*;q=0.1, text/plain", j, p, true},
		{"*/*;q=0.9, application/json;q=0.1", j, x, true},
		{"text/*, text/xml;q=0", tx, h, true},
		// Explicit beats wildcard at equal q; own format breaks remaining ties.
		{"application/xml, */*", j, x, true},
		{"text/*", tx, tx, true},
		{"text/*", j, tx, true},
		{"application/*", tx, j, true},
		{"application/*", x, x, true},
		// q=0 refuses.
		{"application/json;q=0", j, "", false},
		{"*/*;q=0", j, "", false},
		{"image/png", j, "", false},
		{"application/pdf, image/*", tx, "", false},
		// Case, whitespace, parameters and junk.
		{"APPLICATION/JSON", tx, j, true},
		{"  text/plain ;  q=0.5 , application/json;q=0.4", j, p, true},
		{"application/json; charset=utf-8", tx, j, true},
		{`text/plain; foo="a,b;c", application/json;q=0.1`, j, p, true},
		{"garbage, application/json", tx, j, true},
		{"application/json;q=2, text/plain", j, p, true},
		{"application/json;q=abc, text/plain;q=0.1", j, p, true},
		{"application/json;q=0.0001", j, "", false},
		{"*/json", j, "", false},
		{",,,", j, "", false},
	}
	for _, c := range cases {
		got, ok := encoding.Negotiate(c.accept, c.own)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("Negotiate(%q, own %s) = %s, %v; want %s, %v", c.accept, c.own, got, ok, c.want, c.ok)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "*/*", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", `a/b;q="x,y"`, "text/*;q=0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		got, ok := encoding.Negotiate(accept, encoding.MediaJSON)
		if !ok {
			return
		}
		for _, o := range encoding.Offers() {
			if o == got {
				return
			}
		}
		t.Fatalf("Negotiate(%q) chose %q, which is not offered", accept, got)
	})
}
