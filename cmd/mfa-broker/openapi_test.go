package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/broker"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
	"github.com/legalmfa/mfa/openapi"
	"github.com/legalmfa/mfa/schema"
)

// The broker is held to its contract, the OpenAPI 3.1 document of package
// openapi, over real HTTP: every request these tests send and every answer
// the broker gives is validated against the document with kin-openapi,
// whose validator takes OpenAPI 3.1 as it is (JSON Schema 2020-12). JSON
// answers are validated against their schemas; XML answers too, read into
// the document's object model by the schema's xml names (and checked
// against MFA.xsd); text and HTML answers by their media type, status and
// patterns.

// contract is the OpenAPI document, loaded and routed.
type contract struct {
	doc    *openapi3.T
	router routers.Router

	mu sync.Mutex
	// answered is the statuses each operation answered, by operationId.
	answered map[string]map[int]bool
}

var registerDecoders sync.Once

func loadContract(t testing.TB) *contract {
	t.Helper()
	registerDecoders.Do(func() {
		// kin-openapi decodes JSON, forms and text; XML into the document's
		// object model, and HTML as text, are the broker's own.
		openapi3filter.RegisterBodyDecoder("application/xml", xmlBodyDecoder)
		openapi3filter.RegisterBodyDecoder("text/xml", xmlBodyDecoder)
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Document())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{doc: doc, router: router, answered: map[string]map[int]bool{}}
}

// record notes that an operation answered with a status.
func (k *contract) record(op *openapi3.Operation, status int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.answered[op.OperationID] == nil {
		k.answered[op.OperationID] = map[int]bool{}
	}
	k.answered[op.OperationID][status] = true
}

// coverage fails t unless every operation of the document was called,
// and logs the statuses the document gives that no call got.
func (k *contract) coverage(t *testing.T) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var missed []string
	for path, item := range k.doc.Paths.Map() {
		for method, op := range item.Operations() {
			got := k.answered[op.OperationID]
			if len(got) == 0 {
				t.Errorf("%s %s (%s) was never called", method, path, op.OperationID)
				continue
			}
			for status := range op.Responses.Map() {
				if n, _ := strconv.Atoi(status); !got[n] {
					missed = append(missed, op.OperationID+" "+status)
				}
			}
		}
	}
	slices.Sort(missed)
	t.Logf("answers the document gives that no call got (%d): %s", len(missed), strings.Join(missed, ", "))
}

// xmlBodyDecoder reads an XML body into the value the schema describes:
// the root element must be the one the schema's xml object names, valid
// against MFA.xsd; each child element is the property of its name,
// integers and booleans read as XML Schema writes them. A schema of a
// string (MFA.xsd itself) takes the text as it is.
func xmlBodyDecoder(body io.Reader, _ http.Header, s *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Value == nil || s.Value.Type.Is("string") {
		return string(data), nil
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, err
	}
	root := doc.Root()
	if root == nil {
		return nil, errors.New("no root element")
	}
	if x := s.Value.XML; x == nil || root.Tag != x.Name || root.NamespaceURI() != x.Namespace {
		return nil, fmt.Errorf("root element %s in namespace %q is not the one the schema names", root.Tag, root.NamespaceURI())
	}
	xsd, err := schema.Load()
	if err != nil {
		return nil, err
	}
	if err := xsd.Validate(root); err != nil {
		return nil, fmt.Errorf("not valid against MFA.xsd: %w", err)
	}
	return xmlObject(root, s.Value)
}

func xmlObject(e *etree.Element, s *openapi3.Schema) (map[string]any, error) {
	out := map[string]any{}
	for _, c := range e.ChildElements() {
		if _, twice := out[c.Tag]; twice {
			return nil, fmt.Errorf("element %s appears twice", c.Tag)
		}
		text := c.Text()
		p := s.Properties[c.Tag]
		switch {
		case p == nil || p.Value == nil:
			out[c.Tag] = text // the schema refuses it
		case p.Value.Type.Includes("object"):
			v, err := xmlObject(c, p.Value)
			if err != nil {
				return nil, err
			}
			out[c.Tag] = v
		case p.Value.Type.Includes("integer"):
			if n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64); err == nil {
				out[c.Tag] = float64(n)
			} else {
				out[c.Tag] = text
			}
		case p.Value.Type.Includes("boolean"):
			switch strings.TrimSpace(text) {
			case "true", "1":
				out[c.Tag] = true
			case "false", "0":
				out[c.Tag] = false
			default:
				out[c.Tag] = text
			}
		default:
			out[c.Tag] = text
		}
	}
	return out, nil
}

// authenticate is the MFA-Ed25519 security scheme as far as a request
// shows it: an Authorization header of its form.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "MFA-Ed25519" {
		return fmt.Errorf("unknown security scheme %s", in.SecuritySchemeName)
	}
	_, err := api.ParseOrderAccess(in.RequestValidationInput.Request.Header.Get("Authorization"))
	return err
}

// apiCall is one request to the broker.
type apiCall struct {
	method      string
	path        string // with the query
	contentType string
	accept      string
	auth        string
	body        string
}

// answer is what a call must get, and how the document must see it.
type answer struct {
	status int
	// code is the answer's Code; "" for an answer that is no Response.
	code string
	// media is the answer's media type; "" for none (204, HEAD).
	media string
	// docRefuses: the request breaks the document's rules (its fields,
	// parameters or media type), which the document's validator must say.
	docRefuses bool
	// noRoute is the router's error for a call the document has no
	// operation for: its answer is then one of the responses every path
	// may give (NotFound, MethodNotAllowed).
	noRoute error
}

// exchange is a call and its answer, validated.
type exchange struct {
	status int
	header http.Header
	body   []byte
	code   string
	// fields of a JSON answer.
	json map[string]any
}

func (e exchange) order(name string) string {
	o, _ := e.json["Order"].(map[string]any)
	s, _ := o[name].(string)
	return s
}

func (e exchange) evidence(name string) string {
	o, _ := e.json["Evidence"].(map[string]any)
	s, _ := o[name].(string)
	return s
}

func (c apiCall) request(ctx context.Context, base string) *http.Request {
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, base+c.path, body)
	if err != nil {
		panic(err)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.accept != "" {
		req.Header.Set("Accept", c.accept)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	return req
}

// do sends the call to the broker and checks request and answer against
// the document and against want.
func (k *contract) do(t *testing.T, tb *testBroker, c apiCall, want answer) exchange {
	t.Helper()
	ctx := context.Background()
	name := c.method + " " + c.path
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: authenticate}

	vreq := c.request(ctx, tb.srv.HTTPURL())
	route, params, routeErr := k.router.FindRoute(vreq)
	var in *openapi3filter.RequestValidationInput
	switch {
	case want.noRoute != nil:
		if !errors.Is(routeErr, want.noRoute) {
			t.Fatalf("%s: the document's router says %v, want %v", name, routeErr, want.noRoute)
		}
		// The answer is the response every path may give.
		resp := map[error]string{routers.ErrPathNotFound: "NotFound", routers.ErrMethodNotAllowed: "MethodNotAllowed"}[want.noRoute]
		op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(want.status, k.doc.Components.Responses[resp]))}
		in = &openapi3filter.RequestValidationInput{Request: vreq, Route: &routers.Route{Spec: k.doc, Path: c.path, Method: c.method, Operation: op}, Options: opts}
	case routeErr != nil:
		t.Fatalf("%s: the document has no operation for it: %v", name, routeErr)
	default:
		in = &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
		err := openapi3filter.ValidateRequest(ctx, in)
		if (err != nil) != want.docRefuses {
			t.Fatalf("%s: the document's validator says %v about the request, want refused %v", name, err, want.docRefuses)
		}
	}

	resp, err := tb.client.Do(c.request(ctx, tb.srv.HTTPURL()))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	ex := exchange{status: resp.StatusCode, header: resp.Header, body: body}
	if want.status != anyStatus && ex.status != want.status {
		t.Fatalf("%s: status %d, want %d: %s", name, ex.status, want.status, body)
	}
	media, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	if want.media == "" {
		if len(body) != 0 {
			t.Fatalf("%s: a body, want none: %s", name, body)
		}
	} else if media != want.media {
		t.Fatalf("%s: Content-Type %q, want %s: %s", name, resp.Header.Get("Content-Type"), want.media, body)
	}

	// The status must be one the document gives the operation (for HEAD
	// too, whose answers kin-openapi does not look into), and the answer
	// must be as the document says.
	if in.Route.Operation.Responses.Status(ex.status) == nil {
		t.Fatalf("%s: status %d is not in the document", name, ex.status)
	}
	if want.noRoute == nil {
		k.record(in.Route.Operation, ex.status)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.status, Header: resp.Header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Fatalf("%s: the answer is not as the document says: %v\n%s", name, err, body)
	}
	if want.media != "" {
		ct := in.Route.Operation.Responses.Status(ex.status).Value.Content.Get(resp.Header.Get("Content-Type"))
		if ct == nil {
			t.Fatalf("%s: the document has no %s answer for %d", name, media, ex.status)
		}
	}

	ex.code = codeOf(t, media, body)
	if want.code != anyCode && ex.code != want.code {
		t.Fatalf("%s: Code %q, want %q: %s", name, ex.code, want.code, body)
	}
	if media == "application/json" && len(body) > 0 {
		if err := json.Unmarshal(body, &ex.json); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return ex
}

// codeOf reads the Code of an answer in any format; "" when it has none.
func codeOf(t *testing.T, media string, body []byte) string {
	t.Helper()
	switch media {
	case "application/json":
		var v struct{ Code string }
		if json.Unmarshal(body, &v) == nil {
			return v.Code
		}
	case "application/xml", "text/xml":
		doc := etree.NewDocument()
		if doc.ReadFromBytes(body) == nil && doc.Root() != nil && doc.Root().Tag == "MFAResponse" {
			if c := doc.Root().SelectElement("Code"); c != nil {
				return c.Text()
			}
		}
	case "text/plain":
		if code, ok := strings.CutPrefix(string(body), "Code: "); ok {
			code, _, _ = strings.Cut(code, "\n")
			return code
		}
	case "text/html":
		for _, c := range api.Codes() {
			if bytes.Contains(body, []byte(`<dd class="mono">`+string(c)+`</dd>`)) {
				return string(c)
			}
		}
	}
	return ""
}

// forTest is the broker as seen from a subtest: what goes wrong there
// fails the subtest, and what it starts stops with it.
func (tb *testBroker) forTest(t testing.TB) *testBroker {
	c := *tb
	c.t = t
	return &c
}

func (m mfaBody) json() string { _, b := m.encode("json"); return b }
func (m mfaBody) xml() string  { _, b := m.encode("xml"); return b }
func (m mfaBody) form() string { _, b := m.encode("form"); return b }

const (
	mediaJSON = "application/json"
	mediaForm = "application/x-www-form-urlencoded"
	mediaText = "text/plain"
	mediaHTML = "text/html"
	mediaXML  = "application/xml"
	textXML   = "text/xml"
)

// TestOpenAPILive: every operation of the document, and every answer the
// tests can bring about, over real HTTP against a real broker, validated
// against the document.
func TestOpenAPILive(t *testing.T) {
	t.Parallel()
	k := loadContract(t)
	// After every subtest: every operation must have been called.
	t.Cleanup(func() { k.coverage(t) })
	tb := startBroker(t, func(c *config) { c.IdentityRate = rateUnlimited() })

	t.Run("resources", func(t *testing.T) {
		t.Parallel()
		tb := tb.forTest(t)
		for _, c := range []struct {
			call apiCall
			want answer
		}{
			{apiCall{method: "GET", path: "/"}, answer{status: 200, media: mediaText}},
			{apiCall{method: "GET", path: "/", accept: "text/html,application/xhtml+xml,*/*;q=0.8"}, answer{status: 200, media: mediaHTML}},
			{apiCall{method: "GET", path: "/", accept: "image/png"}, answer{status: 200, media: mediaText}},
			{apiCall{method: "HEAD", path: "/"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/MFA"}, answer{status: 200, media: mediaHTML}},
			{apiCall{method: "HEAD", path: "/MFA"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/Schema/MFA.xsd"}, answer{status: 200, media: mediaXML}},
			{apiCall{method: "HEAD", path: "/Schema/MFA.xsd"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/Broker"}, answer{status: 200, media: mediaJSON}},
			{apiCall{method: "HEAD", path: "/Broker"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/healthz"}, answer{status: 200, media: mediaText}},
			{apiCall{method: "HEAD", path: "/healthz"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/readyz"}, answer{status: 200, media: mediaText}},
			{apiCall{method: "HEAD", path: "/readyz"}, answer{status: 200}},
			{apiCall{method: "HEAD", path: "/openapi.json"}, answer{status: 200}},
			// Discovery, for other brokers and OCM servers.
			{apiCall{method: "GET", path: "/.well-known/ocm"}, answer{status: 200, media: mediaJSON}},
			{apiCall{method: "GET", path: "/.well-known/ocm", accept: "application/xml"}, answer{status: 200, media: mediaJSON}},
			{apiCall{method: "HEAD", path: "/.well-known/ocm"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/ocm-provider"}, answer{status: 200, media: mediaJSON}},
			{apiCall{method: "HEAD", path: "/ocm-provider"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/mfa-capable"}, answer{status: 200, media: mediaText}},
			{apiCall{method: "HEAD", path: "/mfa-capable"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/ocm/mfa-capable"}, answer{status: 200, media: mediaText}},
			{apiCall{method: "HEAD", path: "/ocm/mfa-capable"}, answer{status: 200}},
			{apiCall{method: "GET", path: "/.well-known/mfa-federation"}, answer{status: 200, media: mediaJSON}},
			{apiCall{method: "HEAD", path: "/.well-known/mfa-federation"}, answer{status: 200}},
			// The OCM endPoint itself is no resource: no OCM share API here.
			{apiCall{method: "GET", path: "/ocm"}, answer{status: 404, code: "not-found", media: mediaJSON, noRoute: routers.ErrPathNotFound}},
			{apiCall{method: "POST", path: "/ocm/shares", contentType: mediaJSON, body: "{}"}, answer{status: 404, code: "not-found", media: mediaJSON, noRoute: routers.ErrPathNotFound}},
			{apiCall{method: "POST", path: "/.well-known/ocm", contentType: mediaJSON, body: "{}"}, answer{status: 405, code: "method-not-allowed", media: mediaJSON, noRoute: routers.ErrMethodNotAllowed}},
			{apiCall{method: "GET", path: "/Identities/nobody@legal.broker.test"}, answer{status: 404, code: "not-found", media: mediaJSON}},
			{apiCall{method: "GET", path: "/Identities/nobody@legal.broker.test", accept: "text/plain"}, answer{status: 404, code: "not-found", media: mediaText}},
			{apiCall{method: "HEAD", path: "/Identities/nobody@legal.broker.test"}, answer{status: 404}},
			// No such resource, no such method: the answers every path may give.
			{apiCall{method: "GET", path: "/nothing"}, answer{status: 404, code: "not-found", media: mediaJSON, noRoute: routers.ErrPathNotFound}},
			{apiCall{method: "GET", path: "/Orders/", accept: "application/xml"}, answer{status: 404, code: "not-found", media: mediaXML, noRoute: routers.ErrPathNotFound}},
			{apiCall{method: "PUT", path: "/MFA", contentType: mediaJSON, body: "{}"}, answer{status: 405, code: "method-not-allowed", media: mediaJSON, noRoute: routers.ErrMethodNotAllowed}},
			{apiCall{method: "GET", path: "/Orders", accept: "text/plain"}, answer{status: 405, code: "method-not-allowed", media: mediaText, noRoute: routers.ErrMethodNotAllowed}},
			{apiCall{method: "DELETE", path: "/Broker", accept: "text/xml"}, answer{status: 405, code: "method-not-allowed", media: textXML, noRoute: routers.ErrMethodNotAllowed}},
		} {
			k.do(t, tb, c.call, c.want)
		}
		// The document itself: byte for byte, cached, whatever is accepted.
		for _, accept := range []string{"", "application/xml"} {
			ex := k.do(t, tb, apiCall{method: "GET", path: "/openapi.json", accept: accept}, answer{status: 200, media: mediaJSON})
			if !bytes.Equal(ex.body, openapi.Document()) || ex.header.Get("Content-Type") != "application/json" ||
				ex.header.Get("Cache-Control") != "public, max-age=3600" {
				t.Fatalf("GET /openapi.json: %v, %d bytes", ex.header, len(ex.body))
			}
		}
		if ex := k.do(t, tb, apiCall{method: "PUT", path: "/Broker"}, answer{status: 405, code: "method-not-allowed", media: mediaJSON, noRoute: routers.ErrMethodNotAllowed}); ex.header.Get("Allow") != "GET, HEAD" {
			t.Fatalf("Allow %q", ex.header.Get("Allow"))
		}
	})

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		tb := tb.forTest(t)
		rpID, rpKey := tb.requester()
		ok := mfaBody{PNR: "19600101-0001", COUNTRY: "SE", Timeout: 30, Reason: "Refused"}
		signed := func(tweak func(*mfaBody)) string {
			m := ok
			m.LegalId = rpID
			sign(rpKey, &m)
			tweak(&m)
			return m.json()
		}
		outOfOrder := `<MFA xmlns="` + api.XMLNamespace + `"><COUNTRY>SE</COUNTRY><PNR>1</PNR><Timeout>30</Timeout><Reason>x</Reason></MFA>`
		wrongRoot := `<Request xmlns="` + api.XMLNamespace + `"><PNR>1</PNR></Request>`
		for _, c := range []struct {
			name string
			call apiCall
			want answer
		}{
			{"malformed", apiCall{body: `{"PNR":`, contentType: mediaJSON}, answer{status: 400, code: "malformed", media: mediaJSON, docRefuses: true}},
			{"empty", apiCall{body: "", contentType: mediaJSON}, answer{status: 400, code: "malformed", media: mediaJSON, docRefuses: true}},
			{"schema-violation", apiCall{body: outOfOrder, contentType: "text/xml; charset=utf-8"}, answer{status: 400, code: "schema-violation", media: textXML, docRefuses: true}},
			{"wrong root", apiCall{body: wrongRoot, contentType: mediaXML}, answer{status: 400, code: "schema-violation", media: mediaXML, docRefuses: true}},
			{"missing-field", apiCall{body: `{"PNR":"1","COUNTRY":"SE","Timeout":30}`, contentType: mediaJSON}, answer{status: 400, code: "missing-field", media: mediaJSON, docRefuses: true}},
			{"unknown-field", apiCall{body: `{"PNR":"1","COUNTRY":"SE","Timeout":30,"Reason":"x","Extra":"y"}`, contentType: mediaJSON}, answer{status: 400, code: "unknown-field", media: mediaJSON, docRefuses: true}},
			// JSON objects with a key twice are beyond a schema: the last one counts there.
			{"duplicate-field", apiCall{body: `{"PNR":"1","PNR":"2","COUNTRY":"SE","Timeout":30,"Reason":"x"}`, contentType: mediaJSON}, answer{status: 400, code: "duplicate-field", media: mediaJSON}},
			{"invalid-field, form, text", apiCall{body: "PNR=1&COUNTRY=se&Timeout=30&Reason=x", contentType: mediaForm, accept: "text/plain"}, answer{status: 400, code: "invalid-field", media: mediaText, docRefuses: true}},
			{"invalid-field, Timeout 0", apiCall{body: `{"PNR":"1","COUNTRY":"SE","Timeout":0,"Reason":"x"}`, contentType: mediaJSON, accept: "text/html"}, answer{status: 400, code: "invalid-field", media: mediaHTML, docRefuses: true}},
			{"invalid-field, Reason markdown", apiCall{body: `{"PNR":"1","COUNTRY":"SE","Timeout":30,"Reason":"<b>x</b>"}`, contentType: mediaJSON}, answer{status: 400, code: "invalid-field", media: mediaJSON}},
			{"NumberMatching on /MFA", apiCall{body: `{"PNR":"1","COUNTRY":"SE","Timeout":30,"Reason":"x","NumberMatching":true}`, contentType: mediaJSON}, answer{status: 400, code: "unknown-field", media: mediaJSON, docRefuses: true}},
			{"unsupported-media-type", apiCall{body: "PNR,COUNTRY\n1,SE\n", contentType: "text/csv"}, answer{status: 415, code: "unsupported-media-type", media: mediaJSON, docRefuses: true}},
			{"no Content-Type", apiCall{body: ok.json()}, answer{status: 415, code: "unsupported-media-type", media: mediaJSON, docRefuses: true}},
			{"body-too-large", apiCall{body: `{"PNR":"1","COUNTRY":"SE","Timeout":30,"Reason":"` + strings.Repeat("x", 70<<10) + `"}`, contentType: mediaJSON}, answer{status: 413, code: "body-too-large", media: mediaJSON, docRefuses: true}},
			{"not-acceptable", apiCall{body: ok.json(), contentType: mediaJSON, accept: "image/png"}, answer{status: 406, code: "not-acceptable", media: mediaJSON}},
			{"unknown-person, XML", apiCall{body: ok.xml(), contentType: "text/xml; charset=utf-8", accept: "application/xml"}, answer{status: 404, code: "unknown-person", media: mediaXML}},
			{"unknown-person, form", apiCall{body: ok.form(), contentType: mediaForm}, answer{status: 404, code: "unknown-person", media: mediaJSON}},
			{"invalid-signature", apiCall{body: signed(func(m *mfaBody) { m.Reason += "!" }), contentType: mediaJSON}, answer{status: 401, code: "invalid-signature", media: mediaJSON}},
			{"unknown-requester", apiCall{body: signed(func(m *mfaBody) { m.LegalId = "nobody@legal.broker.test" }), contentType: mediaJSON}, answer{status: 401, code: "unknown-requester", media: mediaJSON}},
			{"signature-expired", apiCall{body: func() string {
				m := ok
				m.LegalId, m.Issued = rpID, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
				sign(rpKey, &m)
				return m.json()
			}(), contentType: mediaJSON, accept: "text/plain"}, answer{status: 401, code: "signature-expired", media: mediaText}},
		} {
			for _, path := range []string{"/MFA", "/Orders"} {
				call := c.call
				call.method, call.path = "POST", path
				want := c.want
				if c.name == "NumberMatching on /MFA" && path == "/Orders" {
					want = answer{status: 404, code: "unknown-person", media: mediaJSON}
				}
				ex := k.do(t, tb, call, want)
				if want.status == 401 && ex.header.Get("WWW-Authenticate") != `MFA-Signature realm="MFA"` {
					t.Fatalf("%s %s: WWW-Authenticate %q", c.name, path, ex.header.Get("WWW-Authenticate"))
				}
				if ex.header.Get("Server-Timing") == "" {
					t.Fatalf("%s %s: no Server-Timing", c.name, path)
				}
			}
		}
	})

	t.Run("outcomes", func(t *testing.T) {
		t.Parallel()
		tb := tb.forTest(t)
		tb.person("19600202-0001", "SE", notifytest.Always(notify.Approve))
		m := mfaBody{PNR: "19600202-0001", COUNTRY: "SE", Timeout: 30, Reason: "Log in to **Example Bank**"}
		for _, c := range []struct {
			call apiCall
			want answer
		}{
			{apiCall{body: m.json(), contentType: mediaJSON}, answer{status: 200, code: "approved", media: mediaJSON}},
			{apiCall{body: m.xml(), contentType: "text/xml; charset=utf-8"}, answer{status: 200, code: "approved", media: textXML}},
			{apiCall{body: m.form(), contentType: mediaForm, accept: "text/plain"}, answer{status: 200, code: "approved", media: mediaText}},
			{apiCall{body: m.form(), contentType: mediaForm, accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, answer{status: 200, code: "approved", media: mediaHTML}},
			{apiCall{body: m.json(), contentType: mediaJSON, accept: "application/xml"}, answer{status: 200, code: "approved", media: mediaXML}},
		} {
			c.call.method, c.call.path = "POST", "/MFA"
			ex := k.do(t, tb, c.call, c.want)
			if !strings.Contains(ex.header.Get("Server-Timing"), "device;") {
				t.Fatalf("Server-Timing %q", ex.header.Get("Server-Timing"))
			}
		}
		// A signed request approved, then replayed.
		rpID, rpKey := tb.requester()
		s := m
		s.LegalId = rpID
		sign(rpKey, &s)
		signedXML := apiCall{method: "POST", path: "/MFA", body: s.xml(), contentType: "application/xml"}
		k.do(t, tb, signedXML, answer{status: 200, code: "approved", media: mediaXML})
		k.do(t, tb, signedXML, answer{status: 401, code: "replayed", media: mediaXML})

		tb.person("19600202-0002", "SE", notifytest.Always(notify.Deny))
		denied := k.do(t, tb, apiCall{method: "POST", path: "/MFA", body: mfaBody{PNR: "19600202-0002", COUNTRY: "SE", Timeout: 30, Reason: "Deny"}.json(), contentType: mediaJSON},
			answer{status: 403, code: "denied", media: mediaJSON})
		if denied.evidence("Decision") != "deny" {
			t.Fatalf("denied: %s", denied.body)
		}

		tb.person("19600202-0003", "SE", notifytest.Always(notify.NotMe))
		notMe := mfaBody{PNR: "19600202-0003", COUNTRY: "SE", Timeout: 30, Reason: "Not me"}
		k.do(t, tb, apiCall{method: "POST", path: "/MFA", body: notMe.json(), contentType: mediaJSON}, answer{status: 403, code: "denied-not-me", media: mediaJSON})
		for _, path := range []string{"/MFA", "/Orders"} {
			ex := k.do(t, tb, apiCall{method: "POST", path: path, body: notMe.json(), contentType: mediaJSON}, answer{status: 403, code: "blocked", media: mediaJSON})
			if ex.header.Get("Retry-After") == "" {
				t.Fatalf("blocked without Retry-After: %v", ex.header)
			}
		}

		tb.person("19600202-0004", "SE", nil)
		k.do(t, tb, apiCall{method: "POST", path: "/MFA", body: mfaBody{PNR: "19600202-0004", COUNTRY: "SE", Timeout: 1, Reason: "Away"}.json(), contentType: mediaJSON, accept: "text/plain"},
			answer{status: 408, code: "timeout", media: mediaText})
	})

	t.Run("superseded", func(t *testing.T) {
		t.Parallel()
		tb := tb.forTest(t)
		d := tb.person("19600303-0001", "SE", nil)
		m := mfaBody{PNR: "19600303-0001", COUNTRY: "SE", Timeout: 30, Reason: "First"}
		done := make(chan exchange, 1)
		first := apiCall{method: "POST", path: "/MFA", contentType: mediaJSON, body: m.json()}
		go func() {
			// Not through k.do, which may fail the test: this is another goroutine.
			var ex exchange
			if resp, err := tb.client.Do(first.request(context.Background(), tb.srv.HTTPURL())); err == nil {
				ex.body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				ex.status, ex.header = resp.StatusCode, resp.Header
			}
			done <- ex
		}()
		d.NextPrompt()
		m.Reason = "Second"
		newer := k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: m.json(), contentType: mediaJSON}, answer{status: 201, code: "order-created", media: mediaJSON})
		k.validateAnswer(t, tb, first, <-done, 409, "superseded")
		k.do(t, tb, apiCall{method: "DELETE", path: "/Orders/" + newer.order("Ref")}, answer{status: 204})
	})

	t.Run("orders", func(t *testing.T) {
		t.Parallel()
		tb := tb.forTest(t)
		d := tb.person("19600404-0001", "SE", notifytest.Always(notify.Approve))
		away := tb.person("19600404-0002", "SE", nil)
		tb.person("19600404-0003", "SE", notifytest.Always(notify.Deny))

		// Pending, collected in every format, long-polled, cancelled.
		m := mfaBody{PNR: "19600404-0002", COUNTRY: "SE", Timeout: 30, Reason: "Pending"}
		placed := k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: m.json(), contentType: mediaJSON}, answer{status: 201, code: "order-created", media: mediaJSON})
		ref := placed.order("Ref")
		if loc := placed.header.Get("Location"); loc != tb.url("/Orders/"+ref) {
			t.Fatalf("Location %q", loc)
		}
		away.NextPrompt()
		for _, accept := range []string{"", "application/xml", "text/xml", "text/plain", "text/html"} {
			media := map[string]string{"": mediaJSON}[accept]
			if media == "" {
				media, _, _ = strings.Cut(accept, ",")
			}
			k.do(t, tb, apiCall{method: "GET", path: "/Orders/" + ref, accept: accept}, answer{status: 409, code: "pending", media: media})
		}
		// The device has it: a collect that saw "pushed" answers at once.
		waited := k.do(t, tb, apiCall{method: "GET", path: "/Orders/" + ref + "?wait=30&hint=pushed"}, answer{status: 409, code: "pending", media: mediaJSON})
		hint := waited.order("Hint")
		start := time.Now()
		k.do(t, tb, apiCall{method: "GET", path: "/Orders/" + ref + "?wait=1&hint=" + hint}, answer{status: 409, code: "pending", media: mediaJSON})
		if time.Since(start) < time.Second {
			t.Fatalf("wait=1 answered after %v", time.Since(start))
		}
		k.do(t, tb, apiCall{method: "HEAD", path: "/Orders/" + ref}, answer{status: 409})
		for _, c := range []struct {
			query string
			want  answer
		}{
			{"?wait=31", answer{status: 400, code: "invalid-field", media: mediaJSON, docRefuses: true}},
			{"?wait=abc", answer{status: 400, code: "invalid-field", media: mediaJSON, docRefuses: true}},
			{"?hint=seen", answer{status: 400, code: "invalid-field", media: mediaJSON, docRefuses: true}},
			// Beyond what the document can say: canonical decimal, and no
			// query parameter but wait and hint.
			{"?wait=05", answer{status: 400, code: "invalid-field", media: mediaJSON}},
			{"?pnr=19600404-0002", answer{status: 400, code: "unknown-field", media: mediaJSON}},
		} {
			ex := k.do(t, tb, apiCall{method: "GET", path: "/Orders/" + ref + c.query}, c.want)
			if strings.Contains(string(ex.body), "19600404") {
				t.Fatalf("the answer repeats the PNR: %s", ex.body)
			}
		}
		k.do(t, tb, apiCall{method: "GET", path: "/Orders/" + ref, accept: "image/png"}, answer{status: 406, code: "not-acceptable", media: mediaJSON})
		k.do(t, tb, apiCall{method: "DELETE", path: "/Orders/" + ref, accept: "image/png"}, answer{status: 406, code: "not-acceptable", media: mediaJSON})
		k.do(t, tb, apiCall{method: "DELETE", path: "/Orders/" + ref}, answer{status: 204})
		k.do(t, tb, apiCall{method: "DELETE", path: "/Orders/" + ref}, answer{status: 204})
		k.do(t, tb, apiCall{method: "GET", path: "/Orders/" + ref, accept: "text/xml"}, answer{status: 409, code: "cancelled", media: textXML})

		// Superseded, and timed out.
		m.Reason = "Superseded"
		first := k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: m.xml(), contentType: "text/xml"}, answer{status: 201, code: "order-created", media: textXML})
		firstRef := orderRefOf(t, first.body)
		away.NextPrompt()
		m.Reason, m.Timeout = "Timed out", 1
		second := k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: m.form(), contentType: mediaForm, accept: "text/plain"}, answer{status: 201, code: "order-created", media: mediaText})
		secondRef := textField(second.body, "Order.Ref")
		collectEnded(t, k, tb, firstRef, "", answer{status: 409, code: "superseded", media: mediaJSON})
		k.do(t, tb, apiCall{method: "DELETE", path: "/Orders/" + firstRef}, answer{status: 409, code: "conflict", media: mediaJSON})
		collectEnded(t, k, tb, secondRef, "", answer{status: 408, code: "timeout", media: mediaJSON})

		// Approved with number matching, then the wrong number.
		nm := mfaBody{PNR: "19600404-0001", COUNTRY: "SE", Timeout: 30, Reason: "Match", NumberMatching: "true"}
		o := k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: nm.form(), contentType: mediaForm}, answer{status: 201, code: "order-created", media: mediaJSON})
		d.Pick(o.order("NumberMatch"))
		got := collectEnded(t, k, tb, o.order("Ref"), "", answer{status: 200, code: "approved", media: mediaJSON})
		if got.evidence("Match") != o.order("NumberMatch") || got.order("NumberMatch") != o.order("NumberMatch") {
			t.Fatalf("approved with number matching: %s", got.body)
		}
		d.NextPrompt()
		k.do(t, tb, apiCall{method: "DELETE", path: "/Orders/" + o.order("Ref")}, answer{status: 409, code: "conflict", media: mediaJSON})
		o = k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: nm.json(), contentType: mediaJSON}, answer{status: 201, code: "order-created", media: mediaJSON})
		p := d.NextPrompt()
		for _, c := range p.Push.MatchChoices {
			if c != o.order("NumberMatch") {
				d.Pick(c)
				break
			}
		}
		collectEnded(t, k, tb, o.order("Ref"), "application/xml", answer{status: 403, code: "wrong-number", media: mediaXML})

		// Denied.
		o = k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: mfaBody{PNR: "19600404-0003", COUNTRY: "SE", Timeout: 30, Reason: "Deny"}.json(), contentType: mediaJSON}, answer{status: 201, code: "order-created", media: mediaJSON})
		collectEnded(t, k, tb, o.order("Ref"), "text/plain", answer{status: 403, code: "denied", media: mediaText})

		// Refusals of their own.
		k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: strings.Replace(nm.form(), "NumberMatching=true", "NumberMatching=maybe", 1), contentType: mediaForm},
			answer{status: 400, code: "invalid-field", media: mediaJSON, docRefuses: true})
		for _, method := range []string{"GET", "DELETE", "HEAD"} {
			want := answer{status: 404, code: "not-found", media: mediaJSON}
			if method == "HEAD" {
				want = answer{status: 404}
			}
			k.do(t, tb, apiCall{method: method, path: "/Orders/" + strings.Repeat("a", 26)}, want)
			want.docRefuses = true // not of a reference's form
			k.do(t, tb, apiCall{method: method, path: "/Orders/19600404000119600404000100"}, want)
		}
	})

	t.Run("signed orders", func(t *testing.T) {
		t.Parallel()
		tb := tb.forTest(t)
		tb.person("19600505-0001", "SE", nil)
		rpID, rpKey := tb.requester()
		m := mfaBody{PNR: "19600505-0001", COUNTRY: "SE", Timeout: 30, Reason: "Signed order", LegalId: rpID, NumberMatching: "true"}
		sign(rpKey, &m)
		o := k.do(t, tb, apiCall{method: "POST", path: "/Orders", body: m.xml(), contentType: mediaXML, accept: "application/json"}, answer{status: 201, code: "order-created", media: mediaJSON})
		ref := o.order("Ref")
		access := func(method string) string { return api.SignOrderAccess(method, ref, rpID, rpKey, time.Now()).Header() }
		for _, auth := range []string{"", "Bearer " + ref, access("DELETE")} {
			for _, method := range []string{"GET", "DELETE"} {
				if method == "DELETE" && auth == access("DELETE") {
					continue
				}
				ex := k.do(t, tb, apiCall{method: method, path: "/Orders/" + ref, auth: auth}, answer{status: 401, code: "invalid-signature", media: mediaJSON})
				if ex.header.Get("WWW-Authenticate") != `MFA-Ed25519 realm="MFA"` {
					t.Fatalf("WWW-Authenticate %q", ex.header.Get("WWW-Authenticate"))
				}
			}
		}
		k.do(t, tb, apiCall{method: "HEAD", path: "/Orders/" + ref}, answer{status: 401})
		k.do(t, tb, apiCall{method: "GET", path: "/Orders/" + ref, auth: access("GET")}, answer{status: 409, code: "pending", media: mediaJSON})
		k.do(t, tb, apiCall{method: "HEAD", path: "/Orders/" + ref, auth: access("GET")}, answer{status: 409})
		k.do(t, tb, apiCall{method: "DELETE", path: "/Orders/" + ref, auth: access("DELETE")}, answer{status: 204})
	})

	t.Run("identities", func(t *testing.T) {
		t.Parallel()
		tb := tb.forTest(t)
		key, err := identity.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		props := []identity.Property{{Name: "ORGNAME", Value: "Contract Tests AB"}}
		app := identity.NewApplication(tb.info.Domain, props, key)
		body, _ := json.Marshal(api.ApplicationRequest{Properties: props, PublicKey: identity.EncodePublicKey(app.PublicKey), Proof: base64.StdEncoding.EncodeToString(app.Proof)})
		apply := apiCall{method: "POST", path: "/Identities", contentType: mediaJSON, body: string(body)}
		ex := k.do(t, tb, apply, answer{status: 201, media: mediaJSON})
		var created api.ApplicationResponse
		if err := json.Unmarshal(ex.body, &created); err != nil || created.Identity.State != "Created" {
			t.Fatalf("applied: %v %s", err, ex.body)
		}
		if loc := ex.header.Get("Location"); loc != tb.url("/Identities/"+created.Identity.ID) {
			t.Fatalf("Location %q", loc)
		}
		k.do(t, tb, apiCall{method: "GET", path: "/Identities/" + created.Identity.ID}, answer{status: 200, media: mediaJSON})
		k.do(t, tb, apiCall{method: "HEAD", path: "/Identities/" + created.Identity.ID}, answer{status: 200})
		tb.approve(created.Identity.ID)
		if ex := k.do(t, tb, apiCall{method: "GET", path: "/Identities/" + created.Identity.ID}, answer{status: 200, media: mediaJSON}); ex.json["ValidTo"] == nil {
			t.Fatalf("approved: %s", ex.body)
		}
		k.do(t, tb, apply, answer{status: 409, code: "conflict", media: mediaJSON})

		badProof := strings.Replace(string(body), "Contract Tests AB", "Contract Tests AC", 1)
		for _, c := range []struct {
			call apiCall
			want answer
		}{
			{apiCall{contentType: mediaText, body: string(body)}, answer{status: 415, code: "unsupported-media-type", media: mediaJSON, docRefuses: true}},
			{apiCall{contentType: mediaJSON, body: `{"Properties":`}, answer{status: 400, code: "malformed", media: mediaJSON, docRefuses: true}},
			{apiCall{contentType: mediaJSON, body: `{"Properties":[],"PublicKey":"","Proof":"","Extra":1}`, accept: "text/plain"}, answer{status: 400, code: "malformed", media: mediaText, docRefuses: true}},
			{apiCall{contentType: mediaJSON, body: badProof}, answer{status: 400, code: "invalid-field", media: mediaJSON}},
			{apiCall{contentType: mediaJSON, body: `{"Properties":[{"Name":"X","Value":"` + strings.Repeat("x", 40<<10) + `"}]}`}, answer{status: 413, code: "body-too-large", media: mediaJSON, docRefuses: true}},
		} {
			c.call.method, c.call.path = "POST", "/Identities"
			k.do(t, tb, c.call, c.want)
		}
	})
}

// orderRefOf reads Order.Ref from an XML answer.
func orderRefOf(t *testing.T, body []byte) string {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(body); err != nil {
		t.Fatal(err)
	}
	if e := doc.FindElement("/MFAResponse/Order/Ref"); e != nil {
		return e.Text()
	}
	t.Fatalf("no Order.Ref in %s", body)
	return ""
}

// textField reads a field of a text/plain answer.
func textField(body []byte, name string) string {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+": "); ok {
			return v
		}
	}
	return ""
}

// collectEnded long-polls an order until it has ended, validating every
// collect, and returns the last.
func collectEnded(t *testing.T, k *contract, tb *testBroker, ref, accept string, want answer) exchange {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	hint := ""
	for {
		path := "/Orders/" + ref + "?wait=30"
		if hint != "" {
			path += "&hint=" + hint
		}
		// Pending answers are asked for in JSON, to read their hint.
		probe := k.do(t, tb, apiCall{method: "GET", path: path}, answer{status: anyStatus, code: anyCode, media: mediaJSON})
		if probe.code != "pending" {
			return k.do(t, tb, apiCall{method: "GET", path: "/Orders/" + ref, accept: accept}, want)
		}
		hint = probe.order("Hint")
		if time.Now().After(deadline) {
			t.Fatalf("order %s still pending", ref)
		}
	}
}

// anyStatus and anyCode let a call take whatever the broker answers, as
// long as the document allows it.
const (
	anyStatus = -1
	anyCode   = "*"
)

// validateAnswer validates an answer got outside do.
func (k *contract) validateAnswer(t *testing.T, tb *testBroker, c apiCall, ex exchange, status int, code string) {
	t.Helper()
	req := c.request(context.Background(), tb.srv.HTTPURL())
	route, params, err := k.router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: authenticate}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.status, Header: ex.header, Options: opts}
	out.SetBodyBytes(ex.body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Fatalf("%s %s: the answer is not as the document says: %v\n%s", c.method, c.path, err, ex.body)
	}
	k.record(route.Operation, ex.status)
	media, _, _ := strings.Cut(ex.header.Get("Content-Type"), ";")
	if ex.status != status || codeOf(t, media, ex.body) != code {
		t.Fatalf("%s %s: %d %s, want %d %s", c.method, c.path, ex.status, ex.body, status, code)
	}
}

// TestOpenAPILimits: the answers of a broker's limits, validated.
func TestOpenAPILimits(t *testing.T) {
	t.Parallel()
	k := loadContract(t)
	tb := startBroker(t, func(c *config) {
		c.CallerRate = broker.Rate{Events: 1, Per: time.Hour}
		c.ApplicationsClosed = true
	})
	m := mfaBody{PNR: "19600606-0001", COUNTRY: "SE", Timeout: 30, Reason: "Limits"}.json()
	k.do(t, tb, apiCall{method: "POST", path: "/MFA", contentType: mediaJSON, body: m}, answer{status: 404, code: "unknown-person", media: mediaJSON})
	for _, path := range []string{"/MFA", "/Orders"} {
		ex := k.do(t, tb, apiCall{method: "POST", path: path, contentType: mediaJSON, body: m, accept: "text/xml"}, answer{status: 429, code: "rate-limited", media: textXML})
		if n, err := strconv.Atoi(ex.header.Get("Retry-After")); err != nil || n < 1 {
			t.Fatalf("Retry-After %q", ex.header.Get("Retry-After"))
		}
	}
	k.do(t, tb, apiCall{method: "POST", path: "/Identities", contentType: mediaJSON, body: `{"Properties":[],"PublicKey":"","Proof":""}`},
		answer{status: 403, code: "applications-closed", media: mediaJSON, docRefuses: true})
}

// TestOpenAPIConnectionCap: past --max-connections, a connection is
// answered 503 too-busy at once, as the document says any operation may
// answer.
func TestOpenAPIConnectionCap(t *testing.T) {
	t.Parallel()
	k := loadContract(t)
	tb := startBroker(t, func(c *config) { c.MaxConnections = 1 })
	addr := strings.TrimPrefix(tb.srv.HTTPURL(), "http://")
	// The client that started the broker may hold the one connection; if
	// it does not, the first connection here does.
	var resp *http.Response
	for i := range 2 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		r, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if r.StatusCode == http.StatusServiceUnavailable {
			resp = r
			break
		}
		io.Copy(io.Discard, r.Body)
	}
	if resp == nil {
		t.Fatal("no connection was refused")
	}
	body, _ := io.ReadAll(resp.Body)
	k.validateAnswer(t, tb, apiCall{method: "GET", path: "/healthz"}, exchange{status: resp.StatusCode, header: resp.Header, body: body}, 503, "too-busy")
}

// TestOpenAPIRoutes: the document has an operation for every route the
// broker serves, and nothing else.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	k := loadContract(t)
	param := regexp.MustCompile(`\{[^}]*\}`)
	var documented []string
	for path, item := range k.doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+param.ReplaceAllString(path, "{}"))
		}
	}
	routes, err := broker.Routes()
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, r := range routes {
		served = append(served, r.Method+" "+param.ReplaceAllString(r.Path, "{}"))
	}
	slices.Sort(documented)
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("the broker serves %s, which the document lacks", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("the document has %s, which the broker does not serve", d)
		}
	}
	if len(served) < 20 {
		t.Fatalf("only %d routes: %v", len(served), served)
	}
}
