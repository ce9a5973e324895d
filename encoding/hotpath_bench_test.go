package encoding_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/legalmfa/mfa/api"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/schema"
)

// The hot paths of POST /MFA that this package owns: decoding a typical
// request in each encoding, negotiating the answer format, verifying a
// requester's signature, and encoding the answer. Run with
//
//	go test -run '^$' -bench . -benchmem ./encoding/

// benchRequests is a typical unsigned request in each encoding, as relying
// parties send it.
func benchRequests() []struct{ name, contentType, body string } {
	return []struct{ name, contentType, body string }{
		{"xml", "text/xml; charset=utf-8", `<MFA xmlns="http://waher.se/Schema/MFA.xsd"><PNR>19791231-1234</PNR><COUNTRY>SE</COUNTRY><Timeout>60</Timeout><Reason>Log in to **Example Bank**</Reason></MFA>`},
		{"json", "application/json", `{"PNR":"19791231-1234","COUNTRY":"SE","Timeout":60,"Reason":"Log in to **Example Bank**"}`},
		{"form", "application/x-www-form-urlencoded", `PNR=19791231-1234&COUNTRY=SE&Timeout=60&Reason=Log+in+to+%2A%2AExample+Bank%2A%2A`},
	}
}

func benchDecoder(b *testing.B) *encoding.Decoder {
	b.Helper()
	s, err := schema.Load()
	if err != nil {
		b.Fatal(err)
	}
	return encoding.NewDecoder(s, 300)
}

// BenchmarkDecode is Decoder.Decode on an HTTP request, as the broker calls
// it: Content-Type, body read, decoding and the field rules.
func BenchmarkDecode(b *testing.B) {
	d := benchDecoder(b)
	for _, rq := range benchRequests() {
		b.Run(rq.name, func(b *testing.B) {
			body := []byte(rq.body)
			rd := bytes.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/MFA", nil)
			req.Header.Set("Content-Type", rq.contentType)
			req.ContentLength = int64(len(body))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				// The same request, its body rewound: what is measured is
				// the decoder, not building requests.
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				got, err := d.Decode(req)
				if err != nil || got.PNR != "19791231-1234" {
					b.Fatalf("Decode = %+v, %v", got, err)
				}
			}
		})
	}
}

// BenchmarkDecodeSigned is a signed request: four more fields (LegalId,
// base64 Signature, Issued, Nonce), but the signature is not verified here
// (see BenchmarkRequesterSignature).
func BenchmarkDecodeSigned(b *testing.B) {
	d := benchDecoder(b)
	sig := base64.StdEncoding.EncodeToString(make([]byte, 64))
	const (
		legalID = "c541b6fa-13ad-402a-866b-8ded80862060@legal.localhost"
		issued  = "2026-11-22T13:45:00Z"
		nonce   = "k3v9QmZ2xY7pLw4R-b8Tn"
	)
	bodies := map[encoding.Format]string{
		encoding.FormatXML: `<MFA xmlns="http://waher.se/Schema/MFA.xsd"><PNR>19791231-1234</PNR><COUNTRY>SE</COUNTRY><Timeout>60</Timeout><Reason>Pay **100 EUR** to Example Shop</Reason>` +
			`<LegalId>` + legalID + `</LegalId><Signature>` + sig + `</Signature><Issued>` + issued + `</Issued><Nonce>` + nonce + `</Nonce></MFA>`,
		encoding.FormatJSON: `{"PNR":"19791231-1234","COUNTRY":"SE","Timeout":60,"Reason":"Pay **100 EUR** to Example Shop","LegalId":"` + legalID +
			`","Signature":"` + sig + `","Issued":"` + issued + `","Nonce":"` + nonce + `"}`,
		encoding.FormatForm: `PNR=19791231-1234&COUNTRY=SE&Timeout=60&Reason=Pay+%2A%2A100+EUR%2A%2A+to+Example+Shop&LegalId=` + url.QueryEscape(legalID) +
			`&Signature=` + url.QueryEscape(sig) + `&Issued=` + url.QueryEscape(issued) + `&Nonce=` + nonce,
	}
	for _, f := range []encoding.Format{encoding.FormatXML, encoding.FormatJSON, encoding.FormatForm} {
		b.Run(f.String(), func(b *testing.B) {
			body := []byte(bodies[f])
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				got, err := d.DecodeBody(f, "", body)
				if err != nil || !got.Signed() {
					b.Fatalf("DecodeBody = %+v, %v", got, err)
				}
			}
		})
	}
}

// BenchmarkNegotiate is the Accept header of a typical browser, a
// catch-all, none at all, and a relying party's explicit JSON.
func BenchmarkNegotiate(b *testing.B) {
	for _, c := range []struct{ name, accept string }{
		{"browser", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"},
		{"any", "*/*"},
		{"empty", ""},
		{"json", "application/json"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := encoding.Negotiate(c.accept, encoding.MediaJSON); !ok {
					b.Fatal("nothing acceptable")
				}
			}
		})
	}
}

// BenchmarkRequesterSignature is what a signed request costs the broker
// beyond decoding: building the canonical MFA-Request/1 form and verifying
// the requester's Ed25519 signature over it.
func BenchmarkRequesterSignature(b *testing.B) {
	key, err := identity.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	req := api.Request{
		PNR: "19791231-1234", Country: "SE", Timeout: 60, Reason: "Pay **100 EUR** to Example Shop",
		LegalID: "c541b6fa-13ad-402a-866b-8ded80862060@legal.localhost",
		Issued:  "2026-11-22T13:45:00Z", Nonce: "k3v9QmZ2xY7pLw4R-b8Tn",
	}
	req.Signature = ed25519.Sign(key, req.SigningForm())
	pub := key.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if err := identity.Verify(pub, req.SigningForm(), req.Signature); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalApproval encodes the answer every successful MFA gets,
// evidence and all, in each machine format.
func BenchmarkMarshalApproval(b *testing.B) {
	push := []byte(`{"Version":2,"RequestId":"mxevsvz4k5k7lsb6pkxww26qhr","LegalId":"fc2268e1-0c56-4de5-90f9-3769beb7fcdf@legal.localhost","Broker":"localhost","Reason":"Log in to **Example Bank**","Requester":{"Verified":false,"RemoteIp":"127.0.0.1"},"Issued":"2026-11-22T13:29:32.752Z","Expires":"2026-11-22T13:30:32.752Z","AnswerSubject":"mfa.answer.abcdefghijklmnopqrstuvwxyz234567abcd.0123456789abcdef"}`)
	r := api.Response{
		Code: api.CodeApproved, Message: "The person approved the request.", RequestID: "mxevsvz4k5k7lsb6pkxww26qhr",
		Evidence: &api.Evidence{
			LegalID: "fc2268e1-0c56-4de5-90f9-3769beb7fcdf@legal.localhost", Decision: "approve", Algorithm: "Ed25519",
			PublicKey: make([]byte, 32), PublicKeyURL: "http://localhost:8080/Identities/fc2268e1-0c56-4de5-90f9-3769beb7fcdf@legal.localhost",
			SignedData: make([]byte, 290), Signature: make([]byte, 64), Push: push,
		},
	}
	for _, mt := range []encoding.MediaType{encoding.MediaJSON, encoding.MediaXML, encoding.MediaText} {
		b.Run(strings.ReplaceAll(string(mt), "/", "-"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encoding.Marshal(r, mt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
