package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
)

// Request is what a relying party asks a person.
type Request struct {
	// PNR is the person's personal number, in its national format.
	PNR string
	// Country is the person's country of citizenship, ISO 3166-1 alpha-2
	// in upper case ("SE").
	Country string
	// Timeout is how long the person has to answer: whole seconds, from
	// 1 s to the broker's --max-timeout (300 s by default). A Timeout that
	// is not whole seconds is refused before anything is sent.
	Timeout time.Duration
	// Reason is shown to the person, in the README's Reason markdown.
	// CRLF and CR line breaks are sent (and signed) as LF, as the broker
	// reads them.
	Reason string
	// NumberMatching, for an order only: new(true) makes the person pick
	// the number the relying party shows (Order.NumberMatch); new(false)
	// turns it off where the broker allows; nil leaves it to the broker's
	// default. MFA refuses a request that sets it.
	NumberMatching *bool
}

// Result is an approval: the person approved, and Evidence proves it.
type Result struct {
	// RequestID names the MFA request; the evidence names it too.
	RequestID string
	// Message is the broker's message.
	Message string
	// Evidence is what the device signed, its signature, and the push it
	// was shown: check it with Verify (or VerifyEvidence) before relying on
	// it offline.
	Evidence *api.Evidence
	// Order is the order's Ref, Expires and NumberMatch, for the approval
	// of an order.
	Order *api.Order
	// Status is the HTTP status (200).
	Status int
	// Header is the answer's HTTP header; Server-Timing tells the broker's
	// own work from the wait for the person.
	Header http.Header
}

// MFA asks the person and waits for the answer (POST /MFA): until they
// approve, deny or Timeout passes. It returns a Result only for an
// approval; every other outcome is an error (a *Error, matching its
// sentinel: ErrDenied, ErrTimeout, ...). When ctx ends first, the request
// ends with it and the broker withdraws the prompt from the person's
// devices. The request is never sent twice unless its connection could not
// be made.
func (c *Client) MFA(ctx context.Context, r Request) (*Result, error) {
	if r.NumberMatching != nil {
		return nil, fmt.Errorf("%w: NumberMatching is a field of orders: use Order", ErrInvalidRequest)
	}
	ct, body, err := c.MarshalRequest(r)
	if err != nil {
		return nil, err
	}
	rep, err := c.do(ctx, call{method: http.MethodPost, url: c.mfaURL, contentType: ct, body: body})
	if err != nil {
		return nil, err
	}
	return approval(rep)
}

// MarshalRequest is the body MFA or Order sends for r, and its
// Content-Type, in the client's encoding: for logging or inspecting what
// goes on the wire. With a requester (WithRequester) every call signs
// anew, with a fresh Issued and Nonce.
func (c *Client) MarshalRequest(r Request) (contentType string, body []byte, err error) {
	ar, err := c.build(r)
	if err != nil {
		return "", nil, err
	}
	ct, body := encode(c.encoding, ar)
	return ct, body, nil
}

// build turns r into the wire request, signed if the client has a key.
func (c *Client) build(r Request) (api.Request, error) {
	if r.Timeout < time.Second || r.Timeout%time.Second != 0 {
		return api.Request{}, fmt.Errorf("%w: Timeout %s must be whole seconds, at least 1 s", ErrInvalidRequest, r.Timeout)
	}
	ar := api.Request{
		PNR: r.PNR, Country: r.Country, Timeout: int(r.Timeout / time.Second),
		Reason: normaliseBreaks(r.Reason), NumberMatching: r.NumberMatching,
	}
	if c.key != nil {
		ar.LegalID = c.legalID
		ar.Issued = c.clock.Now().UTC().Format(time.RFC3339)
		// 26 characters of A-Z and 2-7: 130 random bits.
		ar.Nonce = rand.Text()
		ar.Signature = ed25519.Sign(c.key, ar.SigningForm())
	}
	return ar, nil
}

// normaliseBreaks makes line breaks LF, as the broker reads them (and so
// as the signature must cover them).
func normaliseBreaks(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// field is a request field as text.
type field struct{ name, value string }

// orderedFields are the fields r has, in the schema's order, as XML
// elements and form values carry them; sig is the signature in base64.
func orderedFields(r api.Request, sig string) []field {
	fs := []field{
		{api.FieldPNR, r.PNR}, {api.FieldCountry, r.Country},
		{api.FieldTimeout, strconv.Itoa(r.Timeout)}, {api.FieldReason, r.Reason},
	}
	if r.LegalID != "" {
		fs = append(fs, field{api.FieldLegalID, r.LegalID}, field{api.FieldSignature, sig},
			field{api.FieldIssued, r.Issued}, field{api.FieldNonce, r.Nonce})
	}
	if r.NumberMatching != nil {
		fs = append(fs, field{api.FieldNumberMatching, strconv.FormatBool(*r.NumberMatching)})
	}
	return fs
}

// jsonRequest is the JSON of a request; absent fields are left out.
type jsonRequest struct {
	PNR            string `json:"PNR"`
	Country        string `json:"COUNTRY"`
	Timeout        int    `json:"Timeout"`
	Reason         string `json:"Reason"`
	LegalID        string `json:"LegalId,omitempty"`
	Signature      string `json:"Signature,omitempty"`
	Issued         string `json:"Issued,omitempty"`
	Nonce          string `json:"Nonce,omitempty"`
	NumberMatching *bool  `json:"NumberMatching,omitempty"`
}

// encode writes the request in the encoding, fields in the schema's order.
func encode(e Encoding, r api.Request) (contentType string, body []byte) {
	var sig string
	if r.Signature != nil {
		sig = base64.StdEncoding.EncodeToString(r.Signature)
	}
	switch e {
	case XML:
		var b bytes.Buffer
		b.Grow(256 + len(r.Reason))
		b.WriteString(`<MFA xmlns="` + api.XMLNamespace + `">`)
		for _, f := range orderedFields(r, sig) {
			b.WriteString("<" + f.name + ">")
			xml.EscapeText(&b, []byte(f.value))
			b.WriteString("</" + f.name + ">")
		}
		b.WriteString("</MFA>")
		return "text/xml; charset=utf-8", b.Bytes()
	case Form:
		// Written by hand rather than with url.Values.Encode, which sorts
		// the fields: in the schema's order, a body reads as the request.
		var b strings.Builder
		for i, f := range orderedFields(r, sig) {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(f.name + "=" + url.QueryEscape(f.value))
		}
		return "application/x-www-form-urlencoded", []byte(b.String())
	}
	b, _ := json.Marshal(jsonRequest{
		PNR: r.PNR, Country: r.Country, Timeout: r.Timeout, Reason: r.Reason,
		LegalID: r.LegalID, Signature: sig, Issued: r.Issued, Nonce: r.Nonce, NumberMatching: r.NumberMatching,
	})
	return "application/json", b
}
