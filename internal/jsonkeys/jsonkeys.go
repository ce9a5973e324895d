// Package jsonkeys holds the keys of a JSON document to the Go type it is
// decoded into, which encoding/json does not: it matches field names
// without regard to case and lets the last of two equal keys win, so
// {"pRoOf": …} and a second "Properties" would pass. Written by hand
// because no well-kept library checks keys against a Go type this way;
// encoding/json/v2 will, and this can go then.
package jsonkeys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Exact holds a JSON body, which must already be valid JSON, to the shape
// of the Go type t: every object's keys are the fields' names exactly,
// each at most once, and none names no field.
func Exact(body []byte, t reflect.Type) error {
	_, err := Check(json.NewDecoder(bytes.NewReader(body)), t, false, "the body")
	return err
}

// rawJSONType is a value kept as it came: its keys are not checked.
var rawJSONType = reflect.TypeFor[json.RawMessage]()

// Check reads one JSON value from dec and holds the keys of its
// objects to the Go type t it will be decoded into: a key that names a
// struct field must spell it exactly (encoding/json matches names without
// regard to case), no key appears twice in an object (encoding/json lets
// the last win), and unless unknownOK, no key names no field. For an
// object decoded into a struct it returns the keys it has; nil otherwise.
func Check(dec *json.Decoder, t reflect.Type, unknownOK bool, where string) (map[string]bool, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawJSONType {
		return nil, skipValue(dec)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil, nil // a scalar: encoding/json checks its type
	}
	switch {
	case delim == '{' && t.Kind() == reflect.Struct:
		fields := fieldTypes(t)
		seen := map[string]bool{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key := keyTok.(string)
			if seen[key] {
				return nil, fmt.Errorf("%s has the field %s twice", where, quote(key))
			}
			seen[key] = true
			ft, known := fields[key]
			if !known {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return nil, fmt.Errorf("%s has the field %s, which it does not take: field names are case-sensitive, and this one is spelled %s", where, quote(key), name)
					}
				}
				if !unknownOK {
					return nil, fmt.Errorf("%s has the field %s, which it does not take", where, quote(key))
				}
				if err := skipValue(dec); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := Check(dec, ft, unknownOK, "field "+key); err != nil {
				return nil, err
			}
		}
		_, err = dec.Token() // }
		return seen, err
	case delim == '{' && t.Kind() == reflect.Map:
		seen := map[string]bool{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key := keyTok.(string)
			if seen[key] {
				return nil, fmt.Errorf("%s has the key %s twice", where, quote(key))
			}
			seen[key] = true
			if _, err := Check(dec, t.Elem(), unknownOK, where+"."+quote(key)); err != nil {
				return nil, err
			}
		}
		_, err = dec.Token()
		return nil, err
	case delim == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i := 0; dec.More(); i++ {
			if _, err := Check(dec, t.Elem(), unknownOK, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return nil, err
			}
		}
		_, err = dec.Token()
		return nil, err
	}
	// A container where the Go value is none: encoding/json refuses it.
	return nil, skipRest(dec)
}

// skipValue reads one whole JSON value from dec.
func skipValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
		return skipRest(dec)
	}
	return nil
}

// skipRest reads the rest of a container whose opening dec has read.
func skipRest(dec *json.Decoder) error {
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

// fieldTypes maps a struct's JSON field names to their types.
func fieldTypes(t reflect.Type) map[string]reflect.Type {
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

// quote shows a key a document had: quoted and short, and not at all if
// it is not a plain name of letters, '_' and '-': messages are shown and
// logged, and a key of digits could be someone's personal number.
func quote(key string) string {
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-') {
			return "(a name that is not repeated here)"
		}
	}
	if len(key) > 32 {
		return "(a long name)"
	}
	return fmt.Sprintf("%q", key)
}
