package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// exactKeys holds a JSON body to the shape of the Go value it is decoded
// into, as strictly as the MFA resource holds its requests:
// encoding/json matches field names without regard to case and lets the
// last of two equal keys win, so {"pRoOf": …} and a second "Properties"
// would pass. Here every object's keys must be the fields' names exactly,
// each at most once. The body must already be valid JSON.
func exactKeys(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	return exactValue(dec, t, "the body")
}

func exactValue(dec *json.Decoder, t reflect.Type, where string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar: encoding/json checks its type
	}
	switch {
	case delim == '{' && t.Kind() == reflect.Struct:
		fields := jsonFields(t)
		seen := map[string]bool{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return err
			}
			key := keyTok.(string)
			f, known := fields[key]
			switch {
			case !known:
				return fmt.Errorf("%s has the field %s, which it does not take (field names are case-sensitive)", where, fieldName(key))
			case seen[key]:
				return fmt.Errorf("%s has the field %s twice", where, fieldName(key))
			}
			seen[key] = true
			if err := exactValue(dec, f, fmt.Sprintf("field %s", key)); err != nil {
				return err
			}
		}
	case delim == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i := 0; dec.More(); i++ {
			if err := exactValue(dec, t.Elem(), fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	default:
		// A container where the Go value is not one: encoding/json refuses
		// it; here only its end is found.
		for depth := 1; depth > 0; {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			switch tok {
			case json.Delim('{'), json.Delim('['):
				depth++
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
		}
		return nil
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// jsonFields maps a struct's JSON field names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// fieldName shows a field name a caller sent: quoted and short, and not
// at all if it is not a plain name.
func fieldName(name string) string {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_') {
			return "(a name that is not repeated here)"
		}
	}
	if len(name) > 32 {
		return "(a long name)"
	}
	return fmt.Sprintf("%q", name)
}
