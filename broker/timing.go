package broker

import (
	"strconv"
	"time"
)

// ServerTiming is the Server-Timing header of an MFA answer held for
// total, waited of it on the device: the broker's own work, and the wait
// from the push to the answer that decided, or to the end of a wait that
// got none (a timeout, a supersession). A relying party (or a
// browser's developer tools) can tell the broker's latency from the
// person's, which the total at the caller mixes with its network.
func ServerTiming(total, waited time.Duration) string {
	b := make([]byte, 0, 96)
	b = append(b, `broker;desc="broker's own work";dur=`...)
	b = appendMillis(b, total-waited)
	if waited > 0 {
		b = append(b, `, device;desc="waiting for the device";dur=`...)
		b = appendMillis(b, waited)
	}
	return string(b)
}

// appendMillis writes d in milliseconds with microsecond precision, the
// unit Server-Timing's dur has.
func appendMillis(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', 3, 64)
}
