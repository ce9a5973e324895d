package encoding_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	utf16pkg "unicode/utf16"

	"github.com/legalmfa/mfa/api"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/schema"
)

func newDecoder(t testing.TB, opts ...encoding.DecoderOption) *encoding.Decoder {
	t.Helper()
	s, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	return encoding.NewDecoder(s, 300, opts...)
}

// fields is a request as ordered name/value pairs, so one table row can be
// sent in every encoding. A value of nil omits the field.
type fields []field

type field struct {
	name  string
	value any // string, int, or nil to omit
}

func validFields() fields {
	return fields{{"PNR", "19791231-1234"}, {"COUNTRY", "SE"}, {"Timeout", 60}, {"Reason", "Log in to **Example Bank**"}}
}

func (f fields) with(name string, value any) fields {
	out := append(fields(nil), f...)
	for i := range out {
		if out[i].name == name {
			out[i].value = value
			return out
		}
	}
	return append(out, field{name, value})
}

// signed adds the four fields of a signed request.
func (f fields) signed(sig string) fields {
	return f.with("LegalId", "rp@legal.example.org").with("Signature", sig).
		with("Issued", "2026-11-22T13:45:00Z").with("Nonce", "n0nce-0123456789_abc")
}

func (f fields) xml() string {
	var b strings.Builder
	b.WriteString(`<MFA xmlns="http://waher.se/Schema/MFA.xsd">`)
	for _, fl := range f {
		if fl.value == nil {
			continue
		}
		var esc bytes.Buffer
		xmlEscape(&esc, fmt.Sprint(fl.value))
		fmt.Fprintf(&b, "<%s>%s</%s>", fl.name, esc.String(), fl.name)
	}
	b.WriteString(`</MFA>`)
	return b.String()
}

func xmlEscape(w *bytes.Buffer, s string) {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#13;")
	w.WriteString(r.Replace(s))
}

func (f fields) json() string {
	var parts []string
	for _, fl := range f {
		if fl.value == nil {
			continue
		}
		v, _ := json.Marshal(fl.value)
		parts = append(parts, strconv.Quote(fl.name)+":"+string(v))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func (f fields) form() string {
	v := url.Values{}
	for _, fl := range f {
		if fl.value != nil {
			v.Add(fl.name, fmt.Sprint(fl.value))
		}
	}
	return v.Encode()
}

var encodings = []struct {
	name        string
	contentType string
	body        func(fields) string
}{
	{"xml", "text/xml; charset=utf-8", fields.xml},
	{"json", "application/json", fields.json},
	{"form", "application/x-www-form-urlencoded", fields.form},
}

func decode(t *testing.T, d *encoding.Decoder, contentType, body string) (api.Request, *api.Error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/MFA", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	req, err := d.Decode(r)
	if err == nil {
		return req, nil
	}
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("Decode returned %T %v, want *api.Error", err, err)
	}
	return req, e
}

// TestSameRequestEveryEncoding sends each request as XML, JSON and form and
// demands the same result: the same Request, or the same code and field.
func TestSameRequestEveryEncoding(t *testing.T) {
	t.Parallel()
	d := newDecoder(t)
	sig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))
	base := validFields()
	cases := []struct {
		name  string
		f     fields
		code  api.Code // "" for success
		field string
	}{
		{"minimal", base, "", ""},
		{"signed", base.signed(sig), "", ""},
		{"signed with an offset and fraction", base.signed(sig).with("Issued", "2026-11-22T14:45:00.123+01:00"), "", ""},
		{"unicode reason", base.with("Reason", "Godkänn **inloggning** 🔐\n\n- punkt"), "", ""},
		{"pnr with inner space", base.with("PNR", "790101 1234"), "", ""},
		{"64 multibyte characters of PNR", base.with("PNR", strings.Repeat("å", 64)), "", ""},
		{"timeout at max", base.with("Timeout", 300), "", ""},
		{"reason of 2000 characters", base.with("Reason", strings.Repeat("ä", 2000)), "", ""},

		{"missing PNR", base.with("PNR", nil), api.CodeMissingField, "PNR"},
		{"missing COUNTRY", base.with("COUNTRY", nil), api.CodeMissingField, "COUNTRY"},
		{"missing Timeout", base.with("Timeout", nil), api.CodeMissingField, "Timeout"},
		{"missing Reason", base.with("Reason", nil), api.CodeMissingField, "Reason"},
		{"LegalId without Signature", base.with("LegalId", "rp@legal.example.org"), api.CodeMissingField, "Signature"},
		{"timeout 0", base.with("Timeout", 0), api.CodeInvalidField, "Timeout"},
		{"timeout -1", base.with("Timeout", -1), api.CodeInvalidField, "Timeout"},
		{"timeout above max", base.with("Timeout", 301), api.CodeInvalidField, "Timeout"},
		{"country lower case", base.with("COUNTRY", "se"), api.CodeInvalidField, "COUNTRY"},
		{"country three letters", base.with("COUNTRY", "SWE"), api.CodeInvalidField, "COUNTRY"},
		{"country not assigned", base.with("COUNTRY", "ZZ"), api.CodeInvalidField, "COUNTRY"},
		{"pnr 65 characters", base.with("PNR", strings.Repeat("1", 65)), api.CodeInvalidField, "PNR"},
		{"pnr leading space", base.with("PNR", " 1234"), api.CodeInvalidField, "PNR"},
		{"pnr with tab", base.with("PNR", "12\t34"), api.CodeInvalidField, "PNR"},
		{"pnr ending in a no-break space", base.with("PNR", "1234\u00a0"), api.CodeInvalidField, "PNR"},
		{"pnr starting with an ideographic space", base.with("PNR", "\u30001234"), api.CodeInvalidField, "PNR"},
		{"pnr with a right-to-left override", base.with("PNR", "12\u202e34"), api.CodeInvalidField, "PNR"},
		{"reason with a right-to-left override", base.with("Reason", "Pay 100\u202e0001 EUR"), api.CodeInvalidField, "Reason"},
		{"reason with a zero-width space", base.with("Reason", "Ex\u200bample Bank"), api.CodeInvalidField, "Reason"},
		{"reason with a joiner", base.with("Reason", "می\u200cخواهم"), "", ""},
		{"reason 2001 characters", base.with("Reason", strings.Repeat("a", 2001)), api.CodeInvalidField, "Reason"},
		{"reason with escape", base.with("Reason", "ring\x1b[2J"), api.CodeInvalidField, "Reason"},
		{"signature not base64", base.signed("not*base64"), api.CodeInvalidField, "Signature"},
		{"signature 63 bytes", base.signed(base64.StdEncoding.EncodeToString(make([]byte, 63))), api.CodeInvalidField, "Signature"},
		{"Issued without LegalId", base.with("Issued", "2026-11-22T13:45:00Z"), api.CodeMissingField, "LegalId"},
		{"signed without Issued", base.signed(sig).with("Issued", nil), api.CodeMissingField, "Issued"},
		{"signed without Nonce", base.signed(sig).with("Nonce", nil), api.CodeMissingField, "Nonce"},
		{"issued not a time", base.signed(sig).with("Issued", "yesterday"), api.CodeInvalidField, "Issued"},
		{"issued without a time zone", base.signed(sig).with("Issued", "2026-11-22T13:45:00"), api.CodeInvalidField, "Issued"},
		{"nonce too short", base.signed(sig).with("Nonce", "short"), api.CodeInvalidField, "Nonce"},
		{"nonce with a dot", base.signed(sig).with("Nonce", "0123456789abcdef.x"), api.CodeInvalidField, "Nonce"},
		{"nonce too long", base.signed(sig).with("Nonce", strings.Repeat("n", 65)), api.CodeInvalidField, "Nonce"},
	}
	for _, c := range cases {
		for _, enc := range encodings {
			t.Run(c.name+"/"+enc.name, func(t *testing.T) {
				t.Parallel()
				req, err := decode(t, d, enc.contentType, enc.body(c.f))
				if enc.name == "xml" && c.name == "reason with escape" {
					// XML 1.0 cannot carry U+001B at all, not even as &#27;.
					if err == nil || err.Code != api.CodeMalformed {
						t.Fatalf("got %v, want malformed", err)
					}
					return
				}
				if c.code == "" {
					if err != nil {
						t.Fatalf("unexpected error %s (%s): %s", err.Code, err.Field, err.Message)
					}
					want, _ := decode(t, d, encodings[1].contentType, c.f.json())
					if !equalRequests(req, want) {
						t.Fatalf("decoded %+v, JSON gives %+v", req, want)
					}
					return
				}
				if err == nil {
					t.Fatalf("decoded %+v, want %s on %s", req, c.code, c.field)
				}
				if err.Code != c.code || err.Field != c.field {
					t.Fatalf("got %s on %q (%s), want %s on %q", err.Code, err.Field, err.Message, c.code, c.field)
				}
				if c.field == "PNR" && strings.Contains(err.Message, fmt.Sprint(c.f[0].value)) {
					t.Fatalf("error message echoes the PNR: %s", err.Message)
				}
			})
		}
	}
}

func equalRequests(a, b api.Request) bool {
	return a.PNR == b.PNR && a.Country == b.Country && a.Timeout == b.Timeout && a.Reason == b.Reason &&
		a.LegalID == b.LegalID && bytes.Equal(a.Signature, b.Signature)
}

func TestLineBreaksNormalisedInEveryEncoding(t *testing.T) {
	t.Parallel()
	d := newDecoder(t)
	f := validFields().with("Reason", "line one\r\nline two\rline three")
	for _, enc := range encodings {
		req, err := decode(t, d, enc.contentType, enc.body(f))
		if err != nil {
			t.Fatalf("%s: %s", enc.name, err.Message)
		}
		if req.Reason != "line one\nline two\nline three" {
			t.Errorf("%s: Reason = %q", enc.name, req.Reason)
		}
	}
}

func TestSigningFormIsCanonical(t *testing.T) {
	t.Parallel()
	d := newDecoder(t)
	sig := base64.StdEncoding.EncodeToString(make([]byte, 64))
	f := validFields().with("Timeout", 60).with("Reason", "Två\nrader").signed(sig)
	want := "MFA-Request/1\n" +
		"PNR:13:19791231-1234\n" +
		"COUNTRY:2:SE\n" +
		"Timeout:2:60\n" +
		"Reason:10:Två\nrader\n" +
		"LegalId:20:rp@legal.example.org\n" +
		"Issued:20:2026-11-22T13:45:00Z\n" +
		"Nonce:20:n0nce-0123456789_abc\n"
	for _, enc := range encodings {
		req, err := decode(t, d, enc.contentType, enc.body(f))
		if err != nil {
			t.Fatalf("%s: %s", enc.name, err.Message)
		}
		if got := string(req.SigningForm()); got != want {
			t.Errorf("%s: signing form\n%q\nwant\n%q", enc.name, got, want)
		}
	}
	// Leading zeros and a plus sign are the same Timeout, so the same form.
	for _, timeout := range []string{"060", "+60", " 60 "} {
		body := strings.Replace(f.xml(), "<Timeout>60</Timeout>", "<Timeout>"+timeout+"</Timeout>", 1)
		req, err := decode(t, d, "text/xml", body)
		if err != nil {
			t.Fatalf("Timeout %q: %s", timeout, err.Message)
		}
		if string(req.SigningForm()) != want {
			t.Errorf("Timeout %q changes the signing form", timeout)
		}
	}
}

// TestMalformedBodies covers what only one encoding can get wrong.
func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, encoding.WithMaxBodyBytes(4096))
	valid := validFields()
	xmlBody := valid.xml()
	cases := []struct {
		name, contentType, body string
		code                    api.Code
		field                   string
	}{
		{"no content type", "", valid.json(), api.CodeUnsupportedMediaType, ""},
		{"text/plain", "text/plain", "PNR=1", api.CodeUnsupportedMediaType, ""},
		{"multipart", "multipart/form-data; boundary=x", "--x--", api.CodeUnsupportedMediaType, ""},
		{"unparsable content type", "text/xml; charset", xmlBody, api.CodeUnsupportedMediaType, ""},
		{"JSON in latin-1", "application/json; charset=iso-8859-1", valid.json(), api.CodeUnsupportedMediaType, ""},
		{"empty body", "application/json", "", api.CodeMalformed, ""},

		{"XML not well-formed", "text/xml", "<MFA", api.CodeMalformed, ""},
		{"XML two roots", "text/xml", xmlBody + xmlBody, api.CodeMalformed, ""},
		{"XML text after the root", "text/xml", xmlBody + "trailing", api.CodeMalformed, ""},
		{"XML doctype", "text/xml", `<?xml version="1.0"?><!DOCTYPE MFA [<!ENTITY x "y">]>` + xmlBody, api.CodeMalformed, ""},
		{"XML external entity", "text/xml", strings.Replace(xmlBody, "Log in", "&xxe;", 1), api.CodeMalformed, ""},
		{"XML wrong namespace", "text/xml", strings.Replace(xmlBody, "http://waher.se/Schema/MFA.xsd", "urn:other", 1), api.CodeSchemaViolation, ""},
		{"XML no namespace", "text/xml", strings.Replace(xmlBody, ` xmlns="http://waher.se/Schema/MFA.xsd"`, "", 1), api.CodeSchemaViolation, ""},
		{"XML response as request", "text/xml", `<MFAResponse xmlns="http://waher.se/Schema/MFA.xsd"><Code>approved</Code><Message/></MFAResponse>`, api.CodeSchemaViolation, ""},
		{"XML unknown element", "text/xml", strings.Replace(xmlBody, "</MFA>", "<Extra>1</Extra></MFA>", 1), api.CodeUnknownField, ""},
		{"XML repeated element", "text/xml", strings.Replace(xmlBody, "<COUNTRY>", "<PNR>2</PNR><COUNTRY>", 1), api.CodeDuplicateField, "PNR"},
		{"XML out of order", "text/xml", `<MFA xmlns="http://waher.se/Schema/MFA.xsd"><COUNTRY>SE</COUNTRY><PNR>1</PNR><Timeout>5</Timeout><Reason>r</Reason></MFA>`, api.CodeSchemaViolation, "COUNTRY"},
		{"XML timeout not a number", "text/xml", strings.Replace(xmlBody, "<Timeout>60</Timeout>", "<Timeout>abc</Timeout>", 1), api.CodeInvalidField, "Timeout"},
		{"XML timeout huge", "text/xml", strings.Replace(xmlBody, "<Timeout>60</Timeout>", "<Timeout>100000000000000000000000000000</Timeout>", 1), api.CodeInvalidField, "Timeout"},
		{"XML attribute", "text/xml", strings.Replace(xmlBody, "<PNR>", `<PNR type="x">`, 1), api.CodeSchemaViolation, "PNR"},
		{"XML invalid UTF-8", "text/xml", strings.Replace(xmlBody, "Log in", "Log \xff in", 1), api.CodeMalformed, ""},
		{"XML deeply nested", "text/xml", strings.Repeat("<a>", 500) + strings.Repeat("</a>", 500), api.CodeMalformed, ""},
		{"XML unknown charset", "text/xml; charset=x-klingon", xmlBody, api.CodeUnsupportedMediaType, ""},

		{"JSON broken", "application/json", `{"PNR":`, api.CodeMalformed, ""},
		{"JSON trailing comma as in the spec", "application/json", `{"PNR":"1","COUNTRY":"SE","Timeout":5,"Reason":"r",}`, api.CodeMalformed, ""},
		{"JSON array", "application/json", `[]`, api.CodeMalformed, ""},
		{"JSON trailing data", "application/json", valid.json() + `{}`, api.CodeMalformed, ""},
		{"JSON invalid UTF-8", "application/json", strings.Replace(valid.json(), "Log in", "Log \xff in", 1), api.CodeMalformed, ""},
		{"JSON unknown field", "application/json", valid.with("Extra", "x").json(), api.CodeUnknownField, ""},
		{"JSON wrong case", "application/json", strings.Replace(valid.json(), `"PNR"`, `"pnr"`, 1), api.CodeUnknownField, ""},
		{"JSON duplicate field", "application/json", strings.Replace(valid.json(), `{`, `{"PNR":"x",`, 1), api.CodeDuplicateField, "PNR"},
		{"JSON PNR object", "application/json", valid.with("PNR", map[string]int{"a": 1}).json(), api.CodeInvalidField, "PNR"},
		{"JSON PNR number", "application/json", valid.with("PNR", 197912311234).json(), api.CodeInvalidField, "PNR"},
		{"JSON PNR null", "application/json", strings.Replace(valid.json(), `"19791231-1234"`, `null`, 1), api.CodeInvalidField, "PNR"},
		{"JSON timeout string", "application/json", valid.with("Timeout", "60").json(), api.CodeInvalidField, "Timeout"},
		{"JSON timeout fraction", "application/json", valid.with("Timeout", 1.5).json(), api.CodeInvalidField, "Timeout"},
		{"JSON timeout exponent", "application/json", strings.Replace(valid.json(), `"Timeout":60`, `"Timeout":6e1`, 1), api.CodeInvalidField, "Timeout"},
		{"JSON timeout huge", "application/json", strings.Replace(valid.json(), `"Timeout":60`, `"Timeout":99999999999999999999999999`, 1), api.CodeInvalidField, "Timeout"},
		{"JSON timeout bool", "application/json", valid.with("Timeout", true).json(), api.CodeInvalidField, "Timeout"},
		{"JSON reason array", "application/json", valid.with("Reason", []string{"a"}).json(), api.CodeInvalidField, "Reason"},

		{"form bad escape", "application/x-www-form-urlencoded", "PNR=%zz", api.CodeMalformed, ""},
		{"form semicolon", "application/x-www-form-urlencoded", valid.form() + ";x=1", api.CodeMalformed, ""},
		{"form unknown key", "application/x-www-form-urlencoded", valid.form() + "&Extra=1", api.CodeUnknownField, ""},
		{"form repeated key", "application/x-www-form-urlencoded", valid.form() + "&PNR=2", api.CodeDuplicateField, "PNR"},
		{"form timeout not a number", "application/x-www-form-urlencoded", valid.with("Timeout", "sixty").form(), api.CodeInvalidField, "Timeout"},
		{"form invalid UTF-8 reason", "application/x-www-form-urlencoded", valid.with("Reason", "\xff").form(), api.CodeInvalidField, "Reason"},
		{"form empty PNR", "application/x-www-form-urlencoded", valid.with("PNR", "").form(), api.CodeInvalidField, "PNR"},

		{"oversized body", "application/json", `{"Reason":"` + strings.Repeat("a", 5000) + `"}`, api.CodeBodyTooLarge, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := decode(t, d, c.contentType, c.body)
			if err == nil {
				t.Fatalf("decoded, want %s", c.code)
			}
			if err.Code != c.code || err.Field != c.field {
				t.Fatalf("got %s on %q (%s), want %s on %q", err.Code, err.Field, err.Message, c.code, c.field)
			}
			if strings.TrimSpace(err.Message) == "" {
				t.Fatal("empty message")
			}
			if err.Code.Status() < 400 || err.Code.Status() > 499 {
				t.Fatalf("status %d for bad input", err.Code.Status())
			}
		})
	}
}

func TestEmptyOptionalFormFieldsAreAbsent(t *testing.T) {
	t.Parallel()
	d := newDecoder(t)
	body := validFields().form() + "&LegalId=&Signature=&Issued=&Nonce="
	req, err := decode(t, d, "application/x-www-form-urlencoded", body)
	if err != nil {
		t.Fatal(err.Message)
	}
	if req.Signed() {
		t.Fatal("empty LegalId counted as signed")
	}
}

func TestXMLCharsets(t *testing.T) {
	t.Parallel()
	d := newDecoder(t)
	utf8Body := validFields().with("Reason", "Godkänn köp").xml()
	latin1 := []byte{}
	for _, r := range utf8Body {
		latin1 = append(latin1, byte(r))
	}
	cases := []struct{ name, contentType, body string }{
		{"charset parameter", "application/xml; charset=ISO-8859-1", string(latin1)},
		{"declaration", "text/xml", `<?xml version="1.0" encoding="ISO-8859-1"?>` + string(latin1)},
		{"parameter overrides declaration", "text/xml; charset=iso-8859-1", `<?xml version="1.0" encoding="UTF-8"?>` + string(latin1)},
	}
	for _, c := range cases {
		req, err := decode(t, d, c.contentType, c.body)
		if err != nil {
			t.Fatalf("%s: %s", c.name, err.Message)
		}
		if req.Reason != "Godkänn köp" {
			t.Fatalf("%s: Reason = %q", c.name, req.Reason)
		}
	}
}

// TestBodyTooLargeNotRead checks that a declared oversized body is refused
// before a byte of it is read.
func TestBodyTooLargeNotRead(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, encoding.WithMaxBodyBytes(1024))
	body := &countingReader{r: strings.NewReader(strings.Repeat("a", 1<<20))}
	r := httptest.NewRequest(http.MethodPost, "/MFA", body)
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = 1 << 20
	_, err := d.Decode(r)
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeBodyTooLarge {
		t.Fatalf("err = %v", err)
	}
	if body.n != 0 {
		t.Fatalf("read %d bytes of a body refused by its length", body.n)
	}
	// Without a declared length, it reads only one byte past the limit.
	body = &countingReader{r: strings.NewReader(strings.Repeat("a", 1<<20))}
	r = httptest.NewRequest(http.MethodPost, "/MFA", body)
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = -1
	if _, err = d.Decode(r); !errors.As(err, &e) || e.Code != api.CodeBodyTooLarge {
		t.Fatalf("err = %v", err)
	}
	if body.n > 1024+512 {
		t.Fatalf("read %d bytes, limit is 1024", body.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if len(p) > 512 {
		p = p[:512]
	}
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// utf16 encodes s as UTF-16, with a byte-order mark when asked.
func utf16(s string, big, bom bool) string {
	u := utf16pkg.Encode([]rune(s))
	if bom {
		u = append([]uint16{0xfeff}, u...)
	}
	var out []byte
	for _, c := range u {
		if big {
			out = binary.BigEndian.AppendUint16(out, c)
		} else {
			out = binary.LittleEndian.AppendUint16(out, c)
		}
	}
	return string(out)
}

// TestXMLWellFormedness: what XML allows etree to be strict about, and
// what it allows that the decoder once refused.
func TestXMLWellFormedness(t *testing.T) {
	t.Parallel()
	d := newDecoder(t)
	ok := validFields().with("Reason", "Godkänn köp").xml()
	twoNS := strings.Replace(ok, `xmlns="http://waher.se/Schema/MFA.xsd"`, `xmlns="http://attacker.example/" xmlns="http://waher.se/Schema/MFA.xsd"`, 1)
	for _, c := range []struct {
		name, contentType, body string
		code                    api.Code
	}{
		{"two xmlns", "text/xml", twoNS, api.CodeMalformed},
		{"an attribute twice", "text/xml", strings.Replace(ok, "<PNR>", `<PNR a="1" a="2">`, 1), api.CodeMalformed},
		{"xml prefix rebound", "text/xml", strings.Replace(ok, `xmlns="http://waher.se/Schema/MFA.xsd"`, `xmlns="http://waher.se/Schema/MFA.xsd" xmlns:xml="urn:other"`, 1), api.CodeMalformed},
		{"UTF-8 byte-order mark", "text/xml", "\ufeff" + ok, ""},
		{"UTF-16LE, mark and charset", "application/xml; charset=utf-16", utf16(ok, false, true), ""},
		{"UTF-16BE, mark and charset", "application/xml; charset=utf-16", utf16(ok, true, true), ""},
		{"UTF-16LE, mark only", "text/xml", utf16(ok, false, true), ""},
		{"UTF-16BE, mark only", "text/xml", utf16(ok, true, true), ""},
	} {
		req, err := decode(t, d, c.contentType, c.body)
		switch {
		case c.code == "" && err != nil:
			t.Errorf("%s: refused: %s", c.name, err.Message)
		case c.code == "" && req.Reason != "Godkänn köp":
			t.Errorf("%s: Reason %q", c.name, req.Reason)
		case c.code != "" && (err == nil || err.Code != c.code):
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	// The parser's complaint names the line, not the text there.
	_, err := decode(t, d, "text/xml", strings.Replace(ok, "<PNR>19791231-1234</PNR>", "<P19791231-1234>x</PNR>", 1))
	if err == nil || err.Code != api.CodeMalformed || strings.Contains(err.Message, "19791231") {
		t.Errorf("mismatched tags: %v", err)
	}
}

// TestSchemaRefusesWhatTheRulesRefuse: every character the field rules
// refuse inside a PNR or a Reason (controls, invisible characters that
// change how text reads), MFA.xsd refuses too, so that a requester who
// validates against the published schema is not surprised by the broker.
func TestSchemaRefusesWhatTheRulesRefuse(t *testing.T) {
	t.Parallel()
	s, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	d := encoding.NewDecoder(s, 300)
	checked := 0
	for r := rune(0x20); r < 0x10000; r++ {
		if r >= 0xd800 && r <= 0xdfff || r == 0xfffe || r == 0xffff {
			continue // not characters XML can carry
		}
		for _, field := range []string{api.FieldPNR, api.FieldReason} {
			f := fields{{"PNR", "19791231-1234"}, {"COUNTRY", "SE"}, {"Timeout", 60}, {"Reason", "Log in"}}
			for i := range f {
				if f[i].name == field {
					f[i].value = "19" + string(r) + "34"
				}
			}
			_, jsonErr := decode(t, d, "application/json", f.json())
			if jsonErr == nil || jsonErr.Field != field || !strings.Contains(jsonErr.Message, "character") {
				continue // the rules take this character here
			}
			checked++
			_, xmlErr := decode(t, d, "text/xml; charset=utf-8", f.xml())
			// The schema's own refusal names the element; the rules' would
			// name the character.
			if xmlErr == nil || xmlErr.Field != field || !strings.Contains(xmlErr.Message, "does not have a valid value") {
				t.Errorf("U+%04X in %s: the rules refuse it (%s), MFA.xsd does not: %v", r, field, jsonErr.Message, xmlErr)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no character was refused by the rules")
	}
}
