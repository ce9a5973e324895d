package encoding_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/api"
)

// fuzzDecode checks what must hold for any body: no panic, and either a
// request that obeys every field rule or an error with a 4xx code.
func fuzzDecode(f *testing.F, contentType string, seeds []string) {
	d := newDecoder(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/MFA", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		req, err := d.Decode(r)
		if err != nil {
			e, ok := err.(*api.Error)
			if !ok {
				t.Fatalf("error of type %T", err)
			}
			if s := e.Code.Status(); s < 400 || s > 499 || e.Message == "" {
				t.Fatalf("bad input gave %s (%d) %q", e.Code, s, e.Message)
			}
			return
		}
		if req.PNR == "" || len(req.Country) != 2 || req.Timeout < 1 || req.Timeout > 300 || strings.TrimSpace(req.Reason) == "" {
			t.Fatalf("accepted a request breaking the field rules: %+v", req)
		}
		if (req.LegalID == "") != (req.Signature == nil) || (req.Signature != nil && len(req.Signature) != 64) {
			t.Fatalf("accepted LegalId/Signature %q/%x", req.LegalID, req.Signature)
		}
		if strings.Contains(req.Reason, "\r") {
			t.Fatal("Reason kept a carriage return")
		}
	})
}

func FuzzDecodeXML(f *testing.F) {
	fuzzDecode(f, "text/xml", []string{
		validFields().xml(),
		validFields().with("LegalId", "a@b").with("Signature", strings.Repeat("A", 86)+"==").xml(),
		`<?xml version="1.0" encoding="ISO-8859-1"?><MFA xmlns="http://waher.se/Schema/MFA.xsd"/>`,
		`<!DOCTYPE x [<!ENTITY a "b">]><MFA/>`,
		`<m:MFA xmlns:m="http://waher.se/Schema/MFA.xsd"><m:PNR>1</m:PNR></m:MFA>`,
	})
}

func FuzzDecodeJSON(f *testing.F) {
	fuzzDecode(f, "application/json", []string{
		validFields().json(),
		`{"PNR":"1","PNR":"2"}`,
		`{"PNR":{"a":[1,2,{"b":null}]}}`,
		`{"Timeout":1e400}`,
		`[`,
	})
}

func FuzzDecodeForm(f *testing.F) {
	fuzzDecode(f, "application/x-www-form-urlencoded", []string{
		validFields().form(),
		"PNR=1&PNR=2",
		"PNR=%zz",
		"LegalId=&Signature=",
		"a;b=c",
	})
}
