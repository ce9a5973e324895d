// Command prebuild builds and caches the FerretDB test server that package
// mongotest starts, so that a CI script can pay for the build (a few
// minutes on a fresh machine) in a step of its own, outside the timeout of
// any test binary:
//
//	go run ./identity/mongostore/mongotest/prebuild
//
// It prints the cached binary's path. With MFA_FERRETDB_CACHE set, the
// binary is cached there.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/legalmfa/mfa/identity/mongostore/mongotest"
)

func main() {
	start := time.Now()
	bin, err := mongotest.Binary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "prebuild:", err)
		os.Exit(1)
	}
	fmt.Printf("%s (%v)\n", bin, time.Since(start).Round(time.Millisecond))
}
