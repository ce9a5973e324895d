package encoding

import (
	"net/url"
	"sort"

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
}

func decodeForm(body []byte) (rawRequest, *Error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return rawRequest{}, errorf(CodeMalformed, "", "the body is not a valid URL-encoded form: %v", err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys) // so the same bad form always gets the same error
	for _, k := range keys {
		if fieldIndex(k) < 0 {
			return rawRequest{}, unknownFieldError(k)
		}
		if len(values[k]) > 1 {
			return rawRequest{}, errorf(CodeDuplicateField, k, "field %s appears more than once", k)
		}
	}
	var f formFields
	if err := form.NewDecoder().Decode(&f, values); err != nil {
		return rawRequest{}, errorf(CodeMalformed, "", "the form cannot be decoded: %v", err)
	}
	var raw rawRequest
	for i, v := range [...]string{f.PNR, f.COUNTRY, f.Timeout, f.Reason, f.LegalId, f.Signature, f.Issued, f.Nonce} {
		name := fieldNames[i]
		_, sent := values[name]
		// HTML forms send every input, filled in or not: an empty optional
		// field means the user left it out.
		if !sent || (v == "" && i >= fieldIndex(FieldLegalID)) {
			continue
		}
		raw.set(i, v)
	}
	return raw, nil
}
