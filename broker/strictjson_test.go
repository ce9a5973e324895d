package broker

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/api"
)

func TestExactKeys(t *testing.T) {
	t.Parallel()
	appType := reflect.TypeOf(&api.ApplicationRequest{})
	for _, c := range []struct {
		body, err string
	}{
		{`{"Properties":[{"Name":"A","Value":"b"}],"PublicKey":"k","Proof":"p"}`, ""},
		{`{}`, ""},
		{`{"Properties":null}`, ""},
		{`{"pRoOf":"p"}`, "does not take"},
		{`{"Properties":[{"Name":"A","vAlue":"b"}]}`, "does not take"},
		{`{"Proof":"a","Proof":"b"}`, "twice"},
		{`{"Properties":[{"Name":"A","Name":"B"}]}`, "twice"},
		{`{"Properties":{"Name":"A"}}`, ""}, // a type error, for encoding/json
		{`{"19791231-1234":"x"}`, "not repeated"},
	} {
		err := exactKeys([]byte(c.body), appType)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.body, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want an error with %q", c.body, err, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "19791231") {
			t.Errorf("%s: the error repeats the key: %v", c.body, err)
		}
	}
}

// FuzzApplicationJSON: the strict reading of an application never panics,
// and what it accepts encoding/json reads into the same fields.
func FuzzApplicationJSON(f *testing.F) {
	f.Add(`{"Properties":[{"Name":"A","Value":"b"}],"PublicKey":"k","Proof":"p"}`)
	f.Add(`{"pRoOf":"p","Properties":[[{"x":[1,{"y":2}]}]]}`)
	f.Fuzz(func(t *testing.T, body string) {
		if !json.Valid([]byte(body)) {
			return
		}
		var req api.ApplicationRequest
		if exactKeys([]byte(body), reflect.TypeOf(&req)) != nil {
			return
		}
		// Accepted: encoding/json, which matches without regard to case,
		// may still refuse a type, but no field name may differ.
		var loose map[string]any
		if json.Unmarshal([]byte(body), &loose) == nil {
			for k := range loose {
				if k != "Properties" && k != "PublicKey" && k != "Proof" {
					t.Fatalf("accepted the field %q", k)
				}
			}
		}
	})
}
