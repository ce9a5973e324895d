package encoding

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/legalmfa/mfa/api"

	"github.com/legalmfa/mfa/schema"
)

// Format is one of the request encodings.
type Format int

// The request encodings the MFA resource accepts.
const (
	FormatXML Format = iota + 1
	FormatJSON
	FormatForm
)

func (f Format) String() string {
	switch f {
	case FormatXML:
		return "xml"
	case FormatJSON:
		return "json"
	case FormatForm:
		return "form"
	}
	return "unknown"
}

// MaxBodyBytes is the largest request body the MFA resource reads: far
// more than any request needs (the fields' own limits add up to a few KiB).
const MaxBodyBytes = 64 << 10

// Decoder turns an HTTP request into a validated Request. It is immutable
// and safe for concurrent use.
type Decoder struct {
	schema       *schema.Schema
	maxBodyBytes int64
	maxTimeout   int
}

// DecoderOption configures a Decoder.
type DecoderOption func(*Decoder)

// WithMaxBodyBytes bounds the request body below MaxBodyBytes; larger
// bodies get 413. Tests use it to reach the limit cheaply.
func WithMaxBodyBytes(n int64) DecoderOption { return func(d *Decoder) { d.maxBodyBytes = n } }

// NewDecoder returns a decoder that validates XML against s and accepts a
// Timeout of 1 to maxTimeout seconds.
func NewDecoder(s *schema.Schema, maxTimeout int, opts ...DecoderOption) *Decoder {
	d := &Decoder{schema: s, maxBodyBytes: MaxBodyBytes, maxTimeout: maxTimeout}
	for _, o := range opts {
		o(d)
	}
	return d
}

// MaxTimeout is the largest Timeout the decoder accepts, in seconds.
func (d *Decoder) MaxTimeout() int { return d.maxTimeout }

// ContentType is a parsed request Content-Type.
type ContentType struct {
	Format Format
	// Media is the request's own media type, for answering in kind.
	Media   MediaType
	Charset string
}

// ParseContentType tells which encoding a Content-Type header names and the
// media type an answer "in the request's own format" would use. Its error
// is an *api.Error.
func ParseContentType(header string) (ContentType, error) {
	ct, err := parseContentType(header)
	if err != nil {
		return ContentType{}, err
	}
	return ct, nil
}

func parseContentType(header string) (ContentType, *api.Error) {
	const supported = "text/xml, application/xml, application/json or application/x-www-form-urlencoded"
	if strings.TrimSpace(header) == "" {
		return ContentType{}, api.Errorf(api.CodeUnsupportedMediaType, "", "a Content-Type header is required: %s", supported)
	}
	mt, params, err := mime.ParseMediaType(header)
	if err != nil {
		return ContentType{}, api.Errorf(api.CodeUnsupportedMediaType, "", "Content-Type %s cannot be parsed: %v", quote(header, 80), err)
	}
	ct := ContentType{Charset: strings.ToLower(strings.TrimSpace(params["charset"]))}
	switch mt {
	case "text/xml":
		ct.Format, ct.Media = FormatXML, MediaTextXML
	case "application/xml":
		ct.Format, ct.Media = FormatXML, MediaXML
	case "application/json":
		ct.Format, ct.Media = FormatJSON, MediaJSON
	case "application/x-www-form-urlencoded":
		// Forms have no answer format of their own; machine clients posting
		// forms are best served by JSON, and browsers ask for HTML anyway.
		ct.Format, ct.Media = FormatForm, MediaJSON
	default:
		return ContentType{}, api.Errorf(api.CodeUnsupportedMediaType, "", "Content-Type %s is not supported: use %s", quote(mt, 80), supported)
	}
	if ct.Format != FormatXML && ct.Charset != "" && !isUTF8Label(ct.Charset) {
		return ContentType{}, api.Errorf(api.CodeUnsupportedMediaType, "", "charset %s is not supported for %s: send UTF-8", quote(ct.Charset, 40), mt)
	}
	return ct, nil
}

func isUTF8Label(label string) bool {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii":
		return true
	}
	return false
}

// Decode reads, decodes and validates an MFA request. Every error it
// returns is an *api.Error with the code and field at fault.
func (d *Decoder) Decode(r *http.Request) (api.Request, error) {
	ct, err := ParseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		return api.Request{}, err
	}
	return d.DecodeContent(r, ct)
}

// DecodeContent is Decode for a caller that has parsed the Content-Type
// already.
func (d *Decoder) DecodeContent(r *http.Request, ct ContentType) (api.Request, error) {
	body, cerr := d.readBody(r)
	if cerr != nil {
		return api.Request{}, cerr
	}
	req, cerr := d.DecodeBody(ct.Format, ct.Charset, body)
	if cerr != nil {
		return api.Request{}, cerr
	}
	return req, nil
}

// DecodeBody decodes a body already read, in the given format. charset is
// the Content-Type's charset parameter, or "".
func (d *Decoder) DecodeBody(format Format, charset string, body []byte) (api.Request, *api.Error) {
	var raw api.Fields
	var err *api.Error
	switch format {
	case FormatXML:
		raw, err = d.decodeXML(body, charset)
	case FormatJSON:
		raw, err = decodeJSON(body)
	case FormatForm:
		raw, err = decodeForm(body)
	default:
		return api.Request{}, api.Errorf(api.CodeUnsupportedMediaType, "", "unknown request format")
	}
	if err != nil {
		return api.Request{}, err
	}
	return raw.Build(d.maxTimeout)
}

// readBody refuses an oversized body from its declared length before
// reading a byte, and otherwise reads at most one byte past the limit.
func (d *Decoder) readBody(r *http.Request) ([]byte, *api.Error) {
	tooLarge := func() *api.Error {
		return api.Errorf(api.CodeBodyTooLarge, "", "the request body is larger than %d bytes", d.maxBodyBytes)
	}
	if r.ContentLength > d.maxBodyBytes {
		return nil, tooLarge()
	}
	if r.Body == nil {
		return nil, api.Errorf(api.CodeMalformed, "", "the request has no body")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, d.maxBodyBytes+1))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, tooLarge()
	case err != nil:
		return nil, api.Errorf(api.CodeMalformed, "", "the request body could not be read: %v", err)
	case int64(len(body)) > d.maxBodyBytes:
		return nil, tooLarge()
	case len(body) == 0:
		return nil, api.Errorf(api.CodeMalformed, "", "the request body is empty")
	}
	return body, nil
}

// quote shows a caller-supplied value in a message: Go-quoted so control
// characters are visible, and cut short so a huge value cannot bloat it.
// It is for values that cannot hold personal data (media types, charsets);
// names a caller chose go through fieldName.
func quote(v string, max int) string {
	if utf8.RuneCountInString(v) > max {
		v = string([]rune(v)[:max]) + "…"
	}
	return strconv.Quote(v)
}

// fieldName shows a field or element name the caller sent, if it looks
// like a name: letters, '_' and '-', at most 32 of them. Anything else may
// be a value sent where a name belongs (a personal number as a form key,
// a JSON body read as a form) and is not repeated.
func fieldName(name string) string {
	ok := name != "" && len(name) <= 32
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-') {
			ok = false
			break
		}
	}
	if !ok {
		return "(a name that is not repeated here, since it is not a field name and may hold personal data)"
	}
	return strconv.Quote(name)
}
