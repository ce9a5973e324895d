package main

import "golang.org/x/sys/unix"

// flushInput returns a function that discards what was typed on the
// terminal fd but not yet read, including a half-typed line: keystrokes
// meant for one request must not answer the next.
func flushInput(fd int) func() {
	return func() { _ = unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH) }
}
