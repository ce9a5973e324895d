package schema

import (
	"testing"
)

// BenchmarkValidateRequest measures validation of a typical request, which
// happens on every XML /MFA request.
func BenchmarkValidateRequest(b *testing.B) {
	s, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	root := parse(b, request(okPNR, okCountry, okTimeout, okReason, legal()...))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(root); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateInvalidRequest measures the error path, which builds a
// message and a path.
func BenchmarkValidateInvalidRequest(b *testing.B) {
	s, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	root := parse(b, request(okPNR, okCountry, "0", okReason, legal()...))
	b.ReportAllocs()
	for b.Loop() {
		if s.Validate(root) == nil {
			b.Fatal("invalid request accepted")
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(); err != nil {
			b.Fatal(err)
		}
	}
}
