//go:build !linux

// Command mfa-bench measures a broker under load. It reads what it
// measures (CPU time, memory, load) from Linux's /proc, so it runs on Linux
// only; elsewhere it says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "mfa-bench: measures through Linux's /proc and runs on Linux only")
	os.Exit(1)
}
