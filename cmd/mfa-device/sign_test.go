package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/internal/cli"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/schema"
)

// appliedDir makes a device directory as apply leaves it, without a
// broker: a key and a device.json naming legalID.
func appliedDir(t *testing.T, legalID string) (string, ed25519.PrivateKey) {
	t.Helper()
	dir := deviceDir{path: filepath.Join(t.TempDir(), "device")}
	key, err := dir.createKey()
	if err != nil {
		t.Fatal(err)
	}
	brokerKey, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.saveConfig(deviceConfig{
		BrokerURL: "http://127.0.0.1:1", NATSURL: "nats://127.0.0.1:1", Domain: "broker.test",
		BrokerPublicKey: identity.EncodePublicKey(brokerKey.Public().(ed25519.PublicKey)),
		MaxTimeout:      300, LegalID: legalID, AppliedAt: time.Now().UTC(),
	}); err != nil {
		t.Fatal(err)
	}
	return dir.path, key
}

// hostileReason exercises escaping in every encoding: markup characters,
// quotes, line breaks of every kind, a tab, and non-ASCII text.
const hostileReason = "# Log in to \\<Example & \"Bank\">\r\n\n* amount: 100 €\r* ref: a+b=c&d=%20\t]]>\n"

func TestSignEncodingsVerifyAtTheDecoder(t *testing.T) {
	t.Parallel()
	const legalID = "bank@legal.broker.test"
	dir, key := appliedDir(t, legalID)
	xsd, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	dec := encoding.NewDecoder(xsd, math.MaxInt32)
	want := api.Request{PNR: "19791231-1234", Country: "SE", Timeout: 120, Reason: normalizeNewlines(hostileReason), LegalID: legalID}
	for _, tt := range []struct {
		format string
		wire   encoding.Format
	}{
		{formatJSON, encoding.FormatJSON},
		{formatXML, encoding.FormatXML},
		{formatForm, encoding.FormatForm},
	} {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t, map[string]string{"MFA_DEVICE_DIR": dir}, hostileReason,
				"sign", "--pnr", want.PNR, "--country", want.Country, "--timeout", "120", "--reason-file", "-", "--format", tt.format)
			if r.err != nil {
				t.Fatalf("sign: %v\n%s", r.err, r.stderr)
			}
			got, derr := dec.DecodeBody(tt.wire, "", []byte(r.stdout))
			if derr != nil {
				t.Fatalf("the broker's decoder refuses the body: %v\n%s", derr, r.stdout)
			}
			sig := got.Signature
			got.Signature = nil
			if got.PNR != want.PNR || got.Country != want.Country || got.Timeout != want.Timeout ||
				got.Reason != want.Reason || got.LegalID != want.LegalID {
				t.Fatalf("decoded %+v, want %+v", got, want)
			}
			if err := identity.Verify(key.Public().(ed25519.PublicKey), got.SigningForm(), sig); err != nil {
				t.Fatalf("signature does not verify over the decoded request: %v", err)
			}
		})
	}
}

func TestSignFormats(t *testing.T) {
	t.Parallel()
	dir, key := appliedDir(t, "bank@legal.broker.test")
	args := []string{"sign", "--pnr", "19791231-1234", "--country", "SE", "--timeout", "60", "--reason", "Log in"}
	env := map[string]string{"MFA_DEVICE_DIR": dir}
	pub := key.Public().(ed25519.PublicKey)

	r := runCmd(t, env, "", append(args, "--format", "json")...)
	var got struct{ PNR, COUNTRY, Reason, LegalId, Signature, Issued, Nonce string }
	var timeout int
	if err := json.Unmarshal([]byte(r.stdout), &got); r.err != nil || err != nil {
		t.Fatalf("json = %s, %v %v", r.stdout, r.err, err)
	}
	var fields map[string]any
	json.Unmarshal([]byte(r.stdout), &fields)
	if v, ok := fields["Timeout"].(float64); ok {
		timeout = int(v)
	}
	issued, err := time.Parse(time.RFC3339, got.Issued)
	if err != nil || time.Since(issued) > time.Minute || len(got.Nonce) < 16 {
		t.Fatalf("Issued %q / Nonce %q", got.Issued, got.Nonce)
	}
	req := api.Request{PNR: got.PNR, Country: got.COUNTRY, Timeout: timeout, Reason: got.Reason, LegalID: got.LegalId, Issued: got.Issued, Nonce: got.Nonce}
	sig, _ := base64.StdEncoding.DecodeString(got.Signature)
	if req.PNR != "19791231-1234" || req.Timeout != 60 || req.LegalID != "bank@legal.broker.test" || !ed25519.Verify(pub, req.SigningForm(), sig) {
		t.Fatalf("json body %s does not verify", r.stdout)
	}
	last := -1
	for _, name := range []string{"PNR", "COUNTRY", "Timeout", "Reason", "LegalId", "Signature", "Issued", "Nonce"} {
		at := strings.Index(r.stdout, `"`+name+`":`)
		if at < last {
			t.Fatalf("json field %s out of order:\n%s", name, r.stdout)
		}
		last = at
	}

	// The default prints what a caller adds to the fields it has: every
	// one the signature covers, and the signature, which verifies.
	r = runCmd(t, env, "", args...)
	added := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		name, value, _ := strings.Cut(line, ": ")
		added[name] = value
	}
	fieldsSig, _ := base64.StdEncoding.DecodeString(added["Signature"])
	fieldsReq := api.Request{PNR: "19791231-1234", Country: "SE", Timeout: 60, Reason: "Log in", LegalID: added["LegalId"], Issued: added["Issued"], Nonce: added["Nonce"]}
	if r.err != nil || len(added) != 4 || fieldsReq.LegalID != "bank@legal.broker.test" || !ed25519.Verify(pub, fieldsReq.SigningForm(), fieldsSig) {
		t.Fatalf("default format = %q, %v; want LegalId, Signature, Issued and Nonce that verify", r.stdout, r.err)
	}
	r = runCmd(t, env, "", append(args, "--format", "xml")...)
	if r.err != nil || !strings.HasPrefix(r.stdout, `<MFA xmlns="http://waher.se/Schema/MFA.xsd"><PNR>19791231-1234</PNR><COUNTRY>SE</COUNTRY>`+
		`<Timeout>60</Timeout><Reason>Log in</Reason><LegalId>bank@legal.broker.test</LegalId><Signature>`) ||
		!strings.Contains(r.stdout, "</Signature><Issued>") || !strings.HasSuffix(r.stdout, "</Nonce></MFA>\n") {
		t.Fatalf("xml = %s, %v", r.stdout, r.err)
	}
	r = runCmd(t, env, "", append(args, "--format", "form")...)
	if r.err != nil || !strings.HasPrefix(r.stdout, "PNR=19791231-1234&COUNTRY=SE&Timeout=60&Reason=Log+in&LegalId=bank%40legal.broker.test&Signature=") ||
		!strings.Contains(r.stdout, "&Issued=") || !strings.Contains(r.stdout, "&Nonce=") || strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("form = %q, %v", r.stdout, r.err)
	}
	// Two signings are two requests: each has a nonce of its own.
	again := runCmd(t, env, "", append(args, "--format", "json")...)
	if strings.Contains(again.stdout, got.Nonce) {
		t.Fatal("two signed requests share a nonce")
	}
}

// TestSignNumberMatching: an order's NumberMatching is in the body and
// under the signature; without the flag the body has no such field.
func TestSignNumberMatching(t *testing.T) {
	t.Parallel()
	dir, key := appliedDir(t, "bank@legal.broker.test")
	env := map[string]string{"MFA_DEVICE_DIR": dir}
	args := []string{"sign", "--pnr", "19791231-1234", "--country", "SE", "--timeout", "60", "--reason", "Log in", "--format", "json"}
	for _, v := range []string{"true", "false"} {
		r := runCmd(t, env, "", append(args, "--number-matching", v)...)
		var got struct {
			PNR, COUNTRY, Reason, LegalId, Signature, Issued, Nonce string
			Timeout                                                 int
			NumberMatching                                          *bool
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); r.err != nil || err != nil || got.NumberMatching == nil || *got.NumberMatching != (v == "true") {
			t.Fatalf("--number-matching %s: %s %v", v, r.stdout, r.err)
		}
		req := api.Request{PNR: got.PNR, Country: got.COUNTRY, Timeout: got.Timeout, Reason: got.Reason, LegalID: got.LegalId,
			Issued: got.Issued, Nonce: got.Nonce, NumberMatching: got.NumberMatching}
		sig, _ := base64.StdEncoding.DecodeString(got.Signature)
		if !ed25519.Verify(key.Public().(ed25519.PublicKey), req.SigningForm(), sig) {
			t.Fatalf("--number-matching %s: the signature does not cover the field", v)
		}
		if !strings.Contains(string(req.SigningForm()), "\nNumberMatching:") {
			t.Fatal("the form has no NumberMatching line")
		}
	}
	if r := runCmd(t, env, "", args...); strings.Contains(r.stdout, "NumberMatching") {
		t.Fatalf("without the flag: %s", r.stdout)
	}
	if r := runCmd(t, env, "", append(args, "--number-matching", "yes")...); r.err == nil || !strings.Contains(r.stderr+r.err.Error(), "--number-matching") {
		t.Fatalf("--number-matching yes: %v %s", r.err, r.stderr)
	}
}

func TestSignReasonFile(t *testing.T) {
	t.Parallel()
	dir, _ := appliedDir(t, "bank@legal.broker.test")
	file := filepath.Join(t.TempDir(), "reason.md")
	if err := os.WriteFile(file, []byte("# Title\r\n\r\nBody\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MFA_DEVICE_DIR": dir}
	reasonOf := func(r result) string {
		var body struct{ Reason string }
		if r.err != nil || json.Unmarshal([]byte(r.stdout), &body) != nil {
			t.Fatalf("sign: %v %s", r.err, r.stdout)
		}
		return body.Reason
	}
	viaFile := reasonOf(runCmd(t, env, "", "sign", "--pnr", "1", "--country", "SE", "--timeout", "5", "--reason-file", file, "--format", "json"))
	viaFlag := reasonOf(runCmd(t, env, "", "sign", "--pnr", "1", "--country", "SE", "--timeout", "5", "--reason", "# Title\n\nBody\n", "--format", "json"))
	if viaFile != viaFlag || viaFile != "# Title\n\nBody\n" {
		t.Fatalf("a CRLF file and the same text with LF sign different Reasons: %q vs %q", viaFile, viaFlag)
	}
}

func TestSignRefusesBadFields(t *testing.T) {
	t.Parallel()
	dir, _ := appliedDir(t, "bank@legal.broker.test")
	env := map[string]string{"MFA_DEVICE_DIR": dir}
	const pnr = "19791231-1234"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no pnr", []string{"--country", "SE", "--timeout", "5", "--reason", "x"}, "PNR must not be empty (--pnr)"},
		{"pnr with space", []string{"--pnr", pnr + " ", "--country", "SE", "--timeout", "5", "--reason", "x"}, "PNR must not end with a space (--pnr)"},
		{"pnr with control", []string{"--pnr", pnr + "\x1b", "--country", "SE", "--timeout", "5", "--reason", "x"}, "PNR contains the control or invisible character U+001B (--pnr)"},
		{"pnr too long", []string{"--pnr", strings.Repeat("1", 65), "--country", "SE", "--timeout", "5", "--reason", "x"}, "longer than 64"},
		{"lower-case country", []string{"--pnr", pnr, "--country", "se", "--timeout", "5", "--reason", "x"}, "--country"},
		{"unassigned country", []string{"--pnr", pnr, "--country", "XX", "--timeout", "5", "--reason", "x"}, "--country"},
		{"zero timeout", []string{"--pnr", pnr, "--country", "SE", "--timeout", "0", "--reason", "x"}, "Timeout must be at least 1 second (--timeout)"},
		{"no reason", []string{"--pnr", pnr, "--country", "SE", "--timeout", "5"}, "Reason"},
		{"blank reason", []string{"--pnr", pnr, "--country", "SE", "--timeout", "5", "--reason", " \n "}, "Reason must not be empty"},
		{"reason with escape", []string{"--pnr", pnr, "--country", "SE", "--timeout", "5", "--reason", "a\x1b[2J"}, "control or invisible character U+001B"},
		{"reason too long", []string{"--pnr", pnr, "--country", "SE", "--timeout", "5", "--reason", strings.Repeat("x", 2001)}, "longer than 2000 characters (--reason)"},
		{"both reasons", []string{"--pnr", pnr, "--country", "SE", "--timeout", "5", "--reason", "x", "--reason-file", "f"}, "not both"},
		{"bad format", []string{"--pnr", pnr, "--country", "SE", "--timeout", "5", "--reason", "x", "--format", "yaml"}, "--format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t, env, "", append([]string{"sign"}, tt.args...)...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", r.err, tt.want)
			}
			if cli.ExitCode(r.err) != 2 {
				t.Errorf("exit code %d, want 2 for a usage error", cli.ExitCode(r.err))
			}
			if strings.Contains(r.err.Error()+r.stderr+r.stdout, pnr) {
				t.Errorf("the PNR was echoed: %v %s", r.err, r.stderr)
			}
		})
	}
}

func TestSignNeedsAnIdentity(t *testing.T) {
	t.Parallel()
	r := runCmd(t, map[string]string{"MFA_DEVICE_DIR": t.TempDir()}, "", "sign", "--pnr", "1", "--country", "SE", "--timeout", "5", "--reason", "x")
	if r.err == nil || !strings.Contains(r.err.Error(), "mfa-device apply") {
		t.Fatalf("err = %v, want advice to apply first", r.err)
	}
}

func TestSignWarnsPastMaxTimeout(t *testing.T) {
	t.Parallel()
	dir, _ := appliedDir(t, "bank@legal.broker.test")
	r := runCmd(t, map[string]string{"MFA_DEVICE_DIR": dir}, "", "sign", "--pnr", "1", "--country", "SE", "--timeout", "301", "--reason", "x")
	if r.err != nil || !strings.Contains(r.stderr, "more than the 300 seconds") {
		t.Fatalf("err %v, stderr %q: want a warning", r.err, r.stderr)
	}
}
