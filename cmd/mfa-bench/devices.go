//go:build linux

package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/legalmfa/mfa/identity"
	"github.com/legalmfa/mfa/notify"
)

// connectDevice is the one place a simulated device's NATS connection is
// made: authenticated with the device's identity key as an nkey and with
// its own inbox prefix, as the broker's authorization callout requires, so
// each device needs a connection of its own, as a phone has.
func connectDevice(url string, key ed25519.PrivateKey) (*nats.Conn, error) {
	opts, err := notify.DeviceConnectOptions(key)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		nats.Name("mfa-bench device"),
		nats.MaxReconnects(-1),
		nats.Timeout(10*time.Second),
		// Thousands of devices connect at once when a run starts.
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
	)
	return nats.Connect(url, opts...)
}

// fleet is the simulated phones: a real notify.Device per identity, which
// verifies each push's broker signature and answers with a real Ed25519
// signature over MFA-Answer/1, after a think time.
type fleet struct {
	conns   []*nats.Conn
	devices []*notify.Device
	wg      sync.WaitGroup

	// think is how long a device waits before answering, in nanoseconds;
	// answering is off while devices should leave requests pending.
	think     atomic.Int64
	answering atomic.Bool
	// holds maps a request ID to how long its device really held it before
	// answering, so that the client can subtract exactly that. Filled only
	// while think is non-zero.
	holds sync.Map

	prompts, withdrawals, answers, answerErrs atomic.Int64
	errMu                                     sync.Mutex
	lastErr                                   error

	// What the devices see of each request's path, to tell the broker's
	// share of the latency from the devices' share: push delivery is from
	// the push's Issued time (the broker's clock, in milliseconds) until the
	// device has verified it; the answer round trip is Device.Answer, the
	// broker's verification included.
	timingMu          sync.Mutex
	delivery, answerd []time.Duration
}

// takeTimings returns the timings gathered since the last call, and
// starts afresh.
func (f *fleet) takeTimings() (delivery, answer []time.Duration) {
	f.timingMu.Lock()
	defer f.timingMu.Unlock()
	delivery, answer = f.delivery, f.answerd
	f.delivery, f.answerd = nil, nil
	return delivery, answer
}

// deviceStarters bounds concurrent connects and syncs at start-up.
const deviceStarters = 32

// startFleet connects and starts one device per person, each on its own
// connection.
func startFleet(ctx context.Context, people []person, info notify.DeviceConfig, natsURL string, logf func(string, ...any)) (*fleet, error) {
	f := &fleet{devices: make([]*notify.Device, len(people)), conns: make([]*nats.Conn, len(people))}
	f.answering.Store(true)
	start := time.Now()
	err := forEach(ctx, len(people), deviceStarters, func(i int) error {
		nc, err := connectDevice(natsURL, people[i].key)
		if err != nil {
			return fmt.Errorf("device connection to %s: %w", natsURL, err)
		}
		f.conns[i] = nc
		cfg := info
		cfg.LegalID, cfg.Key = people[i].legalID, people[i].key
		d, err := notify.NewDevice(nc, cfg)
		if err != nil {
			return err
		}
		if err := d.Start(ctx); err != nil {
			return fmt.Errorf("start device: %w", err)
		}
		f.devices[i] = d
		f.wg.Add(1)
		go f.serve(d)
		return nil
	})
	if err != nil {
		f.close()
		return nil, err
	}
	logf("started %d devices, each on its own NATS connection, in %s", len(people), time.Since(start).Round(time.Millisecond))
	return f, nil
}

// deviceConfig is what every device shares: the broker's key, a quiet logger.
func deviceConfig(brokerKey string) (notify.DeviceConfig, error) {
	pub, err := identity.ParsePublicKey(brokerKey)
	if err != nil {
		return notify.DeviceConfig{}, fmt.Errorf("broker key: %w", err)
	}
	return notify.DeviceConfig{BrokerKey: pub, Logger: slog.New(slog.DiscardHandler), RequestTimeout: 10 * time.Second}, nil
}

func (f *fleet) serve(d *notify.Device) {
	defer f.wg.Done()
	for e := range d.Events() {
		if e.Withdrawal != nil {
			f.withdrawals.Add(1)
			continue
		}
		f.prompts.Add(1)
		p, received := *e.Prompt, time.Now()
		if issued, err := time.Parse(notify.TimeFormat, p.Push.Issued); err == nil {
			f.timingMu.Lock()
			f.delivery = append(f.delivery, received.Sub(issued))
			f.timingMu.Unlock()
		}
		if !f.answering.Load() {
			continue
		}
		think := time.Duration(f.think.Load())
		if think <= 0 {
			// Answered in the device's own loop: a real phone decides one
			// prompt at a time, and it spares a goroutine per request.
			f.answer(d, p, received, false)
			continue
		}
		time.AfterFunc(think, func() { f.answer(d, p, received, true) })
	}
}

func (f *fleet) answer(d *notify.Device, p notify.Prompt, received time.Time, track bool) {
	if track {
		f.holds.Store(p.Push.RequestID, time.Since(received))
	}
	start := time.Now()
	err := d.Answer(context.Background(), p, notify.Approve)
	rtt := time.Since(start)
	f.timingMu.Lock()
	f.answerd = append(f.answerd, rtt)
	f.timingMu.Unlock()
	if err != nil {
		f.answerErrs.Add(1)
		f.errMu.Lock()
		f.lastErr = err
		f.errMu.Unlock()
		return
	}
	f.answers.Add(1)
}

// hold returns, and forgets, how long the device held a request on purpose.
func (f *fleet) hold(requestID string) (time.Duration, bool) {
	v, ok := f.holds.LoadAndDelete(requestID)
	if !ok {
		return 0, false
	}
	return v.(time.Duration), true
}

func (f *fleet) setThink(d time.Duration) { f.think.Store(int64(d)) }

func (f *fleet) answerError() error {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.lastErr
}

func (f *fleet) close() {
	// Errors closing at exit change nothing the report says.
	for _, d := range f.devices {
		if d != nil {
			d.Close()
		}
	}
	for _, nc := range f.conns {
		if nc != nil {
			nc.Close()
		}
	}
	f.wg.Wait()
}
