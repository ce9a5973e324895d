package notify

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Each device may have this many answers a second refused, in bursts of
// answerBurst; past that its answers are refused unread. Only refusals
// count: a device answers once per request, and requests are limited per
// person already, while a device sending what the broker refuses is
// flooding it.
const (
	answersPerSecond = 10
	answerBurst      = 20
)

// deviceRates is a token bucket per device. Buckets idle long enough to be
// full again are forgotten now and then, so memory follows the devices
// answering now.
type deviceRates struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	calls   int
}

func newDeviceRates() *deviceRates {
	return &deviceRates{buckets: map[string]*rate.Limiter{}}
}

// allowed reports whether the device has refusals left to spend.
func (d *deviceRates) allowed(dev string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.buckets[dev]
	return l == nil || l.TokensAt(now) >= 1
}

// spend counts a refusal against the device.
func (d *deviceRates) spend(dev string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.calls++; d.calls%4096 == 0 {
		for k, l := range d.buckets {
			if l.TokensAt(now) >= answerBurst {
				delete(d.buckets, k)
			}
		}
	}
	l := d.buckets[dev]
	if l == nil {
		l = rate.NewLimiter(answersPerSecond, answerBurst)
		d.buckets[dev] = l
	}
	l.AllowN(now, 1)
}
