package notify

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Each device may send this many answers a second, in bursts of
// answerBurst: a person answers a few a minute; anything near the limit is
// a device flooding the broker.
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

func (d *deviceRates) allow(dev string, now time.Time) bool {
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
	return l.AllowN(now, 1)
}
