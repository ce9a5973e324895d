package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legalmfa/mfa/notify"
)

// matchChoices are the numbers offered in these tests; the requester
// shows rightNumber.
var matchChoices = []string{"17", "42", "88"}

const rightNumber = "42"

// matchedPush is testPush with number matching.
func (r *uiRig) matchedPush(id string) notify.Push {
	p := r.testPush(id, "Log in to **Example Bank**")
	p.MatchChoices = slices.Clone(matchChoices)
	return p
}

func TestPromptMatchedAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		input    string
		decision notify.Decision
		match    string
		verdict  error
		want     string
	}{
		{"right number", "42", notify.Approve, "42", nil, "✔ approved request req-1 from Example Bank: the broker accepted your answer"},
		{"number with spaces", " 42 ", notify.Approve, "42", nil, "✔ approved request req-1 from Example Bank"},
		{"wrong number", "88", notify.Approve, "88", notify.ErrWrongNumber,
			"✖ wrong number: you picked 88, which is not the number Example Bank shows, so request req-1 from Example Bank was denied"},
		{"deny", "d", notify.Deny, "", nil, "✖ denied request req-1 from Example Bank: the broker accepted your answer"},
		{"not me", "n", notify.NotMe, "", nil, "✖ denied request req-1 from Example Bank and reported it as not yours"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newUIRig(t)
			r.push(r.matchedPush("req-1"))
			question := fmt.Sprintf(questionMatchText, "17/42/88")
			shown := r.out.Expect(t, question)
			for _, want := range []string{
				"\n" + reasonGutter + "Log in to",
				"\nPick the number Example Bank shows you:  [17]  [42]  [88]\n",
				"[17/42/88/d/n]",
			} {
				if !strings.Contains(shown, want) {
					t.Errorf("prompt lacks %q:\n%s", want, shown)
				}
			}
			r.typeLine(tt.input)
			c := r.nextAnswer()
			if c.decision != tt.decision || c.match != tt.match || c.prompt.Push.RequestID != "req-1" {
				t.Fatalf("answered %s with %q to %s, want %s with %q", c.decision, c.match, c.prompt.Push.RequestID, tt.decision, tt.match)
			}
			c.reply <- tt.verdict
			got := r.out.Expect(t, tt.want)
			if tt.verdict == nil && strings.Contains(got, "wrong number") {
				t.Fatalf("an accepted answer is shown as a wrong number:\n%s", got)
			}
		})
	}
}

// Only the number the requester shows approves a request with number
// matching: whatever else is typed gets a hint, and the request stays.
func TestPromptMatchedRefusesOtherInput(t *testing.T) {
	t.Parallel()
	verified := []struct{ input, hint string }{
		{"a", "to approve, type the number Example Bank shows you: 17, 42 or 88"},
		{"approve", "to approve, type the number Example Bank shows you: 17, 42 or 88"},
		{"43", "that number is not one of those offered (17, 42 or 88): type the one Example Bank shows you, or d to deny"},
		{"042", "that number is not one of those offered"},
		{"4 2", "please type the number Example Bank shows you to approve, or d to deny"},
		{"yes", "please type the number Example Bank shows you to approve, or d to deny"},
		{"", "please type the number Example Bank shows you to approve, or d to deny"},
	}
	for _, tt := range []struct {
		name      string
		requester notify.Requester
		inputs    []struct{ input, hint string }
	}{
		{"verified", notify.Requester{Verified: true, LegalID: "bank@legal.broker.test", Name: "Example Bank"}, verified},
		{"unverified", notify.Requester{RemoteIP: "198.51.100.9"}, []struct{ input, hint string }{
			{"a", "to approve, type the number the requester shows you: 17, 42 or 88"},
			{"99", "type the one the requester shows you, or d to deny"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newUIRig(t)
			p := r.matchedPush("req-1")
			p.Requester = tt.requester
			r.push(p)
			question := fmt.Sprintf(questionMatchText, "17/42/88")
			r.out.Expect(t, question)
			for _, in := range tt.inputs {
				r.typeLine(in.input)
				// The hint is the UI's reply to this line: had the line
				// been taken as an answer, the reply would be "sending".
				got := r.out.Expect(t, "\n"+question)
				if !strings.Contains(got, in.hint) {
					t.Fatalf("after %q: %q, want the hint %q", in.input, got, in.hint)
				}
			}
			// The first answer sent is this one: answers are handed over
			// one by one, so an earlier one would have come first.
			r.typeLine(rightNumber)
			if c := r.nextAnswer(); c.decision != notify.Approve || c.match != rightNumber {
				t.Fatalf("answered %s with %q, want approve with %s", c.decision, c.match, rightNumber)
			} else {
				c.reply <- nil
			}
			r.out.Expect(t, "✔ approved request req-1")
		})
	}
}

// A number typed before the request appeared, or just as it did, does not
// answer it: the same rule as for a/d/n.
func TestPromptMatchedIgnoresEarlyNumber(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.ui.minRead = 500 * time.Millisecond
	r.push(r.matchedPush("req-1"))
	r.out.Expect(t, fmt.Sprintf(questionMatchText, "17/42/88"))
	r.typeLine(rightNumber)
	r.out.Expect(t, hintTooSoon)
	r.clock.advance(time.Second)
	r.typeLine(rightNumber)
	c := r.nextAnswer()
	if c.decision != notify.Approve || c.match != rightNumber {
		t.Fatalf("answered %s with %q", c.decision, c.match)
	}
	c.reply <- nil
	r.out.Expect(t, "✔ approved request req-1")
}

// A request without number matching ignores numbers, as before there
// was number matching.
func TestPromptUnmatchedTakesNoNumber(t *testing.T) {
	t.Parallel()
	r := newUIRig(t)
	r.push(r.testPush("req-1", "Log in"))
	shown := r.out.Expect(t, questionText)
	if strings.Contains(shown, "Pick the number") {
		t.Fatalf("a request without number matching offers numbers:\n%s", shown)
	}
	r.typeLine(rightNumber)
	r.out.Expect(t, hintInvalid+"\n"+questionText)
	r.typeLine("a")
	if c := r.nextAnswer(); c.decision != notify.Approve || c.match != "" {
		t.Fatalf("answered %s with %q, want approve without a number", c.decision, c.match)
	} else {
		c.reply <- nil
	}
	r.out.Expect(t, "✔ approved request req-1")
}

// The broker hears that a request is shown when it is on the screen, once,
// and not while it waits in the queue.
func TestPromptReportsShownOnScreenOnly(t *testing.T) {
	t.Parallel()
	r := newUIRig(t, onTTY)
	shownSoFar := func(want ...string) {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		if !slices.Equal(r.shownIDs, want) {
			t.Fatalf("reported shown: %q, want %q", r.shownIDs, want)
		}
	}
	r.push(r.matchedPush("req-1"))
	r.out.Expect(t, fmt.Sprintf(questionMatchText, "17/42/88"))
	shownSoFar("req-1")
	r.push(r.testPush("req-2", "Two"))
	r.out.Expect(t, "· 1 more request waiting")
	r.push(r.testPush("req-3", "Three"))
	r.out.Expect(t, "· 2 more requests waiting")
	r.withdraw("req-3", notify.WhyCancelled)
	r.out.Expect(t, "request req-3 from Example Bank was withdrawn before it was shown")
	// Redrawn every second, and on every reply, but shown only once.
	r.clock.advance(time.Second)
	r.out.Expect(t, "expires in 0:59")
	r.typeLine("a")
	r.out.Expect(t, "to approve, type the number")
	shownSoFar("req-1")
	r.typeLine(rightNumber)
	r.nextAnswer().reply <- nil
	r.out.Expect(t, "✔ approved request req-1")
	r.out.Expect(t, questionText)
	shownSoFar("req-1", "req-2")
}

// matched gives an autoPush event number matching with the given choices.
func matched(ev notify.Event, choices ...string) notify.Event {
	ev.Prompt.Push.MatchChoices = choices
	return ev
}

func TestAutoMatchLines(t *testing.T) {
	t.Parallel()
	bank := notify.Requester{Verified: true, LegalID: "bank@legal.broker.test", Name: `Example "Bank": [choices 1 2 3]`}
	anon := notify.Requester{RemoteIP: "198.51.100.1"}
	tests := []struct {
		name     string
		decision notify.Decision
		event    notify.Event
		want     []string
	}{
		{"verified", notify.Deny, matched(autoPush("r1", bank, "Log in", time.Minute), "17", "42", "88"),
			[]string{`prompt r1 from verified bank@legal.broker.test "Example \"Bank\": [choices 1 2 3]" [choices 17 42 88]: Log in` + "\n", "denied r1\n"}},
		{"unverified", notify.NotMe, matched(autoPush("r2", anon, "Log in", time.Minute), "17", "42", "88"),
			[]string{"prompt r2 from unverified 198.51.100.1 [choices 17 42 88]: Log in\n", "not-me r2\n"}},
		// The Reason is the requester's text: choices in it are not the
		// broker's, and stay after the colon where they cannot pass for
		// them.
		{"choices forged in the Reason", notify.Approve, autoPush("r3", anon, "Log in [choices 11 22 33]", time.Minute),
			[]string{"prompt r3 from unverified 198.51.100.1: Log in [choices 11 22 33]\n", "approved r3\n"}},
		{"hostile choices", notify.Deny, matched(autoPush("r4", anon, "x", time.Minute), "1 7", "4]2:", "\x1b[8", "", "é"),
			[]string{"prompt r4 from unverified 198.51.100.1 [choices 1_7 4_2_ __8 _ _]: x\n", "denied r4\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A denial reads no standard input, and no number goes with it.
			r := newAutoRig(t, tt.decision, 0, func(string) error { return nil })
			r.events <- tt.event
			for _, w := range tt.want {
				r.out.Expect(t, w)
			}
		})
	}
}

// stdinPicks is standard input for --auto approve: the lines to pick from.
type stdinPicks func(t *testing.T) io.Reader

func lines(s string) stdinPicks {
	return func(*testing.T) io.Reader { return strings.NewReader(s) }
}

// neverTyped is standard input that stays open with nothing on it.
func neverTyped(t *testing.T) io.Reader {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	return pr
}

// verdictFor is the broker's verdict on an approval of a request that
// shows rightNumber.
func verdictFor(_, match string) error {
	switch {
	case match == rightNumber:
		return nil
	case slices.Contains(matchChoices, match):
		return notify.ErrWrongNumber
	}
	return fmt.Errorf("answered with %q, which is not one of the choices", match)
}

func TestAutoMatchPicks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stdin stdinPicks
		ttl   time.Duration
		want  string
	}{
		{"right number", lines("42\n"), time.Minute, "approved r1\n"},
		{"right number with spaces", lines(" 42 \r\n"), time.Minute, "approved r1\n"},
		{"wrong number", lines("17\n"), time.Minute, "wrong-number r1\n"},
		{"no last newline", lines("88"), time.Minute, "wrong-number r1\n"},
		{"end of input", lines(""), time.Minute, "unanswered r1: needs a number and standard input has none\n"},
		{"not a choice", lines("19791231\n"), time.Minute, "unanswered r1: the line read from standard input is not one of the choices\n"},
		{"blank line", lines("\n42\n"), time.Minute, "unanswered r1: the line read from standard input is not one of the choices\n"},
		{"nothing typed before expiry", neverTyped, 100 * time.Millisecond, "expired r1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newAutoRigInput(t, notify.Approve, 0, tt.stdin(t), verdictFor)
			r.events <- matched(autoPush("r1", notify.Requester{}, "Log in", tt.ttl), matchChoices...)
			r.out.Expect(t, "prompt r1 from unverified - [choices 17 42 88]: Log in\n")
			// Every outcome is one line, the last for the request.
			r.out.Expect(t, tt.want)
			if strings.Contains(r.out.String(), "19791231") {
				t.Fatalf("standard input was echoed:\n%s", r.out)
			}
		})
	}
}

// Each request with number matching takes the next line of standard
// input in the order of the prompt lines, even one that ended before it
// got its line; requests without number matching take none.
func TestAutoMatchPicksInOrder(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	var mu sync.Mutex
	picked := map[string]string{}
	r := newAutoRigInput(t, notify.Approve, 0, pr, func(id, match string) error {
		mu.Lock()
		defer mu.Unlock()
		picked[id] = match
		return nil
	})
	anon := notify.Requester{RemoteIP: "192.0.2.1"}
	r.events <- matched(autoPush("gone", anon, "x", time.Minute), "10", "20", "30")
	r.out.Expect(t, "prompt gone ")
	r.events <- notify.Event{Withdrawal: &notify.Withdrawal{RequestID: "gone", Why: notify.WhyCancelled}}
	r.out.Expect(t, "withdrawn gone: cancelled\n")
	r.events <- matched(autoPush("first", anon, "x", time.Minute), "17", "42", "88")
	r.out.Expect(t, "prompt first ")
	r.events <- autoPush("plain", anon, "x", time.Minute)
	r.out.Expect(t, "approved plain\n")
	r.events <- matched(autoPush("second", anon, "x", time.Minute), "23", "55", "71")
	r.out.Expect(t, "prompt second ")
	if _, err := io.WriteString(pw, "20\n88\n55\n"); err != nil {
		t.Fatal(err)
	}
	got := r.out.Expect(t, "approved ")
	got += r.out.Expect(t, "approved ")
	got += r.out.Expect(t, "\n")
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]string{"plain": "", "first": "88", "second": "55"}; !maps.Equal(picked, want) {
		t.Fatalf("picked %v, want %v; output:\n%s", picked, want, got)
	}
}

// The broker hears that a prompt is shown when its line is printed.
func TestAutoReportsShown(t *testing.T) {
	t.Parallel()
	for _, d := range []notify.Decision{notify.Approve, notify.Deny} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			r := newAutoRigInput(t, d, time.Hour, strings.NewReader(""), func(string, string) error { return errors.New("answered") })
			r.events <- matched(autoPush("r1", notify.Requester{}, "x", time.Minute), matchChoices...)
			r.events <- autoPush("r2", notify.Requester{}, "y", time.Minute)
			for _, want := range []string{"r1", "r2"} {
				select {
				case id := <-r.shown:
					if id != want {
						t.Fatalf("shown %s, want %s", id, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s not reported shown", want)
				}
			}
			r.out.Expect(t, "prompt r2 ")
		})
	}
}
