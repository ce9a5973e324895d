package identity_test

import (
	"testing"

	"github.com/legalmfa/mfa/identity"
)

func TestIsCountryCode(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{
		{"SE", true},
		{"US", true},
		{"GB", true},
		{"AX", true},  // Åland: assigned although not a sovereign state
		{"AD", true},  // first in the list
		{"ZW", true},  // last in the list
		{"UK", false}, // exceptionally reserved for GB
		{"EU", false}, // exceptionally reserved
		{"XK", false}, // user-assigned (Kosovo)
		{"ZZ", false}, // user-assigned
		{"AA", false}, // user-assigned
		{"YU", false}, // withdrawn
		{"SU", false}, // withdrawn
		{"se", false},
		{"Se", false},
		{"sE", false},
		{"S", false},
		{"", false},
		{"SWE", false},
		{"SE ", false},
		{" SE", false},
		{"S E", false},
		{"ÅX", false},
		// Letters that would straddle two lines of the code list (AZǀBA,
		// CZǀDE, …) if a line lost its trailing space; none is a code.
		{"ZB", false}, {"ZC", false}, {"ZD", false}, {"ZE", false},
		{"RG", false}, {"YH", false}, {"UI", false}, {"ZL", false},
		{"YM", false}, {"ZN", false}, {"ZO", false}, {"YQ", false},
		{"ZT", false}, {"ZU", false}, {"ZV", false}, {"UW", false},
		// And within a line (ADǀAE, BAǀBB, …).
		{"DA", false}, {"EA", false}, {"AB", false}, {"MZ", true},
	} {
		if got := identity.IsCountryCode(tc.code); got != tc.want {
			t.Errorf("IsCountryCode(%q) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

// TestCountryCodeCount checks all 676 pairs of capital letters: exactly the
// 249 officially assigned ISO 3166-1 alpha-2 codes are accepted, so neither
// a straddling pair nor a missing code can slip through.
func TestCountryCodeCount(t *testing.T) {
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if identity.IsCountryCode(string([]rune{a, b})) {
				n++
			}
		}
	}
	if n != 249 {
		t.Errorf("%d codes accepted, want the 249 officially assigned", n)
	}
}
