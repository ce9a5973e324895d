package encoding_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
		api.Response{Code: api.CodeOrderCreated, Message: "created", RequestID: "abcdefghijklmnopqrstuvwxyz",
			Order: &api.Order{Ref: "bcdefghijklmnopqrstuvwxyza", Expires: "2026-12-03T10:00:00Z", Hint: api.HintPushed, NumberMatch: "42"}},
		api.Response{Code: api.CodeWrongNumber, Message: "wrong", RequestID: "abcdefghijklmnopqrstuvwxyz",
			Evidence: &api.Evidence{LegalID: ev.LegalID, Decision: "approve", Algorithm: "Ed25519", PublicKey: ev.PublicKey,
				PublicKeyURL: ev.PublicKeyURL, SignedData: []byte("MFA-Answer/2\n"), Signature: ev.Signature, Push: ev.Push, Match: "17"},
			Order: &api.Order{Ref: "bcdefghijklmnopqrstuvwxyza", Expires: "2026-12-03T10:00:00Z", NumberMatch: "42"}},
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
	asked := time.Date(2026, 11, 22, 13, 45, 0, 0, time.UTC)
	body, err := pages.Result(api.Response{Code: api.CodeRateLimited, Message: `<script>alert(1)</script>`, Field: `"><img src=x>`, RetryAfter: 86399},
		&encoding.Asked{Reason: "<b>Pay</b> 100 EUR", Asked: asked, End: asked.Add(2500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	page := string(body)
	if strings.Contains(page, "<script>") || strings.Contains(page, "<img") || strings.Contains(page, "<b>Pay") {
		t.Fatalf("unescaped caller text in page:\n%s", body)
	}
	for _, want := range []string{"&lt;script&gt;", "&lt;b&gt;Pay&lt;/b&gt; 100 EUR", "2026-11-22 13:45:00 UTC", "2 seconds later", "in 23 hours 59 minutes"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	form, csp, err := pages.Form(encoding.FormPage{MaxTimeout: 120, DefaultTimeout: 60})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"PNR", "COUNTRY", "Timeout", "Reason", "LegalId", "Signature", "Issued", "Nonce"} {
		if !strings.Contains(string(form), `name="`+name+`"`) {
			t.Errorf("form lacks field %s", name)
		}
	}
	if !strings.Contains(string(form), `max="120"`) || !strings.Contains(string(form), `method="post"`) {
		t.Errorf("form does not post or lacks the timeout bound:\n%s", form)
	}
	// The policy allows the page's one script by its hash, and no other.
	_, script, _ := strings.Cut(string(form), "<script>")
	script, _, _ = strings.Cut(script, "</script>")
	sum := sha256.Sum256([]byte(script))
	if want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) || strings.Contains(csp, "unsafe-inline';") && strings.Contains(csp, "script-src 'unsafe") {
		t.Errorf("CSP %q does not allow the form's script by its hash (%s)", csp, want)
	}
	if strings.Count(string(form), "<script") != 1 {
		t.Error("the form has more than its one script")
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{250 * time.Millisecond, "250 milliseconds"},
		{time.Second, "1 second"},
		{45 * time.Second, "45 seconds"},
		{125 * time.Second, "2 minutes 5 seconds"},
		{time.Hour + 5*time.Second, "1 hour"},
		{86399 * time.Second, "23 hours 59 minutes"},
		{49 * time.Hour, "2 days 1 hour"},
	} {
		if got := encoding.HumanDuration(c.d); got != c.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", c.d, got, c.want)
		}
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
		{api.Response{Code: api.CodeInvalidSignature, Field: "Authorization"}, "WWW-Authenticate", `MFA-Ed25519 realm="MFA"`},
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
// 2xx only on approval, and on the creation of an order, which decides
// nothing.
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
		api.CodeMethodNotAllowed: 405, api.CodeNotFound: 404, api.CodeConflict: 409, api.CodeApplicationsClosed: 403,
		api.CodePushUnavailable: 503, api.CodeStoreUnavailable: 503, api.CodeShuttingDown: 503,
		api.CodeInternalError: 500,
		api.CodeOrderCreated:  201, api.CodePending: 409, api.CodeCancelled: 409, api.CodeOrderLost: 503,
		api.CodeWrongNumber: 403, api.CodePeerUnavailable: 503,
	}
	if len(want) != len(api.Codes()) {
		t.Fatalf("%d codes pinned, %d defined", len(want), len(api.Codes()))
	}
	for _, c := range api.Codes() {
		if got := c.Status(); got != want[c] {
			t.Errorf("%s: status %d, want %d", c, got, want[c])
		}
		if c != api.CodeApproved && c != api.CodeOrderCreated && c.Status() < 300 {
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
