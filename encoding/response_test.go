package encoding_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/api"

	"github.com/beevik/etree"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/schema"
)

func sampleResponses() []api.Response {
	ev := &api.Evidence{
		LegalID: "a1b2@legal.example.org", Decision: "approve", Algorithm: "Ed25519",
		PublicKey: make([]byte, 32), PublicKeyURL: "https://broker.example.org/Identities/a1b2%40legal.example.org",
		SignedData: []byte("MFA-Answer/1\n"), Signature: make([]byte, 64), Push: []byte(`{"Version":1}`),
	}
	var out []api.Response
	for _, c := range api.Codes() {
		out = append(out, api.Response{Code: c, Message: "message for " + string(c)})
	}
	return append(out,
		api.Response{Code: api.CodeApproved, Message: "ok", RequestID: "abcdefghijklmnopqrstuvwxyz", Evidence: ev},
		api.Response{Code: api.CodeInvalidField, Message: `field "Timeout" <&> ]]>`, Field: "Timeout"},
		api.Response{Code: api.CodeShuttingDown, Message: "bye", RetryAfter: 5},
		api.Response{Code: api.CodeMalformed, Message: "control \x01 and \xff bytes"},
	)
}

// TestXMLResponsesValidate holds every XML answer to the schema the broker
// publishes for it.
func TestXMLResponsesValidate(t *testing.T) {
	t.Parallel()
	s, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sampleResponses() {
		body, err := encoding.Marshal(r, encoding.MediaXML)
		if err != nil {
			t.Fatal(err)
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(body); err != nil {
			t.Fatalf("%s: not well-formed: %v\n%s", r.Code, err, body)
		}
		if err := s.Validate(doc.Root()); err != nil {
			t.Fatalf("%s: invalid against MFA.xsd: %v\n%s", r.Code, err, body)
		}
		if got := doc.Root().SelectElement("Code").Text(); got != string(r.Code) {
			t.Fatalf("Code element %q, want %q", got, r.Code)
		}
	}
}

func TestJSONResponseShape(t *testing.T) {
	t.Parallel()
	r := sampleResponses()[len(api.Codes())]
	body, err := encoding.Marshal(r, encoding.MediaJSON)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	ev, _ := got["Evidence"].(map[string]any)
	if got["Code"] != "approved" || got["RequestId"] != r.RequestID || ev == nil ||
		ev["Signature"] != strings.Repeat("A", 86)+"==" || ev["SignedData"] != "TUZBLUFuc3dlci8xCg==" {
		t.Fatalf("unexpected JSON: %s", body)
	}
	if _, present := got["Field"]; present {
		t.Fatal("empty Field present")
	}
}

func TestHTMLResultEscapes(t *testing.T) {
	t.Parallel()
	pages, err := encoding.NewPages()
	if err != nil {
		t.Fatal(err)
	}
	body, err := pages.Result(api.Response{Code: api.CodeInvalidField, Message: `<script>alert(1)</script>`, Field: `"><img src=x>`})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(body), "<script>") || strings.Contains(string(body), "<img") {
		t.Fatalf("unescaped caller text in page:\n%s", body)
	}
	if !strings.Contains(string(body), "&lt;script&gt;") {
		t.Fatalf("message missing from page:\n%s", body)
	}
	form, err := pages.Form(encoding.FormPage{MaxTimeout: 120, DefaultTimeout: 60})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"PNR", "COUNTRY", "Timeout", "Reason", "LegalId", "Signature"} {
		if !strings.Contains(string(form), `name="`+name+`"`) {
			t.Errorf("form lacks field %s", name)
		}
	}
	if !strings.Contains(string(form), `max="120"`) || !strings.Contains(string(form), `method="post"`) {
		t.Errorf("form does not post or lacks the timeout bound:\n%s", form)
	}
}

func TestTextResponse(t *testing.T) {
	t.Parallel()
	body, err := encoding.Marshal(api.Response{Code: api.CodeTimeout, Message: "No answer.", RequestID: "r1"}, encoding.MediaText)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "Code: timeout\nMessage: No answer.\nRequestId: r1\n" {
		t.Fatalf("text body %q", body)
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	cases := []struct {
		r      api.Response
		header string
		want   string
	}{
		{api.Response{Code: api.CodeShuttingDown, RetryAfter: 5}, "Retry-After", "5"},
		{api.Response{Code: api.CodeInvalidSignature}, "WWW-Authenticate", `MFA-Signature realm="MFA"`},
		{api.Response{Code: api.CodeApproved}, "Cache-Control", "no-store"},
		{api.Response{Code: api.CodeApproved}, "Vary", "Accept"},
		{api.Response{Code: api.CodeApproved}, "Content-Type", "application/xml; charset=utf-8"},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		encoding.SetHeaders(w.Header(), encoding.MediaXML, c.r)
		if got := w.Header().Get(c.header); got != c.want {
			t.Errorf("%s for %s = %q, want %q", c.header, c.r.Code, got, c.want)
		}
	}
}

// TestStatusTable pins the outcome → status contract the README documents:
// 2xx only on approval.
func TestStatusTable(t *testing.T) {
	t.Parallel()
	want := map[api.Code]int{
		api.CodeApproved: 200, api.CodeDenied: 403, api.CodeDeniedNotMe: 403, api.CodeTimeout: 408,
		api.CodeSuperseded: 409, api.CodeBlocked: 403, api.CodeRateLimited: 429,
		api.CodeSignatureExpired: 401, api.CodeReplayed: 401, api.CodeTooBusy: 503,
		api.CodeUnknownPerson: 404, api.CodeUnknownRequester: 401, api.CodeInvalidSignature: 401,
		api.CodeMalformed: 400, api.CodeSchemaViolation: 400, api.CodeMissingField: 400,
		api.CodeUnknownField: 400, api.CodeDuplicateField: 400, api.CodeInvalidField: 400,
		api.CodeUnsupportedMediaType: 415, api.CodeBodyTooLarge: 413, api.CodeNotAcceptable: 406,
		api.CodeMethodNotAllowed: 405, api.CodeNotFound: 404, api.CodeConflict: 409,
		api.CodePushUnavailable: 503, api.CodeStoreUnavailable: 503, api.CodeShuttingDown: 503,
		api.CodeInternalError: 500,
	}
	if len(want) != len(api.Codes()) {
		t.Fatalf("%d codes pinned, %d defined", len(want), len(api.Codes()))
	}
	for _, c := range api.Codes() {
		if got := c.Status(); got != want[c] {
			t.Errorf("%s: status %d, want %d", c, got, want[c])
		}
		if c != api.CodeApproved && c.Status() < 300 {
			t.Errorf("%s has a 2xx status", c)
		}
	}
}

// TestEvidenceBase64 holds the three machine formats to the same standard
// base64 for the evidence's binary values, an absent one written empty
// (never JSON's null).
func TestEvidenceBase64(t *testing.T) {
	t.Parallel()
	ev := &api.Evidence{
		LegalID: "a1b2@legal.example.org", Decision: "approve", Algorithm: "Ed25519",
		PublicKey: []byte{0xfb, 0xff, 0xfe}, Signature: []byte("sig"), Push: []byte(`{"Reason":"<&>"}`),
	}
	r := api.Response{Code: api.CodeApproved, Message: "ok", RequestID: "abcdefghijklmnopqrstuvwxyz", Evidence: ev}
	want := map[string]string{"PublicKey": "+//+", "SignedData": "", "Signature": "c2ln", "Push": "eyJSZWFzb24iOiI8Jj4ifQ=="}

	extract := map[encoding.MediaType]func(t *testing.T, body []byte) map[string]any{
		encoding.MediaJSON: func(t *testing.T, body []byte) map[string]any {
			var got struct{ Evidence map[string]any }
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			return got.Evidence
		},
		encoding.MediaXML: func(t *testing.T, body []byte) map[string]any {
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(body); err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			for _, e := range doc.FindElements("/MFAResponse/Evidence/*") {
				got[e.Tag] = e.Text()
			}
			return got
		},
		encoding.MediaText: func(t *testing.T, body []byte) map[string]any {
			// The text format leaves out the lines of empty values.
			got := map[string]any{"SignedData": ""}
			for _, line := range strings.Split(string(body), "\n") {
				if k, v, ok := strings.Cut(line, ": "); ok && strings.HasPrefix(k, "Evidence.") {
					got[strings.TrimPrefix(k, "Evidence.")] = v
				}
			}
			return got
		},
	}
	for mt, fields := range extract {
		t.Run(string(mt), func(t *testing.T) {
			t.Parallel()
			body, err := encoding.Marshal(r, mt)
			if err != nil {
				t.Fatal(err)
			}
			got := fields(t, body)
			for name, value := range want {
				if got[name] != value {
					t.Errorf("%s = %#v, want %q\n%s", name, got[name], value, body)
				}
			}
		})
	}
}
