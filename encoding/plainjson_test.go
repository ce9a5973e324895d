package encoding

import (
	"testing"
	"unicode/utf8"
)

func TestPlainJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body  string
		plain bool // read in one pass, without the tokenizer
	}{
		{`{"PNR":"19791231-1234","COUNTRY":"SE","Timeout":30,"Reason":"Log in"}`, true},
		{" \r\n\t{ \"PNR\" : \"1\" , \"Timeout\" : 0 } \n", true},
		{`{}`, true},
		{`{"Reason":"Grüße ✓"}`, true},
		{`{"Reason":"a\"b"}`, false},       // an escape
		{`{"PNR":"1","PNR":"2"}`, false},   // a duplicate
		{`{"pnr":"1"}`, false},             // an unknown field
		{`{"Timeout":"30"}`, false},        // a mistyped value
		{`{"Timeout":030}`, false},         // a leading zero
		{`{"Timeout":3.0}`, false},         // a fraction
		{`{"Timeout":3e1}`, false},         // an exponent
		{`{"Timeout":-1}`, false},          // a sign
		{`{"LegalId":null}`, false},        // null
		{`{"PNR":"1"} x`, false},           // data after the object
		{`{"PNR":"1",}`, false},            // a trailing comma
		{`{"PNR":"1"`, false},              // cut short
		{"{\"Reason\":\"a\x01b\"}", false}, // a control character
	} {
		raw, plain := decodePlainJSON([]byte(tc.body))
		if plain != tc.plain {
			t.Errorf("decodePlainJSON(%q) took it: %t, want %t", tc.body, plain, tc.plain)
			continue
		}
		if !plain {
			continue
		}
		want, err := decodeJSONTokens([]byte(tc.body))
		if err != nil || raw != want {
			t.Errorf("decodePlainJSON(%q) = %+v; the tokenizer says %+v, %v", tc.body, raw, want, err)
		}
	}
}

// FuzzPlainJSON holds the one-pass reader to the tokenizer: whatever it
// takes, the tokenizer reads the same way.
func FuzzPlainJSON(f *testing.F) {
	for _, s := range []string{
		`{"PNR":"19791231-1234","COUNTRY":"SE","Timeout":30,"Reason":"Log in"}`,
		`{"LegalId":"a@b","Signature":"c2ln","Issued":"2026-11-22T10:00:00Z","Nonce":"n"}`,
		`{"Timeout":0}`, `{}`, ` { } `, `{"PNR":"1",}`, `{"Timeout":01}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if !utf8.ValidString(body) {
			return // decodeJSON refuses these before either reader
		}
		raw, plain := decodePlainJSON([]byte(body))
		if !plain {
			return
		}
		want, err := decodeJSONTokens([]byte(body))
		if err != nil || raw != want {
			t.Fatalf("decodePlainJSON(%q) = %+v; the tokenizer says %+v, %v", body, raw, want, err)
		}
	})
}
