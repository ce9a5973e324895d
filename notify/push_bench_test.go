package notify_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
)

// The push round trip: Pusher.Ask pushes a signed request over NATS, a
// real notify.Device verifies it and answers with its signature, the
// pusher verifies the answer, acknowledges it and returns the outcome (the
// device that answered gets no withdrawal). Run with
//
//	go test -run '^$' -bench PushRoundTrip -benchmem ./notify/
//
// The server is a plain nats-server with JetStream (the broker's shared
// buckets need it), started here rather
// than by StartServer, so that what is measured is the protocol, whatever
// the server's authentication; the pusher talks to it in-process as the
// broker does and devices over loopback TCP as phones do.

type benchRig struct {
	pusher  *notify.Pusher
	targets []notify.Target
}

func newBenchRig(b *testing.B, devices int) *benchRig {
	b.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: b.TempDir(), MaxPayload: 64 << 10,
	})
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	b.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server did not start")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	brokerKey, err := identity.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	p, err := notify.NewPusher(context.Background(), nc, brokerKey, "broker.test", notify.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()) })
	r := &benchRig{pusher: p}
	for i := range devices {
		key, err := identity.GenerateKey()
		if err != nil {
			b.Fatal(err)
		}
		dnc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(dnc.Close)
		legalID := fmt.Sprintf("device-%d@legal.broker.test", i)
		// A phone that approves at once.
		notifytest.New(b, dnc, legalID, key, p.PublicKey(), notifytest.Always(notify.Approve)).Start()
		r.targets = append(r.targets, notify.Target{LegalID: legalID, PublicKey: key.Public().(ed25519.PublicKey)})
	}
	return r
}

func (r *benchRig) ask(b *testing.B, target notify.Target) {
	q := notify.Question{
		RequestID: notify.NewRequestID(),
		Targets:   []notify.Target{target},
		Reason:    "Log in to **Example Bank**",
		Requester: notify.Requester{RemoteIP: "192.0.2.7"},
		Expires:   time.Now().Add(time.Minute),
	}
	out, err := r.pusher.Ask(context.Background(), q)
	if err != nil || out.Decision != notify.Approve {
		b.Errorf("Ask = %v, %v", out.Decision, err)
	}
}

// BenchmarkPushRoundTrip is one request at a time: its latency.
func BenchmarkPushRoundTrip(b *testing.B) {
	r := newBenchRig(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		r.ask(b, r.targets[0])
	}
}

// BenchmarkPushRoundTripParallel keeps 64 requests in flight, one per
// device: the pusher's throughput (ns/op is wall time per completed round
// trip, on all cores together).
func BenchmarkPushRoundTripParallel(b *testing.B) {
	const inFlight = 64
	r := newBenchRig(b, inFlight)
	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0)))
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		target := r.targets[int(next.Add(1)-1)%len(r.targets)]
		for pb.Next() {
			r.ask(b, target)
		}
	})
}
