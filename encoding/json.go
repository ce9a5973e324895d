package encoding

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/legalmfa/mfa/api"
)

// decodeJSON reads the request object. What relying parties send, a flat
// object of plain strings and an integer Timeout, is read in one pass;
// anything else goes to decodeJSONTokens, which gives every error its
// message.
func decodeJSON(body []byte) (api.Fields, *api.Error) {
	if !utf8.Valid(body) {
		// encoding/json would quietly turn invalid bytes into U+FFFD.
		return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body is not valid UTF-8")
	}
	if raw, ok := decodePlainJSON(body); ok {
		return raw, nil
	}
	return decodeJSONTokens(body)
}

// decodePlainJSON reads an object whose keys are known fields, each once,
// whose values are strings without escapes or, for Timeout, a plain
// non-negative integer. It reports false for anything else, valid or not,
// and then has decided nothing. It must agree with decodeJSONTokens on
// every body it takes (FuzzPlainJSON): encoding/json's tokenizer allocates
// for every value it reads, and this is most requests.
func decodePlainJSON(body []byte) (api.Fields, bool) {
	var raw api.Fields
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return raw, false
	}
	i = skipJSONSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return raw, skipJSONSpace(body, i+1) == len(body)
	}
	for {
		key, next, ok := plainJSONString(body, i)
		if !ok {
			return raw, false
		}
		field := api.FieldIndex(string(key))
		if field < 0 || raw.Has(field) {
			return raw, false
		}
		i = skipJSONSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return raw, false
		}
		i = skipJSONSpace(body, i+1)
		if api.FieldName(field) == api.FieldNumberMatching {
			return raw, false // a JSON boolean: the tokenizer reads it
		}
		var value []byte
		if api.FieldName(field) == api.FieldTimeout {
			value, next, ok = plainJSONInteger(body, i)
		} else {
			value, next, ok = plainJSONString(body, i)
		}
		if !ok {
			return raw, false
		}
		raw.Set(field, string(value))
		i = skipJSONSpace(body, next)
		if i >= len(body) {
			return raw, false
		}
		switch body[i] {
		case ',':
			i = skipJSONSpace(body, i+1)
		case '}':
			return raw, skipJSONSpace(body, i+1) == len(body)
		default:
			return raw, false
		}
	}
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainJSONString reads a string at b[i] with no escapes and no control
// characters, and returns its contents and the index after its closing
// quote.
func plainJSONString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, i, false
		}
	}
	return nil, i, false
}

// plainJSONInteger reads 0 or a digit string without a leading zero. A
// fraction or exponent after it is left for the caller, which expects a
// comma or a brace there and so hands the body to the tokenizer.
func plainJSONInteger(b []byte, i int) ([]byte, int, bool) {
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == i || (b[i] == '0' && j-i > 1) {
		return nil, i, false
	}
	return b[i:j], j, true
}

// decodeJSONTokens reads the request object token by token, so that
// unknown, repeated and mistyped fields are refused by name (encoding/json
// would silently keep the last duplicate and coerce nothing, but say
// little).
func decodeJSONTokens(body []byte) (api.Fields, *api.Error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return api.Fields{}, jsonSyntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body must be a JSON object, not %s", jsonKind(tok))
	}
	var raw api.Fields
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return api.Fields{}, jsonSyntaxError(err)
		}
		name, _ := tok.(string) // object keys are always strings
		i := api.FieldIndex(name)
		if i < 0 {
			return api.Fields{}, unknownFieldError(name)
		}
		if raw.Has(i) {
			return api.Fields{}, api.Errorf(api.CodeDuplicateField, name, "field %s appears more than once", name)
		}
		if tok, err = dec.Token(); err != nil {
			return api.Fields{}, jsonSyntaxError(err)
		}
		value, present, ferr := jsonFieldValue(name, tok)
		if ferr != nil {
			return api.Fields{}, ferr
		}
		if present {
			raw.Set(i, value)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return api.Fields{}, jsonSyntaxError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return api.Fields{}, api.Errorf(api.CodeMalformed, "", "the body has data after the JSON object")
	}
	return raw, nil
}

// jsonFieldValue checks a field's JSON type. Strings must be strings and
// Timeout an integer literal; null stands for an absent optional field.
func jsonFieldValue(name string, tok json.Token) (string, bool, *api.Error) {
	optional := api.Optional(api.FieldIndex(name))
	if name == api.FieldNumberMatching {
		switch v := tok.(type) {
		case bool:
			return strconv.FormatBool(v), true, nil
		case nil:
			return "", false, nil
		}
		return "", false, api.Errorf(api.CodeInvalidField, name, "NumberMatching must be a JSON boolean, true or false, not %s", jsonKind(tok))
	}
	switch v := tok.(type) {
	case string:
		if name == api.FieldTimeout {
			return "", false, api.Errorf(api.CodeInvalidField, name, "Timeout must be a JSON integer, not a string")
		}
		return v, true, nil
	case json.Number:
		if name != api.FieldTimeout {
			return "", false, api.Errorf(api.CodeInvalidField, name, "%s must be a JSON string, not a number", name)
		}
		s := v.String()
		if strings.ContainsAny(s, ".eE") {
			return "", false, api.Errorf(api.CodeInvalidField, name, "Timeout must be a whole number of seconds, without a fraction or exponent")
		}
		if strings.HasPrefix(s, "-") {
			return "", false, api.Errorf(api.CodeInvalidField, name, "Timeout must be at least 1 second")
		}
		return s, true, nil
	case nil:
		if optional {
			return "", false, nil
		}
		return "", false, api.Errorf(api.CodeInvalidField, name, "%s must not be null", name)
	}
	want := "a JSON string"
	if name == api.FieldTimeout {
		want = "a JSON integer"
	}
	return "", false, api.Errorf(api.CodeInvalidField, name, "%s must be %s, not %s", name, want, jsonKind(tok))
}

func jsonKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "an unknown value"
}

func jsonSyntaxError(err error) *api.Error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return api.Errorf(api.CodeMalformed, "", "the body is not valid JSON: %v (at byte %d)", syn, syn.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return api.Errorf(api.CodeMalformed, "", "the body is not valid JSON: it ends too early")
	}
	return api.Errorf(api.CodeMalformed, "", "the body is not valid JSON: %v", err)
}

// unknownFieldError names the field, and the right spelling when only the
// letter case is off (fields are case-sensitive: PNR, COUNTRY, Timeout, …).
func unknownFieldError(name string) *api.Error {
	for i := range api.NumFields {
		if f := api.FieldName(i); strings.EqualFold(f, name) {
			return api.Errorf(api.CodeUnknownField, "", "unknown field %s: field names are case-sensitive, did you mean %s?", fieldName(name), f)
		}
	}
	return api.Errorf(api.CodeUnknownField, "", "unknown field %s: the fields are PNR, COUNTRY, Timeout, Reason, and for signed requests LegalId, Signature, Issued and Nonce", fieldName(name))
}
