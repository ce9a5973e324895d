package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/client"
	"github.com/legalmfa/mfa/internal/cli"
)

const signHelp = `
Usage: mfa-device sign --pnr PNR --country CC --timeout SECONDS (--reason TEXT | --reason-file FILE) [--number-matching true|false] [--format fields|json|xml|form]

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
  NumberMatching:<length>:true|false   (only with --number-matching)

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
  mfa-device sign ... --number-matching true --format json | curl --data-binary @- \
      -H 'Content-Type: application/json' $MFA_BROKER_URL/Orders
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
	numberMatching := c.Flags.String("number-matching", "", "for an order (POST /Orders): true or false, signed with the request; left out when not given")
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
	matching, err := parseNumberMatching(*numberMatching)
	if err != nil {
		return err
	}
	cfg, key, err := c.g.loadDevice(e.getenv)
	if err != nil {
		return err
	}
	if cfg.MaxTimeout > 0 && req.Timeout > cfg.MaxTimeout {
		fmt.Fprintf(e.stderr, "warning: --timeout %d is more than the %d seconds the broker allowed when this device applied; it may refuse the request\n", req.Timeout, cfg.MaxTimeout)
	}
	// The relying parties' client library signs and encodes, so what this
	// prints is what a relying party's Go code sends.
	encoding := map[string]client.Encoding{formatFields: client.Form, formatJSON: client.JSON, formatXML: client.XML, formatForm: client.Form}[*format]
	rp, err := client.New(cfg.BrokerURL, client.WithRequester(cfg.LegalID, key), client.WithEncoding(encoding))
	if err != nil {
		return err
	}
	_, body, err := rp.MarshalRequest(client.Request{
		PNR: req.PNR, Country: req.Country, Timeout: time.Duration(req.Timeout) * time.Second,
		Reason: req.Reason, NumberMatching: matching,
	})
	if err != nil {
		return err
	}
	out, err := formatSigned(*format, body)
	if err != nil {
		return err
	}
	if *format == formatForm {
		if _, tty := terminalFd(e.stdout); tty {
			out = append(out, '\n')
		}
	}
	_, err = e.stdout.Write(out)
	return err
}

// parseNumberMatching reads --number-matching: "" leaves the field out.
func parseNumberMatching(v string) (*bool, error) {
	switch v {
	case "":
		return nil, nil
	case "true", "false":
		on := v == "true"
		return &on, nil
	}
	return nil, cli.Usagef("--number-matching %q: want true or false (for an order), or leave it out", v)
}

// formatSigned prints a signed body as --format asks: the fields signing
// adds, or the body itself (JSON indented, every body ending in a line
// feed but the form's, whose last value it would become part of).
func formatSigned(format string, body []byte) ([]byte, error) {
	switch format {
	case formatFields:
		values, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		for _, name := range []string{api.FieldLegalID, api.FieldSignature, api.FieldIssued, api.FieldNonce} {
			fmt.Fprintf(&b, "%s: %s\n", name, values.Get(name))
		}
		return b.Bytes(), nil
	case formatJSON:
		var b bytes.Buffer
		if err := json.Indent(&b, body, "", "  "); err != nil {
			return nil, err
		}
		return append(b.Bytes(), '\n'), nil
	case formatXML:
		return append(body, '\n'), nil
	}
	return body, nil
}

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
