package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/internal/cli"
)

const signHelp = `
Usage: mfa-device sign --pnr PNR --country CC --timeout SECONDS (--reason TEXT | --reason-file FILE) [--format fields|json|xml|form]

Signs an MFA request as this device's identity, which must be a requester
identity an operator approved (a relying party applies like anyone else,
e.g. with --property ORGNAME=Example Bank). It adds the identity's LegalId,
Issued (now) and a fresh Nonce, and signs every field but the signature in
the canonical MFA-Request/1 form, so that one signature verifies whichever
encoding carries the request:

  MFA-Request/1
  PNR:<length>:<PNR>
  COUNTRY:<length>:<COUNTRY>
  Timeout:<length>:<Timeout>
  Reason:<length>:<Reason>
  LegalId:<length>:<LegalId>
  Issued:<length>:<Issued>
  Nonce:<length>:<Nonce>

(each line ends with a line feed; <length> is the value's length in UTF-8
bytes). A signed request is good once, and for a few minutes after it is
made (the broker's --signature-window): sign each request just before
sending it.

--format fields (the default) prints the four fields a signed request adds
to the PNR, COUNTRY, Timeout and Reason given here, one "Name: value" line
each (LegalId, Signature, Issued, Nonce), to type into the test form or to
put into a request of your own. json, xml and form print the whole request
body, ready to post:

  mfa-device sign ... --format json | curl --data-binary @- \
      -H 'Content-Type: application/json' $MFA_BROKER_URL/MFA
  (xml: -H 'Content-Type: application/xml';
   form: -H 'Content-Type: application/x-www-form-urlencoded')

The Reason is markdown; --reason-file reads it from a file (- for stdin),
for text over several lines. It is signed exactly as given, with CRLF and
CR turned into LF as the broker does. The form body ends without a newline
(unless printed to a terminal), since a newline would become part of the
Nonce value.
`

// Output formats of sign.
const (
	formatFields = "fields"
	formatJSON   = "json"
	formatXML    = "xml"
	formatForm   = "form"
)

func cmdSign(_ context.Context, e env, g globalFlags, args []string) error {
	c := newCommand(e, g, "sign", signHelp)
	pnr := c.Flags.String("pnr", "", "the person's personal number")
	country := c.Flags.String("country", "", "the person's country, ISO 3166-1 alpha-2 (SE, NO, ...)")
	timeout := c.Flags.Int("timeout", 0, "seconds the person has to answer")
	reason := c.Flags.String("reason", "", "markdown shown to the person")
	reasonFile := c.Flags.String("reason-file", "", "read the Reason from this file (- for stdin)")
	format := c.Flags.String("format", formatFields, "output: fields (LegalId, Signature, Issued and Nonce), or the whole request as json, xml or form")
	if err := c.parse(args, e.getenv); err != nil {
		return err
	}
	switch *format {
	case formatFields, formatJSON, formatXML, formatForm:
	default:
		return cli.Usagef("--format %q: want fields, json, xml or form", *format)
	}
	switch {
	case *reason != "" && *reasonFile != "":
		return cli.Usagef("give --reason or --reason-file, not both")
	case *reasonFile == "-":
		b, err := io.ReadAll(io.LimitReader(e.stdin, 1<<20))
		if err != nil {
			return fmt.Errorf("read the Reason from stdin: %w", err)
		}
		*reason = string(b)
	case *reasonFile != "":
		b, err := os.ReadFile(*reasonFile)
		if err != nil {
			return fmt.Errorf("read the Reason: %w", err)
		}
		*reason = string(b)
	}
	req := api.Request{PNR: *pnr, Country: *country, Timeout: *timeout, Reason: normalizeNewlines(*reason)}
	if err := checkRequest(req); err != nil {
		return err
	}
	cfg, key, err := c.g.loadDevice(e.getenv)
	if err != nil {
		return err
	}
	if cfg.MaxTimeout > 0 && req.Timeout > cfg.MaxTimeout {
		fmt.Fprintf(e.stderr, "warning: --timeout %d is more than the %d seconds the broker allowed when this device applied; it may refuse the request\n", req.Timeout, cfg.MaxTimeout)
	}
	// Issued and a fresh Nonce make the signed request good once, and only
	// for a few minutes: a copy caught on the way cannot be sent again.
	req.LegalID = cfg.LegalID
	req.Issued = time.Now().UTC().Format(time.RFC3339)
	req.Nonce = newNonce()
	req.Signature = ed25519.Sign(key, req.SigningForm())

	var out []byte
	switch *format {
	case formatFields:
		out = signedFields(req)
	case formatJSON:
		out, err = requestJSON(req)
	case formatXML:
		out, err = requestXML(req)
	case formatForm:
		out = []byte(requestForm(req))
		if _, tty := terminalFd(e.stdout); tty {
			out = append(out, '\n')
		}
	}
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(out)
	return err
}

// checkRequest applies the broker's own field rules before anything is
// signed. The largest Timeout is the broker's to judge: sign only warns
// past the one recorded at apply time.
func checkRequest(r api.Request) error {
	err := r.CheckFields(math.MaxInt32)
	var e *api.Error
	if !errors.As(err, &e) {
		return err
	}
	flag := map[string]string{
		api.FieldPNR: "--pnr", api.FieldCountry: "--country",
		api.FieldTimeout: "--timeout", api.FieldReason: "--reason",
	}[e.Field]
	return cli.Usagef("%s (%s)", e.Message, flag)
}

// normalizeNewlines does what the broker does to the Reason before it
// checks the signature.
func normalizeNewlines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// jsonRequest has the request's fields in their canonical order, spelled
// as the spec spells them.
type jsonRequest struct {
	PNR       string `json:"PNR"`
	Country   string `json:"COUNTRY"`
	Timeout   int    `json:"Timeout"`
	Reason    string `json:"Reason"`
	LegalID   string `json:"LegalId"`
	Signature string `json:"Signature"`
	Issued    string `json:"Issued"`
	Nonce     string `json:"Nonce"`
}

// newNonce is 128 random bits in the URL-safe base64 alphabet the broker
// accepts.
func newNonce() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails: crypto/rand aborts the process instead
	return base64.RawURLEncoding.EncodeToString(b)
}

func requestJSON(r api.Request) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// Markdown is full of < > &; \u003c escapes would only obscure it.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(jsonRequest{
		PNR: r.PNR, Country: r.Country, Timeout: r.Timeout, Reason: r.Reason,
		LegalID: r.LegalID, Signature: base64.StdEncoding.EncodeToString(r.Signature),
		Issued: r.Issued, Nonce: r.Nonce,
	})
	return b.Bytes(), err
}

// requestXML writes the MFA element of MFA.xsd, children in schema order.
func requestXML(r api.Request) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, "<MFA xmlns=%q>\n", api.XMLNamespace)
	for _, f := range [...][2]string{
		{api.FieldPNR, r.PNR},
		{api.FieldCountry, r.Country},
		{api.FieldTimeout, fmt.Sprint(r.Timeout)},
		{api.FieldReason, r.Reason},
		{api.FieldLegalID, r.LegalID},
		{api.FieldSignature, base64.StdEncoding.EncodeToString(r.Signature)},
		{api.FieldIssued, r.Issued},
		{api.FieldNonce, r.Nonce},
	} {
		fmt.Fprintf(&b, "  <%s>", f[0])
		// EscapeText writes line feeds as &#xA;, which any XML parser
		// reads back as the line feed that was signed.
		if err := xml.EscapeText(&b, []byte(f[1])); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "</%s>\n", f[0])
	}
	b.WriteString("</MFA>\n")
	return b.Bytes(), nil
}

// signedFields are what signing adds to a request, one "Name: value" line
// each, in the order the encodings carry them.
func signedFields(r api.Request) []byte {
	var b bytes.Buffer
	for _, f := range [...][2]string{
		{api.FieldLegalID, r.LegalID},
		{api.FieldSignature, base64.StdEncoding.EncodeToString(r.Signature)},
		{api.FieldIssued, r.Issued},
		{api.FieldNonce, r.Nonce},
	} {
		fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
	}
	return b.Bytes()
}

// requestForm is the url-encoded body, fields in canonical order.
func requestForm(r api.Request) string {
	return strings.Join([]string{
		api.FieldPNR + "=" + url.QueryEscape(r.PNR),
		api.FieldCountry + "=" + url.QueryEscape(r.Country),
		api.FieldTimeout + "=" + fmt.Sprint(r.Timeout),
		api.FieldReason + "=" + url.QueryEscape(r.Reason),
		api.FieldLegalID + "=" + url.QueryEscape(r.LegalID),
		api.FieldSignature + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(r.Signature)),
		api.FieldIssued + "=" + url.QueryEscape(r.Issued),
		api.FieldNonce + "=" + url.QueryEscape(r.Nonce),
	}, "&")
}
