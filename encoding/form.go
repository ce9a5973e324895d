package encoding

import (
	"bytes"
	"net/url"
	"sort"

	"github.com/legalmfa/mfa/api"

	"github.com/go-playground/form/v4"
)

// formFields mirrors the request for go-playground/form. Every value is a
// string, as the spec says of form encoding; types are checked afterwards
// by the rules every encoding shares.
type formFields struct {
	PNR       string `form:"PNR"`
	COUNTRY   string `form:"COUNTRY"`
	Timeout   string `form:"Timeout"`
	Reason    string `form:"Reason"`
	LegalId   string `form:"LegalId"`
	Signature string `form:"Signature"`
	Issued    string `form:"Issued"`
	Nonce     string `form:"Nonce"`
	// NumberMatching is an order's: true, false, 1 or 0.
	NumberMatching string `form:"NumberMatching"`
}

func decodeForm(body []byte) (api.Fields, *api.Error) {
	if looksLike := otherEncoding(body); looksLike != "" {
		// Such a body would be read as one huge field name: say what
		// happened instead of echoing it, since it holds the PNR.
		return api.Fields{}, api.Errorf(api.CodeUnsupportedMediaType, "",
			"the body looks like %s, but the Content-Type says it is a web form (application/x-www-form-urlencoded, which curl -d sends when no Content-Type is given): send Content-Type: %s",
			looksLike, map[string]string{"JSON": "application/json", "XML": "application/xml"}[looksLike])
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body is not a valid URL-encoded form: %v", err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys) // so the same bad form always gets the same error
	for _, k := range keys {
		if api.FieldIndex(k) < 0 {
			return api.Fields{}, unknownFieldError(k)
		}
		if len(values[k]) > 1 {
			return api.Fields{}, api.Errorf(api.CodeDuplicateField, k, "field %s appears more than once", k)
		}
	}
	var f formFields
	if err := form.NewDecoder().Decode(&f, values); err != nil {
		return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the form cannot be decoded: %v", err)
	}
	var raw api.Fields
	for i, v := range [api.NumFields]string{f.PNR, f.COUNTRY, f.Timeout, f.Reason, f.LegalId, f.Signature, f.Issued, f.Nonce, f.NumberMatching} {
		name := api.FieldName(i)
		_, sent := values[name]
		// HTML forms send every input, filled in or not: an empty optional
		// field means the user left it out.
		if !sent || (v == "" && api.Optional(i)) {
			continue
		}
		raw.Set(i, v)
	}
	return raw, nil
}

// otherEncoding tells whether a body sent as a form is plainly JSON or
// XML: "JSON", "XML", or "" when it may be a form.
func otherEncoding(body []byte) string {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return ""
	}
	switch trimmed[0] {
	case '{', '[':
		return "JSON"
	case '<':
		return "XML"
	}
	return ""
}
