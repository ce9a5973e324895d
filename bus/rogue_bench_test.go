package bus_test

import (
	"crypto/ed25519"
	"runtime"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/bus/bustest"
	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// BenchmarkRogueDeviceMemory makes the attack of an approved device that
// subscribes without end under its own inbox, connects again and again
// does it again (four rounds of up to 300,000 subscriptions), and reports
// the heap of the process, which holds the embedded server: after each
// connection is cut off at the subscription limit and after all closed.
//
//	go test -run '^$' -bench RogueDeviceMemory -benchtime 1x ./bus/
func BenchmarkRogueDeviceMemory(b *testing.B) {
	r := bustest.Start(b)
	key, _ := identity.GenerateKey()
	r.Identity("rogue@legal.broker.test", key, identity.Approved)
	dev := identity.DeviceIDOf(key.Public().(ed25519.PublicKey))
	heap := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc) / (1 << 20)
	}
	before := heap()
	var peak float64
	for b.Loop() {
		for round := range 4 {
			nc, err := bustest.DeviceConn(r.URL, key, nats.MaxReconnects(0), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
			if err != nil {
				b.Fatalf("round %d: %v", round, err)
			}
			// One channel for all: the client starts no goroutine per
			// subscription, so the heap is the server's, not the attacker's.
			sink := make(chan *nats.Msg, 1)
			for i := range 300_000 {
				if _, err := nc.ChanSubscribe(notify.DeviceInbox(dev)+".r"+strconv.Itoa(i), sink); err != nil {
					break
				}
			}
			nc.Flush()
			peak = max(peak, heap())
			nc.Close()
		}
	}
	b.ReportMetric(before, "MiB-before")
	b.ReportMetric(peak, "MiB-peak")
	b.ReportMetric(heap(), "MiB-after")
}
