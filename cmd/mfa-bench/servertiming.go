//go:build linux

package main

import (
	"strconv"
	"strings"
	"time"
)

// serverTiming reads the broker's Server-Timing header: its own work
// ("broker") and the wait from the push to the answer ("device"). ok is
// false when either is missing or malformed.
func serverTiming(header string) (own, wait time.Duration, ok bool) {
	var haveOwn, haveWait bool
	for _, metric := range strings.Split(header, ",") {
		params := strings.Split(strings.TrimSpace(metric), ";")
		var d time.Duration
		var haveDur bool
		for _, p := range params[1:] {
			v, found := strings.CutPrefix(strings.TrimSpace(p), "dur=")
			if !found {
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f >= 0 && f <= float64(24*time.Hour/time.Millisecond)) { // NaN too
				return 0, 0, false
			}
			d, haveDur = time.Duration(f*float64(time.Millisecond)), true
		}
		switch {
		case !haveDur:
		case params[0] == "broker":
			own, haveOwn = d, true
		case params[0] == "device":
			wait, haveWait = d, true
		}
	}
	if !haveOwn || !haveWait {
		return 0, 0, false
	}
	return own, wait, true
}
