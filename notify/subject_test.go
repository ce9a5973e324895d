package notify

import "testing"

func TestParseAnswerSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		subject, device, broker string
		ok                      bool
	}{
		{AnswerSubject("dev1", "inst1"), "dev1", "inst1", true},
		{"mfa.answer.dev1", "", "", false},
		{"mfa.answer.dev1.inst1.extra", "", "", false},
		{"mfa.answer..inst1", "", "", false},
		{"mfa.answer.dev1.", "", "", false},
		{"mfa.push.dev1.inst1", "", "", false},
		{"", "", "", false},
	} {
		device, broker, ok := parseAnswerSubject(tc.subject)
		if device != tc.device || broker != tc.broker || ok != tc.ok {
			t.Errorf("parseAnswerSubject(%q) = %q, %q, %t; want %q, %q, %t", tc.subject, device, broker, ok, tc.device, tc.broker, tc.ok)
		}
	}
}
