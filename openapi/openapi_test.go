package openapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/openapi"
	"github.com/legalmfa/mfa/schema"
)

// load is the document as kin-openapi reads it, validated.
func load(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Document())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	// Examples, defaults and patterns (compiled as the validator will) are
	// checked too: kin-openapi's defaults.
	if err := doc.Validate(loader.Context, openapi3.EnableSchemaFormatValidation()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return doc
}

// raw is the document as plain JSON values, for walking it as written.
func raw(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(openapi.Document(), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOpenAPIDocumentValid: the document is OpenAPI 3.1, loads, and is
// valid, with one relative server so that a generated client works
// against any broker.
func TestOpenAPIDocumentValid(t *testing.T) {
	t.Parallel()
	doc := load(t)
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPIMajorMinor() != "3.1" {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Fatalf("servers %v, want the one relative server /", doc.Servers)
	}
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s %s: operationId %q missing or not unique", method, path, op.OperationID)
			}
			ids[op.OperationID] = true
		}
	}
}

// TestOpenAPIFormatted: the document is kept indented as encoding/json's
// Indent with two spaces writes it, ending in a newline, so that hand
// edits stay diffable and it is served as it reads.
func TestOpenAPIFormatted(t *testing.T) {
	t.Parallel()
	doc := openapi.Document()
	var compact, indented bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&indented, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	indented.WriteByte('\n')
	if !bytes.Equal(doc, indented.Bytes()) {
		a, b := strings.Split(string(doc), "\n"), strings.Split(indented.String(), "\n")
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("openapi.json is not indented as json.Indent(doc, \"\", \"  \") does: line %d is\n%s\nwant\n%s", i+1, a[i], b[i])
			}
		}
		t.Fatalf("openapi.json has %d lines, indented %d", len(a), len(b))
	}
}

func enumOf(t *testing.T, doc *openapi3.T, name string) []string {
	t.Helper()
	s := doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		t.Fatalf("no schema %s", name)
	}
	var out []string
	for _, v := range s.Value.Enum {
		out = append(out, v.(string))
	}
	return out
}

// TestOpenAPICodes: the outcome codes, hints and field names of the
// document are exactly package api's, in its order.
func TestOpenAPICodes(t *testing.T) {
	t.Parallel()
	doc := load(t)
	var codes []string
	for _, c := range api.Codes() {
		codes = append(codes, string(c))
	}
	if got := enumOf(t, doc, "Code"); !slices.Equal(got, codes) {
		t.Errorf("Code enum\n%q\nwant api.Codes()\n%q", got, codes)
	}
	var hints []string
	for _, h := range api.Hints() {
		hints = append(hints, string(h))
	}
	if got := enumOf(t, doc, "Hint"); !slices.Equal(got, hints) {
		t.Errorf("Hint enum %q, want api.Hints() %q", got, hints)
	}
	fields := enumOf(t, doc, "FieldName")
	for i := range api.NumFields {
		if !slices.Contains(fields, api.FieldName(i)) {
			t.Errorf("FieldName lacks the request field %s", api.FieldName(i))
		}
	}
	// The Code table in the schema's description gives each code's status.
	desc := doc.Components.Schemas["Code"].Value.Description
	for _, c := range api.Codes() {
		row := fmt.Sprintf("| `%s` | %d |", c, c.Status())
		if !strings.Contains(desc, row) {
			t.Errorf("the Code description lacks the row %q", row)
		}
	}
}

// TestOpenAPIStatuses: every answer the document describes narrows Code
// to codes whose status (api.Code.Status) is the answer's, and every code
// is some answer's.
func TestOpenAPIStatuses(t *testing.T) {
	t.Parallel()
	v := raw(t)
	components := v["components"].(map[string]any)
	named := components["responses"].(map[string]any)
	seen := map[string]bool{}
	check := func(where string, status int, resp map[string]any) {
		if r, ok := resp["$ref"].(string); ok {
			resp = named[strings.TrimPrefix(r, "#/components/responses/")].(map[string]any)
		}
		content, _ := resp["content"].(map[string]any)
		for media, mt := range content {
			s, _ := mt.(map[string]any)["schema"].(map[string]any)
			if s["$ref"] != "#/components/schemas/Response" {
				continue
			}
			code, _ := s["properties"].(map[string]any)["Code"].(map[string]any)
			var codes []any
			switch {
			case code["const"] != nil:
				codes = []any{code["const"]}
			case code["enum"] != nil:
				codes = code["enum"].([]any)
			default:
				t.Errorf("%s %d %s: Code is not narrowed to the codes of the status", where, status, media)
			}
			for _, c := range codes {
				c := api.Code(c.(string))
				seen[string(c)] = true
				if status != 0 && c.Status() != status {
					t.Errorf("%s %d %s: code %s has status %d", where, status, media, c, c.Status())
				}
			}
		}
	}
	for path, item := range v["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			op, ok := op.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			for status, resp := range op["responses"].(map[string]any) {
				n, err := strconv.Atoi(status)
				if err != nil {
					t.Errorf("%s %s: response %q is not a status", method, path, status)
					continue
				}
				check(method+" "+path, n, resp.(map[string]any))
			}
		}
	}
	// The responses every path may give (404, 405) are named only.
	for name, resp := range named {
		check("components.responses."+name, 0, resp.(map[string]any))
	}
	for _, c := range api.Codes() {
		if !seen[string(c)] {
			t.Errorf("no answer in the document has code %s", c)
		}
	}
	for name, want := range map[string]int{"NotFound": 404, "MethodNotAllowed": 405} {
		resp := named[name].(map[string]any)
		s := resp["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
		if c := api.Code(s["properties"].(map[string]any)["Code"].(map[string]any)["const"].(string)); c.Status() != want {
			t.Errorf("components.responses.%s: %s is %d", name, c, c.Status())
		}
	}
}

// TestOpenAPIOrderRequest: an order has the fields of an MFA request,
// with the same rules, and NumberMatching.
func TestOpenAPIOrderRequest(t *testing.T) {
	t.Parallel()
	schemas := raw(t)["components"].(map[string]any)["schemas"].(map[string]any)
	mfa, order := schemas["MFARequest"].(map[string]any), schemas["OrderRequest"].(map[string]any)
	mp, op := mfa["properties"].(map[string]any), order["properties"].(map[string]any)
	if _, ok := op["NumberMatching"]; !ok {
		t.Fatal("OrderRequest has no NumberMatching")
	}
	if _, ok := mp["NumberMatching"]; ok {
		t.Fatal("MFARequest has NumberMatching, which /MFA refuses")
	}
	op = maps.Clone(op)
	delete(op, "NumberMatching")
	for _, k := range []string{"required", "allOf", "additionalProperties", "xml", "type"} {
		if !jsonEqual(mfa[k], order[k]) {
			t.Errorf("MFARequest and OrderRequest differ in %s", k)
		}
	}
	if !jsonEqual(mp, op) {
		t.Error("OrderRequest's fields other than NumberMatching differ from MFARequest's")
	}
	// In the XML order: the JSON object keeps the document's order.
	var names []string
	for i := range api.NumFields {
		names = append(names, api.FieldName(i))
	}
	if got := keysInOrder(t, "OrderRequest"); !slices.Equal(got, names) {
		t.Errorf("OrderRequest's properties are in the order %v, want the XML order %v", got, names)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// keysInOrder lists a schema's properties in the order the document
// writes them.
func keysInOrder(t *testing.T, name string) []string {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(openapi.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc.Components.Schemas[name].Properties))
	var keys []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		default:
			if s, ok := tok.(string); ok && depth == 1 {
				keys = append(keys, s)
				// Skip the value.
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return keys
}

// requestRules checks JSON bodies against a request schema of the
// document and against the broker's decoder, which must agree: on every
// body the broker takes, the document must too, and the document refuses
// what the broker does except for the rules a schema cannot state
// (assigned country codes, Reason markdown, a JSON number such as 60.0).
type requestRules struct {
	schema  *openapi3.Schema
	decoder *encoding.Decoder
	order   bool
}

func newRequestRules(t *testing.T, doc *openapi3.T, name string) requestRules {
	t.Helper()
	xsd, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	max := int(*doc.Components.Schemas["Timeout"].Value.Max)
	return requestRules{schema: doc.Components.Schemas[name].Value, decoder: encoding.NewDecoder(xsd, max), order: name == "OrderRequest"}
}

func (r requestRules) doc(body string) error {
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return err
	}
	return r.schema.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.EnableFormatValidation())
}

func (r requestRules) broker(body string) error {
	req, err := r.decoder.DecodeBody(encoding.FormatJSON, "", []byte(body))
	if err != nil {
		return err
	}
	if req.NumberMatching != nil && !r.order {
		return fmt.Errorf("/MFA refuses NumberMatching")
	}
	return nil
}

// TestOpenAPIRequestRules: the document's field rules agree with the
// broker's decoder, body by body.
func TestOpenAPIRequestRules(t *testing.T) {
	t.Parallel()
	doc := load(t)
	sig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 64))
	now := "2026-11-22T13:45:00Z"
	const (
		both    = iota // both take it
		none           // both refuse it
		docOnly        // the document takes what the broker refuses: a rule no schema states
	)
	obj := func(extra string) string {
		return `{"PNR":"19791231-1234","COUNTRY":"SE","Timeout":60,"Reason":"Log in"` + extra + `}`
	}
	signed := func(legalID, signature, issued, nonce string) string {
		return obj(fmt.Sprintf(`,"LegalId":%s,"Signature":%s,"Issued":%s,"Nonce":%s`, legalID, signature, issued, nonce))
	}
	q := strconv.Quote
	rules := map[string]requestRules{"MFARequest": newRequestRules(t, doc, "MFARequest"), "OrderRequest": newRequestRules(t, doc, "OrderRequest")}
	cases := []struct {
		name string
		body string
		want int
		only string // "MFARequest" or "OrderRequest" when for one only
	}{
		{"unsigned", obj(""), both, ""},
		{"signed", signed(q("rp@legal.example"), q(sig), q(now), q("0123456789abcdef")), both, ""},
		{"signed, offset and fraction", signed(q("rp@legal.example"), q(sig), q("2026-11-22T14:45:00.123+01:00"), q("0123456789abcdef-_AZ")), both, ""},
		{"signed fields null", signed("null", "null", "null", "null"), both, ""},
		{"LegalId without Signature", obj(`,"LegalId":"rp@legal.example","Issued":"` + now + `","Nonce":"0123456789abcdef"`), none, ""},
		{"LegalId, Signature null", signed(q("rp@legal.example"), "null", q(now), q("0123456789abcdef")), none, ""},
		{"Signature without LegalId", obj(`,"Signature":` + q(sig)), none, ""},
		{"Nonce without LegalId", signed("null", "null", "null", q("0123456789abcdef")), none, ""},
		{"LegalId without @", signed(q("rp.legal.example"), q(sig), q(now), q("0123456789abcdef")), none, ""},
		{"LegalId ending in @", signed(q("rp@"), q(sig), q(now), q("0123456789abcdef")), none, ""},
		{"LegalId beginning with @", signed(q("@rp"), q(sig), q(now), q("0123456789abcdef")), none, ""},
		{"LegalId with $", signed(q("r$p@legal.example"), q(sig), q(now), q("0123456789abcdef")), none, ""},
		{"LegalId with a space", signed(q("r p@legal.example"), q(sig), q(now), q("0123456789abcdef")), none, ""},
		{"LegalId of 255", signed(q(strings.Repeat("a", 200)+"@"+strings.Repeat("b", 54)), q(sig), q(now), q("0123456789abcdef")), both, ""},
		{"LegalId of 256", signed(q(strings.Repeat("a", 200)+"@"+strings.Repeat("b", 55)), q(sig), q(now), q("0123456789abcdef")), none, ""},
		{"Signature of 63 bytes", signed(q("rp@legal.example"), q(base64.StdEncoding.EncodeToString(make([]byte, 63))), q(now), q("0123456789abcdef")), none, ""},
		{"Signature not canonical", signed(q("rp@legal.example"), q(sig[:85]+"B=="), q(now), q("0123456789abcdef")), none, ""},
		{"Signature unpadded", signed(q("rp@legal.example"), q(strings.TrimRight(sig, "=")), q(now), q("0123456789abcdef")), none, ""},
		{"Issued without zone", signed(q("rp@legal.example"), q(sig), q("2026-11-22T13:45:00"), q("0123456789abcdef")), none, ""},
		{"Issued with a space", signed(q("rp@legal.example"), q(sig), q("2026-11-22 13:45:00Z"), q("0123456789abcdef")), none, ""},
		{"Issued in month 13", signed(q("rp@legal.example"), q(sig), q("2026-13-22T13:45:00Z"), q("0123456789abcdef")), none, ""},
		{"Nonce of 15", signed(q("rp@legal.example"), q(sig), q(now), q("0123456789abcde")), none, ""},
		{"Nonce of 64", signed(q("rp@legal.example"), q(sig), q(now), q(strings.Repeat("n", 64))), both, ""},
		{"Nonce of 65", signed(q("rp@legal.example"), q(sig), q(now), q(strings.Repeat("n", 65))), none, ""},
		{"Nonce with a dot", signed(q("rp@legal.example"), q(sig), q(now), q("0123456789abcdef.")), none, ""},
		{"no PNR", `{"COUNTRY":"SE","Timeout":60,"Reason":"x"}`, none, ""},
		{"no Reason", `{"PNR":"1","COUNTRY":"SE","Timeout":60}`, none, ""},
		{"unknown field", obj(`,"Pnr":"1"`), none, ""},
		{"PNR empty", `{"PNR":"","COUNTRY":"SE","Timeout":60,"Reason":"x"}`, none, ""},
		{"PNR of 64", `{"PNR":"` + strings.Repeat("é", 64) + `","COUNTRY":"SE","Timeout":60,"Reason":"x"}`, both, ""},
		{"PNR of 65", `{"PNR":"` + strings.Repeat("é", 65) + `","COUNTRY":"SE","Timeout":60,"Reason":"x"}`, none, ""},
		{"PNR null", `{"PNR":null,"COUNTRY":"SE","Timeout":60,"Reason":"x"}`, none, ""},
		{"PNR a number", `{"PNR":197912311234,"COUNTRY":"SE","Timeout":60,"Reason":"x"}`, none, ""},
		{"COUNTRY in lower case", `{"PNR":"1","COUNTRY":"se","Timeout":60,"Reason":"x"}`, none, ""},
		{"COUNTRY of three", `{"PNR":"1","COUNTRY":"SWE","Timeout":60,"Reason":"x"}`, none, ""},
		{"COUNTRY not assigned", `{"PNR":"1","COUNTRY":"ZZ","Timeout":60,"Reason":"x"}`, docOnly, ""},
		{"Timeout 1", `{"PNR":"1","COUNTRY":"SE","Timeout":1,"Reason":"x"}`, both, ""},
		{"Timeout at the maximum", `{"PNR":"1","COUNTRY":"SE","Timeout":300,"Reason":"x"}`, both, ""},
		{"Timeout past the maximum", `{"PNR":"1","COUNTRY":"SE","Timeout":301,"Reason":"x"}`, none, ""},
		{"Timeout 0", `{"PNR":"1","COUNTRY":"SE","Timeout":0,"Reason":"x"}`, none, ""},
		{"Timeout negative", `{"PNR":"1","COUNTRY":"SE","Timeout":-5,"Reason":"x"}`, none, ""},
		{"Timeout a string", `{"PNR":"1","COUNTRY":"SE","Timeout":"60","Reason":"x"}`, none, ""},
		{"Timeout a fraction", `{"PNR":"1","COUNTRY":"SE","Timeout":60.5,"Reason":"x"}`, none, ""},
		{"Timeout 60.0", `{"PNR":"1","COUNTRY":"SE","Timeout":60.0,"Reason":"x"}`, docOnly, ""},
		{"Reason blank", `{"PNR":"1","COUNTRY":"SE","Timeout":60,"Reason":" \t\n\u00a0\u3000"}`, none, ""},
		{"Reason with line breaks", `{"PNR":"1","COUNTRY":"SE","Timeout":60,"Reason":"# Pay\r\n\r\n- **100 EUR**\n- to _Shop_\r"}`, both, ""},
		{"Reason of 2000", `{"PNR":"1","COUNTRY":"SE","Timeout":60,"Reason":"` + strings.Repeat("ö", 2000) + `"}`, both, ""},
		{"Reason of 2001", `{"PNR":"1","COUNTRY":"SE","Timeout":60,"Reason":"` + strings.Repeat("ö", 2001) + `"}`, none, ""},
		{"Reason with HTML", `{"PNR":"1","COUNTRY":"SE","Timeout":60,"Reason":"<b>x</b>"}`, docOnly, ""},
		{"Reason with a bidi override", `{"PNR":"1","COUNTRY":"SE","Timeout":60,"Reason":"Pay \u202e01 EUR"}`, none, ""},
		{"Reason with NUL", `{"PNR":"1","COUNTRY":"SE","Timeout":60,"Reason":"Pay\u0000"}`, none, ""},
		{"NumberMatching on /MFA", obj(`,"NumberMatching":true`), none, "MFARequest"},
		{"NumberMatching true", obj(`,"NumberMatching":true`), both, "OrderRequest"},
		{"NumberMatching false", obj(`,"NumberMatching":false`), both, "OrderRequest"},
		{"NumberMatching null", obj(`,"NumberMatching":null`), both, "OrderRequest"},
		{"NumberMatching a string", obj(`,"NumberMatching":"true"`), none, "OrderRequest"},
		{"signed order", obj(`,"LegalId":"rp@legal.example","Signature":` + q(sig) + `,"Issued":"` + now + `","Nonce":"0123456789abcdef","NumberMatching":true`), both, "OrderRequest"},
	}
	for _, c := range cases {
		for _, name := range []string{"MFARequest", "OrderRequest"} {
			if c.only != "" && c.only != name {
				continue
			}
			r := rules[name]
			docErr, brokerErr := r.doc(c.body), r.broker(c.body)
			want := map[int][2]bool{both: {true, true}, none: {false, false}, docOnly: {true, false}}[c.want]
			if (docErr == nil) != want[0] || (brokerErr == nil) != want[1] {
				t.Errorf("%s (%s): document %v, broker %v", c.name, name, docErr, brokerErr)
			}
		}
	}
}

// patternOf compiles a pattern of the document as the JSON Schema
// validator does (Go's regexp).
func patternOf(t *testing.T, s *openapi3.Schema) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(s.Pattern)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// TestOpenAPICharacters: the characters the document allows in PNR and
// Reason, and where, are exactly those the broker's decoder does, for
// every character of the Basic Multilingual Plane and some beyond.
func TestOpenAPICharacters(t *testing.T) {
	t.Parallel()
	doc := load(t)
	rules := newRequestRules(t, doc, "MFARequest")
	pnr := patternOf(t, doc.Components.Schemas["PNR"].Value)
	reason := patternOf(t, doc.Components.Schemas["Reason"].Value)
	value := patternOf(t, doc.Components.Schemas["Property"].Value.Properties["Value"].Value)
	body := func(pnr, reason string) string {
		b, _ := json.Marshal(map[string]any{"PNR": pnr, "COUNTRY": "SE", "Timeout": 60, "Reason": reason})
		return string(b)
	}
	faultOf := func(err error) string {
		if e, ok := err.(*api.Error); ok && e != nil {
			return e.Field
		}
		return ""
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r > 0x3100 && r < 0xfe00 || r > 0x10000 && r%0x101 != 0 || !utf8.ValidRune(r) {
			continue
		}
		c := string(r)
		for _, s := range []string{c, "1" + c, c + "1", "1" + c + "1"} {
			docOK := pnr.MatchString(s)
			brokerOK := faultOf(rules.broker(body(s, "x"))) != "PNR"
			if docOK != brokerOK {
				t.Errorf("PNR %q: document %v, broker %v", s, docOK, brokerOK)
			}
		}
		// Reason's characters: the broker's markdown rules come after, so
		// only bodies its markdown takes are compared.
		for _, s := range []string{c, "a" + c + "b"} {
			err := rules.broker(body("1", s))
			if faultOf(err) == "Reason" && strings.Contains(err.Error(), "markdown") {
				continue
			}
			docOK, brokerOK := reason.MatchString(s), err == nil
			if docOK != brokerOK {
				t.Errorf("Reason %q: document %v, broker %v (%v)", s, docOK, brokerOK, err)
			}
		}
		props := []identity.Property{{Name: "FIRST", Value: "a" + c + "b"}}
		if docOK, brokerOK := value.MatchString(props[0].Value), identity.ValidateProperties(props) == nil; docOK != brokerOK {
			t.Errorf("property value %q: document %v, broker %v", props[0].Value, docOK, brokerOK)
		}
	}
}
