package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/broker/operator"
	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// TestBadInput sends malformed requests about a real, approved person:
// each gets its specific 4xx in the negotiated format, none pushes, and the
// broker stays healthy.
func TestBadInput(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19791231-1234", "SE", notifytest.Always(notify.Approve))
	valid := mfaBody{PNR: "19791231-1234", COUNTRY: "SE", Timeout: 30, Reason: "Log in"}
	_, xmlBody := valid.encode("xml")
	_, jsonBody := valid.encode("json")
	_, formBody := valid.encode("form")
	sig := base64.StdEncoding.EncodeToString(make([]byte, 64))
	cases := []struct {
		name, contentType, accept, body string
		status                          int
		code, field                     string
	}{
		{"no content type", "", "", jsonBody, 415, "unsupported-media-type", ""},
		{"wrong content type", "text/plain", "application/xml", jsonBody, 415, "unsupported-media-type", ""},
		{"broken XML", "text/xml", "", xmlBody[:40], 400, "malformed", ""},
		{"broken JSON", "application/json", "", jsonBody[:20], 400, "malformed", ""},
		{"broken form", "application/x-www-form-urlencoded", "", formBody + "&%zz", 400, "malformed", ""},
		{"wrong namespace", "text/xml", "", strings.Replace(xmlBody, "http://waher.se/Schema/MFA.xsd", "http://example.org/", 1), 400, "schema-violation", ""},
		{"DOCTYPE", "application/xml", "", `<!DOCTYPE MFA SYSTEM "http://example.org/x.dtd">` + xmlBody, 400, "malformed", ""},
		{"billion laughs", "text/xml", "", `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><MFA xmlns="http://waher.se/Schema/MFA.xsd"><PNR>&b;</PNR></MFA>`, 400, "malformed", ""},
		{"unknown JSON field", "application/json", "text/plain", strings.Replace(jsonBody, "{", `{"Admin":true,`, 1), 400, "unknown-field", ""},
		{"duplicate JSON field", "application/json", "", strings.Replace(jsonBody, "{", `{"PNR":"19791231-1234",`, 1), 400, "duplicate-field", "PNR"},
		{"PNR object", "application/json", "", strings.Replace(jsonBody, `"PNR":"19791231-1234"`, `"PNR":{"$ne":null}`, 1), 400, "invalid-field", "PNR"},
		{"PNR number", "application/json", "", strings.Replace(jsonBody, `"PNR":"19791231-1234"`, `"PNR":197912311234`, 1), 400, "invalid-field", "PNR"},
		{"timeout 0", "application/x-www-form-urlencoded", "", strings.Replace(formBody, "Timeout=30", "Timeout=0", 1), 400, "invalid-field", "Timeout"},
		{"timeout -1", "application/json", "", strings.Replace(jsonBody, `"Timeout":30`, `"Timeout":-1`, 1), 400, "invalid-field", "Timeout"},
		{"timeout huge", "text/xml", "", strings.Replace(xmlBody, "<Timeout>30</Timeout>", "<Timeout>999999999999999999999</Timeout>", 1), 400, "invalid-field", "Timeout"},
		{"timeout above maximum", "application/json", "", strings.Replace(jsonBody, `"Timeout":30`, `"Timeout":61`, 1), 400, "invalid-field", "Timeout"},
		{"timeout not numeric", "application/x-www-form-urlencoded", "", strings.Replace(formBody, "Timeout=30", "Timeout=soon", 1), 400, "invalid-field", "Timeout"},
		{"overlong PNR", "application/json", "", strings.Replace(jsonBody, "19791231-1234", strings.Repeat("9", 65), 1), 400, "invalid-field", "PNR"},
		{"overlong reason", "application/x-www-form-urlencoded", "", strings.Replace(formBody, "Reason=Log+in", "Reason="+strings.Repeat("x", 2001), 1), 400, "invalid-field", "Reason"},
		{"invalid UTF-8", "application/json", "", strings.Replace(jsonBody, "Log in", "Log \xc3\x28 in", 1), 400, "malformed", ""},
		{"bad base64", "application/json", "", strings.Replace(jsonBody, "{", `{"LegalId":"x@legal.broker.test","Signature":"!!!","Issued":"2026-11-22T13:45:00Z","Nonce":"0123456789abcdef",`, 1), 400, "invalid-field", "Signature"},
		{"LegalId without Signature", "application/x-www-form-urlencoded", "", formBody + "&LegalId=x%40legal.broker.test", 400, "missing-field", "Signature"},
		{"Signature without LegalId", "application/json", "", strings.Replace(jsonBody, "{", `{"Signature":"`+sig+`",`, 1), 400, "missing-field", "LegalId"},
		{"wildcard PNR of another person", "application/json", "", strings.Replace(jsonBody, "19791231-1234", "*", 1), 404, "unknown-person", ""},
		{"NATS wildcard PNR", "application/x-www-form-urlencoded", "", strings.Replace(formBody, "19791231-1234", "%3E", 1), 404, "unknown-person", ""},
		{"not acceptable", "application/json", "image/png", jsonBody, 406, "not-acceptable", ""},
		{"body too large", "application/json", "", `{"Reason":"` + strings.Repeat("a", 70000) + `"}`, 413, "body-too-large", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := tb.do(http.MethodPost, "/MFA", c.contentType, c.accept, strings.NewReader(c.body))
			media := expectedMedia(map[string]string{"text/xml": "xml", "application/xml": "xml"}[c.contentType], c.accept)
			if c.contentType == "application/xml" && c.accept == "" {
				media = "application/xml"
			}
			if c.accept == "image/png" {
				media = "application/json"
			}
			o := tb.parseOutcome(resp, media)
			if o.status != c.status || o.code != c.code || o.field != c.field {
				t.Fatalf("got %d %s on %q (%s), want %d %s on %q", o.status, o.code, o.field, o.message, c.status, c.code, c.field)
			}
			if o.message == "" {
				t.Fatal("no message")
			}
			if strings.Contains(o.message, "19791231-1234") {
				t.Fatalf("message echoes the PNR: %s", o.message)
			}
		})
	}
	tb.barrier(d, "19791231-1234", "SE")
	if r := tb.do(http.MethodGet, "/readyz", "", "", nil); r.status != 200 {
		t.Fatalf("broker not ready after bad input: %d %s", r.status, r.body)
	}
	if o := tb.postMFA(context.Background(), "json", valid, ""); o.code != "approved" {
		t.Fatalf("a good request after the bad ones: %s", o.code)
	}
}

func TestOtherResources(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	cases := []struct {
		method, path, accept string
		status               int
		contains             string
	}{
		{"GET", "/MFA", "", 200, `<form id="mfa" method="post" action="MFA"`},
		{"GET", "/Schema/MFA.xsd", "", 200, `targetNamespace="http://waher.se/Schema/MFA.xsd"`},
		{"GET", "/healthz", "", 200, "ok"},
		{"GET", "/readyz", "", 200, "ready"},
		{"GET", "/Broker", "", 200, `"Domain":"broker.test"`},
		{"PUT", "/MFA", "", 405, `"method-not-allowed"`},
		{"DELETE", "/MFA", "text/plain", 405, "Code: method-not-allowed"},
		{"GET", "/nothing", "", 404, `"not-found"`},
		{"GET", "/Identities/nobody@legal.broker.test", "", 404, `"not-found"`},
		{"GET", "/admin/identities", "", 404, `"not-found"`},
	}
	for _, c := range cases {
		r := tb.do(c.method, c.path, "", c.accept, nil)
		if r.status != c.status || !strings.Contains(string(r.body), c.contains) {
			t.Errorf("%s %s: %d, want %d containing %q:\n%s", c.method, c.path, r.status, c.status, c.contains, r.body)
		}
	}
	if r := tb.do("PUT", "/MFA", "", "", nil); r.header.Get("Allow") == "" {
		t.Error("405 without an Allow header")
	}
}

// TestBrowserForm posts the test form as a browser does and gets an HTML
// page in which everything the user typed is escaped.
func TestBrowserForm(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	tb.person("19791231-1234", "SE", notifytest.Always(notify.Approve))
	const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	form := "PNR=19791231-1234&COUNTRY=SE&Timeout=30&Reason=%5C%3Cscript%3Ealert(1)%5C%3C%2Fscript%3E&LegalId=&Signature="
	r := tb.do(http.MethodPost, "/MFA", "application/x-www-form-urlencoded", browserAccept, strings.NewReader(form))
	if r.status != 200 || !strings.Contains(string(r.body), "<h1>Approved</h1>") {
		t.Fatalf("%d:\n%s", r.status, r.body)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("no restrictive CSP on the result page: %q", csp)
	}
	if !strings.Contains(string(r.body), `\&lt;script&gt;alert(1)\&lt;/script&gt;`) || strings.Contains(string(r.body), "<script>alert") {
		t.Fatalf("the result page does not show the Reason asked, escaped:\n%s", r.body)
	}
	// A field error names the field and does not repeat the value at all.
	bad := "PNR=1&COUNTRY=%3Cb%3EXX&Timeout=30&Reason=r&LegalId=&Signature="
	r = tb.do(http.MethodPost, "/MFA", "application/x-www-form-urlencoded", browserAccept, strings.NewReader(bad))
	if r.status != 400 || !strings.Contains(string(r.body), "COUNTRY") || strings.Contains(string(r.body), "XX") {
		t.Fatalf("field error page %d:\n%s", r.status, r.body)
	}
}

func TestIdentityApplicationErrors(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	id, _ := tb.applyIdentity("PNR", "1", "COUNTRY", "SE")
	if id == "" || !strings.HasSuffix(id, "@legal.broker.test") {
		t.Fatalf("identity ID %q", id)
	}
	cases := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"not JSON", "text/plain", "{}", 415, "unsupported-media-type"},
		{"broken JSON", "application/json", "{", 400, "malformed"},
		{"unknown field", "application/json", `{"Properties":[],"PublicKey":"","Proof":"","State":"Approved"}`, 400, "malformed"},
		{"bad key", "application/json", `{"Properties":[{"Name":"PNR","Value":"1"}],"PublicKey":"AAAA","Proof":""}`, 400, "invalid-field"},
		{"bad proof", "application/json", `{"Properties":[{"Name":"PNR","Value":"1"},{"Name":"COUNTRY","Value":"SE"}],"PublicKey":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `","Proof":"` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `"}`, 400, "invalid-field"},
		// Held as strictly as /MFA: exact names, each once, nothing after.
		{"field name in another case", "application/json", `{"Properties":[],"PublicKey":"","pRoOf":""}`, 400, "malformed"},
		{"property field in another case", "application/json", `{"Properties":[{"name":"PNR","Value":"1"}],"PublicKey":"","Proof":""}`, 400, "malformed"},
		{"Properties twice", "application/json", `{"Properties":[],"Properties":[{"Name":"PNR","Value":"1"}],"PublicKey":"","Proof":""}`, 400, "malformed"},
		{"trailing data", "application/json", `{"Properties":[],"PublicKey":"","Proof":""} {}`, 400, "malformed"},
	}
	for _, c := range cases {
		r := tb.do(http.MethodPost, "/Identities", c.contentType, "", strings.NewReader(c.body))
		if r.status != c.status || !strings.Contains(string(r.body), `"`+c.code+`"`) {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	// An identity that is not there: 404, the ID not echoed, nor the
	// store's name.
	long := strings.Repeat("x", 8000) + "@legal.broker.test"
	r := tb.do(http.MethodGet, "/Identities/"+long, "", "", nil)
	if r.status != http.StatusNotFound || strings.Contains(string(r.body), "xxxx") || strings.Contains(string(r.body), "store") || len(r.body) > 200 {
		t.Errorf("GET /Identities/<8000 characters>: %d %s", r.status, r.body)
	}
}

func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	fi, err := os.Stat(tb.cfg.AdminSocket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("operator socket mode %v, want a 0600 socket", fi.Mode())
	}
	if fi, err := os.Stat(tb.cfg.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory mode %v, want 0700", fi.Mode())
	}
	alice, _ := tb.applyIdentity("FIRST", "Alice", "LAST", "Andersson", "PNR", "1", "COUNTRY", "SE")
	bob, _ := tb.applyIdentity("ORGNAME", "Bob's Bank", "PNR", "2", "COUNTRY", "NO")

	out, err := tb.operator("identity", "list")
	if err != nil || !strings.Contains(out, alice) || !strings.Contains(out, "Alice Andersson") || !strings.Contains(out, "Bob's Bank") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	steps := []struct {
		args    []string
		wantErr bool
		want    string
	}{
		{[]string{"identity", "approve", alice, "--valid-for", "48h"}, false, "Approved"},
		{[]string{"identity", "approve", alice}, true, "is Approved now, not Created"},
		{[]string{"identity", "show", alice}, false, "Alice"},
		{[]string{"identity", "list", "--state", "approved"}, false, alice},
		{[]string{"identity", "obsolete", alice}, false, "Obsoleted"},
		{[]string{"identity", "compromise", alice}, true, "is Obsoleted now, not Approved"},
		{[]string{"identity", "compromise", alice, "--from", "Obsoleted"}, true, "Obsoleted cannot become Compromised"},
		{[]string{"identity", "approve", bob}, false, "Approved"},
		{[]string{"identity", "reject", bob}, true, "is Approved now, not Created"},
		{[]string{"identity", "reject", bob, "--from", "approved"}, false, "Rejected"},
		{[]string{"identity", "approve", "nobody@legal.broker.test"}, true, "not found"},
		{[]string{"identity", "frobnicate", alice}, true, "unknown command"},
		{[]string{"identity", "approve"}, true, "exactly one LEGALID"},
	}
	for _, s := range steps {
		out, err := tb.operator(s.args...)
		if (err != nil) != s.wantErr || !strings.Contains(out+errString(err), s.want) {
			t.Errorf("%v: err=%v, want error %v containing %q:\n%s", s.args, err, s.wantErr, s.want, out)
		}
		// The operator is told what is wrong, in the broker's words, not
		// which layer of it noticed.
		if msg := errString(err); strings.Contains(msg, "boltstore") || strings.Contains(msg, "mongostore") {
			t.Errorf("%v: the error names the broker's internals: %v", s.args, err)
		}
	}
	if out, err := tb.operator("identity", "list", "--state", "approved"); err != nil || strings.Contains(out, alice) {
		t.Errorf("obsoleted identity still listed as approved:\n%s", out)
	}
	if st, err := operator.New(tb.cfg.AdminSocket).Stats(context.Background()); err != nil || st.Goroutines == 0 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	// Unreachable broker: a clear error, not a hang.
	var errOut bytes.Buffer
	err = run(context.Background(), []string{"identity", "list", "--data-dir", t.TempDir()}, &bytes.Buffer{}, &errOut, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "is the broker running") {
		t.Fatalf("no broker: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestOperatorsRace: two operators decide on one identity at once; exactly
// one wins and the other is told the identity changed.
func TestOperatorsRace(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	for round := 0; round < 5; round++ {
		id, _ := tb.applyIdentity("PNR", "race-"+strconv.Itoa(round), "COUNTRY", "SE")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		outs := make([]string, 2)
		for i, verb := range []string{"approve", "reject"} {
			wg.Add(1)
			go func(i int, verb string) {
				defer wg.Done()
				outs[i], errs[i] = tb.operator("identity", verb, id, "--json")
			}(i, verb)
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
			} else if !strings.Contains(err.Error(), "now, not Created") || !strings.Contains(err.Error(), "(conflict)") {
				t.Fatalf("loser's error is unclear: %v %s", err, outs[i])
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d winners: %v", round, wins, errs)
		}
	}
}

// TestNoPNRInLogsOrSubjects runs full MFAs with a known PNR, records every
// NATS subject used and every log line, and searches them for the number.
func TestNoPNRInLogsOrSubjects(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	const pnr = "19121212-1212"
	// The spy sees everything: it has the broker's own credentials.
	spy := tb.brokerConn()
	var mu sync.Mutex
	var subjects []string
	var payloads [][]byte
	if _, err := spy.Subscribe(">", func(m *nats.Msg) {
		mu.Lock()
		subjects = append(subjects, m.Subject, m.Reply)
		payloads = append(payloads, m.Data)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	spy.Flush()
	d := tb.person(pnr, "SE", notifytest.Always(notify.Approve))
	tb.person(pnr, "SE", nil) // a second device that times out
	for _, enc := range allEncodings {
		o := tb.postMFA(context.Background(), enc, mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: 2, Reason: "Privacy check"}, "")
		if o.code != "approved" {
			t.Fatalf("%s: %s", enc, o.code)
		}
	}
	tb.postMFA(context.Background(), "json", mfaBody{PNR: pnr + "0", COUNTRY: "SE", Timeout: 2, Reason: "unknown"}, "")
	tb.postMFA(context.Background(), "json", mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: 0, Reason: "bad"}, "")
	// The barrier: the broker sends in order, so once the spy has the push
	// of one more request, it has everything the broker sent before.
	tb.postMFA(context.Background(), "json", mfaBody{PNR: pnr, COUNTRY: "SE", Timeout: 2, Reason: "spy barrier"}, "")
	poll.Until(t, "the barrier's push at the spy", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(payloads, func(p []byte) bool { return bytes.Contains(p, []byte("spy barrier")) })
	})
	mu.Lock()
	defer mu.Unlock()
	if len(subjects) < 6 {
		t.Fatalf("spy saw only %d subjects: is it subscribed?", len(subjects))
	}
	compact := strings.ReplaceAll(pnr, "-", "")
	for _, s := range subjects {
		if strings.Contains(s, pnr) || strings.Contains(s, compact) || strings.Contains(s, "@legal.") {
			t.Fatalf("NATS subject carries personal data: %s", s)
		}
	}
	for _, p := range payloads {
		if bytes.Contains(p, []byte(pnr)) {
			t.Fatalf("NATS payload carries the PNR: %s", p)
		}
	}
	logs := tb.logs.String()
	if strings.Contains(logs, pnr) || strings.Contains(logs, compact) {
		t.Fatal("the PNR appears in the broker's log")
	}
	if !strings.Contains(logs, `"person":`) {
		t.Fatal("log lines name no person at all; the keyed hash is missing")
	}
	_ = d
}

// TestRootPointsTheWay: a visitor who comes to / is pointed to the test
// form and the README, in a page or in plain text, instead of a JSON 404.
func TestRootPointsTheWay(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	page := tb.do(http.MethodGet, "/", "", "text/html,*/*;q=0.8", nil)
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(page.body), `href="MFA"`) || !strings.Contains(string(page.body), "README") {
		t.Fatalf("GET / for a browser: %d %s\n%s", page.status, page.header.Get("Content-Type"), page.body)
	}
	text := tb.do(http.MethodGet, "/", "", "", nil)
	if text.status != http.StatusOK || !strings.HasPrefix(text.header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(text.body), "GET /MFA") || !strings.Contains(string(text.body), "README") {
		t.Fatalf("GET / for curl: %d %s\n%s", text.status, text.header.Get("Content-Type"), text.body)
	}
	if tb.info.Version == "" {
		t.Error("GET /Broker names no version")
	}
}

// TestHTTPFraming: a request smuggled with both Content-Length and
// chunked Transfer-Encoding closes its connection after the answer, so a
// request pipelined behind it is not served; HEAD works wherever GET does;
// X-Forwarded-Prefix, which anyone can send, steers no redirect.
func TestHTTPFraming(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	addr := strings.TrimPrefix(tb.srv.HTTPURL(), "http://")
	body := `{"PNR":"1","COUNTRY":"SE","Timeout":1,"Reason":"x"}`
	smuggled := fmt.Sprintf("POST /MFA HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body) +
		"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n"
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(smuggled)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !resp.Close {
		t.Fatalf("the answer to a smuggled request keeps the connection open (%d)", resp.StatusCode)
	}
	if second, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("the request pipelined behind it was served: %d", second.StatusCode)
	}

	for _, path := range []string{"/", "/MFA", "/Schema/MFA.xsd", "/Broker", "/healthz", "/readyz"} {
		if r := tb.do(http.MethodHead, path, "", "", nil); r.status != http.StatusOK || len(r.body) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes", path, r.status, len(r.body))
		}
	}

	req, _ := http.NewRequest(http.MethodGet, tb.url("/MFA/"), nil)
	req.Header.Set("X-Forwarded-Prefix", "/evilexample")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if loc := r.Header.Get("Location"); strings.Contains(loc, "evil") {
		t.Fatalf("X-Forwarded-Prefix steered a redirect to %q", loc)
	}
}
