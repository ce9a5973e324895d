package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/legalmfa/mfa/internal/poll"
)

// orderAnswer is what /Orders answers, as far as these tests look.
type orderAnswer struct {
	status int
	Code   string
	Order  struct{ Ref, Hint, NumberMatch string }
}

// order places an order of a JSON body.
func (r *brokerRig) order(body string) orderAnswer {
	r.t.Helper()
	return r.orders(http.MethodPost, "/Orders", body)
}

// collect asks for an order's outcome, waiting up to wait seconds for a
// change.
func (r *brokerRig) collect(ref, wait string) orderAnswer {
	r.t.Helper()
	return r.orders(http.MethodGet, "/Orders/"+ref+"?wait="+wait, "")
}

func (r *brokerRig) orders(method, path, body string) orderAnswer {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := orderAnswer{status: resp.StatusCode}
	if err := json.Unmarshal(data, &a); err != nil {
		r.t.Fatalf("%s %s = %d, not JSON: %s", method, path, resp.StatusCode, data)
	}
	return a
}

// collectOutcome collects until the order has ended.
func (r *brokerRig) collectOutcome(ref string) orderAnswer {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// An order that has ended answers a long poll at once.
		a := r.collect(ref, "5")
		if a.Code != "pending" || time.Now().After(deadline) {
			return a
		}
	}
}

// awaitHint collects until the pending order's hint is want. It polls
// without waiting: a long poll waits for a change from what is stored
// when it starts, so it would sit out its wait when the hint changed just
// before it.
func (r *brokerRig) awaitHint(ref, want string) {
	r.t.Helper()
	poll.For(r.t, poll.Patience, func() error {
		a := r.collect(ref, "0")
		switch {
		case a.Code != "pending":
			r.t.Fatalf("order ended %d %s while awaiting the hint %s", a.status, a.Code, want)
		case a.Order.Hint != want:
			return fmt.Errorf("hint %s, want %s", a.Order.Hint, want)
		}
		return nil
	})
}

const matchedOrder = `{"PNR":"19791231-1234","COUNTRY":"SE","Timeout":30,"Reason":"Log in to **Example Bank**","NumberMatching":true}`

// choicesOf reads the choices off an --auto prompt line.
func choicesOf(t *testing.T, line string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(line, " [choices ")
	list, _, ok2 := strings.Cut(rest, "]: ")
	if !ok || !ok2 {
		t.Fatalf("prompt line %q offers no choices", line)
	}
	return strings.Fields(list)
}

// An order with number matching, answered by 'listen --auto approve' with
// the number a test writes on its standard input, as a script would: the
// one the broker gave the relying party, or another of the choices.
func TestIntegrationOrderNumberMatching(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// pick is the line written for the prompt; "" closes standard input.
		pick   func(right string, choices []string) string
		line   string
		status int
		code   string
	}{
		{"right number", func(right string, _ []string) string { return right }, "approved ", http.StatusOK, "approved"},
		{"wrong number", func(right string, choices []string) string {
			return choices[(slices.Index(choices, right)+1)%len(choices)]
		}, "wrong-number ", http.StatusForbidden, "wrong-number"},
		{"no number", func(string, []string) string { return "" }, "unanswered ", http.StatusConflict, "pending"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rig := newBrokerRig(t)
			alice := rig.apply(strings.Split(personProps, ",")...)
			alice.approve()
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			out, _ := alice.listenFrom(pr, "--auto", "approve")

			placed := rig.order(matchedOrder)
			if placed.status != http.StatusCreated || placed.Code != "order-created" || placed.Order.NumberMatch == "" {
				t.Fatalf("POST /Orders = %d %s %+v", placed.status, placed.Code, placed.Order)
			}
			line := out.Expect(t, ": Log in to **Example Bank**\n")
			choices := choicesOf(t, line)
			if !strings.HasPrefix(line, "prompt ") || len(choices) != 3 || !slices.Contains(choices, placed.Order.NumberMatch) {
				t.Fatalf("prompt line %q: want the choices, %s among them", line, placed.Order.NumberMatch)
			}
			// The prompt line counts as showing the prompt.
			rig.awaitHint(placed.Order.Ref, "shown")

			if pick := tt.pick(placed.Order.NumberMatch, choices); pick != "" {
				io.WriteString(pw, pick+"\n")
			} else {
				pw.Close()
			}
			out.Expect(t, tt.line+strings.Fields(line)[1])
			got := rig.collect(placed.Order.Ref, "0")
			if tt.code != "pending" {
				got = rig.collectOutcome(placed.Order.Ref)
			} else if got.Order.Hint != "shown" {
				// A prompt left unanswered stays pending, on the screen.
				t.Errorf("hint %s, want shown", got.Order.Hint)
			}
			if got.status != tt.status || got.Code != tt.code {
				t.Fatalf("collect = %d %s, want %d %s", got.status, got.Code, tt.status, tt.code)
			}
			if strings.Contains(out.String(), "19791231") {
				t.Fatal("listen printed the PNR")
			}
		})
	}
}

// The interactive UI on an order with number matching: the choices on
// screen, "a" refused, the number typed approves.
func TestIntegrationInteractiveNumberMatching(t *testing.T) {
	t.Parallel()
	rig := newBrokerRig(t)
	alice := rig.apply(strings.Split(personProps, ",")...)
	alice.approve()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	out, _ := alice.listenFrom(pr)

	placed := rig.order(matchedOrder)
	if placed.status != http.StatusCreated || placed.Order.NumberMatch == "" {
		t.Fatalf("POST /Orders = %d %s %+v", placed.status, placed.Code, placed.Order)
	}
	shown := out.Expect(t, "/d/n] ")
	if !strings.Contains(shown, "Pick the number the requester shows you:") || !strings.Contains(shown, "["+placed.Order.NumberMatch+"]") {
		t.Fatalf("the choices are not on screen:\n%s", shown)
	}
	rig.awaitHint(placed.Order.Ref, "shown")
	time.Sleep(600 * time.Millisecond) // past the minimum reading time
	io.WriteString(pw, "a\n")
	out.Expect(t, "to approve, type the number the requester shows you")
	io.WriteString(pw, placed.Order.NumberMatch+"\n")
	out.Expect(t, "✔ approved request")
	if got := rig.collectOutcome(placed.Order.Ref); got.status != http.StatusOK || got.Code != "approved" {
		t.Fatalf("collect = %d %s, want 200 approved", got.status, got.Code)
	}
}
