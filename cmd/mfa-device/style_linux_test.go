package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the terminal's side, which the test
// plays, and the side a program sees as its terminal.
func openPTY(t *testing.T) (term, tty *os.File) {
	t.Helper()
	term, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(term.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(term.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close(); term.Close() })
	return term, tty
}

// TestStyleAsksTheTerminal: on a real (pseudo-)terminal that says its
// background is white, --style auto chooses the light style; on one that
// says black, dark.
func TestStyleAsksTheTerminal(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ rgb, want string }{
		{"ffff/ffff/ffff", styleLight},
		{"0000/0000/0000", styleDark},
	} {
		term, tty := openPTY(t)
		asked := make(chan string, 1)
		go func() {
			// The terminal reads the query and answers it as xterm does:
			// OSC 11 with its colour, then the device attributes.
			buf := make([]byte, 256)
			n, _ := term.Read(buf)
			asked <- string(buf[:n])
			term.WriteString("\x1b]11;rgb:" + c.rgb + "\x07\x1b[?62;22c")
		}()
		got := chooseStyle(styleAuto, true, terminalBackground(tty, tty), func(string) string { return "" })
		if q := <-asked; !strings.Contains(q, "\x1b]11;?") {
			t.Errorf("the terminal was not asked for its background: %q", q)
		}
		if got != c.want {
			t.Errorf("background %s: style %s, want %s", c.rgb, got, c.want)
		}
	}
}
