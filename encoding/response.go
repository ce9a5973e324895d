package encoding

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/legalmfa/mfa/api"

	"github.com/beevik/etree"
)

// wireResponse is the JSON shape of an api.Response, with binary values
// of a type encoding/json writes straight into its buffer.
type wireResponse struct {
	Code       api.Code      `json:"Code"`
	Message    string        `json:"Message"`
	RequestID  string        `json:"RequestId,omitempty"`
	Field      string        `json:"Field,omitempty"`
	RetryAfter int           `json:"RetryAfter,omitempty"`
	Evidence   *wireEvidence `json:"Evidence,omitempty"`
	Order      *api.Order    `json:"Order,omitempty"`
}

type wireEvidence struct {
	LegalID      string `json:"LegalId"`
	Decision     string `json:"Decision"`
	Algorithm    string `json:"Algorithm"`
	PublicKey    binary `json:"PublicKey"`
	PublicKeyURL string `json:"PublicKeyUrl"`
	SignedData   binary `json:"SignedData"`
	Signature    binary `json:"Signature"`
	Push         binary `json:"Push"`
	Match        string `json:"Match,omitempty"`
}

// binary is bytes an answer carries in standard base64. encoding/json
// writes a byte slice that way straight into its buffer; turning each into
// a string first cost a copy of the evidence, mostly the push, per answer.
type binary []byte

// String is b in standard base64, for the XML and text encoders.
func (b binary) String() string { return base64.StdEncoding.EncodeToString(b) }

// wireBinary keeps an absent value "" rather than JSON's null, as when it
// was a string.
func wireBinary(b []byte) binary {
	if b == nil {
		return binary{}
	}
	return binary(b)
}

func wire(r api.Response) wireResponse {
	w := wireResponse{Code: r.Code, Message: r.Message, RequestID: r.RequestID, Field: r.Field, RetryAfter: r.RetryAfter, Order: r.Order}
	if e := r.Evidence; e != nil {
		w.Evidence = &wireEvidence{
			LegalID: e.LegalID, Decision: e.Decision, Algorithm: e.Algorithm,
			PublicKey: wireBinary(e.PublicKey), PublicKeyURL: e.PublicKeyURL,
			SignedData: wireBinary(e.SignedData), Signature: wireBinary(e.Signature), Push: wireBinary(e.Push),
			Match: e.Match,
		}
	}
	return w
}

// Marshal encodes r in the media type. HTML is rendered by the Pages type.
func Marshal(r api.Response, mt MediaType) ([]byte, error) {
	switch mt {
	case MediaJSON:
		// Compact: machines read it, and indenting cost a third of the
		// encoding's time (pipe through jq to read it by eye).
		b, err := json.Marshal(wire(r))
		if err != nil {
			return nil, fmt.Errorf("encode JSON response: %w", err)
		}
		return append(b, '\n'), nil
	case MediaXML, MediaTextXML:
		return marshalXML(r)
	case MediaText:
		return marshalText(r), nil
	}
	return nil, fmt.Errorf("no encoder for %s", mt)
}

// marshalXML writes the MFAResponse element of MFA.xsd, its children in the
// schema's order, escaping only what XML requires.
func marshalXML(r api.Response) ([]byte, error) {
	w := wire(r)
	doc := etree.NewDocument()
	doc.WriteSettings.CanonicalText = true
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	root := doc.CreateElement("MFAResponse")
	root.CreateAttr("xmlns", api.XMLNamespace)
	add := func(parent *etree.Element, name, value string, always bool) {
		if value != "" || always {
			parent.CreateElement(name).SetText(xmlSafe(value))
		}
	}
	add(root, "Code", string(w.Code), true)
	add(root, "Message", w.Message, true)
	add(root, "RequestId", w.RequestID, false)
	add(root, "Field", w.Field, false)
	if w.RetryAfter > 0 {
		add(root, "RetryAfter", strconv.Itoa(w.RetryAfter), true)
	}
	if e := w.Evidence; e != nil {
		ev := root.CreateElement("Evidence")
		for _, f := range [...][2]string{
			{"LegalId", e.LegalID}, {"Decision", e.Decision}, {"Algorithm", e.Algorithm},
			{"PublicKey", e.PublicKey.String()}, {"PublicKeyUrl", e.PublicKeyURL}, {"SignedData", e.SignedData.String()},
			{"Signature", e.Signature.String()}, {"Push", e.Push.String()},
		} {
			add(ev, f[0], f[1], true)
		}
		add(ev, "Match", e.Match, false)
	}
	if o := w.Order; o != nil {
		el := root.CreateElement("Order")
		add(el, "Ref", o.Ref, true)
		add(el, "Expires", o.Expires, true)
		add(el, "Hint", string(o.Hint), false)
		add(el, "NumberMatch", o.NumberMatch, false)
	}
	doc.Indent(2)
	b, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("encode XML response: %w", err)
	}
	return b, nil
}

// xmlSafe replaces the characters XML 1.0 cannot carry at all (most C0
// controls, surrogates, U+FFFE/U+FFFF, invalid UTF-8) with U+FFFD.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xfffe, r == 0xffff, r == utf8.RuneError, r >= 0xd800 && r <= 0xdfff:
			return '\ufffd'
		}
		return r
	}, s)
}

// marshalText is one "Name: value" line per field, for people and shell scripts.
func marshalText(r api.Response) []byte {
	var b bytes.Buffer
	line := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "%s: %s\n", name, value)
		}
	}
	w := wire(r)
	line("Code", string(w.Code))
	line("Message", w.Message)
	line("RequestId", w.RequestID)
	line("Field", w.Field)
	if w.RetryAfter > 0 {
		line("RetryAfter", strconv.Itoa(w.RetryAfter))
	}
	if e := w.Evidence; e != nil {
		line("Evidence.LegalId", e.LegalID)
		line("Evidence.Decision", e.Decision)
		line("Evidence.Algorithm", e.Algorithm)
		line("Evidence.PublicKey", e.PublicKey.String())
		line("Evidence.PublicKeyUrl", e.PublicKeyURL)
		line("Evidence.SignedData", e.SignedData.String())
		line("Evidence.Signature", e.Signature.String())
		line("Evidence.Push", e.Push.String())
		line("Evidence.Match", e.Match)
	}
	if o := w.Order; o != nil {
		line("Order.Ref", o.Ref)
		line("Order.Expires", o.Expires)
		line("Order.Hint", string(o.Hint))
		line("Order.NumberMatch", o.NumberMatch)
	}
	return b.Bytes()
}

// SetHeaders sets the headers every answer carries.
func SetHeaders(h http.Header, mt MediaType, r api.Response) {
	h.Set("Content-Type", string(mt)+"; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept")
	if r.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(r.RetryAfter))
	}
	if r.Code.Status() == http.StatusUnauthorized {
		// RFC 9110 requires a challenge with 401: the requester proves
		// itself with the MFA Signature field, or, collecting an order it
		// signed, with an Authorization header.
		if r.Field == "Authorization" {
			h.Set("WWW-Authenticate", api.OrderAuthScheme+` realm="MFA"`)
		} else {
			h.Set("WWW-Authenticate", `MFA-Signature realm="MFA"`)
		}
	}
}
