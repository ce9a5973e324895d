package broker

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/api"
)

func TestHintAdvances(t *testing.T) {
	t.Parallel()
	cases := []struct {
		current, next api.Hint
		want          bool
	}{
		{api.HintPushed, api.HintDelivered, true},
		{api.HintPushed, api.HintShown, true},
		{api.HintDelivered, api.HintShown, true},
		{api.HintShown, api.HintDelivered, false}, // a late receipt
		{api.HintDelivered, api.HintDelivered, false},
		{api.HintShown, api.HintAppOutdated, true},
		{api.HintAppOutdated, api.HintAppOutdated, false},
		{api.HintAppOutdated, api.HintDelivered, false},
		{api.HintAppOutdated, api.HintShown, true}, // another device shows it
	}
	for _, c := range cases {
		if got := hintAdvances(c.current, c.next); got != c.want {
			t.Errorf("%s → %s: %v", c.current, c.next, got)
		}
	}
}

// FuzzCollectQuery: any query a collect can carry is read without
// panicking; what is accepted is a wait in range and a known hint; what is
// refused is a field error that repeats no value that could be a personal
// number.
func FuzzCollectQuery(f *testing.F) {
	for _, q := range []string{"", "wait=30", "wait=0&hint=pushed", "hint=shown", "wait=31", "wait=1&wait=2", "hint=x", "pnr=19791231-1234", "wait=%zz", "wait=+1", "wait=05"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return // net/http hands the handler what it could parse; so do we
		}
		wait, seen, err := collectWait(q)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) || (e.Code != api.CodeInvalidField && e.Code != api.CodeUnknownField) {
				t.Fatalf("%q: %v", raw, err)
			}
			for _, vs := range q {
				for _, v := range vs {
					if digitRun.MatchString(v) && strings.Contains(e.Message, v) {
						t.Fatalf("%q: the message repeats %q: %s", raw, v, e.Message)
					}
				}
			}
			return
		}
		if wait < 0 || wait > api.MaxCollectWait*time.Second || wait%time.Second != 0 {
			t.Fatalf("%q: wait %v", raw, wait)
		}
		if seen != "" && !slices.Contains(api.Hints(), seen) {
			t.Fatalf("%q: hint %q", raw, seen)
		}
	})
}
