package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// view is what the prompt UI shows for the request in front of the person.
type view struct {
	// body is fixed while one request is shown: who asks, the broker, and
	// the rendered Reason.
	body []string
	// hint answers the last input, or says what is happening.
	hint string
	// status is the countdown; on a terminal it changes every second.
	status string
	// question is the input prompt; empty while no input is expected.
	question string
	// replies counts the UI's replies to input, so that the same hint given
	// twice still shows twice.
	replies int
}

func (v view) lines() []string {
	lines := append([]string(nil), v.body...)
	if v.hint != "" {
		lines = append(lines, v.hint)
	}
	return append(lines, v.status)
}

func sameExceptStatus(a, b view) bool {
	return a.hint == b.hint && a.question == b.question && a.replies == b.replies && slices.Equal(a.body, b.body)
}

// screen is where the prompt UI draws. A terminal redraws in place; a
// pipe or log file gets each thing once, in order.
type screen interface {
	// draw shows v, replacing whatever view is shown.
	draw(v view)
	// clear removes the shown view.
	clear()
	// log prints a line that stays, above any view.
	log(line string)
	// echoed tells the screen the terminal echoed a line the person typed,
	// moving the cursor down a row.
	echoed()
}

// plainScreen writes line by line, for output that is not a terminal: the
// countdown appears once, and nothing is erased.
type plainScreen struct {
	w   io.Writer
	cur *view
}

func (p *plainScreen) draw(v view) {
	switch {
	case p.cur == nil || !slices.Equal(p.cur.body, v.body):
		for _, l := range v.lines() {
			fmt.Fprintln(p.w, l)
		}
		if v.question != "" {
			fmt.Fprintln(p.w, v.question)
		}
	case p.cur.hint != v.hint || p.cur.question != v.question || p.cur.replies != v.replies:
		if v.hint != "" {
			fmt.Fprintln(p.w, v.hint)
		}
		if v.question != "" {
			fmt.Fprintln(p.w, v.question)
		}
	}
	p.cur = &v
}

func (p *plainScreen) clear()          { p.cur = nil }
func (p *plainScreen) log(line string) { fmt.Fprintln(p.w, line) }
func (p *plainScreen) echoed()         {}

// ttyScreen keeps the view at the bottom of the terminal and redraws it in
// place: the countdown line is rewritten every second without touching
// what the person is typing, and a finished request is erased.
type ttyScreen struct {
	w io.Writer
	// size reports the terminal's width and height.
	size func() (width, height int)
	// flush discards typed-ahead input; nil when input is not a terminal.
	flush func()
	// echo is whether the terminal echoes typed lines, moving the cursor.
	echo bool

	cur *view
	// rowsAbove counts the rows from the view's first row down to the
	// cursor's row; statusUp is how far above the cursor the status is.
	rowsAbove, statusUp int
	// fits is false when the view was taller than the terminal, so that
	// its top cannot be reached to erase it.
	fits bool
}

func (t *ttyScreen) draw(v view) {
	if t.cur != nil && sameExceptStatus(*t.cur, v) {
		if t.cur.status != v.status {
			// DECSC/DECRC keep the cursor, and so the person's typing, where
			// it is while the status line above is rewritten.
			fmt.Fprintf(t.w, "\x1b7\x1b[%dA\r\x1b[2K%s\x1b8", t.statusUp, v.status)
		}
		t.cur = &v
		return
	}
	t.erase()
	t.paint(v)
}

func (t *ttyScreen) paint(v view) {
	width, height := t.size()
	if width <= 0 {
		width = 80
	}
	var b strings.Builder
	rows := 0
	for _, l := range v.lines() {
		b.WriteString(l)
		b.WriteString("\x1b[0m\n")
		rows += rowsFor(l, width)
	}
	b.WriteString(v.question)
	t.rowsAbove, t.statusUp = rows, 1
	t.fits = height <= 0 || rows < height
	t.cur = &v
	// Whatever was typed before this view appeared was meant for something
	// else; it must not answer this request.
	if t.flush != nil {
		t.flush()
	}
	io.WriteString(t.w, b.String())
}

func (t *ttyScreen) erase() {
	if t.cur == nil {
		return
	}
	switch {
	case !t.fits:
		io.WriteString(t.w, "\r\n")
	case t.rowsAbove > 0:
		fmt.Fprintf(t.w, "\r\x1b[%dA\x1b[J", t.rowsAbove)
	default:
		io.WriteString(t.w, "\r\x1b[J")
	}
	t.cur = nil
}

func (t *ttyScreen) clear() { t.erase() }

func (t *ttyScreen) log(line string) {
	v := t.cur
	t.erase()
	fmt.Fprintf(t.w, "%s\x1b[0m\n", line)
	if v != nil {
		t.paint(*v)
	}
}

func (t *ttyScreen) echoed() {
	if t.echo && t.cur != nil {
		t.rowsAbove++
		t.statusUp++
	}
}

// rowsFor is how many terminal rows a line takes when it wraps at width.
func rowsFor(line string, width int) int {
	w := ansi.StringWidth(line)
	if w == 0 {
		return 1
	}
	return (w-1)/width + 1
}
